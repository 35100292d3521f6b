"""The one training loop of the course: fit(), the events its callbacks see, and one optimizer step.

    for each epoch:      on_epoch_start
        for each batch:  on_batch_start   state.x, state.y: the batch on the device (MixUp may replace them)
                         forward          state.logits, state.loss = cross-entropy
                         on_loss          (label smoothing or distillation may replace state.loss)
                         step             backward and the optimizer's step (loss scaling for fp16)
                         on_batch_end     (schedules step)
        validation       on_epoch_end     state.history[-1] is the epoch's record
    on_fit_start before all of it, on_fit_end after it (also when an error ends it)

A new trick is a callback that acts at one of these events, never a new parameter of fit().
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .metrics import evaluate, topk_correct
from .precision import loss_scaler
from .settings import PROGRESS_STYLES


@dataclass
class FitState:
    """What callbacks see and may change while fit() runs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    steps_per_epoch: int
    device: torch.device
    scaler: torch.amp.GradScaler | None = None  # loss scaling, for a model that computes in fp16
    epoch: int = 0  # the current epoch, counted from 1
    step: int = 0  # optimizer steps taken so far
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    stop: bool = False  # set by a callback to end training after this epoch
    finished: bool = False  # True once the last epoch ended without an error
    x: torch.Tensor | None = None  # the training batch's images (B, 3, H, W), on the device
    y: torch.Tensor | None = None  # its labels (B,), or soft labels (B, classes) once mixed
    logits: torch.Tensor | None = None  # the model's scores for x (B, classes), fp32
    loss: torch.Tensor | None = None  # the batch's loss, which step() minimises


class Callback:
    """Hooks into fit(); override the ones you need. They run in the order given."""

    def on_fit_start(self, state: FitState) -> None: ...
    def on_epoch_start(self, state: FitState) -> None: ...  # after model.train()
    def on_batch_start(self, state: FitState) -> None: ...  # may replace state.x and state.y
    def on_loss(self, state: FitState) -> None: ...  # may replace state.loss, before backward
    def on_batch_end(self, state: FitState) -> None: ...  # after the optimizer step
    def on_epoch_end(self, state: FitState) -> None: ...  # state.history[-1] is this epoch
    def on_fit_end(self, state: FitState) -> None: ...  # state.finished is False after an error


def fit(model: nn.Module, train_loader, val_loader, *, epochs: int,
        optimizer: torch.optim.Optimizer, callbacks: Sequence[Callback] = ()) -> list[dict]:
    """Train for `epochs`, validating after each; return one record per epoch.

    A record holds epoch, lr, train_loss, train_top1, val_loss, val_top1, val_top5 and
    seconds (training time of the epoch, validation excluded). The model trains where its
    parameters are; a model that carries a `loss_scaler` (precision.prepare gives one to a model
    that computes in fp16) scales its loss, and step() skips the steps whose gradients overflowed.
    With soft labels (MixUp, CutMix), train_top1 counts the label with the largest share.
    """
    device = next(model.parameters()).device
    state = FitState(model, optimizer, epochs, len(train_loader), device, loss_scaler(model))
    try:
        _event(callbacks, "on_fit_start", state)
        for state.epoch in range(1, epochs + 1):
            model.train()
            _event(callbacks, "on_epoch_start", state)
            lr = optimizer.param_groups[-1]["lr"]  # the head's rate when groups differ
            start = time.perf_counter()
            train = _train_epoch(state, train_loader, callbacks)
            seconds = time.perf_counter() - start
            val = evaluate(model, val_loader, device)
            state.history.append({"epoch": state.epoch, "lr": lr, **train, "val_loss": val["loss"],
                                  "val_top1": val["top1"], "val_top5": val["top5"], "seconds": seconds})
            _event(callbacks, "on_epoch_end", state)
            if state.stop:
                break
        state.finished = True
    finally:
        state.x = state.y = state.logits = state.loss = None  # let the last batch's memory go
        _event(callbacks, "on_fit_end", state)
    return state.history


