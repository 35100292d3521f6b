"""Smith's learning-rate range test: train a hundred or so steps with a rate that grows
geometrically, and watch the loss.

The loss barely moves while the rate is too small, falls fastest somewhere in the middle and
blows up once the rate is too large. The suggestion is the rate where the (smoothed) loss
falls fastest against log(rate). The model and the optimizer are put back as they were, so
the test costs those steps and changes nothing.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .precision import loss_scaler
from .train import step


@dataclass
class RangeTest:
    """The rates tried, the smoothed loss after each step, and the suggested rate."""

    lrs: list[float]
    losses: list[float]
    suggested: float


def range_test(model: nn.Module, loader, optimizer: torch.optim.Optimizer, *,
               start_lr: float = 1e-5, end_lr: float = 10.0, steps: int = 100, smoothing: float = 0.05,
               diverge: float = 4.0) -> RangeTest:
    """Run the range test with `optimizer` on `model`, where the model is; stop early once the
    loss diverges."""
    if not 0 < start_lr < end_lr or steps < 10:
        raise ValueError("need 0 < start_lr < end_lr and at least 10 steps")
    device = next(model.parameters()).device
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs, losses, average, best = [], [], 0.0, math.inf
    scaler = loss_scaler(model)  # the same step as fit(): fp16 models scale the loss
    model.train()
    try:
        batches = itertools.cycle(loader)  # a small split may hold fewer batches than steps
        for i in range(steps):
            lr = start_lr * factor ** i
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = next(batches)
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            step(loss, optimizer, scaler)
            average = smoothing * loss.item() + (1 - smoothing) * average
            smoothed = average / (1 - (1 - smoothing) ** (i + 1))  # bias-corrected
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            if not math.isfinite(smoothed) or smoothed > diverge * best:
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
    return RangeTest(lrs, losses, steepest_descent(lrs, losses))


def steepest_descent(lrs: list[float], losses: list[float]) -> float:
    """The rate where the loss falls fastest against log(rate), before its minimum."""
    end = int(np.argmin(losses)) + 1
    if end < 3:
        return lrs[0]
    slopes = np.gradient(np.asarray(losses[:end]), np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slopes))])
