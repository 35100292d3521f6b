"""A DataLoader twin for data held as one uint8 tensor: batched crop, flip and normalise.

On CUDA the whole data set lives on the GPU (50,000 CIFAR images are 150 MB as uint8), so a
batch costs a few kernel launches instead of 128 PIL calls. On the CPU the same code does the
augmentation for a whole batch in one tensor operation, which is what keeps small models on a
laptop from waiting on per-image Python work. Both draw the augmentations the torchvision
pipeline draws: a crop at an offset uniform in [0, 2*padding] of the zero-padded image, and
a horizontal flip with probability 1/2. Like a DataLoader, each pass draws its shuffling and
augmentation seed from PyTorch's global random stream, so seeding before a run decides them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from .data import ImageSet


class TensorLoader:
    """Yield (images, labels) batches: float (B, 3, 32, 32) normalised, int64 (B,)."""

    def __init__(self, images: ImageSet, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], *, shuffle: bool = False, augment: bool = False,
                 padding: int = 4, drop_last: bool = False, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.x = torch.from_numpy(images.images).to(self.device).permute(0, 3, 1, 2).contiguous()
        self.y = torch.from_numpy(images.labels).to(self.device)  # (N,)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.padding, self.drop_last = padding, drop_last

    def __len__(self) -> int:
        n = len(self.y) / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    @property
    def dataset_size(self) -> int:
        return len(self.y)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        generator = None
        if self.shuffle or self.augment:  # evaluation draws nothing from the global stream
            seed = int(torch.randint(0, 2**62, ()))  # as a DataLoader draws its base seed
            generator = torch.Generator(device=self.device).manual_seed(seed)
        order = (torch.randperm(n, device=self.device, generator=generator)
                 if self.shuffle else torch.arange(n, device=self.device))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.x[idx]  # (B, 3, 32, 32) uint8
            if self.augment:
                x = random_flip(random_crop(x, self.padding, generator), generator)
            yield (x.float() - self.mean) / self.std, self.y[idx]


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Crop each image of (B, C, H, W) at its own random offset in the zero-padded image."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
