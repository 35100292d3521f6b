"""Every figure of the course reads at a glance: no text over other text or another axes, nothing
cut at the edge (figure_check), for each plot helper with realistic inputs, with many runs, with
CIFAR-100's hundred classes, and as the notebooks combine them."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from figure_check import problems

from cifar_utils import data, plots, regimes

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CLASSES = data.class_names("cifar10")
RNG = np.random.default_rng(0)


def history(epochs=8, start=0.3):
    return [{"epoch": e, "lr": 0.1, "train_loss": 2 - 0.2 * e, "train_top1": start + 0.05 * e, "val_loss": 2.1 - 0.18 * e,
             "val_top1": start + 0.04 * e, "val_top5": 0.8, "seconds": 10.0 + e} for e in range(1, epochs + 1)]


def records(n, notebooks=("02", "03", "04", "05", "06", "07")):
    """n runs of several notebooks with long names and different budgets, as a report has them."""
    return [{"name": f"a_fairly_long_run_name_{i}", "notebook": notebooks[i % len(notebooks)], "test_top1": 0.3 + 0.01 * i,
             "test_top1_std": 0.01, "params": 10 ** (4 + i % 4) * (1 + i), "train_seconds": 5.0 * (i + 1),
             "flops": 1e6 * (i + 1), "cpu_latency_ms": 1.0 + i, "epochs": 2 + i % 3, "train_images": 4500 * (1 + i % 2)}
            for i in range(n)]


def images(n=16):
    return RNG.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


FIGURES = {  # name -> a function that draws one figure with the helper, as a notebook calls it
    "sample_grid": lambda: plots.sample_grid(images(100), np.repeat(np.arange(10), 10), CLASSES, per_class=10),
    "learning_curves": lambda: plots.learning_curves(history(), "top1", label="simple_cnn"),
    "confusion_matrix": lambda: plots.confusion_matrix(RNG.integers(0, 50, (10, 10)), CLASSES,
                                                            title="SimpleCNN on the test set"),
    "per_class_accuracy": lambda: plots.per_class_accuracy({"logistic regression": RNG.random(10), "SimpleCNN": RNG.random(10)},
                                                           CLASSES),
    "class_counts": lambda: plots.class_counts({"train": np.full(10, 4500), "validation": np.full(10, 500),
                                                "test": np.full(10, 1000)}, CLASSES),
    "misclassified": lambda: plots.misclassified(images(64), RNG.integers(0, 10, 64), RNG.dirichlet(np.ones(10), 64), CLASSES,
                                                 title="resnet18_cifar_scratch: its most confident mistakes"),
    "prediction": lambda: plots.prediction(images(1)[0], RNG.dirichlet(np.ones(10)), CLASSES,
                                               title="a test image (truly automobile)"),
    "accuracy_against_cost, 25 runs": lambda: plots.accuracy_against_cost(records(25), "params", group="notebook"),
    "accuracy_against_cost, 3 runs": lambda: plots.accuracy_against_cost(records(3), "cpu_latency_ms"),
    "learning_rates": lambda: plots.learning_rates([[0.1 * i / 100, 0.01 * i / 100] for i in range(100)],
                                                   ["stem+layer1", "fc"], mark_step=40, title="freeze_then_unfreeze_layerwise"),
    "lr_range": lambda: plots.lr_range(list(np.logspace(-5, 1, 100)), list(2.3 - np.linspace(0, 1, 100)),
                                       {"suggested": 0.03, "the recipe's peak": 0.05}),
    "channel_histograms": lambda: plots.channel_histograms(images(200)),
    "class_templates": lambda: plots.class_templates(torch.randn(10, 3072), CLASSES),
    "regimes.plot": lambda: regimes.plot(
        {f"{arm}_{regime}": {"test_top1": base + gain, "test_top1_std": 0.008,
                             "test_top1_per_seed": [base + gain - 0.01, base + gain, base + gain + 0.01]}
         for regime, base in (("2250x30", 0.52), ("9000x2", 0.6)) for arm, gain in
         (("plain", 0.0), ("label_smoothing", -0.004), ("mixup", 0.009), ("cutmix", 0.016))},
        {"plain": "plain", "label_smoothing": "label smoothing", "mixup": "MixUp", "cutmix": "CutMix"},
        ["2250x30", "9000x2"], title="SimpleCNN: where each regulariser pays"),
    "reliability": lambda: plots.reliability({name: {"ece": 0.05, "confidence": np.linspace(0.05, 0.95, 10),
                                                     "accuracy": np.linspace(0.1, 0.9, 10), "counts": np.ones(10)}
                                              for name in ("plain", "label_smoothing")},
                                             title="test images binned by confidence"),
    "filters": lambda: plots.filters(torch.randn(64, 3, 3, 3), title="the 64 filters of its first convolution, each stretched"),
    "feature_maps": lambda: plots.feature_maps(images(1)[0], {name: torch.randn(1, 32, side, side) for name, side in
                                                              (("stem", 32), ("layer1", 32), ("layer2", 16), ("layer4", 4))}),
    "grad_cam": lambda: plots.grad_cam(images(5), torch.rand(5, 32, 32), ["cat 85%\ndog 10%\nbird 2%"] * 5, ncols=5),
    "grad_cam_right_and_wrong": lambda: plots.grad_cam_right_and_wrong(
        images(16), torch.rand(16, 32, 32), [3] * 16, [3] * 8 + [5] * 8, CLASSES,
        title="resnet18_cifar_scratch: Grad-CAM of the predicted class at layer4"),
    "mixed_batch": lambda: plots.mixed_batch(torch.rand(8, 3, 32, 32), torch.softmax(torch.randn(8, 10), 1), CLASSES,
                                             title="MixUp"),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_figure_reads_at_a_glance(name):
    plt.close("all")
    FIGURES[name]()
    fig = plt.gcf()
    if fig.get_layout_engine() is None:  # a grid of pictures lays itself out (constrained)
        fig.tight_layout()
    else:
        fig.canvas.draw()
    assert problems(fig) == []
    plt.close("all")


def test_a_hundred_classes_read_at_a_glance():
    classes = data.class_names("cifar100")
    for draw in (lambda: plots.per_class_accuracy({"a": RNG.random(100)}, classes),
                 lambda: plots.confusion_matrix(RNG.integers(0, 5, (100, 100)), classes),
                 lambda: plots.class_counts({"train": np.full(100, 450)}, classes)):
        plt.close("all")
        draw()
        fig = plt.gcf()
        fig.tight_layout()
        assert problems(fig) == [], draw
    plt.close("all")


def test_panels_side_by_side_keep_each_legend_off_the_next_panel():
    """What 02 and 03 draw: learning curves in two panels, each with its legend beside it."""
    plt.close("all")
    fig = plots.compared_curves({"augmented": history(), "no augmentation": history(start=0.2)},
                                [("top1", "epoch"), ("loss", "epoch")], title="SimpleCNN")
    assert problems(fig) == []
    plt.close("all")


def test_the_reports_figures_read_at_a_glance_with_many_runs():
    from cifar_course import report

    rows = [{**r, "history": history(r["epochs"])} for r in records(30)]
    for title, fig in report.figures(rows):
        assert problems(fig) == [], title
