"""Callbacks for fit(): learning-rate schedules, best-checkpointing and early stopping."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .train import Callback, FitState


class OneCycle(Callback):
    """Warm the learning rate up to max_lr, then anneal it to nearly zero, stepping per batch.

    restart_after: end the first cycle after this many epochs and run a second one over the
    rest, as fastai's fine_tune does: one cycle while the body is frozen, a fresh warm-up
    when it starts to train.
    """

    def __init__(self, max_lr: float | list[float], pct_start: float = 0.25,
                 restart_after: int | None = None):
        self.max_lr, self.pct_start, self.restart_after = max_lr, pct_start, restart_after

    def on_fit_start(self, state: FitState) -> None:
        first = state.epochs if self.restart_after is None else min(self.restart_after, state.epochs)
        self._cycle(state, first)

    def on_epoch_start(self, state: FitState) -> None:
        if self.restart_after is not None and state.epoch == self.restart_after + 1:
            self._cycle(state, state.epochs - self.restart_after)

    def _cycle(self, state: FitState, epochs: int) -> None:
        steps = epochs * state.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            state.optimizer, max_lr=self.max_lr, pct_start=self.pct_start, total_steps=steps)
        self.last_step = state.step + steps

    def on_batch_end(self, state: FitState) -> None:
        if state.step < self.last_step:  # OneCycleLR errors past its end
            self.scheduler.step()


class Cosine(Callback):
    """Cosine decay from the optimizer's learning rate to zero over the run, per batch."""

    def on_fit_start(self, state: FitState) -> None:
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            state.optimizer, T_max=state.epochs * state.steps_per_epoch)

    def on_batch_end(self, state: FitState) -> None:
        self.scheduler.step()


class ReduceLROnPlateau(Callback):
    """Cut the learning rate by `factor` when `monitor` stops improving for `patience` epochs."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 2):
        self.monitor, self.factor, self.patience = monitor, factor, patience

    def on_fit_start(self, state: FitState) -> None:
        mode = "min" if self.monitor.endswith("loss") else "max"
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            state.optimizer, mode=mode, factor=self.factor, patience=self.patience)

    def on_epoch_end(self, state: FitState) -> None:
        self.scheduler.step(state.history[-1][self.monitor])


def _better(monitor: str, value: float, best: float) -> bool:
    """Lower is better for a loss, higher for anything else."""
    return value < best if monitor.endswith("loss") else value > best


def _worst(monitor: str) -> float:
    """A starting 'best' that any first value beats."""
    return math.inf if monitor.endswith("loss") else -math.inf


class Checkpoint(Callback):
    """Save the weights whenever `monitor` improves; reload the best ones when fit ends.

    The file holds {"model": state_dict, "epoch", monitor: value, **metadata}, which
    `load_checkpoint` reads back.
    """

    def __init__(self, path: str | Path, monitor: str = "val_top1", restore_best: bool = True,
                 metadata: dict | None = None):
        self.path, self.monitor = Path(path), monitor
        self.restore_best, self.metadata = restore_best, metadata or {}

    def on_fit_start(self, state: FitState) -> None:
        self.best = _worst(self.monitor)

    def on_epoch_end(self, state: FitState) -> None:
        value = state.history[-1][self.monitor]
        if _better(self.monitor, value, self.best):
            self.best = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": state.model.state_dict(), "epoch": state.epoch,
                        self.monitor: value, **self.metadata}, self.path)

    def on_fit_end(self, state: FitState) -> None:
        if self.restore_best and self.path.exists():
            state.model.load_state_dict(load_checkpoint(self.path)["model"])


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by Checkpoint onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3):
        self.monitor, self.patience = monitor, patience

    def on_fit_start(self, state: FitState) -> None:
        self.best = _worst(self.monitor)
        self.waited = 0

    def on_epoch_end(self, state: FitState) -> None:
        value = state.history[-1][self.monitor]
        if _better(self.monitor, value, self.best):
            self.best, self.waited = value, 0
        else:
            self.waited += 1
            state.stop = self.waited >= self.patience


def freeze(module: nn.Module) -> None:
    """Stop training a module: no gradients for its parameters, fixed BatchNorm statistics."""
    module.requires_grad_(False)
    module.eval()


def unfreeze(module: nn.Module) -> None:
    """Train a frozen module again."""
    module.requires_grad_(True)
    module.train()


class FreezeThenUnfreeze(Callback):
    """Keep `body` frozen for the first `frozen_epochs` epochs (all of them if None), then train it.

    The learning rates are the optimizer's: give the body its own parameter group with a
    lower rate (or one group per stage for layer-wise rates). While frozen, its parameters
    get no gradients, so the optimizer leaves them untouched, momentum and weight decay included.
    """

    def __init__(self, body: nn.Module, frozen_epochs: int | None = None):
        self.body, self.frozen_epochs = body, frozen_epochs

    def frozen(self, epoch: int) -> bool:
        return self.frozen_epochs is None or epoch <= self.frozen_epochs

    def on_fit_start(self, state: FitState) -> None:
        freeze(self.body)

    def on_epoch_start(self, state: FitState) -> None:
        if self.frozen(state.epoch):
            self.body.eval()  # fit() has just called model.train(): keep BatchNorm fixed
        elif self.frozen(state.epoch - 1):
            unfreeze(self.body)


class LRMonitor(Callback):
    """Record every parameter group's learning rate after each step, to plot the schedule."""

    def on_fit_start(self, state: FitState) -> None:
        self.lrs: list[list[float]] = []  # (steps, groups)

    def on_batch_end(self, state: FitState) -> None:
        self.lrs.append([g["lr"] for g in state.optimizer.param_groups])
