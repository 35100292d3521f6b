"""The CPU speedrun (notebook 10): airbench's ideas on the course's own loop, one at a time.

Jordan's airbench (2024) trains a small network to 94% on CIFAR-10 in seconds on a GPU. It
builds on Page's "How to train your ResNet" (2018) and tysam-code's hlb-CIFAR10. Here each idea
is a part of the model, a callback or a setting of the course's recipe, so one `recipe.train`
runs them all:

    the network                  models.SpeedrunNet (airbench's layout)
    a frozen whitening layer     models.Whitening, fitted to training images (fit_whitening),
                                 its bias trained for the first 3 epochs (callbacks.FreezeAfter)
    decoupled hyperparameters    Decoupled: per-1024-image rate, momentum and weight decay,
                                 turned into Nesterov SGD's; callbacks.WarmupLinear schedule
    BatchNorm biases only        param_groups: the scales fixed at 1, the biases at 64x the rate
    label smoothing              losses.LabelSmoothing(0.2)
    alternating flip, translate  tensor_loader.ALTERNATING
    Lookahead                    callbacks.Lookahead
    multi-crop test-time views   metrics.MULTI_CROP

IDEAS adds them one at a time to the course's SimpleCNN recipe (notebook 02); `setups` gives
each step's Setup, `train` trains one.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from . import challenge, cost, data, models, plots, recipe, results
from .callbacks import FreezeAfter, Lookahead, ValidationCurve, WarmupLinear
from .data import Splits
from .loaders import Loaders, make_loaders, normalise
from .losses import LabelSmoothing
from .metrics import MULTI_CROP
from .regimes import Verdict
from .results import mean_std, paired_gain
from .settings import Config
from .tensor_loader import ALTERNATING, CROP_AND_FLIP, Augment
from .train import Callback


@dataclass(frozen=True)
class Decoupled:
    """airbench's hyperparameters in decoupled form (Page 2018, part 5): each can be tuned
    without re-tuning the others.

    PyTorch's SGD couples them: Nesterov momentum m makes steady steps 1 + 1/(1 - m) times
    the rate, so changing m changes the step size; and its weight decay is multiplied by the
    rate. Here the rate is per 1024 images with momentum's growth divided out, and the weight
    decay is the shrinking per 1024 images whatever the rate.
    """

    lr: float = 11.5  # step size per 1024 images, momentum's growth divided out
    momentum: float = 0.85  # Nesterov
    weight_decay: float = 0.0153  # the weights' shrinking per 1024 images, whatever the rate
    bias_scaler: float = 64.0  # BatchNorm biases train at this many times the rate (not the decay)

    def rate(self, batch_size: int, scaler: float = 1.0) -> float:
        """PyTorch SGD's rate on a batch's mean loss."""
        return scaler * self.lr * batch_size / 1024 / (1 + 1 / (1 - self.momentum))

    def sgd_weight_decay(self, scaler: float = 1.0) -> float:
        """PyTorch SGD's weight_decay, which it multiplies by the rate: the same shrinking per
        1024 images at any batch size and for the biases' scaled rate."""
        return self.weight_decay / (scaler * self.lr)


@dataclass(frozen=True)
class Setup:
    """What one step of the build-up trains with: everything the steps differ in."""

    network: str = "simple_cnn"  # a models registry name: simple_cnn or speedrun_net
    widths: tuple[int, int, int] = (64, 256, 256)  # speedrun_net's (airbench94's)
    whitening: bool = False  # speedrun_net's first layer: frozen whitening, or trainable
    optimizer: str = "course"  # course: notebook 02's one-cycle SGD | airbench: Decoupled, WarmupLinear
    batch_size: int | None = None  # None: the profile's
    biases_only: bool = False  # BatchNorm scales fixed at 1, its biases at bias_scaler times the rate
    label_smoothing: float = 0.0
    augment: Augment = CROP_AND_FLIP
    lookahead: bool = False
    views: dict[str, float] | None = None  # test-time augmentation (metrics.MULTI_CROP)
    hyper: Decoupled = field(default_factory=Decoupled)

    def build(self, num_classes: int, seed: int) -> nn.Module:
        if self.network == "speedrun_net":
            return models.build(self.network, num_classes, seed=seed, widths=self.widths, whitening=self.whitening)
        return models.build(self.network, num_classes, seed=seed)


