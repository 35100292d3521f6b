"""What every source of the data ends up as: uint8 images and int64 labels in memory, the
classes in torchvision's order, and the error that says why data cannot be used."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .settings import DATASETS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")

WAYS = """Ways to give the course its data:
  1. torchvision's layout in DATA_DIR (cifar-10-batches-py/ or cifar-100-python/), or the
     official archive (cifar-10-python.tar.gz / cifar-100-python.tar.gz) placed there by hand;
  2. DOWNLOAD=True on a machine that can reach the CIFAR site;
  3. DATA_DIR pointing at an image folder or archive with train/<class>/*.png and test/<class>/...;
  4. DATA_DIR="sample" for the small CIFAR-10 sample bundled with cifar_utils."""


class DataError(ValueError):
    """The data at hand cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 (N, 32, 32, 3) and their labels as int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> ImageSet:
        """Return the images at these indices."""
        return ImageSet(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class CifarData:
    """A data set as the course uses it: where it came from, its classes and its splits."""

    dataset: str  # cifar10 | cifar100: what the notebook asked for
    source: str  # torchvision | folder | sample
    location: str  # the folder or archive it was read from
    classes: list[str]
    train: ImageSet
    test: ImageSet
    banner: str = ""  # said to the learner when the data is not what they might expect

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """A few lines for the notebook to print."""
        lines = [f"{self.dataset} from {self.source} ({self.location}): "
                 f"{len(self.train):,} train / {len(self.test):,} test images, "
                 f"{self.num_classes} classes"]
        if self.banner:
            lines.append(self.banner)
        return "\n".join(lines)


def class_names(dataset: str) -> list[str]:
    """Return the class names in torchvision's order (both data sets list them alphabetically)."""
    if dataset == "cifar10":
        return ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"]
    if dataset == "cifar100":
        return CIFAR100_CLASSES
    raise DataError(f"Unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}.")


CIFAR100_CLASSES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach
couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
