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
    colours = [tuple(c.get_edgecolor()[0]) for c in ax.collections]
    assert colours[0] == colours[1] != colours[2]  # a colour per notebook
    assert all(len(c.get_facecolor()) == 0 or c.get_facecolor()[0][3] == 0 for c in ax.collections)  # hollow
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


def test_groups_that_share_a_rate_share_one_line_and_one_legend_entry(ax):
    """04's full fine-tuning: five stages at one rate drew five lines on top of one another."""
    lrs = [[0.1 * s] * 4 + [0.2 * s] for s in range(1, 6)]
    plots.learning_rates(lrs, ["stem", "layer2", "layer3", "layer4", "fc"], ax=ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["stem, layer2, layer3, layer4", "fc"]
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_runs_without_groups_get_a_colour_each_and_log_ticks_read_as_plain_numbers(ax):
    """05's panels were three points in one colour with two ticks, 10^7 and 2 x 10^7."""
    runs = [{**RECORDS[0], "flops": 4.3e6}, {**RECORDS[1], "flops": 12.2e6}, {**RECORDS[2], "flops": 74e6}]
    plots.accuracy_against_cost(runs, "flops", ax=ax)
    colours = {tuple(c.get_edgecolor()[0]) for c in ax.collections}
    assert len(colours) == 3
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)] if t.get_text()]
    assert {"5 M", "10 M", "20 M", "50 M"} <= set(labels)


def test_the_range_test_shows_the_fall_not_the_blow_up(ax):
    """02's range test drew 0 to 6.5 for a fall from 2.3 to 2.0: the fall it points at was flat."""
    lrs = list(np.geomspace(1e-5, 10, 50))
    losses = [2.3] * 20 + list(np.linspace(2.3, 2.0, 20)) + list(np.linspace(2.0, 6.5, 10))
    plots.lr_range(lrs, losses, {"suggested": 0.01}, ax=ax)
    low, high = ax.get_ylim()
    assert 1.9 < low < 2.0 and 2.3 < high < 2.6  # the fall fills most of the height


def test_confusion_matrix_shows_row_shares(ax):
    cm = np.array([[3, 1], [0, 4]])
    plots.confusion_matrix(cm, ["x", "y"], ax=ax)
    assert [t.get_text() for t in ax.texts] == ["0.75", "0.25", "0.00", "1.00"]


def test_bars_draw_one_bar_per_value(ax):
    plots.per_class_accuracy({"a": np.linspace(0, 0.9, 10)}, CLASSES, ax=ax)
    assert [round(p.get_height(), 2) for p in ax.patches] == [round(v, 2) for v in np.linspace(0, 0.9, 10)]


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


def test_a_run_trained_elsewhere_is_named_so_not_given_zero_epochs(ax):
    """06's teacher is scored there, trained in 03: its legend said 'teacher (0 x 45,000)'."""
    runs = [{**RECORDS[0], "epochs": 3, "train_images": 4500}, {**RECORDS[1], "epochs": 3, "train_images": 4500},
            {**RECORDS[2], "name": "teacher", "epochs": 0, "train_images": 45000}]
    plots.accuracy_against_cost(runs, "params", ax=ax)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "teacher (trained in another notebook)"]
    assert legend.get_title().get_text() == ""  # the runs trained here share one budget


def test_every_run_is_drawn_in_the_panel_of_the_task_it_was_scored_on():
    """06's figure of every notebook's runs: five-class and ten-class accuracies share no axis."""
    runs = [{**r, "epochs": 3, "train_images": 4500} for r in RECORDS] + [
        {"name": "pretrained", "notebook": "03", "params": 100, "test_top1": 0.7, "classes": 5, "epochs": 3,
         "train_images": 4500}]
    fig = plots.accuracy_against_cost_by_task(runs, "params", num_classes=10, title="every run")
    ten, five = fig.axes
    assert ten.get_title() == "scored on 10 classes (chance 10%)" and five.get_title() == "scored on 5 classes (chance 20%)"
    assert [t.get_text() for t in ten.get_legend().get_texts()] == ["02: a", "02: b", "03: c"]
    assert [t.get_text() for t in five.get_legend().get_texts()] == ["03: pretrained"]
    assert five.collections[0].get_offsets().tolist() == [[100, 0.7]]
    assert tuple(five.collections[0].get_edgecolor()[0]) == tuple(ten.collections[2].get_edgecolor()[0])  # 03's colour
    assert fig.get_suptitle() == "every run"
    plt.close(fig)


@pytest.mark.parametrize("filters,rows", [(16, 2), (64, 8)])
def test_first_layer_filters_are_a_grid_of_eight_columns_big_enough_to_see(filters, rows):
    ax = plots.filters(torch.randn(filters, 3, 3, 3), title="resnet18_cifar_scratch: the filters of its first "
                                                             "convolution, each stretched")
    grid = ax.images[0].get_array()
    assert grid.shape[:2] == (rows * 4 - 1, 8 * 4 - 1)  # 3x3 filters with a pixel between them
    width, height = ax.figure.get_size_inches()
    assert width / 8 >= 0.75 and (height - 0.5) / rows >= 0.75  # each filter most of an inch on a side
    plt.close(ax.figure)