@dataclass(frozen=True)
class Idea:
    """One idea added to the recipe: its name in the results, in words, where it comes from, what it changes."""

    key: str
    name: str
    source: str
    change: dict


SPEEDRUN_BATCH = 512  # airbench's 1024 halved: on a CPU a step costs its images, and more steps learn more

IDEAS = (
    Idea("simple_cnn", "SimpleCNN, the course's recipe", "notebook 02", {}),
    Idea("network", "airbench's network", "Jordan 2024 (airbench)", {"network": "speedrun_net"}),
    Idea("whitening", "frozen patch-whitening first layer", "Page 2018 (part 8); tysam-code 2023; airbench",
         {"whitening": True}),
    Idea("decoupled", "airbench's optimizer: decoupled hyperparameters, Nesterov at a high rate, batch 512",
         "Page 2018 (part 5); airbench",
         {"optimizer": "airbench", "batch_size": SPEEDRUN_BATCH}),
    Idea("biases_only", "BatchNorm biases only, at 64x the rate", "airbench (frozen scales: Page 2018, part 8)",
         {"biases_only": True}),
    Idea("label_smoothing", "label smoothing 0.2", "Szegedy et al. 2016; Page 2018 (part 8); airbench",
         {"label_smoothing": 0.2}),
    Idea("alternating_flip", "alternating flip, 2-pixel reflected translation", "airbench",
         {"augment": ALTERNATING}),
    Idea("lookahead", "Lookahead", "Zhang et al. 2019; airbench", {"lookahead": True}),
    Idea("multi_crop", "multi-crop test-time augmentation", "airbench (flip alone: notebook 07)",
         {"views": MULTI_CROP}),
)
WHITENING_IMAGES = 5000  # airbench fits the whitening layer to the first 5,000 training images
WHITENING_BIAS_EPOCHS = 3


def setups() -> list[tuple[Idea, Setup]]:
    """Each idea with the Setup that has it and every idea before it."""
    steps, setup = [], Setup()
    for idea in IDEAS:
        setup = dataclasses.replace(setup, **idea.change)
        steps.append((idea, setup))
    return steps


FINAL = setups()[-1][1]  # every idea: the speedrun


@torch.no_grad()
def fit_whitening(model: nn.Module, batches: Loaders, images: int = WHITENING_IMAGES) -> None:
    """Fit a SpeedrunNet's Whitening layer to the first `images` training images, normalised as
    the loaders normalise them."""
    x = normalise(batches.splits.train.images[:images], batches.mean, batches.std)
    model.first.fit(x.to(next(model.parameters()).device))


def param_groups(model: nn.Module, setup: Setup, batch_size: int) -> list[dict]:
    """The optimizer's groups for a SpeedrunNet trained with airbench's optimizer: rates and weight
    decays as Decoupled says, per 128 images as recipe.train takes them. With biases_only, the
    BatchNorm scales stay at 1 (they get no gradients) and the biases train at bias_scaler times
    the rate, with the same shrinking per image."""
    hyper = setup.hyper
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    biases = [m.bias for m in norms] if setup.biases_only else []
    for m in norms:
        m.weight.requires_grad_(not setup.biases_only)
    taken = {id(p) for p in biases}
    others = [p for p in model.parameters() if id(p) not in taken and p.requires_grad]
    groups = [(others, 1.0)] + ([(biases, hyper.bias_scaler)] if biases else [])
    return [{"params": params, "lr": per_128(hyper.rate(batch_size, scaler), batch_size),
             "weight_decay": hyper.sgd_weight_decay(scaler)} for params, scaler in groups]


def per_128(rate: float, batch_size: int) -> float:
    """The rate per 128 images that recipe.scaled_lr grows to `rate` at `batch_size`."""
    return rate / recipe.scaled_lr(1.0, batch_size)


def callbacks(model: nn.Module, setup: Setup) -> list[Callback]:
    """The callbacks a Setup trains with: label smoothing, the whitening bias's freezing, Lookahead."""
    chosen: list[Callback] = []
    if setup.label_smoothing:
        chosen.append(LabelSmoothing(setup.label_smoothing))
    if setup.network == "speedrun_net" and setup.whitening:
        chosen.append(FreezeAfter([model.first.bias], WHITENING_BIAS_EPOCHS))
    if setup.lookahead:
        chosen.append(Lookahead())
    return chosen


