"""Top-k accuracy, evaluation, confusion matrices, per-class accuracy, and what a model costs."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .precision import plain_copy


def topk_correct(logits: torch.Tensor, labels: torch.Tensor,
                 ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Count, for each k, the rows whose label is among the k highest scores (device tensors)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices  # (B, kmax)
    hits = top == labels[:, None]  # (B, kmax)
    return [hits[:, :k].any(dim=1).sum() for k in ks]


def logits_of(model: nn.Module, x: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
    """The model's fp32 scores for a batch; with flip_tta, the mean over it and its mirror image."""
    logits = model(x).float()
    if flip_tta:  # test-time augmentation: a left-right mirror is as likely a CIFAR image
        logits = (logits + model(x.flip(3)).float()) / 2
    return logits


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device,
            flip_tta: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits float32 (N, classes), labels (N,)) on the CPU, in the loader's order."""
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        outs.append(logits_of(model, x.to(device, non_blocking=True), flip_tta))
        labels.append(y.to(device))
    return torch.cat(outs).cpu(), torch.cat(labels).cpu()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device,
             flip_tta: bool = False) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (fractions) over a loader."""
    return scores(*predict(model, loader, device, flip_tta))


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (fractions) of logits (N, classes) for labels (N,)."""
    top1, top5 = topk_correct(logits, labels, (1, 5))
    n = len(labels)
    return {"loss": F.cross_entropy(logits, labels).item(), "top1": top1.item() / n, "top5": top5.item() / n}


def mirrored(loader):
    """The loader's batches with every image mirrored left to right (the width reversed)."""
    return ((x.flip(3), y) for x, y in loader)


def confusion_matrix(preds: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """Count (true class, predicted class) pairs: rows are the truth."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    return np.bincount(labels * num_classes + preds,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Share of each true class that was predicted right (NaN for a class with no images)."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)


def most_confused(cm: np.ndarray, classes: Sequence[str], top: int = 5) -> list[tuple[str, str, float]]:
    """The `top` (true, predicted, share of the true class) mistakes, most frequent share first."""
    totals = cm.sum(axis=1, keepdims=True).clip(min=1)
    shares = cm / totals
    np.fill_diagonal(shares, 0)
    order = np.argsort(shares, axis=None)[::-1][:top]
    return [(classes[i], classes[j], float(shares[i, j])) for i, j in zip(*np.unravel_index(order, cm.shape))
            if shares[i, j] > 0]


def error_summary(cm: np.ndarray, classes: Sequence[str], top: int = 5) -> str:
    """Two lines a person can read for 10 or 100 classes: the most confused pairs, and the
    classes from worst to best (all of them for 10 classes, the five at each end for more)."""
    pairs = ", ".join(f"{t} as {p} {share:.0%}" for t, p, share in most_confused(cm, classes, top))
    accuracy = per_class_accuracy(cm)
    ranked = [f"{classes[i]} {accuracy[i]:.0%}" for i in np.argsort(accuracy) if not np.isnan(accuracy[i])]
    if len(ranked) > 12:
        ranked = [*ranked[:5], "...", *ranked[-5:]]
    return (f"most confused (true as predicted, share of the true class): {pairs}\n"
            f"per class, worst to best: {', '.join(ranked)}")


def count_flops(model: nn.Module, image_size: int = 32, channels: int = 3) -> int:
    """Floating-point operations of one forward pass on one input, by PyTorch's FLOP counter.

    A multiply-add counts as two operations, as FlopCounterMode counts them.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, channels, image_size, image_size, device=device))
    model.train(was_training)
    return counter.get_total_flops()


def cpu_latency_ms(model: nn.Module, image_size: int = 32, runs: int = 50,
                   warmup: int = 5) -> float:
    """Median time in milliseconds of one forward pass at batch 1 on the CPU, fp32, channels-first.

    One fixed precision and layout, whatever the model trained in, so that models compare.
    """
    model = plain_copy(model)
    x = torch.randn(1, 3, image_size, image_size)
    with torch.no_grad():
        return median_ms(lambda: model(x), runs, warmup)


def median_ms(call, runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of call() in milliseconds, over `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def size_on_disk_mb(model: nn.Module) -> float:
    """Size of the model's saved state_dict in megabytes (10^6 bytes)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1e6
