"""Callbacks for fit(): learning-rate schedules, best-checkpointing and early stopping."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .models import count_parameters
from .precision import unwrap
from .train import Callback, FitState


class OneCycle(Callback):
    """Warm the learning rate up to its peak, then anneal it to nearly zero, stepping per batch.

    The peak is each parameter group's learning rate as the optimizer was built (or max_lr).
    Momentum cycles the other way, 0.95 -> 0.85 -> 0.95: high while the rate is low.
    restart_after: end the first cycle after this many epochs and run a second one over the
    rest, as fastai's fine_tune does: one cycle while the body is frozen, a fresh warm-up
    when it starts to train.
    """

    def __init__(self, max_lr: float | list[float] | None = None, pct_start: float = 0.25,
                 restart_after: int | None = None):
        self.max_lr, self.pct_start, self.restart_after = max_lr, pct_start, restart_after

    def on_fit_start(self, state: FitState) -> None:
        self.peak = self.max_lr or [g["lr"] for g in state.optimizer.param_groups]
        first = state.epochs if self.restart_after is None else min(self.restart_after, state.epochs)
        self._cycle(state, first)

    def on_epoch_start(self, state: FitState) -> None:
        if self.restart_after is not None and state.epoch == self.restart_after + 1:
            self._cycle(state, state.epochs - self.restart_after)

    def _cycle(self, state: FitState, epochs: int) -> None:
        steps = epochs * state.steps_per_epoch
        self.last_step = state.step + steps
        if steps < 2:  # a single step has no cycle: it takes the peak rate
            peaks = self.peak if isinstance(self.peak, list) else [self.peak] * len(state.optimizer.param_groups)
            for group, peak in zip(state.optimizer.param_groups, peaks):
                group["lr"] = peak
            self.scheduler = None
            return
        # a warm-up of at least one whole step: OneCycleLR divides by its length, and a run of
        # a few steps (4 steps at 25%) would leave it none
        pct_start = min(max(self.pct_start, 2 / steps), 1.0)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            state.optimizer, max_lr=self.peak, pct_start=pct_start, total_steps=steps)

    def on_batch_end(self, state: FitState) -> None:
        if self.scheduler is not None and state.step < self.last_step:  # OneCycleLR errors past its end
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
            save_checkpoint(self.path, {"model": unwrap(state.model).state_dict(),
                                        "epoch": state.epoch, self.monitor: value, **self.metadata})

    def on_fit_end(self, state: FitState) -> None:
        if self.restore_best and self.path.exists():
            unwrap(state.model).load_state_dict(load_checkpoint(self.path)["model"])


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write a checkpoint whole or not at all: a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)  # atomic: an interrupted save leaves the previous file intact
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by Checkpoint onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def reusable_checkpoint(path: str | Path, expected: dict) -> tuple[dict | None, str]:
    """(the checkpoint, "") if `path` holds one made for `expected` (data.fingerprint), else (None, why)."""
    path = Path(path)
    if not path.is_file():
        return None, f"there is no checkpoint at {path}"
    try:
        saved = load_checkpoint(path)
    except Exception as err:  # truncated, empty, or not a checkpoint at all
        return None, (f"{path} is damaged ({type(err).__name__}: {err}); delete it or train "
                      "again to replace it")
    differs = [key for key, value in expected.items() if saved.get(key) != value]
    if differs:
        return None, (f"{path} was made for another {', '.join(differs)} "
                      f"({', '.join(f'{k}={saved.get(k)!r}' for k in differs if k != 'classes')})")
    return saved, ""


def strongest_checkpoint(paths: list[Path], expected: dict, monitor: str = "val_top1"
                         ) -> tuple[dict | None, Path | None, list[str]]:
    """Of the checkpoints at `paths` made for `expected` (data.fingerprint), the one with the best
    `monitor` (validation top-1: chosen on validation, never on test). Returns (the checkpoint,
    its path, why each other path was passed over); (None, None, reasons) if none is usable."""
    usable, passed_over = [], []
    for path in paths:
        saved, why = reusable_checkpoint(path, expected)
        if saved is None:
            passed_over.append(why)
        elif monitor not in saved:
            passed_over.append(f"{path} records no {monitor}")
        else:
            usable.append((saved, Path(path)))
    if not usable:
        return None, None, passed_over
    higher_is_better = _better(monitor, 1.0, 0.0)
    usable.sort(key=lambda found: found[0][monitor], reverse=higher_is_better)  # the best first
    best, path = usable[0]
    passed_over += [f"{p} has {monitor} {saved[monitor]:.4f} against {best[monitor]:.4f}"
                    for saved, p in usable[1:]]
    return best, path, passed_over


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


class CountTrainable(Callback):
    """Record how many parameters train in each epoch (after freezing callbacks ran)."""

    def on_fit_start(self, state: FitState) -> None:
        self.per_epoch: dict[int, int] = {}

    def on_epoch_start(self, state: FitState) -> None:
        self.per_epoch[state.epoch] = count_parameters(state.model, trainable_only=True)


class LRMonitor(Callback):
    """Record every parameter group's learning rate after each step, to plot the schedule."""

    def on_fit_start(self, state: FitState) -> None:
        self.lrs: list[list[float]] = []  # (steps, groups)

    def on_batch_end(self, state: FitState) -> None:
        self.lrs.append([g["lr"] for g in state.optimizer.param_groups])
