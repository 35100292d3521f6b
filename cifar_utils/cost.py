"""What a model costs: parameters, FLOPs, latency, size on disk, and how fast it trains.

Training speed is measured with the loop's own step (train.step, loss scaling included), so a
format is timed on the step that trains in it. Timings move with whatever else the machine
does; that is why the course trains in precision.default_format unless asked to `choose` by
timing (CIFAR_COURSE_FORMAT=measure).
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from .precision import ComputeFormat, candidates, loss_scaler, plain_copy, prepare, requested, unwrap
from .train import step


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Count the model's parameters (only those that will train, if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


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


def size_on_disk_mb(model: nn.Module) -> float:
    """Size of the model's saved state_dict in megabytes (10^6 bytes)."""
    buffer = io.BytesIO()
    torch.save(unwrap(model).state_dict(), buffer)
    return buffer.tell() / 1e6


def median_ms(call: Callable[[], object], runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of call() in milliseconds, over `runs` calls after `warmup` untimed ones.
    (A median of single calls, as the notebooks' LATENCY_RUNS says: torch.utils.benchmark's
    Timer has medians of blocks within a time budget instead.)"""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def cpu_latency_ms(model: nn.Module, image_size: int = 32, runs: int = 50, warmup: int = 5) -> float:
    """Median time in milliseconds of one forward pass at batch 1 on the CPU, fp32, channels-first.

    One fixed precision and layout, whatever the model trained in, so that models compare.
    """
    model = plain_copy(model)
    x = torch.randn(1, 3, image_size, image_size)
    with torch.no_grad():
        return median_ms(lambda: model(x), runs, warmup)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(model: nn.Module, batches: Iterable, steps: int, warmup: int = 2,
               max_seconds: float | None = None) -> float:
    """Train `model` where it is on `steps` batches after `warmup` more; return images per second.

    max_seconds: stop timing earlier, after the first timed step past this many seconds (a
    format the hardware only emulates can be 50 times slower than the rest).
    """
    device = next(model.parameters()).device
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = loss_scaler(model)
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:  # worker start-up and first kernels stay out of the clock
            _sync(device)
            start, seen = time.perf_counter(), 0
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        step(F.cross_entropy(model(x), y), optimizer, scaler)
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
                rates[name] = max(rates[name], throughput(model, batches(), steps, warmup, max_seconds))
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


def choose(request: str, model: nn.Module, batch_size: int, device: torch.device) -> ComputeFormat:
    """The format to train `model` in, for a request (Config.compute_format): the one it names
    (precision.requested), or for "measure" the fastest here, timed once per architecture, batch
    size and device in this process (one notebook's runs train alike)."""
    return requested(request, model, device) or _fastest(repr(unwrap(model)), model, batch_size, device)


_FASTEST: dict[tuple, ComputeFormat] = {}  # "measure"'s timings, kept for the process


def _fastest(architecture: str, model: nn.Module, batch_size: int, device: torch.device) -> ComputeFormat:
    key = (architecture, batch_size, str(device))
    if key not in _FASTEST:
        rates = measure(model, example_batch(batch_size, device), device)
        _FASTEST[key] = max(rates, key=rates.get)
    return _FASTEST[key]


@torch.no_grad()
def inference_throughput(model: nn.Module, device: torch.device, batch_size: int = 256,
                         steps: int = 20, image_size: int = 32) -> float:
    """Images per second of inference at `batch_size`: torch.utils.benchmark's Timer over `steps`
    batches, after its own warm-up, on all of torch's threads (the Timer's default is one); on a
    GPU it waits for the kernels before it reads the clock."""
    model.to(device).eval()
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    timer = benchmark.Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
    return batch_size / timer.timeit(steps).mean


def deployment_costs(model: nn.Module, device: torch.device, latency_runs: int = 50, image_size: int = 32) -> dict:
    """What it costs to deploy `model`, as one run's results entry takes them: FLOPs per image,
    the CPU's batch-1 latency (median of `latency_runs`, ms), size on disk (MB), and, on a CUDA
    device, inference throughput (images per second; None elsewhere: no GPU measured it)."""
    return {"flops": count_flops(model, image_size),
            "cpu_latency_ms": cpu_latency_ms(model, image_size, runs=latency_runs),
            "size_mb": size_on_disk_mb(model),
            "gpu_images_per_s": (inference_throughput(model, device, image_size=image_size)
                                 if device.type == "cuda" else None)}
