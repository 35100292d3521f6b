"""Callbacks for fit(): learning-rate schedules, mixed batches, checkpoints, early stopping,
freezing, and monitors of what a run did (its rates, what trains, what its features still know)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from . import checkpoints
from .metrics import evaluate, features, linear_probe
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


class WarmupLinear(Callback):
    """airbench's schedule, per batch: the rate climbs linearly from `start` times its peak to the
    peak over the first `warmup` of the steps, then falls linearly to `end` times the peak."""

    def __init__(self, warmup: float = 0.23, start: float = 0.2, end: float = 0.07):
        self.warmup, self.start, self.end = warmup, start, end

    def factor(self, step: int, total: int) -> float:
        """The share of the peak rate at `step` of `total` steps."""
        up = int(total * self.warmup)
        if step < up:
            return self.start + (1 - self.start) * step / up
        return 1 + (self.end - 1) * (step - up) / max(total - up, 1)

    def on_fit_start(self, state: FitState) -> None:
        total = state.epochs * state.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(state.optimizer, lambda step: self.factor(step, total))

    def on_batch_end(self, state: FitState) -> None:
        self.scheduler.step()


class ReduceLROnPlateau(Callback):
    """Cut the learning rate by `factor` once `monitor` has gone more than `patience` epochs in a
    row without improving (PyTorch's rule): patience=0 cuts after the first such epoch,
    patience=1 after the second."""

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
    """Save `model` whenever `monitor` improves (checkpoints.save, with `info` and the epoch's
    validation scores); give the model back the best epoch's weights when fit ends.

    model: the model as models.build made it (not its compute-format wrapper), so that the
    file holds its weights under their own names and knows its architecture.
    """

    def __init__(self, path: str | Path, model: nn.Module, info: checkpoints.Info, monitor: str = "val_top1"):
        self.path, self.model, self.info, self.monitor = Path(path), model, info, monitor

    def on_fit_start(self, state: FitState) -> None:
        self.best, self.saved = _worst(self.monitor), False

    def on_epoch_end(self, state: FitState) -> None:
        record = state.history[-1]
        if _better(self.monitor, record[self.monitor], self.best):
            self.best = record[self.monitor]
            scores = {k: v for k, v in record.items() if k.startswith("val_")}
            checkpoints.save(self.path, self.model, self.info.at_epoch(state.epoch, scores))
            self.saved = True

    def on_fit_end(self, state: FitState) -> None:
        if state.finished and self.saved:
            self.model.load_state_dict(checkpoints.read(self.path)["weights"])


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
            if self.waited >= self.patience:
                state.stop = True  # never cleared here: another callback may have asked to stop too


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


class ValidationCurve(Callback):
    """Validation top-1 every `every_seconds` of training, against the seconds of training so far: a
    learning curve finer than fit's one point per epoch, for runs of an epoch or two. Its passes
    are validation, so they stay off the clock: each epoch's seconds in the history leave them out,
    as fit leaves out its own validation."""

    def __init__(self, batches, every_seconds: float):
        self.batches, self.every = batches, every_seconds

    def on_fit_start(self, state: FitState) -> None:
        self.points: list[tuple[float, float]] = []  # (seconds of training, validation top-1)
        self.trained, self.spent = 0.0, 0.0  # seconds of training so far; of this epoch's passes
        self.since = time.perf_counter()

    def on_epoch_start(self, state: FitState) -> None:
        self.since, self.spent = time.perf_counter(), 0.0

    def on_batch_end(self, state: FitState) -> None:
        now = time.perf_counter()
        self.trained += now - self.since
        self.since = now
        if self.trained >= self.every * (len(self.points) + 1):
            self.points.append((self.trained, evaluate(state.model, self.batches, state.device)["top1"]))
            state.model.train()
            self.spent += time.perf_counter() - now
            self.since = time.perf_counter()

    def on_epoch_end(self, state: FitState) -> None:
        state.history[-1]["seconds"] -= self.spent


class FreezeAfter(Callback):
    """Train `parameters` for the first `epochs` epochs only (airbench: the whitening layer's
    bias, for 3); from then on they get no gradients, so the optimizer leaves them as they are."""

    def __init__(self, parameters: list[nn.Parameter], epochs: int):
        self.parameters, self.epochs = list(parameters), epochs

    def on_epoch_start(self, state: FitState) -> None:
        for p in self.parameters:
            p.requires_grad_(state.epoch <= self.epochs)


def airbench_decay(progress: float) -> float:
    """How much of the slow weights each Lookahead update keeps, at `progress` (0 to 1) of the
    run: airbench's 0.95^5 * progress^3, near 0 early (the slow weights follow the fast ones),
    0.77 at the end (they average the last steps)."""
    return 0.95 ** 5 * progress ** 3


class Lookahead(Callback):
    """Lookahead (Zhang et al. 2019) as airbench uses it: every `every` steps the slow weights
    move towards the fast ones the optimizer trains, slow <- slow + (1 - decay) * (fast - slow),
    and the fast weights start again from the slow ones. decay(progress) grows over the run, so
    the slow weights average more of the last steps, as an EMA of the weights would. After the
    last step the model keeps the slow weights. Every floating-point tensor of the model's
    state_dict takes part (BatchNorm's running statistics too)."""

    def __init__(self, every: int = 5, decay: Callable[[float], float] = airbench_decay):
        self.every, self.decay = every, decay

    def on_fit_start(self, state: FitState) -> None:
        self.fast = [t for t in state.model.state_dict().values() if t.is_floating_point()]
        self.slow = [t.detach().clone() for t in self.fast]
        self.total = state.epochs * state.steps_per_epoch

    @torch.no_grad()
    def on_batch_end(self, state: FitState) -> None:
        if state.step == self.total:  # the last step: the model takes the slow weights
            self.update(1.0)
        elif state.step % self.every == 0:
            self.update(self.decay(state.step / self.total))

    def update(self, decay: float) -> None:
        """One Lookahead update with this decay: 1.0 leaves the slow weights, and gives them to the model."""
        for slow, fast in zip(self.slow, self.fast):
            slow.lerp_(fast, 1 - decay)
            fast.copy_(slow)


class FeatureProbe(Callback):
    """Fit a linear probe to what the body hands the head (metrics.linear_probe), before training
    (epoch 0) and after the epochs named: top1[epoch] says how well the features still separate
    the classes. A fine-tuning that damages pretrained features shows as a drop (04: by the
    epoch the one-cycle warm-up reaches its peak rate, not yet after the first).

    fit_batches, score_batches: loaders of plain images (not augmented) to fit the probe on and
    to score it on, in a fixed order: the same features then give the same probe, to the bit.
    """

    def __init__(self, head: nn.Module, fit_batches, score_batches, after: tuple[int, ...] = (0, 1)):
        self.head, self.fit_batches, self.score_batches, self.after = head, fit_batches, score_batches, after
        self.top1: dict[int, float] = {}

    def on_fit_start(self, state: FitState) -> None:
        if 0 in self.after:
            self._probe(state, 0)

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch in self.after:
            self._probe(state, state.epoch)

    def _probe(self, state: FitState, epoch: int) -> None:
        fit, score = (features(state.model, self.head, batches, state.device)
                      for batches in (self.fit_batches, self.score_batches))
        self.top1[epoch] = linear_probe(fit, score)


class CountTrainable(Callback):
    """Record how many parameters train in each epoch (after freezing callbacks ran)."""

    def on_fit_start(self, state: FitState) -> None:
        self.per_epoch: dict[int, int] = {}

    def on_epoch_start(self, state: FitState) -> None:
        self.per_epoch[state.epoch] = sum(p.numel() for p in state.model.parameters() if p.requires_grad)


class LRMonitor(Callback):
    """Record every parameter group's learning rate after each step, to plot the schedule; None
    for a group none of whose parameters trained in that step (frozen: its rate moved nothing)."""

    def on_fit_start(self, state: FitState) -> None:
        self.lrs: list[list[float | None]] = []  # (steps, groups)

    def on_batch_end(self, state: FitState) -> None:
        self.lrs.append([g["lr"] if any(p.requires_grad for p in g["params"]) else None
                         for g in state.optimizer.param_groups])


class BatchTransform(Callback):
    """Change every training batch before the model sees it: `transform(images, labels)` returns
    new images and labels. MixUp and CutMix (torchvision.transforms.v2) return mixed images and
    soft labels (B, classes), which the loop's cross-entropy takes as they are."""

    def __init__(self, transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]):
        self.transform = transform

    def on_batch_start(self, state: FitState) -> None:
        state.x, state.y = self.transform(state.x, state.y)


class TensorBoard(Callback):
    """Write each epoch's losses, accuracies, learning rate and seconds for TensorBoard, the
    learning rate of every optimizer step ("lr/step", by step: the schedule's shape), and with
    `finish` the run's hyperparameters beside its test scores (`tensorboard --logdir ...`).

    Needs the tensorboard package (the `[tensorboard]` extra); without it, says so once and
    records nothing: a run never fails for want of its charts.
    """

    CURVES = {"loss/train": "train_loss", "loss/val": "val_loss", "top1/train": "train_top1",
              "top1/val": "val_top1", "top5/val": "val_top5", "lr": "lr", "seconds": "seconds"}  # by epoch

    def __init__(self, log_dir: str | Path, hparams: dict):
        self.log_dir, self.hparams, self.writer = Path(log_dir), hparams, None

    def on_fit_start(self, state: FitState) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("TensorBoard logging is off: the tensorboard package is not installed "
                  "(pip install tensorboard, or pip install -e '.[tensorboard]').")
            return
        self.writer = SummaryWriter(self.log_dir)

    def on_batch_start(self, state: FitState) -> None:
        # the rate this step will take: schedules move it at on_batch_end, after the step
        self.step_lr = float(state.optimizer.param_groups[-1]["lr"])  # the head's, as the epoch's record

    def on_batch_end(self, state: FitState) -> None:
        if self.writer is not None:
            self.writer.add_scalar("lr/step", self.step_lr, state.step)  # state.step: steps taken, from 1

    def on_epoch_end(self, state: FitState) -> None:
        if self.writer is not None:
            record = state.history[-1]
            for tag, key in self.CURVES.items():
                self.writer.add_scalar(tag, record[key], record["epoch"])

    def on_fit_end(self, state: FitState) -> None:
        if self.writer is None:
            return
        if state.finished:
            self.writer.flush()  # the curves on disk now, whether or not finish() follows
        else:
            self.writer.close()  # an error ended the run: keep what it wrote
            self.writer = None

    def finish(self, test: dict[str, float]) -> None:
        """Record the hyperparameters with the run's test scores, and close the files."""
        if self.writer is not None:
            self.writer.add_hparams(self.hparams, {f"test/{k}": v for k, v in test.items()}, run_name=".")
            self.writer.close()
            self.writer = None
