"""A DataLoader twin for data held as one uint8 tensor: batched crop, flip and normalise.

On CUDA the whole data set lives on the GPU (50,000 CIFAR images are 150 MB as uint8), so a
batch costs a few kernel launches instead of 128 PIL calls. On the CPU the same code does the
augmentation for a whole batch in one tensor operation, which is what keeps small models on a
laptop from waiting on per-image Python work. By default both draw the augmentations the
torchvision pipeline draws (CROP_AND_FLIP): a crop at an offset uniform in [0, 2*padding] of the
zero-padded image, and a horizontal flip with probability 1/2. The tensor loader also does
airbench's (ALTERNATING): a 2-pixel translation of the reflected image, and alternating flips.
Like a DataLoader, each pass draws its shuffling and augmentation seed from PyTorch's global
random stream, so seeding before a run decides them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data import ImageSet

FLIPS = ("random", "alternate")
PAD_MODES = ("constant", "reflect")


@dataclass(frozen=True)
class Augment:
    """How training images are shifted and mirrored.

    padding: the crop's offset is uniform in [0, 2*padding] of the padded image: a shift of up
        to `padding` pixels each way.
    pad_mode: "constant" fills the border with zeros (torchvision's RandomCrop); "reflect"
        mirrors the image's edge into it (airbench), so no shifted image has a black band.
    flip: "random" mirrors each image with probability 1/2 in every pass; "alternate" does so
        in the first pass and then mirrors every image the other way from the pass before, so
        that each image is seen both ways in any two passes in a row (airbench).
    """

    padding: int = 4
    pad_mode: str = "constant"
    flip: str = "random"

    def __post_init__(self):
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"Unknown pad_mode {self.pad_mode!r}: choose one of {', '.join(PAD_MODES)}.")
        if self.flip not in FLIPS:
            raise ValueError(f"Unknown flip {self.flip!r}: choose one of {', '.join(FLIPS)}.")

    def describe(self) -> str:
        border = "zero" if self.pad_mode == "constant" else "reflected"
        return f"shifts of up to {self.padding} px ({border} border), {self.flip} flips"


CROP_AND_FLIP = Augment()  # torchvision's RandomCrop(32, padding=4) and RandomHorizontalFlip
ALTERNATING = Augment(padding=2, pad_mode="reflect", flip="alternate")  # airbench's


class TensorLoader:
    """Yield (images, labels) batches: float (B, 3, 32, 32) normalised, int64 (B,).

    augment: an Augment, True for CROP_AND_FLIP, or False (None) for the images as they are."""

    def __init__(self, images: ImageSet, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], *, shuffle: bool = False, augment: Augment | bool | None = None,
                 drop_last: bool = False, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.x = torch.from_numpy(images.images).to(self.device).permute(0, 3, 1, 2).contiguous()
        self.y = torch.from_numpy(images.labels).to(self.device)  # (N,)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.augment = CROP_AND_FLIP if augment is True else augment or None
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.passes = 0  # passes begun: the alternating flip turns every image over each pass
        self.first_flips: torch.Tensor | None = None  # (N,) bool: "alternate"'s flips of the first pass

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
        flips = self._flips(generator) if self.augment else None
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.x[idx]  # (B, 3, 32, 32) uint8
            if self.augment:
                x = random_crop(x, self.augment.padding, generator, self.augment.pad_mode)
                flip = flips[idx] if flips is not None else coin_flips(len(idx), generator)
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            yield (x.float() - self.mean) / self.std, self.y[idx]

    def _flips(self, generator: torch.Generator) -> torch.Tensor | None:
        """This pass's flip of every image for "alternate" (None for "random": drawn per batch):
        drawn at random in the first pass, each the opposite of the pass before after it."""
        self.passes += 1
        if self.augment.flip != "alternate":
            return None
        if self.first_flips is None:
            self.first_flips = coin_flips(len(self.y), generator)
        return self.first_flips ^ (self.passes % 2 == 0)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator, pad_mode: str = "constant") -> torch.Tensor:
    """Crop each image of (B, C, H, W) at its own random offset in the padded image (zeros, or
    its edge reflected)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode=pad_mode)  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def coin_flips(n: int, generator: torch.Generator) -> torch.Tensor:
    """n fair coin flips (bool), on the generator's device."""
    return torch.rand(n, device=generator.device, generator=generator) < 0.5
