"""How fast a model trains here, and in which precision and memory layout it trains fastest.

Two switches change the speed of a training step without changing what the model computes
(beyond rounding):
  precision: bf16 autocast runs convolutions and matrix products in 16-bit floats. Hardware
    with bf16 units (NVIDIA GPUs since Ampere, x86 CPUs with AVX-512 BF16 or AMX) runs them
    several times faster; without such units they are emulated, and slower;
  memory layout: channels-last (NHWC) stores the channels of a pixel side by side, the layout
    tensor cores and oneDNN's convolutions prefer, while depthwise and squeeze-excite layers
    may run slower in it.
Which combination wins depends on the model and the machine, so `choose` times a few steps of
each and keeps the fastest. It remembers the choice per architecture, batch size and device
for the rest of the process, so two runs that are compared (a student alone and distilled, say)
train the same way. Timings vary, so two runs of a notebook may choose differently and round
differently; set $CIFAR_COURSE_SETUP (say, to "fp32,channels-first") to pin one setup.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .settings import autocast

SETUP_ENV = "CIFAR_COURSE_SETUP"  # pins the setup instead of measuring: "bf16,channels-last"


@dataclass(frozen=True)
class Setup:
    """A precision (bf16 autocast or full fp32) and a memory layout to train a model in."""

    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def name(self) -> str:
        return (f"{'bf16' if self.amp_dtype == torch.bfloat16 else 'fp32'}, "
                f"{'channels-last' if self.channels_last else 'channels-first'}")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply(self, model: nn.Module) -> nn.Module:
        """Store the weights in this layout and convert every input batch to it; return the model."""
        model.to(memory_format=self.memory_format)
        old = getattr(model, "_input_layout_hook", None)
        if old is not None:
            old.remove()
        fmt = self.memory_format
        # the input's layout decides the convolutions' layout, whatever the weights' layout
        model._input_layout_hook = model.register_forward_pre_hook(
            lambda module, args: (args[0].contiguous(memory_format=fmt), *args[1:]))
        return model


PLAIN = Setup(amp_dtype=None, channels_last=False)  # fp32, channels-first: PyTorch's default


def candidates(device: torch.device) -> list[Setup]:
    """The setups worth timing on this kind of device (no bf16 autocast on Apple GPUs here)."""
    dtypes = [None, torch.bfloat16] if device.type in ("cpu", "cuda") else [None]
    return [Setup(dtype, layout) for dtype in dtypes for layout in (False, True)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(model: nn.Module, batches: Iterable, steps: int, device: torch.device,
               amp_dtype: torch.dtype | None = None, warmup: int = 2) -> float:
    """Train `model` on `steps` batches after `warmup` more; return images per second."""
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:  # worker start-up and first kernels stay out of the clock
            _sync(device)
            start, seen = time.perf_counter(), 0
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
        if i + 1 == warmup + steps:
            break
    _sync(device)
    return seen / (time.perf_counter() - start)


def repeat(batch) -> Iterable:
    """The same batch forever: input that costs nothing, for the compute ceiling."""
    while True:
        yield batch


def measure(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device,
            setups: Iterable[Setup] | None = None, steps: int = 2,
            rounds: int = 2) -> dict[Setup, float]:
    """Images per second of training steps on `batch`, for a copy of `model` in each setup.

    The setups take turns for `rounds` rounds of `steps` timed steps (after one warm-up step
    each) and each keeps its best round: a burst of other work on the machine slows one
    round, not one setup. The model itself and the random number streams are left as they
    were (the copies train, and their dropout draws from a forked stream).
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        trials = {setup: setup.apply(copy.deepcopy(model).to(device))
                  for setup in setups or candidates(device)}
        rates = dict.fromkeys(trials, 0.0)
        for round_ in range(rounds):
            for setup, trial in trials.items():
                rate = throughput(trial, repeat(batch), steps, device, setup.amp_dtype,
                                  warmup=1 if round_ == 0 else 0)
                rates[setup] = max(rates[setup], rate)
    return rates


def example_batch(batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised 32x32 images, all labelled 0: a step costs the same on any values."""
    images = torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return images.to(device), torch.zeros(batch_size, dtype=torch.long, device=device)


_chosen: dict[tuple, Setup] = {}


def pinned(device: torch.device) -> Setup | None:
    """The setup $CIFAR_COURSE_SETUP names, if it is set (checked against this device)."""
    wanted = os.environ.get(SETUP_ENV, "").replace(" ", "")
    if not wanted:
        return None
    offered = {s.name.replace(" ", ""): s for s in candidates(device)}
    if wanted not in offered:
        raise ValueError(f"${SETUP_ENV}={os.environ[SETUP_ENV]!r} is not a setup for "
                         f"{device.type}: choose one of {', '.join(offered)}.")
    return offered[wanted]


def choose(model: nn.Module, batch_size: int, device: torch.device) -> Setup:
    """The setup in which `model` trains fastest here at this batch size (timed once per process)."""
    setup = pinned(device)
    if setup is not None:
        return setup
    key = (repr(model), batch_size, str(device))
    if key not in _chosen:
        rates = measure(model, example_batch(batch_size, device), device)
        _chosen[key] = max(rates, key=rates.get)
    return _chosen[key]