def hyper(setup: Setup, epochs: int, seed: int, lr: float = 0.05) -> recipe.Hyper:
    """The recipe's Hyper for a Setup: notebook 02's (one-cycle, `lr` per 128 images), or airbench's
    (Nesterov at Decoupled's momentum, WarmupLinear; the rates and decays are param_groups')."""
    if setup.optimizer == "course":
        return recipe.Hyper(epochs, lr=lr, seed=seed)
    return recipe.Hyper(epochs, momentum=setup.hyper.momentum, weight_decay=0.0, schedule=WarmupLinear(), seed=seed)


def loaders_for(setup: Setup, splits: Splits, cfg: Config) -> Loaders:
    return make_loaders(splits, setup.batch_size or cfg.batch_size, cfg.device, augment=setup.augment)


def prepared(setup: Setup, splits: Splits, num_classes: int, cfg: Config, seed: int) -> tuple[nn.Module, Loaders]:
    """A Setup's network, built from `seed` (its whitening layer fitted), and its loaders."""
    batches = loaders_for(setup, splits, cfg)
    model = setup.build(num_classes, seed)
    if setup.network == "speedrun_net" and setup.whitening:
        fit_whitening(model, batches)
    return model, batches


def train(name: str, setup: Setup, model: nn.Module, batches: Loaders, cfg: Config, *, seed: int, epochs: int,
          extra: list[Callback] = (), checkpoint=None) -> recipe.Run:
    """Train a Setup's `prepared` network with recipe.train for `epochs`, with its optimizer's
    groups and its callbacks (and `extra` ones)."""
    groups = param_groups(model, setup, batches.batch_size) if setup.optimizer == "airbench" else None
    return recipe.train(name, model, batches, hyper(setup, epochs, seed), cfg, param_groups=groups,
                        callbacks=[*callbacks(model, setup), *extra], checkpoint=checkpoint)


NOTEBOOK = "10_speedrun"
VAL_FRACTION = 0.04  # 2,000 of CIFAR-10's 50,000 training images held out: the checkpoint's choice


@dataclass
class Record:
    """One speedrun, timed whole by 09's rule: from its start to the test score with its views."""

    run: recipe.Run
    batches: Loaders
    cifar: data.CifarData  # the data set it came from
    test_top1: float  # with the Setup's test-time views
    seconds: float  # from the start (the kernel's, for the first) to that score
    budget: float  # the seconds allowed
    tta_seconds: float  # of which the test-time views took

    @property
    def within_budget(self) -> bool:
        return self.seconds <= self.budget

    def summary(self) -> str:
        within = "within" if self.within_budget else "OVER"
        return (f"Speedrun, seed {self.run.hyper.seed}: test top-1 {self.test_top1:.1%} with multi-crop views "
                f"({self.run.test['top1']:.1%} without), {self.run.epochs} epochs, {self.seconds:.0f} s from the "
                f"start to the score: {within} the {self.budget:.0f} s budget.")


def record(cfg: Config, seed: int, minutes: float | None = None, started: float | None = None,
           share: float = 0.85, epochs: int | None = None, checkpoint=None, setup: Setup = FINAL) -> Record:
    """The speedrun under 09's rule: load the data, fit the whitening, train as many epochs as fit
    in `share` of the time left (at most the profile's speedrun epochs; `epochs` fixes them),
    held to the clock by challenge.Deadline, and score the test images with the test-time views.
    The clock starts at the kernel's start (challenge.task), or at `started` (time.time())."""
    task = challenge.task(cfg, minutes)
    if started is not None:
        task = dataclasses.replace(task, started=started)
    splits = data.split_for(task.cifar, cfg, "speedrun", VAL_FRACTION)  # the same split for every seed
    left = task.seconds_left()
    model, batches = prepared(setup, splits, task.num_classes, cfg, seed)
    epochs = epochs or cost.epochs_that_fit(model, batches, cfg, left * share, most=cfg.epochs("speedrun"))
    run = train("speedrun", setup, model, batches, cfg, seed=seed, epochs=epochs,
                extra=[task.deadline(reserve=0.1 * task.seconds)], checkpoint=checkpoint)
    tta_start = time.perf_counter()
    scores = run.score_with_views(batches.test, setup.views) if setup.views else run.test
    tta_seconds = time.perf_counter() - tta_start
    return Record(run, batches, task.cifar, scores["top1"], task.seconds_used(), task.seconds, tta_seconds)