def _event(callbacks: Sequence[Callback], name: str, state: FitState) -> None:
    for callback in callbacks:
        getattr(callback, name)(state)


def _train_epoch(state: FitState, loader, callbacks: Sequence[Callback]) -> dict:
    """One pass over the training data; sums stay on the device until the epoch ends."""
    loss_sum = torch.zeros((), device=state.device)
    correct = torch.zeros((), device=state.device, dtype=torch.long)
    seen = 0
    for x, y in loader:
        state.x, state.y = x.to(state.device, non_blocking=True), y.to(state.device, non_blocking=True)
        _event(callbacks, "on_batch_start", state)
        state.logits = state.model(state.x)  # (B, classes)
        state.loss = F.cross_entropy(state.logits, state.y)  # soft labels (B, classes) work too
        _event(callbacks, "on_loss", state)
        step(state.loss, state.optimizer, state.scaler)
        state.step += 1
        _event(callbacks, "on_batch_end", state)
        loss_sum += state.loss.detach().float() * len(state.y)
        hard = state.y if state.y.ndim == 1 else state.y.argmax(dim=1)  # a mixed image counts as its larger part
        correct += topk_correct(state.logits.detach(), hard, (1,))[0]
        seen += len(state.y)
    return {"train_loss": loss_sum.item() / seen, "train_top1": correct.item() / seen}


def step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Backward and one optimizer step: the course's only one (fit, the range test and the speed
    measurements all take it, with the model's precision.loss_scaler). An enabled scaler (fp16):
    backward on the scaled loss, and the step only if no gradient overflowed, the scale lowered
    if one did; a disabled one passes the loss and the step through as they are."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def train_seconds(history: list[dict]) -> float:
    """Total training time of a history, in seconds."""
    return sum(r["seconds"] for r in history)


class Progress(Callback):
    """A progress bar over the epochs, with the last loss and validation top-1.

    style: "widget" in a notebook (plain text elsewhere), "text" for headless runs (one line
    every 10 s at most, which keeps executed notebooks small), "off".
    """

    def __init__(self, desc: str, style: str = "widget"):
        if style not in PROGRESS_STYLES:
            raise ValueError(f"Unknown progress style {style!r}: choose one of {', '.join(PROGRESS_STYLES)}.")
        self.desc, self.style, self.bar = desc, style, None

    def on_fit_start(self, state: FitState) -> None:
        self.bar = progress(range(state.epochs), self.style, desc=self.desc, unit="epoch")

    def on_epoch_end(self, state: FitState) -> None:
        record = state.history[-1]
        self.bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_top1=f"{record['val_top1']:.3f}",
                             refresh=False)
        self.bar.update(1)

    def on_fit_end(self, state: FitState) -> None:
        if self.bar is not None:  # None when an error came before the bar was made
            self.bar.close()
            self.bar = None


def progress(iterable: Iterable, style: str = "widget", **kwargs):
    """A tqdm progress bar in one of PROGRESS_STYLES.

    A widget bar turns into its final text line when it closes, so that a notebook saved and
    reopened shows that line instead of "Error displaying widget: model not found".
    """
    if style == "text":
        from tqdm.std import tqdm
        kwargs.setdefault("mininterval", 10.0)  # seconds: keeps executed notebooks small
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as widget_bar
    bar_class = _text_when_closed() if issubclass(tqdm, widget_bar) else tqdm
    return bar_class(iterable, disable=style == "off", **kwargs)


@functools.cache
def _text_when_closed() -> type:
    """tqdm's widget bar, displayed with a display id so that close() can replace it by text."""
    from IPython.display import display
    from tqdm.notebook import tqdm as widget_bar

    class TextWhenClosed(widget_bar):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, display=False, **kwargs)
            self.handle = None if self.disable else display(self.container, display_id=True)
            self.displayed = True

        def close(self):
            super().close()
            if getattr(self, "handle", None) is not None:
                self.handle.update({"text/plain": str(self)}, raw=True)
                self.handle = None

    return TextWhenClosed
