"""Batches for training: the standard torchvision pipeline, or the course's tensor path."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from .data import ImageSet, Splits, channel_stats
from .tensor_loader import CROP_AND_FLIP, Augment, TensorLoader

PIPELINES = ("tensor", "torchvision")


def train_transforms(mean: Sequence[float], std: Sequence[float],
                     augment: bool = True) -> transforms.Compose:
    """The textbook CIFAR pipeline: pad-4 random crop, horizontal flip, to tensor, normalise."""
    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])


def eval_transforms(mean: Sequence[float], std: Sequence[float]) -> transforms.Compose:
    """To tensor and normalise, nothing random."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images (N, H, W, 3), or one (H, W, 3), as the normalised batch (N or 1, 3, H, W) a
    model takes."""
    x = torch.from_numpy(images).reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


class PILDataset(Dataset):
    """Serve an ImageSet the way torchvision's CIFAR10 does: a PIL image through a transform."""

    def __init__(self, images: ImageSet, transform=None):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images.images[i])
        return (self.transform(img) if self.transform else img), int(self.images.labels[i])


def default_num_workers() -> int:
    """Worker processes for a DataLoader that behave in Jupyter on Linux, macOS and Windows.

    macOS and Windows start workers by spawning a fresh interpreter, which costs seconds per
    epoch in a notebook; the PIL pipeline is cheap enough there to run in the main process.
    """
    if sys.platform != "linux":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def torchvision_loader(images: ImageSet, batch_size: int, transform, *, shuffle: bool = False,
                       num_workers: int | None = None, device: torch.device | None = None,
                       drop_last: bool = False, persistent: bool = True) -> DataLoader:
    """A standard DataLoader over PIL images with torchvision transforms.

    persistent keeps the worker processes between epochs (starting them costs seconds).
    """
    workers = default_num_workers() if num_workers is None else num_workers
    return DataLoader(PILDataset(images, transform), batch_size=batch_size, shuffle=shuffle,
                      num_workers=workers, persistent_workers=persistent and workers > 0,
                      pin_memory=device is not None and device.type == "cuda",
                      drop_last=drop_last)


@dataclass
class Loaders:
    """The three loaders of a run, the splits they serve and the normalisation they share."""

    train: object
    val: object
    test: object
    splits: Splits
    batch_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pipeline: str
    augment: Augment | None = None  # how the training batches are shifted and mirrored (None: not at all)

    @property
    def train_images(self) -> int:
        """Images in the training split: with the epochs, a run's budget."""
        return len(self.splits.train)


def make_loaders(splits: Splits, batch_size: int, device: torch.device, *,
                 pipeline: str = "tensor", augment: Augment | bool = True,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 num_workers: int | None = None) -> Loaders:
    """Build train (shuffled, augmented if asked), val and test loaders with one pipeline.

    pipeline: "tensor" keeps the uint8 data on `device` and augments whole batches there;
    "torchvision" is the standard DataLoader with PIL transforms. augment: an Augment (True:
    CROP_AND_FLIP, torchvision's; ALTERNATING only on the tensor pipeline). mean/std default to
    the training split's own per-channel statistics.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"Unknown pipeline {pipeline!r}: choose one of {', '.join(PIPELINES)}.")
    augment = CROP_AND_FLIP if augment is True else augment or None
    if pipeline == "torchvision" and augment not in (None, CROP_AND_FLIP):
        raise ValueError(f"The torchvision pipeline crops and flips as torchvision does; {augment.describe()} "
                         "needs pipeline='tensor'.")
    if mean is None or std is None:
        mean, std = channel_stats(splits.train.images)
    mean, std = tuple(mean), tuple(std)
    if pipeline == "tensor":
        def loader(images, shuffle, aug):
            return TensorLoader(images, batch_size, mean, std, shuffle=shuffle, augment=aug,
                                device=device, drop_last=shuffle and len(images) > batch_size)
    else:
        def loader(images, shuffle, aug):
            transform = train_transforms(mean, std, aug is not None) if shuffle else eval_transforms(mean, std)
            return torchvision_loader(images, batch_size, transform, shuffle=shuffle,
                                      num_workers=num_workers, device=device,
                                      drop_last=shuffle and len(images) > batch_size)
    return Loaders(loader(splits.train, True, augment), loader(splits.val, False, None),
                   loader(splits.test, False, None), splits, batch_size, mean, std, pipeline, augment)
