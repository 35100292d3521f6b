"""The course's one training recipe, and the Run it returns.

    seed -> compute format -> optimizer -> schedule -> fit -> evaluate on the test set, once

Every notebook from 02 on trains through `train`; what differs between runs is an argument
(the optimizer, parameter groups with their own rates, the schedule, a freezing callback, a
distillation loss), never a copy of the chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import speed
from .callbacks import Checkpoint, OneCycle
from .loaders import Loaders
from .metrics import mirrored, predict, scores
from .precision import PLAIN, ComputeFormat, prepare
from .settings import seed_everything
from .train import BatchTransform, Callback, fit, train_seconds


@dataclass
class Run:
    """One trained model, how it trained and what it scored."""

    name: str
    model: nn.Module  # trained, and prepared: it runs in its compute format by itself
    history: list[dict]  # one record per epoch (train.fit)
    test: dict[str, float]  # loss, top1, top5 on the test set (fractions)
    device: torch.device
    train_images: int  # images in the training split; with the epochs, the budget
    compute_format: ComputeFormat = PLAIN  # a model never prepared computes in PyTorch's default
    checkpoint: Path | None = None  # where the best epoch's weights are, if kept
    test_flip: dict[str, float] | None = None  # the test scores with flip TTA, when asked for
    test_logits: torch.Tensor | None = None  # (N, classes) on the CPU, in the test loader's order
    test_labels: torch.Tensor | None = None  # (N,): the error analyses read these, not a new pass

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def train_seconds(self) -> float:
        return train_seconds(self.history)

    def summary(self) -> str:
        """One line: the test score and the budget that bought it."""
        flip = f" ({self.test_flip['top1']:.1%} with flip TTA)" if self.test_flip else ""
        return (f"{self.name}: test top-1 {self.test['top1']:.1%}{flip}, top-5 {self.test['top5']:.1%} "
                f"after {self.epochs} epochs on {self.train_images:,} images "
                f"({self.train_seconds:.0f} s of training, {self.compute_format.name})")

    def score_with_flip(self, test_loader) -> dict[str, float]:
        """Score the test set with flip test-time augmentation (the mean of each image's logits
        and its mirror image's), keep it in test_flip and return it. Only the mirror images
        take a new pass: the plain logits are those of the test pass."""
        if self.test_logits is None:  # a Run made by hand, without its test pass's logits
            self.test_logits, self.test_labels = predict(self.model, test_loader, self.device)
        mirror_logits, _ = predict(self.model, mirrored(test_loader), self.device)
        self.test_flip = scores((self.test_logits + mirror_logits) / 2, self.test_labels)
        return self.test_flip


def _scored_run(name: str, model: nn.Module, history: list[dict], loaders: Loaders,
                device: torch.device, compute_format: ComputeFormat, train_images: int,
                checkpoint: Path | None = None) -> Run:
    """A Run of a trained, prepared model, scored on the test set once (its logits kept)."""
    logits, labels = predict(model, loaders.test, device)
    return Run(name, model, history, scores(logits, labels), device, train_images, compute_format,
               checkpoint, test_logits=logits, test_labels=labels)


def sgd(param_groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """The course's optimizer: SGD with Nesterov momentum and weight decay."""
    return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def adamw(param_groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW with light weight decay, the usual choice for fine-tuning pretrained networks."""
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=1e-4)


def scaled_lr(lr_per_128: float, batch_size: int) -> float:
    """Grow a learning rate given per 128 images with the square root of the batch size."""
    return lr_per_128 * math.sqrt(batch_size / 128)


def train(name: str, model: nn.Module, loaders: Loaders, *, epochs: int, lr: float,
          device: torch.device, seed: int = 0, param_groups: list[dict] | None = None,
          optimizer: Callable[[list[dict], float], torch.optim.Optimizer] = sgd,
          schedule: Callback | None = None, callbacks: Sequence[Callback] = (),
          loss_fn: Callable | None = None, batch_transform: BatchTransform | None = None,
          checkpoint: Path | None = None, metadata: dict | None = None,
          compute_format: ComputeFormat | None = None, flip_tta: bool = False) -> Run:
    """Train `model` with the course's recipe and score it on the test set once, at the end.

    lr: peak learning rate per 128 images (each of param_groups may set its own "lr", also
        per 128 images); the recipe scales every rate by sqrt(batch size / 128).
    schedule: a schedule callback; None is a one-cycle schedule over the whole run.
    loss_fn, batch_transform: as train.fit takes them (label smoothing, distillation; MixUp).
    checkpoint: keep the epoch with the best validation top-1 there (with `metadata` and the
        normalisation) and end with its weights.
    compute_format: None for speed.choose (the hardware's default unless $CIFAR_COURSE_FORMAT
        says otherwise).
    flip_tta: also score the test set with flip test-time augmentation (Run.test_flip).
    """
    seed_everything(seed)  # dropout, shuffling and augmentation of this run
    compute_format = compute_format or speed.choose(model, loaders.batch_size, device)
    prepared = prepare(model, compute_format, device)
    groups = param_groups or [{"params": list(model.parameters())}]
    groups = [{**g, "lr": scaled_lr(g.get("lr", lr), loaders.batch_size)} for g in groups]
    fit_callbacks = [schedule or OneCycle(), *callbacks]
    if checkpoint is not None:
        fit_callbacks.append(Checkpoint(checkpoint, metadata={
            "name": name, "mean": loaders.mean, "std": loaders.std,
            "train_images": loaders.train_images, **(metadata or {})}))
    history = fit(prepared, loaders.train, loaders.val, epochs=epochs,
                  optimizer=optimizer(groups, scaled_lr(lr, loaders.batch_size)), device=device,
                  loss_fn=loss_fn, callbacks=fit_callbacks, batch_transform=batch_transform,
                  desc=name)
    run = _scored_run(name, prepared, history, loaders, device, compute_format, loaders.train_images, checkpoint)
    if flip_tta:
        run.score_with_flip(loaders.test)
    print(run.summary())
    return run


def test_only(name: str, model: nn.Module, loaders: Loaders, device: torch.device,
              train_images: int = 0) -> Run:
    """Score a model trained elsewhere (a loaded checkpoint) as a Run with no epochs here."""
    compute_format = speed.choose(model, loaders.batch_size, device)
    prepared = prepare(model, compute_format, device)
    return _scored_run(name, prepared, [], loaders, device, compute_format, train_images)
