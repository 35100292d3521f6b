"""Every plot helper draws what it is given on the axes it is given, and returns them."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torchvision import transforms

from cifar_utils import plots

CLASSES = [f"c{i}" for i in range(10)]
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
LABELS = np.arange(40) % 10
HISTORY = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_top1": 0.1 * e,
            "val_top1": 0.09 * e} for e in range(1, 4)]
RECORDS = [{"name": "a", "notebook": "02", "params": 10, "train_seconds": 2.0, "test_top1": 0.4},
           {"name": "b", "notebook": "02", "params": 1000, "train_seconds": 8.0, "test_top1": 0.6},
           {"name": "c", "notebook": "03", "params": 100, "train_seconds": 4.0, "test_top1": 0.5}]


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_learning_curves_plot_the_history_with_whole_epochs(ax):
    assert plots.learning_curves(HISTORY, "top1", label="cnn", ax=ax) is ax
    val, train = ax.get_lines()
    assert list(val.get_xdata()) == [1, 2, 3] and list(val.get_ydata()) == [0.09, 0.18, 0.27]
    assert list(train.get_ydata()) == pytest.approx([0.1, 0.2, 0.3])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cnn validation", "cnn train"]
    ax.figure.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_accuracy_against_cost_puts_each_run_where_it_belongs(ax):
    assert plots.accuracy_against_cost(RECORDS, "params", group="notebook", ax=ax) is ax
    points = [c.get_offsets().tolist() for c in ax.collections]  # one marker per run
    assert points == [[[10, 0.4]], [[1000, 0.6]], [[100, 0.5]]]
    colours = [tuple(c.get_facecolor()[0]) for c in ax.collections]
    assert colours[0] == colours[1] != colours[2]  # a colour per notebook
    assert len(ax.texts) == 0  # names in the legend, never on the data
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["02: a", "02: b", "03: c"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "parameters (log scale)"


def test_accuracy_against_cost_keeps_a_linear_scale_within_a_decade(ax):
    latencies = [{**r, "cpu_latency_ms": ms} for r, ms in zip(RECORDS, (4.0, 5.0, 6.0))]
    plots.accuracy_against_cost(latencies, "cpu_latency_ms", ax=ax)
    assert ax.get_xscale() == "linear" and "log" not in ax.get_xlabel()


def test_accuracy_against_cost_names_the_budgets_when_they_differ(ax):
    same = [{**r, "epochs": 3, "train_images": 4500} for r in RECORDS]
    plots.accuracy_against_cost(same, "params", ax=ax)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c"]  # one budget: nothing to say
    assert legend.get_title().get_text() == ""
    ax.clear()
    mixed = [{**same[0], "epochs": 8, "train_images": 45000}, *same[1:]]
    plots.accuracy_against_cost(mixed, "params", ax=ax)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a (8 x 45,000)", "b (3 x 4,500)", "c (3 x 4,500)"]
    assert "budgets differ" in legend.get_title().get_text()


def test_learning_rates_trace_each_group_and_mark_the_unfreezing(ax):
    lrs = [[0.1 * s, 0.01 * s] for s in range(1, 6)]
    plots.learning_rates(lrs, ["body", "head"], mark_step=3, ax=ax)
    body, head, mark = ax.get_lines()
    assert list(head.get_ydata()) == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert list(mark.get_xdata()) == [3, 3] and ax.get_yscale() == "log"


def test_confusion_matrix_shows_row_shares(ax):
    cm = np.array([[3, 1], [0, 4]])
    plots.confusion_matrix(cm, ["x", "y"], ax=ax)
    assert [t.get_text() for t in ax.texts] == ["0.75", "0.25", "0.00", "1.00"]


def test_bars_draw_one_bar_per_value(ax):
    plots.per_class_accuracy({"a": np.linspace(0, 0.9, 10)}, CLASSES, ax=ax)
    assert [round(p.get_height(), 2) for p in ax.patches] == [round(v, 2) for v in np.linspace(0, 0.9, 10)]
    fig, other = plt.subplots()
    plots.accuracy_bars(RECORDS, ax=other)
    assert [p.get_width() for p in other.patches] == [0.4, 0.6, 0.5]
    plt.close(fig)


def test_image_grids_show_the_images_given(ax):
    plots.sample_grid(IMAGES, LABELS, CLASSES, per_class=3, ax=ax)
    grid = ax.images[0].get_array()
    assert grid.shape == (10 * 34 - 2, 3 * 34 - 2, 3)
    assert np.array_equal(grid[:32, :32], IMAGES[0]) and np.array_equal(grid[34:66, :32], IMAGES[1])
    fig, other = plt.subplots()
    plots.augmentation_preview(IMAGES[0], {"flip": transforms.RandomHorizontalFlip(p=1.0)}, n=2, ax=other)
    row = other.images[0].get_array()
    assert np.array_equal(row[:, :32], IMAGES[0]) and np.array_equal(row[:, 34:66], IMAGES[0][:, ::-1])
    plt.close(fig)


def test_class_templates_stretch_each_class_to_the_full_range(ax):
    weight = torch.zeros(10, 3072)
    weight[0, :1024] = torch.linspace(-1, 1, 1024)  # class 0: a red ramp
    weight[1:] = torch.randn(9, 3072)
    plots.class_templates(weight, CLASSES, ax=ax)
    tiles = ax.images[0].get_array()
    assert tiles[:, :32].max() == 255 and tiles[:, :32].min() == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES


def test_helpers_make_their_own_axes_when_none_given():
    ax = plots.channel_histograms(IMAGES)
    assert len(ax.patches) == 3 * 64 and sum(p.get_height() for p in ax.patches) == IMAGES.size
    plt.close(ax.figure)
    ax = plots.prediction(IMAGES[0], np.full(10, 0.1), CLASSES)
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.1] * 5)
    plt.close(ax.figure)


@pytest.mark.parametrize("draw", [
    lambda ax: plots.learning_curves(HISTORY, "top1", label="cnn", ax=ax),
    lambda ax: plots.class_counts({"train": np.full(10, 90), "test": np.full(10, 10)}, CLASSES, ax=ax),
    lambda ax: plots.channel_histograms(IMAGES, ax=ax),
    lambda ax: plots.accuracy_against_cost(RECORDS, "params", group="notebook", ax=ax),
])
def test_legends_sit_beside_the_axes_where_they_cover_no_data(ax, draw):
    draw(ax)
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1


def test_misclassified_shows_the_most_confident_mistakes_with_their_labels():
    probabilities = np.full((40, 10), 0.01)
    probabilities[np.arange(40), LABELS] = 0.5  # right ...
    probabilities[3, :] = 0.01
    probabilities[3, 7] = 0.9  # ... except image 3, confidently taken for class 7
    probabilities[5, :] = 0.01
    probabilities[5, 2] = 0.6  # and image 5, less sure
    fig = plots.misclassified(IMAGES, LABELS, probabilities, CLASSES, n=4, ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["c3\nas c7 90%", "c5\nas c2 60%"]
    assert (fig.axes[0].get_images()[0].get_array() == IMAGES[3]).all()
    plt.close(fig)


def test_learning_curves_against_seconds_put_each_epoch_at_the_training_time_so_far(ax):
    history = [{**r, "seconds": s} for r, s in zip(HISTORY, (2.0, 3.0, 5.0))]
    plots.learning_curves(history, "top1", ax=ax, against="seconds")
    assert list(ax.get_lines()[0].get_xdata()) == [2.0, 5.0, 10.0]
    assert ax.get_xlabel() == "seconds of training"


def test_compared_curves_draw_every_history_in_every_view():
    seconds = [{**r, "seconds": s} for r, s in zip(HISTORY, (2.0, 3.0, 5.0))]
    fig = plots.compared_curves({"a": seconds, "b": seconds}, [("top1", "epoch"), ("loss", "seconds")], title="two runs")
    by_epoch, by_time = fig.axes[:2]
    assert [line.get_label() for line in by_epoch.get_lines()] == ["a validation", "a train", "b validation", "b train"]
    assert list(by_time.get_lines()[0].get_xdata()) == [2.0, 5.0, 10.0] and by_time.get_ylabel() == "loss"
    assert list(by_time.get_lines()[0].get_ydata()) == [r["val_loss"] for r in HISTORY]
    assert fig.get_suptitle() == "two runs"
    assert by_epoch.get_legend() is None and by_time.get_legend() is None  # one legend for both panels
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a validation", "a train", "b validation", "b train"]
    plt.close(fig)


def test_learning_rates_leave_a_frozen_step_blank_and_a_group_frozen_throughout_out(ax):
    plots.learning_rates([[None, None, 0.1], [None, None, 0.1], [0.01, None, 0.1]], ["body", "stem", "fc"], ax=ax)
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert set(lines) == {"body", "fc"}  # the stem never trained
    assert np.isnan(lines["body"][:2]).all() and lines["body"][2] == 0.01