def over_seeds(records: list[Record]) -> dict:
    """The speedrun's results entry: the first seed's run (results.run_record) with the test top-1
    with test-time views as its test_top1, and the mean, spread and each seed's of that score and
    of the whole run's seconds."""
    first = records[0]
    top1, seconds = [r.test_top1 for r in records], [round(r.seconds, 1) for r in records]
    return results.run_record(first.run, test_top1=mean_std(top1)[0], test_top1_std=mean_std(top1)[1],
                              test_top1_per_seed=top1, test_top1_plain=first.run.test["top1"],
                              test_views="multi-crop", seeds=len(records),
                              seed_list=[r.run.hyper.seed for r in records], run_seconds_per_seed=seconds,
                              run_seconds=max(seconds), budget_seconds=first.budget,
                              within_budget=all(r.within_budget for r in records),
                              epochs_per_seed=[r.run.epochs for r in records])


def describe(records: list[Record]) -> str:
    """The speedrun over its seeds, in a sentence."""
    top1 = mean_std([r.test_top1 for r in records])
    seconds = [r.seconds for r in records]
    within = all(r.within_budget for r in records)
    return (f"Over {len(records)} seed{'s' * (len(records) != 1)}: test top-1 {top1[0]:.1%} ± {top1[1]:.1%} "
            f"(each: {', '.join(f'{r.test_top1:.1%}' for r in records)}), {min(seconds):.0f} to "
            f"{max(seconds):.0f} s per whole run: {'all within' if within else 'NOT all within'} the "
            f"{records[0].budget:.0f} s budget.")


@dataclass
class Step:
    """One step of the build-up: an idea, its Setup, and its runs, one per seed."""

    idea: Idea
    setup: Setup
    runs: list[tuple[recipe.Run, Loaders]]  # with the loaders each trained on, one per seed
    test_top1: list[float]  # each seed's, with the Setup's test-time views if it has them
    curves: list[list[tuple[float, float]]]  # each seed's validation top-1 against seconds of training

    @property
    def name(self) -> str:
        return self.idea.name


CURVE_POINTS = 6  # validation passes in each step's seconds of training, for its curve


def build_up(splits: Splits, num_classes: int, cfg: Config, seeds: list[int], seconds: float,
             epochs: int | None = None) -> list[Step]:
    """Every step of IDEAS, each trained once per seed for as many epochs as fit in `seconds` of
    training (timed once per step, so that its seeds train alike), or for `epochs`. A step that
    only changes the test-time views scores the step before's networks with them: its training
    is the same."""
    steps: list[Step] = []
    for idea, setup in setups():  # each step's runs are named after its idea's key
        if steps and dataclasses.replace(setup, views=None) == steps[-1].setup:
            before = steps[-1]
            top1 = [run.score_with_views(batches.test, setup.views)["top1"] for run, batches in before.runs]
            steps.append(Step(idea, setup, before.runs, top1, before.curves))
            continue
        fitted = epochs or cost.epochs_that_fit(*prepared(setup, splits, num_classes, cfg, seeds[0]), cfg, seconds)
        runs, curves = [], []
        for seed in seeds:
            model, batches = prepared(setup, splits, num_classes, cfg, seed)
            curve = ValidationCurve(batches.val, seconds / CURVE_POINTS)
            runs.append((train(idea.key, setup, model, batches, cfg, seed=seed, epochs=fitted, extra=[curve]), batches))
            curves.append(curve.points)
        steps.append(Step(idea, setup, runs, [run.test["top1"] for run, _ in runs], curves))
    return steps


def step_record(step: Step) -> dict:
    """A step's results entry: its first seed's run (results.run_record), named after its idea, with
    the test top-1 over its seeds (with the step's views), and where the idea comes from."""
    top1, first = step.test_top1, step.runs[0][0]
    views_only = {} if first.name == step.idea.key else {"networks_of": first.name}  # scored the step before's
    return results.run_record(first, name=step.idea.key, idea=step.name, source=step.idea.source, **views_only,
                              test_top1=mean_std(top1)[0], test_top1_std=mean_std(top1)[1], test_top1_per_seed=top1,
                              seeds=len(top1), seed_list=[run.hyper.seed for run, _ in step.runs],
                              train_seconds=round(statistics.fmean(run.train_seconds for run, _ in step.runs), 2))


