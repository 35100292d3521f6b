"""Every plot helper draws on the axes it is given and returns them."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from torchvision import transforms

from cifar_utils import plots

CLASSES = [f"c{i}" for i in range(10)]
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
LABELS = np.arange(40) % 10
HISTORY = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_top1": 0.1 * e,
            "val_top1": 0.09 * e} for e in range(1, 4)]


@pytest.mark.parametrize("draw", [
    lambda ax: plots.sample_grid(IMAGES, LABELS, CLASSES, per_class=3, ax=ax),
    lambda ax: plots.augmentation_preview(IMAGES[0], {"flip": transforms.RandomHorizontalFlip()},
                                          n=3, ax=ax),
    lambda ax: plots.learning_curves(HISTORY, "loss", ax=ax),
    lambda ax: plots.confusion_matrix(rng.integers(0, 9, (10, 10)), CLASSES, ax=ax),
    lambda ax: plots.per_class_accuracy({"a": rng.random(10)}, CLASSES, ax=ax),
    lambda ax: plots.class_counts({"train": np.full(10, 5)}, CLASSES, ax=ax),
    lambda ax: plots.prediction(IMAGES[0], rng.dirichlet(np.ones(10)), CLASSES, ax=ax),
])
def test_plot_draws_on_the_given_axes(draw):
    fig, ax = plt.subplots()
    assert draw(ax) is ax
    assert ax.has_data() or ax.images
    plt.close(fig)


def test_plot_makes_its_own_axes_when_none_given():
    ax = plots.learning_curves(HISTORY)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["validation", "train"]
    plt.close(ax.figure)
