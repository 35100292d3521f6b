"""The one training loop of the course: fit(), its callback protocol and its history."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .losses import CrossEntropy
from .metrics import evaluate, topk_correct
from .precision import Prepared
from .settings import PLAIN_PROGRESS_ENV


def progress(iterable: Iterable, **kwargs):
    """A progress bar: a widget in a notebook, or plain text lines for headless runs.

    A widget bar turns into its final text line when it closes, so that a notebook saved and
    reopened shows that line instead of "Error displaying widget: model not found".
    """
    if os.environ.get(PLAIN_PROGRESS_ENV) == "1":
        from tqdm.std import tqdm
        kwargs.setdefault("mininterval", 10.0)  # seconds: keeps executed notebooks small
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as widget_bar
    bar_class = _text_when_closed() if issubclass(tqdm, widget_bar) else tqdm
    return bar_class(iterable, **kwargs)


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


# (images, labels) -> (images, labels) for each training batch: MixUp, CutMix
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class FitState:
    """What callbacks see and may change while fit() runs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    steps_per_epoch: int
    epoch: int = 0  # the current epoch, counted from 1
    step: int = 0  # optimizer steps taken so far
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    stop: bool = False  # set by a callback to end training after this epoch
    scaler: torch.amp.GradScaler | None = None  # loss scaling, for a model that computes in fp16


class Callback:
    """Hooks into fit(); override the ones you need. They run in the order given."""

    def on_fit_start(self, state: FitState) -> None: ...
    def on_epoch_start(self, state: FitState) -> None: ...
    def on_batch_end(self, state: FitState) -> None: ...  # after each optimizer step
    def on_epoch_end(self, state: FitState) -> None: ...  # state.history[-1] is this epoch
    def on_fit_end(self, state: FitState) -> None: ...


def fit(model: nn.Module, train_loader, val_loader, *, epochs: int,
        optimizer: torch.optim.Optimizer, device: torch.device,
        loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        callbacks: Sequence[Callback] = (), batch_transform: BatchTransform | None = None,
        show_progress: bool = True, desc: str = "train") -> list[dict]:
    """Train for `epochs`, validating after each; return one record per epoch.

    A record holds epoch, lr, train_loss, train_top1, val_loss, val_top1, val_top5 and
    seconds (training time of the epoch, validation excluded). loss_fn(logits, targets,
    inputs) defaults to cross-entropy; distillation uses the inputs to ask its teacher.
    batch_transform(images, labels) changes each training batch on the device before the
    model sees it: MixUp and CutMix (torchvision.transforms.v2) return mixed images and soft
    labels (B, classes), which cross-entropy takes as they are; train_top1 then counts the
    label with the largest share.
    Precision and memory layout belong to the model (precision.prepare), not to the loop; a
    model prepared for fp16 trains with a GradScaler, which skips the steps whose gradients
    overflowed and lowers its scale.
    """
    loss_fn = loss_fn or CrossEntropy()
    model.to(device)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    state = FitState(model, optimizer, epochs, len(train_loader), scaler=grad_scaler(model, device))
    for cb in callbacks:
        cb.on_fit_start(state)
    bar = progress(range(1, epochs + 1), desc=desc, unit="epoch", disable=not show_progress)
    for state.epoch in bar:
        model.train()  # before the callbacks, so that one may put frozen parts back in eval
        for cb in callbacks:
            cb.on_epoch_start(state)
        lr = optimizer.param_groups[-1]["lr"]  # the head's rate when groups differ
        start = time.perf_counter()
        train = _train_epoch(state, train_loader, loss_fn, device, callbacks, batch_transform)
        seconds = time.perf_counter() - start
        val = evaluate(model, val_loader, device)
        record = {"epoch": state.epoch, "lr": lr, **train,
                  "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
                  "seconds": seconds}
        state.history.append(record)
        bar.set_postfix(loss=f"{train['train_loss']:.3f}", val_top1=f"{val['top1']:.3f}")
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.stop:
            break
    bar.close()  # after a break too (tqdm closes it itself when an error ends the loop)
    for cb in callbacks:
        cb.on_fit_end(state)
    return state.history


def grad_scaler(model: nn.Module, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for a model prepared to compute in fp16, None for any other."""
    if isinstance(model, Prepared) and model.compute_format.scales_the_loss:
        return torch.amp.GradScaler(device.type)
    return None


def step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
         scaler: torch.amp.GradScaler | None = None) -> None:
    """Backward and one optimizer step. With a scaler (fp16): backward on the scaled loss, and
    the step only if no gradient overflowed, the scale lowered if one did."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _train_epoch(state: FitState, loader, loss_fn, device, callbacks, batch_transform) -> dict:
    """One pass over the training data; sums stay on the device until the epoch ends."""
    model, optimizer = state.model, state.optimizer
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if batch_transform is not None:
            x, y = batch_transform(x, y)  # y may become soft labels (B, classes)
        logits = model(x)  # (B, classes)
        loss = loss_fn(logits, y, x)
        step(loss, optimizer, state.scaler)
        state.step += 1
        loss_sum += loss.detach().float() * len(y)
        hard = y if y.ndim == 1 else y.argmax(dim=1)  # a mixed image counts as its larger part
        correct += topk_correct(logits.detach(), hard, (1,))[0]
        seen += len(y)
        for cb in callbacks:
            cb.on_batch_end(state)
    return {"train_loss": loss_sum.item() / seen, "train_top1": correct.item() / seen}


def train_seconds(history: list[dict]) -> float:
    """Total training time of a history, in seconds."""
    return sum(r["seconds"] for r in history)
