"""Benchmark the input paths against the compute ceiling, for every model of the course.

    course bench                      # every model, on the device it finds
    course bench --quick --out b.json # under a minute on 2 CPU cores
    course bench --time-to-accuracy --data-dir DATA   # ResNet18 to 90.5%

Three ways to feed the same training step, measured in one run:
  tutorial: a DataLoader with PIL transforms, fp32, channels-first (the usual tutorial code);
  course:   the tensor path (uint8 data on the device, batched crop/flip), in the compute
            format (precision and memory layout) that measures fastest for the model here;
  ceiling:  the course's step on one batch already on the device (no input work at all).
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Iterable
from pathlib import Path

import torch

from cifar_utils import cost, data, loaders, metrics, models, precision, recipe, settings, train

# model -> (input side in pixels, batch size on CUDA)
MODELS = {"logistic_regression": (32, 512), "simple_cnn": (32, 512), "resnet18_cifar": (32, 512),
          "mobilenet_v2": (64, 512), "mobilenet_v3_small": (64, 512), "resnet18": (64, 512)}
QUICK_MODELS = ("logistic_regression", "simple_cnn")


def _model(name: str, num_classes: int) -> torch.nn.Module:
    return models.at_size(models.build(name, num_classes), MODELS[name][0])


def compare_paths(name: str, train_set: data.ImageSet, device: torch.device, batch_size: int,
                  steps: int, workers: int, repeats: int = 3) -> dict:
    """Images per second of one model through the tutorial path, the course path, the ceiling.

    The course path and the ceiling train in the compute format that measures fastest here
    (cost.measure; every format's rate is reported), the tutorial path in fp32,
    channels-first. The paths take turns `repeats` times and the best of each counts: a run is
    slowed by whatever else the machine does, never sped up.
    """
    splits = data.Splits(train_set, train_set, train_set)
    batches = loaders.make_loaders(splits, batch_size, device)  # statistics computed once
    course = batches.train
    one_batch = next(iter(course))
    format_rates = cost.measure(_model(name, 10), one_batch, device, steps=max(2, steps // 5),
                                 rounds=repeats)
    fastest = max(format_rates, key=format_rates.get)

    def tutorial():  # fresh workers each time, shut down afterwards: they never compete
        return _cycle(loaders.torchvision_loader(
            train_set, batch_size, loaders.train_transforms(batches.mean, batches.std), shuffle=True,
            num_workers=workers, device=device, drop_last=True, persistent=False))

    rates = cost.compare_feeds(lambda: _model(name, 10), {
        "ceiling": (fastest, lambda: cost.repeat(one_batch)),
        "course": (fastest, lambda: _cycle(course)),
        "tutorial": (precision.PLAIN, tutorial)}, device, steps, rounds=repeats)
    return {"batch_size": batch_size, "compute_format": fastest.name,
            "formats": {f.name: rate for f, rate in format_rates.items()}, **rates,
            "course_over_ceiling": rates["course"] / rates["ceiling"],
            "course_over_tutorial": rates["course"] / rates["tutorial"]}


def _cycle(loader) -> Iterable:
    """Go over a loader's epochs without end."""
    while True:
        yield from loader


def time_to_accuracy(cifar: data.CifarData, cfg: settings.Config, target: float,
                     budgets: list[int], batch_size: int, flip_tta: bool = True) -> dict:
    """Train the CIFAR ResNet18 once per epoch budget; report the least training time to `target`.

    A one-cycle schedule is fitted to its budget, so a shorter budget is a different run, not
    the start of a longer one: each budget is trained from scratch, and the fastest run that
    reached the target counts.
    """
    runs = [_train_to_target(cifar, cfg, target, epochs, batch_size, flip_tta)
            for epochs in sorted(budgets)]
    times = [r["seconds_to_target"] for r in runs if r["reached"]]
    return {"target": target, "flip_tta": flip_tta, "batch_size": batch_size,
            "data_source": cifar.source, "reached": bool(times),
            "seconds_to_target": min(times) if times else None, "runs": runs}


class StopAtTarget(train.Callback):
    """Score the test set after each epoch (outside the clock); stop once it reaches `target`."""

    def __init__(self, test_loader, device: torch.device, target: float, flip_tta: bool):
        self.test_loader, self.device, self.target, self.flip_tta = test_loader, device, target, flip_tta
        self.reached_at: float | None = None  # seconds of training when the target was reached

    def on_epoch_end(self, state: train.FitState) -> None:
        top1 = metrics.evaluate(state.model, self.test_loader, self.device,
                                flip_tta=self.flip_tta)["top1"]
        state.history[-1]["test_top1"] = top1
        if top1 >= self.target and self.reached_at is None:
            self.reached_at = train.train_seconds(state.history)
            state.stop = True


def _train_to_target(cifar: data.CifarData, cfg: settings.Config, target: float, epochs: int,
                     batch_size: int, flip_tta: bool) -> dict:
    """Train the CIFAR ResNet18 with the course's recipe for `epochs` on all 50,000 images."""
    dl = loaders.make_loaders(data.Splits(cifar.train, cifar.test, cifar.test), batch_size, cfg.device)
    stop = StopAtTarget(dl.test, cfg.device, target, flip_tta)
    run = recipe.train(f"{epochs}-epoch budget", _model("resnet18_cifar", cifar.num_classes), dl,
                       recipe.Hyper(epochs=epochs, lr=0.1), cfg, callbacks=[stop])
    return {"epoch_budget": epochs, "compute_format": run.compute_format.name,
            "reached": stop.reached_at is not None, "epochs_run": run.epochs,
            "train_seconds": run.train_seconds, "seconds_to_target": stop.reached_at,
            "best_test_top1": max(r["test_top1"] for r in run.history),
            "test_top1_by_epoch": [round(r["test_top1"], 4) for r in run.history]}


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench` command's arguments."""
    parser.add_argument("--quick", action="store_true",
                        help="logistic regression and SimpleCNN, few steps (CI, a laptop)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="models to measure")
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu")
    parser.add_argument("--data-dir", default="sample",
                        help="DATA_DIR for the images (default: the bundled sample)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per path (best counts)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (tutorial)")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help="also time the CIFAR ResNet18 to --target test top-1")
    parser.add_argument("--target", type=float, default=0.905)
    parser.add_argument("--epochs", type=int, nargs="+", default=[18, 20, 22],
                        help="epoch budgets for --time-to-accuracy (one run each; the fastest to "
                             "the target counts)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")


def bench_command(args: argparse.Namespace) -> int:
    """`bench`: the input paths of each model against its ceiling, and time to accuracy if asked."""
    cfg = settings.resolve(device=args.device, progress="text")
    device = cfg.device
    cuda = device.type == "cuda"
    names = args.models or (list(QUICK_MODELS) if args.quick else list(MODELS))
    steps = args.steps or (10 if args.quick else 50)
    cifar = data.load("cifar10", args.data_dir)
    settings.seed_everything(0)
    report = {"device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
              "device_type": device.type, "torch": torch.__version__,
              "cpu_threads": torch.get_num_threads(), "data_source": cifar.source,
              "steps": steps, "repeats": args.repeats, "workers": args.workers, "models": {}}
    print(f"{report['device']} ({device.type}), torch {torch.__version__}, best of {args.repeats} "
          f"runs of {steps} timed steps, {args.workers} DataLoader workers for the tutorial path")
    print(f"{'model':<20}{'batch':>6}{'tutorial':>11}{'course':>10}{'ceiling':>10}"
          f"{'course/ceiling':>16}{'course/tutorial':>17}   course format")
    for name in names:
        batch = args.batch_size or (MODELS[name][1] if cuda else 128)
        r = compare_paths(name, cifar.train, device, batch, steps, args.workers, args.repeats)
        report["models"][name] = r
        print(f"{name:<20}{batch:>6}{r['tutorial']:>11,.0f}{r['course']:>10,.0f}"
              f"{r['ceiling']:>10,.0f}{r['course_over_ceiling']:>16.2f}"
              f"{r['course_over_tutorial']:>17.2f}   {r['compute_format']}", flush=True)
    if args.time_to_accuracy:
        tta = time_to_accuracy(cifar, cfg, args.target, args.epochs, 1024 if cuda else 128)
        report["time_to_accuracy"] = tta
        print(f"CIFAR ResNet18 to {tta['target']:.1%} test top-1 ({cifar.source} data, batch "
              f"{tta['batch_size']}, flip averaging {'on' if tta['flip_tta'] else 'off'}):")
        for r in tta["runs"]:
            print(f"  {r['epoch_budget']:>3}-epoch budget: best {r['best_test_top1']:.2%} after "
                  f"{r['epochs_run']} epochs, " + (f"target at {r['seconds_to_target']:.1f} s of "
                  "training" if r["reached"] else f"not reached in {r['train_seconds']:.1f} s"))
        print(f"  time to {tta['target']:.1%}: " + (f"{tta['seconds_to_target']:.1f} s" if
                                                    tta["reached"] else "not reached"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.out}")
    return 0

