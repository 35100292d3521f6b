"""What a model costs: parameters, FLOPs, latency, size on disk, and how fast it trains.

Training speed is measured with the loop's own step (train.step, loss scaling included), so a
format is timed on the step that trains in it. Timings move with whatever else the machine
does; that is why the course trains in precision.default_format unless asked to `choose` by
timing (CIFAR_COURSE_FORMAT=measure).
"""

from __future__ import annotations

import copy
import io
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from .metrics import evaluate
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


def training_flops(model: nn.Module, image_size: int = 32, channels: int = 3) -> int:
    """Floating-point operations of one training step per image: forward and backward, on a
    plain fp32 copy in train mode (FlopCounterMode; frozen layers get no weight gradients, so
    they cost only their forward, and their input's gradient where a layer below trains)."""
    copied = plain_copy(model).train()
    x = torch.zeros(2, channels, image_size, image_size)  # 2: BatchNorm needs more than one image
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(copied(x), torch.zeros(2, dtype=torch.long)).backward()
    return counter.get_total_flops() // 2


def matmul_ceiling(compute_format: ComputeFormat, device: torch.device, size: int = 2048) -> float:
    """FLOP/s of a square matrix product in the format's precision (bf16, or fp32 where it has no
    autocast dtype) on all of torch's threads: about as fast as this hardware multiplies, the
    ceiling a training step's FLOP/s is measured against."""
    dtype = compute_format.amp_dtype or torch.float32
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    timer = benchmark.Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    return 2 * size ** 3 / timer.blocked_autorange(min_run_time=1.0).median


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


def epochs_that_fit(model: nn.Module, batches, cfg, seconds: float, most: int | None = None) -> int:
    """How many epochs of `model` on batches.train (loaders.Loaders), each with its validation
    pass, fit in `seconds`: its speed timed on real batches, in the format recipe.train will
    pick for cfg (settings.Config; a copy trains), the better of two rounds of 20 steps (six
    steps once misjudged an epoch by 40% on a 2-core CPU). At least 1, at most `most`."""
    compute_format = choose(cfg.compute_format, model, batches.batch_size, cfg.device)
    feed = {"train": (compute_format, lambda: batches.train)}
    rate = compare_feeds(lambda: copy.deepcopy(model), feed, cfg.device, steps=20, rounds=2)["train"]
    epoch_seconds = (batches.train_images + len(batches.splits.val) / 3) / rate  # training, then validation
    epochs = int(seconds / epoch_seconds)
    return max(1, min(epochs, most or epochs))


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


def against_ceiling(run) -> dict[str, float]:
    """How close the run's training came to the machine: its images per second (the median epoch),
    the FLOPs of a training step per image (training_flops), their product in FLOP/s, and the
    ceiling, a matrix product's FLOP/s in the run's format on the same device (matmul_ceiling)."""
    images_per_s = run.train_images / statistics.median(r["seconds"] for r in run.history)
    flops = training_flops(run.model)
    ceiling = matmul_ceiling(run.compute_format, run.device)
    return {"images_per_s": images_per_s, "train_flops_per_image": flops, "flop_per_s": images_per_s * flops,
            "ceiling_flop_per_s": ceiling, "share_of_ceiling": images_per_s * flops / ceiling}


@torch.no_grad()
def _time(call, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def where_time_goes(run, batches, steps: int = 10) -> dict[str, float]:
    """Seconds per epoch of a run's training, part by part, timed on a copy of its model: making
    the batches (indexing, translation, flips, normalisation), the forward and backward passes,
    the optimizer's step, and the rest of the epoch the run measured (callbacks such as Lookahead,
    the loop's own work); then its validation pass."""
    model = copy.deepcopy(run.model).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6, momentum=0.85,
                                nesterov=True)
    per_epoch = len(batches.train)
    batches_iter = iter(batches.train)
    data_seconds = _time(lambda: next(batches_iter), min(steps, per_epoch)) * per_epoch
    x, y = next(iter(batches.train))

    def forward_backward():
        with torch.enable_grad():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()

    compute = _time(forward_backward, steps) * per_epoch
    stepping = _time(optimizer.step, steps) * per_epoch
    epoch = statistics.median(r["seconds"] for r in run.history)
    validation = _time(lambda: evaluate(run.model, batches.val, run.device), 1)
    return {"making the batches": data_seconds, "forward and backward": compute, "optimizer step": stepping,
            "the rest of the loop": max(epoch - data_seconds - compute - stepping, 0.0), "validation": validation}