def verdicts(steps: list[Step]) -> list[Verdict | None]:
    """Each step against the step before, seed by seed (regimes.Verdict); None for the first."""
    found: list[Verdict | None] = [None]
    for before, after in zip(steps, steps[1:]):
        found.append(Verdict(after.name, before.name, tuple(b - a for a, b in zip(before.test_top1, after.test_top1)),
                             *paired_gain(before.test_top1, after.test_top1)))
    return found


def table(steps: list[Step]):
    """The ideas, their sources, what each step trained and scored, and its gain over the step before."""
    import pandas as pd

    rows = []
    for step, verdict in zip(steps, verdicts(steps)):
        mean, std = mean_std(step.test_top1)
        runs = [run for run, _ in step.runs]
        rows.append({"idea": step.name, "from": step.idea.source,
                     "epochs": "/".join(sorted({str(run.epochs) for run in runs})),
                     "train s": round(statistics.fmean(run.train_seconds for run in runs)),
                     "test top-1": f"{mean:.1%} ± {std:.1%}",
                     "gain over the step before": "" if verdict is None else
                     f"{100 * verdict.mean:+.1f} ± {100 * verdict.std:.1f} points: {verdict.outcome}"})
    return pd.DataFrame(rows)


def plot(steps: list[Step], title: str = "", ax=None):
    """Validation top-1 against seconds of training, a curve per step (the first seed's, passes of
    ValidationCurve), and each step's test top-1 at the end of its training: the mean of its seeds
    (a diamond) and each seed (dots)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for k, step in enumerate(steps):
        colour = f"C{k % 10}"
        if k == 0 or step.runs is not steps[k - 1].runs:  # a step of views only has its step before's curve
            seconds, top1 = zip(*step.curves[0]) if step.curves[0] else ((), ())
            ax.plot(seconds, top1, marker="o", ms=3, color=colour, alpha=0.7)
        end = statistics.fmean(r.train_seconds for r, _ in step.runs)
        ax.scatter([end] * len(step.test_top1), step.test_top1, color=colour, s=12, alpha=0.5)
        ax.scatter([end], [statistics.fmean(step.test_top1)], color=colour, marker="D", s=50,
                   label=f"{k}. {step.name}")
    ax.set(xlabel="seconds of training", ylabel="top-1 (curves: validation; diamonds: test, mean of seeds)",
           title=title)
    ax.grid(alpha=0.3)
    plots.legend_beside(ax, fontsize=7)
    return ax


def bar(cfg: Config) -> str:
    """The speedrun's record as 09's bar to beat: this machine's run of notebook 10 in
    cfg.results_dir if there is one for this data set and profile, else the team's reference."""
    mine = cfg.results_dir / f"{NOTEBOOK}.json"
    record = results.read(mine) if mine.is_file() else None
    where = f"your run of notebook 10 in {mine}"
    if record is None or (record["dataset"], record["profile"]) != (cfg.dataset, cfg.profile.name):
        record = results.reference(NOTEBOOK, cfg.profile.name, cfg.dataset)
        where = "the team's reference run" + (f" ({'; '.join(record[results.MEASURED].values())})" if record else "")
    speedrun = next((run for run in record["runs"] if run["name"] == "speedrun"), None) if record else None
    if speedrun is None:
        return (f"No speedrun has been run for {cfg.dataset} in the {cfg.profile.name} profile here yet: notebook 10's "
                "record, every idea of airbench on the course's loop, is the bar to beat once it has.")
    seconds = speedrun["run_seconds_per_seed"]
    return (f"The bar to beat, notebook 10's speedrun ({where}): test top-1 {speedrun['test_top1']:.1%} ± "
            f"{speedrun['test_top1_std']:.1%} over {speedrun['seeds']} seeds, each whole run {min(seconds):.0f} to "
            f"{max(seconds):.0f} s of the {speedrun['budget_seconds']:.0f} s budget.")
