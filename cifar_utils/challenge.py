"""The course's open challenge (notebook 09): the best test accuracy within a time budget.

A run may use anything the course taught, within a budget of the machine's time counted from
the kernel's start (imports, data, training and predictions all count). It ends by handing in
its network and its predictions for the test images (`Task.submit`).

Run by a learner, the test labels stay inside the Task, which scores the predictions and says
how long the run took. Graded (`course challenge`), the budget counts from the grader's start of
the run; the run sees the training images and half of the test images *without* their labels,
in an order of the grader's own. What is scored is the network it hands in (`NETWORK`: uint8
images in, class scores out, its normalisation and flip test-time augmentation inside), on the
other half of the test images, which the run never sees, each flipped, shifted and re-encoded.
The predictions it hands in must agree with what that network predicts, or the run is marked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import cost, data, loaders
from .export import Deployable
from .metrics import FLIP, Averaged
from .precision import plain_copy
from .settings import Config, graded_challenge
from .train import Callback, FitState

PREDICTIONS = "predictions.npy"  # what a graded run hands in: one class index per test image, in order
NETWORK = "network.pt2"  # and its network, as torch.export saves it: (N, 32, 32, 3) uint8 in, scores out
EXPORT_BATCH = 100  # the exported network takes batches of this many images


@dataclass
class Task:
    """The challenge's data and clock, as a run sees them."""

    train: data.ImageSet  # every training image, with its label
    test_images: np.ndarray  # (N, 32, 32, 3) uint8, the images to predict
    classes: list[str]
    seconds: float  # the budget of the whole run
    started: float  # when the kernel started (seconds since the epoch)
    out: Path | None = None  # graded: where the predictions go
    test_labels: np.ndarray | None = None  # a learner's run only: to score the predictions
    cifar: data.CifarData | None = None  # a learner's run only: the data set it came from

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def seconds_used(self) -> float:
        return time.time() - self.started

    def seconds_left(self) -> float:
        return self.seconds - self.seconds_used()

    def deadline(self, reserve: float) -> Deadline:
        """A callback for recipe.train that holds training to this task's clock (Deadline)."""
        return Deadline(self, reserve)

    def describe(self) -> str:
        graded = "graded: the test labels are not here" if self.out else "your own run: the test labels score it"
        return (f"{len(self.train):,} training images, {len(self.test_images):,} test images, "
                f"{self.num_classes} classes; {self.seconds / 60:g} minutes for the whole run, "
                f"{self.seconds_left():.0f} s of them left ({graded})")

    def splits(self, val_fraction: float, seed: int) -> data.Splits:
        """Training and validation images carved from the training set, as data.split carves
        them everywhere in the course. The test images are not among them: they are scored when
        handed in (recipe.train makes no test pass on a split without test images)."""
        no_test = self.train.take(np.arange(0))
        return data.split(data.CifarData("challenge", "folder", "the challenge's training images", self.classes,
                                         self.train, no_test), val_fraction, seed)

    def epochs_that_fit(self, model: nn.Module, batches: loaders.Loaders, cfg: Config, share: float = 0.6,
                        most: int | None = None) -> int:
        """How many epochs of `model` on batches.train fit in `share` of the time left
        (cost.epochs_that_fit: its speed timed on real batches)."""
        return cost.epochs_that_fit(model, batches, cfg, self.seconds_left() * share, most)

    def submit(self, model: nn.Module, mean, std, flip_tta: bool = False, views: dict[str, float] | None = None
               ) -> dict:
        """Hand in the model and its predictions for the test images (normalised with the training
        statistics `mean` and `std`), with test-time augmentation over `views` (metrics.MULTI_CROP,
        say) or flip_tta's. Graded: written for the grader. A learner's run: scored.

        The predictions are those of the network as the grader reads it (`graded_network`,
        exported): fp32 on the CPU, so they agree with what the grader's scorer computes."""
        program = export_graded(model, mean, std, flip_tta, views)
        return self.submit_predictions(classes_of(program.module(), self.test_images), program, model)

    def submit_predictions(self, predicted: np.ndarray, program: torch.export.ExportedProgram,
                           model: nn.Module | None = None) -> dict:
        """Hand in class indices, one per test image in order (made another way, an ensemble
        say), and the network a graded run is scored on (`export_graded`: one network, so an
        ensemble hands in one module that averages its members); `model` is counted."""
        predicted = np.asarray(predicted)
        if predicted.shape != (len(self.test_images),) or not np.issubdtype(predicted.dtype, np.integer):
            raise ValueError(f"hand in one class index per test image: an integer array of shape "
                             f"({len(self.test_images)},), not {predicted.dtype} {predicted.shape}")
        seconds = self.seconds_used()
        params = cost.count_parameters(model if model is not None else program.module())
        if self.out is not None:
            np.save(self.out / PREDICTIONS, predicted.astype(np.int64))
            torch.export.save(program, self.out / NETWORK)
            print(f"Handed in the network and {len(predicted):,} predictions after {seconds:.0f} s of the "
                  f"{self.seconds:.0f} s budget.")
            return {"seconds": seconds, "params": params}
        top1 = float((predicted == self.test_labels).mean())
        within = "within" if seconds <= self.seconds else "OVER"
        print(f"Test top-1 {top1:.1%} ({len(predicted):,} test images), {seconds:.0f} s from the kernel's start: "
              f"{within} the {self.seconds:.0f} s budget; {params:,} parameters.")
        return {"test_top1": top1, "seconds": seconds, "params": params, "within_budget": seconds <= self.seconds}


