"""How fast a model trains here: throughput, and the compute formats timed against each other.

Timings move with whatever else the machine does, so the course trains in
`precision.default_format` unless asked otherwise: $CIFAR_COURSE_FORMAT="measure" times the
formats and takes the fastest (remembered per architecture, batch size and device for the
process, so compared runs train alike), and a format's name pins it.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .precision import ComputeFormat, candidates, default_format, parse, prepare, unwrap
from .settings import FORMAT_ENV

MEASURE = "measure"  # the $CIFAR_COURSE_FORMAT value that times the formats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(model: nn.Module, batches: Iterable, steps: int, device: torch.device,
               warmup: int = 2, max_seconds: float | None = None) -> float:
    """Train `model` on `steps` batches after `warmup` more; return images per second.

    max_seconds: stop timing earlier, after the first timed step past this many seconds (a
    format the hardware only emulates can be 50 times slower than the rest).
    """
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:  # worker start-up and first kernels stay out of the clock
            _sync(device)
            start, seen = time.perf_counter(), 0
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
        if i + 1 == warmup + steps:
            break
        if max_seconds is not None and start is not None and time.perf_counter() - start > max_seconds:
            break
    _sync(device)
    return seen / (time.perf_counter() - start)


def repeat(batch) -> Iterable:
    """The same batch forever: input that costs nothing, for the compute ceiling."""
    while True:
        yield batch


def example_batch(batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised 32x32 images, all labelled 0: a step costs the same on any values."""
    images = torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return images.to(device), torch.zeros(batch_size, dtype=torch.long, device=device)


def compare_feeds(build: Callable[[], nn.Module],
                  feeds: dict[str, tuple[ComputeFormat, Callable[[], Iterable]]],
                  device: torch.device, steps: int, rounds: int = 1,
                  warmup: int = 2, max_seconds: float | None = None) -> dict[str, float]:
    """Images per second of a fresh model from `build`, trained in each feed's format and input.

    feeds: name -> (format, a function returning the batches). The feeds take turns for
    `rounds` rounds and each keeps its best: a burst of other work slows one round, not one
    feed. max_seconds: as throughput takes it, per feed and round. The global random stream is
    left as it was.
    """
    rates = dict.fromkeys(feeds, 0.0)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for _ in range(rounds):
            for name, (compute_format, batches) in feeds.items():
                model = prepare(build(), compute_format, device)
                rates[name] = max(rates[name], throughput(model, batches(), steps, device, warmup, max_seconds))
    return rates


def measure(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device,
            formats: Iterable[ComputeFormat] | None = None, steps: int = 2,
            rounds: int = 2, max_seconds: float | None = None) -> dict[ComputeFormat, float]:
    """Images per second of training steps on `batch`, for a copy of `model` in each format.

    The model itself and the random streams are left as they were (copies train).
    """
    original = unwrap(model)
    feeds = {f: (f, lambda: repeat(batch)) for f in formats or candidates(device)}
    return compare_feeds(lambda: copy.deepcopy(original), feeds, device, steps, rounds, warmup=1,
                         max_seconds=max_seconds)


_fastest: dict[tuple, ComputeFormat] = {}


def fastest(model: nn.Module, batch_size: int, device: torch.device) -> ComputeFormat:
    """The format `model` trains fastest in here, timed once per architecture, batch size, device."""
    key = (repr(unwrap(model)), batch_size, str(device))
    if key not in _fastest:
        rates = measure(model, example_batch(batch_size, device), device)
        _fastest[key] = max(rates, key=rates.get)
    return _fastest[key]


def choose(model: nn.Module, batch_size: int, device: torch.device) -> ComputeFormat:
    """The format to train `model` in: $CIFAR_COURSE_FORMAT's pin, its 'measure', or the default."""
    wanted = os.environ.get(FORMAT_ENV, "").strip()
    if not wanted:
        return default_format(model, device)
    if wanted == MEASURE:
        return fastest(model, batch_size, device)
    try:
        return parse(wanted, device)
    except ValueError as err:
        raise ValueError(f"${FORMAT_ENV}: {err} Or '{MEASURE}' to time them, or unset it for "
                         "the default of this hardware.") from None


@torch.no_grad()
def inference_throughput(model: nn.Module, device: torch.device, batch_size: int = 256,
                         steps: int = 20, image_size: int = 32) -> float:
    """Images per second of inference at `batch_size`, after warm-up."""
    model.to(device).eval()
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    for _ in range(3):
        model(x)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model(x)
    _sync(device)
    return batch_size * steps / (time.perf_counter() - start)
