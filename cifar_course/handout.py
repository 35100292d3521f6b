"""What a graded challenge run sees, and what the grader keeps back to score it.

The run gets the training images with their labels and half of the test images without theirs
(`shown`), in an order the grader draws: its predictions for those are only checked against its
own network. The network is scored on the other half (`held`), which never enters the run's
sandbox in any form: in a fresh sandbox, each image flipped or not, shifted by up to two pixels
and re-encoded as JPEG, so that no table keyed by the public test set's pixels can recognise it.
A teacher's own test set (`course challenge --test-set`) replaces the held half. Test images that
the course's bundled sample holds with their labels are left out of both.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_utils import data

SHIFT = 2  # pixels, at most, that a held image moves (the gap fills by reflection)
JPEG_QUALITY = 90


class ChallengeError(ValueError):
    """The challenge cannot be graded as asked."""


@dataclass(frozen=True)
class Handout:
    """What the grader hands every run (a folder), and what it keeps to score them."""

    folder: Path  # train.npz and test_images.npy (the shown images), read-only inside the sandbox
    shown_labels: np.ndarray  # in the order the runs see the shown images
    held_images: np.ndarray  # the images the network is scored on, disguised, never shown
    held_labels: np.ndarray
    classes: list[str]
    left_out: int  # public test images left out because the bundled sample holds them
    held_from: str  # "the public test set's other half" or the teacher's set


def in_sample(images: np.ndarray, tolerance: float = 4.0) -> np.ndarray:
    """Which images are (near) copies of an image of the bundled sample, whose labels every run
    can read from the package: 8x8 thumbnails closer than `tolerance` (RMS, 0-255)."""
    reference = _sample_thumbnails()
    found = np.zeros(len(images), dtype=bool)
    for start in range(0, len(images), 2000):
        chunk = _thumbnails(images[start:start + 2000])
        squared = (chunk ** 2).sum(1)[:, None] + (reference ** 2).sum(1)[None, :] - 2 * chunk @ reference.T
        found[start:start + 2000] = squared.min(1) < tolerance ** 2 * reference.shape[1]
    return found


@functools.cache
def _sample_thumbnails() -> np.ndarray:
    sample = data.load_sample("cifar10", reason="")
    return _thumbnails(np.concatenate([sample.train.images, sample.test.images]))


def _thumbnails(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(images), -1).astype(np.float32)


def disguise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image (N, 32, 32, 3) flipped or not, shifted by up to SHIFT pixels each way (the gap
    filled by reflection), and re-encoded as JPEG: what the class sees, not its stored pixels."""
    out = np.empty_like(images)
    padded = np.pad(images, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)), mode="reflect")
    flips, shifts = rng.random(len(images)) < 0.5, rng.integers(0, 2 * SHIFT + 1, (len(images), 2))
    for i, ((dy, dx), flip) in enumerate(zip(shifts, flips)):
        moved = padded[i, dy:dy + 32, dx:dx + 32]
        buffer = io.BytesIO()
        Image.fromarray(moved[:, ::-1] if flip else moved).save(buffer, "JPEG", quality=JPEG_QUALITY)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def hand_out(cifar: data.CifarData, folder: Path, seed: int, private: data.ImageSet | None = None) -> Handout:
    """Write train.npz (images, labels, classes) and test_images.npy (the shown images: no
    labels, in a drawn order) into `folder`; keep the held images, disguised, and every label."""
    keep = np.flatnonzero(~in_sample(cifar.test.images))
    if len(keep) < 2:
        raise ChallengeError(f"Every test image of {cifar.location} is in the course's bundled sample, whose labels a "
                             "run could read: grade the challenge on the full data set.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(keep)
    if private is None:  # half shown, half held
        shown, held = order[:len(order) // 2], order[len(order) // 2:]
        held_images, held_labels, held_from = cifar.test.images[held], cifar.test.labels[held], "the test set's other half"
    else:
        shown, held_images, held_labels, held_from = order, private.images, private.labels, "the teacher's own test set"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", images=cifar.train.images, labels=cifar.train.labels, classes=np.array(cifar.classes))
    np.save(folder / "test_images.npy", cifar.test.images[shown])
    return Handout(folder, cifar.test.labels[shown], disguise(held_images, rng), held_labels, cifar.classes,
                   len(cifar.test) - len(keep), held_from)


def private_test_set(dataset: str, path: Path, classes: list[str]) -> data.ImageSet:
    """A teacher's own test images: a folder or archive laid out as DATA_DIR's image folders,
    whose test/<class>/ images are scored (its train/ is not used)."""
    private = data.load(dataset, path, download=False)
    if private.classes != classes:
        raise ChallengeError(f"{path} has the classes {private.classes}, not the challenge's {classes}.")
    return private.test