def graded_network(model: nn.Module, mean, std, flip_tta: bool = False, views: dict[str, float] | None = None
                   ) -> nn.Module:
    """What the grader scores: uint8 images (N, 32, 32, 3) in, class probabilities out, with the
    normalisation and any test-time augmentation inside (the mean of the scores over `views`, or
    over an image and its mirror with flip_tta: metrics.logits_of); fp32, eval mode, CPU."""
    views = FLIP if flip_tta else views
    network = plain_copy(model)
    return Deployable(Averaged(network, views) if views else network, tuple(mean), tuple(std)).eval()


def export_graded(model: nn.Module, mean, std, flip_tta: bool = False, views: dict[str, float] | None = None
                  ) -> torch.export.ExportedProgram:
    """The graded network, exported (torch.export) for batches of EXPORT_BATCH images: a file
    the grader runs without the notebook's code."""
    example = torch.zeros(EXPORT_BATCH, 32, 32, 3, dtype=torch.uint8)
    return torch.export.export(graded_network(model, mean, std, flip_tta, views), (example,))


def classes_of(network: nn.Module, images: np.ndarray) -> np.ndarray:
    """The class a network taking EXPORT_BATCH uint8 images (N, 32, 32, 3) at a time gives each image."""
    predicted = []
    with torch.no_grad():
        for start in range(0, len(images), EXPORT_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + EXPORT_BATCH]))
            count = len(batch)
            if count < EXPORT_BATCH:  # the last batch, padded to the exported size
                batch = torch.cat([batch, batch.new_zeros(EXPORT_BATCH - count, *batch.shape[1:])])
            predicted.append(network(batch)[:count].argmax(1))
    return torch.cat(predicted).numpy().astype(np.int64) if predicted else np.zeros(0, np.int64)


class Deadline(Callback):
    """Stop training after the epoch past which one more, as slow as the slowest so far (its
    validation included), would leave less than `reserve` seconds of the budget for the
    predictions. Task.epochs_that_fit plans from a few seconds of timing, which a busy machine
    can make optimistic; this holds the plan to the clock. A net, not a plan: stopped early, the
    schedule has not finished lowering the rate."""

    def __init__(self, task: Task, reserve: float):
        self.task, self.reserve = task, reserve
        self.started = self.slowest = 0.0  # when the current epoch began; the longest epoch so far

    def on_epoch_start(self, state: FitState) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, state: FitState) -> None:
        self.slowest = max(self.slowest, time.perf_counter() - self.started)
        if state.epoch < state.epochs and self.task.seconds_left() - self.slowest < self.reserve:
            print(f"Stopped after epoch {state.epoch} of {state.epochs}: another would leave less than "
                  f"{self.reserve:.0f} s of the budget for the predictions.")
            state.stop = True


def task(cfg: Config, minutes: float | None = None) -> Task:
    """The challenge as this run sees it: graded, what the grader handed in; else the data of
    cfg (its training split whole, and its test images) with `minutes` (None: the profile's)."""
    import psutil  # ipykernel's own dependency: there wherever a notebook runs

    started = psutil.Process().create_time()  # the kernel's start: the budget counts from there
    graded = graded_challenge()
    if graded is not None:  # graded: from the grader's start of the run, which came first
        with np.load(graded.data / "train.npz", allow_pickle=False) as train:
            images, labels, classes = train["images"], train["labels"], train["classes"].tolist()
        test_images = np.load(graded.data / "test_images.npy", allow_pickle=False)
        return Task(data.ImageSet(images, labels), test_images, classes, graded.seconds, min(started, graded.started),
                    graded.out)
    cifar = data.load_for(cfg, show=False)
    seconds = 60 * (cfg.profile.challenge_minutes if minutes is None else minutes)
    return Task(cifar.train, cifar.test.images, cifar.classes, seconds, started, test_labels=cifar.test.labels,
                cifar=cifar)
