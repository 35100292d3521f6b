"""The course's one training recipe, its hyperparameters, and the Run it returns.

    seed -> compute format -> optimizer -> schedule -> fit -> test, once

Every notebook from 02 on trains through `train`. What differs between runs is data, never a
copy of the chain: the hyperparameters (Hyper), parameter groups with their own rates, and
callbacks (freezing, MixUp, a distillation loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoints
from .callbacks import Checkpoint, Cosine, OneCycle, ReduceLROnPlateau, TensorBoard
from .cost import choose
from .loaders import Loaders
from .metrics import confusion_matrix, mirrored, predict, scores
from .precision import PLAIN, ComputeFormat, Prepared, prepare, unwrap
from .settings import Config, seed_everything
from .train import Callback, Progress, fit, train_seconds

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("one-cycle", "cosine", "plateau", "constant")


@dataclass(frozen=True)
class Hyper:
    """The recipe's hyperparameters, each with its unit."""

    epochs: int  # passes over the training split
    lr: float = 0.05  # peak learning rate per 128 images (scaled_lr); a parameter group may set its own
    momentum: float = 0.9  # SGD's Nesterov momentum, AdamW's beta1; one-cycle cycles it 0.95 -> 0.85 -> 0.95
    weight_decay: float = 5e-4  # L2 penalty: SGD adds weight_decay * w to each gradient (AdamW: decoupled)
    optimizer: str = "sgd"  # sgd (Nesterov momentum) | adamw
    schedule: str | Callback = "one-cycle"  # one-cycle | cosine | plateau | constant, or a schedule callback
    warmup: float = 0.25  # share of one-cycle's steps that warm the rate up to its peak
    seed: int = 0  # the run's shuffling, augmentation and dropout (initial weights: models.build's seed)

    def __post_init__(self):
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive whole number, not {self.epochs!r}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be above 0, not {self.lr!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}.")
        if isinstance(self.schedule, str) and self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}, "
                             "or pass a schedule callback.")
        if not 0 < self.warmup < 1:
            raise ValueError(f"warmup is a share of the steps, between 0 and 1, not {self.warmup!r}.")


@dataclass
class Run:
    """One trained model, how it trained and what it scored."""

    name: str
    model: nn.Module  # trained, and prepared: it runs in its compute format by itself
    history: list[dict]  # one record per epoch (train.fit)
    test: dict[str, float] | None  # loss, top1, top5 on the test set (fractions); None: not scored here
    device: torch.device
    train_images: int  # images in the training split; with the epochs, the budget
    compute_format: ComputeFormat = PLAIN  # a model never prepared computes in PyTorch's default
    checkpoint: Path | None = None  # where the best epoch's weights are, if kept
    test_flip: dict[str, float] | None = None  # the test scores with flip TTA, when asked for
    test_logits: torch.Tensor | None = None  # (N, classes) on the CPU, in the test loader's order
    test_labels: torch.Tensor | None = None  # (N,): the error analyses read these, not a new pass
    hyper: Hyper | None = None  # what it trained with (None: trained elsewhere)

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def train_seconds(self) -> float:
        return train_seconds(self.history)

    def summary(self) -> str:
        """One line: the test score (or, where the test set is scored elsewhere, the last
        validation score) and the budget that bought it."""
        flip = f" ({self.test_flip['top1']:.1%} with flip TTA)" if self.test_flip else ""
        top5 = f", top-5 {self.test['top5']:.1%}" if self.test and self.test_logits.shape[1] > 5 else ""  # 5 classes: 100%
        score = (f"test top-1 {self.test['top1']:.1%}{flip}{top5}" if self.test else
                 f"validation top-1 {self.history[-1]['val_top1']:.1%} (no test pass here)")
        return (f"{self.name}: {score} "
                f"after {self.epochs} epoch{'s' * (self.epochs != 1)} on {self.train_images:,} images "
                f"({self.train_seconds:.0f} s of training, {self.compute_format.name})")

    def confusion_matrix(self) -> np.ndarray:
        """The test set's confusion matrix (true class by row, predicted by column), from the
        logits of its test pass: no new pass."""
        return confusion_matrix(self.test_logits.argmax(1), self.test_labels, self.test_logits.shape[1])

    def score_with_flip(self, test_loader) -> dict[str, float]:
        """Score the test set with flip test-time augmentation (the mean of each image's logits
        and its mirror image's), keep it in test_flip and return it. Only the mirror images
        take a new pass: the plain logits are those of the test pass."""
        if self.test_logits is None:  # a Run made by hand, without its test pass's logits
            self.test_logits, self.test_labels = predict(self.model, test_loader, self.device)
        mirror_logits, _ = predict(self.model, mirrored(test_loader), self.device)
        self.test_flip = scores((self.test_logits + mirror_logits) / 2, self.test_labels)
        return self.test_flip

    def score_with_views(self, test_loader, views: dict[str, float]) -> dict[str, float]:
        """The test scores with test-time augmentation over `views` (metrics.MULTI_CROP, say):
        the weighted mean of each image's logits over its views. A new pass per view."""
        return scores(*predict(self.model, test_loader, self.device, views=views))


def scaled_lr(lr_per_128: float, batch_size: int) -> float:
    """A learning rate given per 128 images, at `batch_size`: grown with the square root of the
    batch size. A heuristic, not a law: Goyal et al. (2017) grow the rate linearly with the batch
    (with a warm-up) for SGD; the square root is the gentler rule often used with Adam, and it
    changes the rate less when the batch grows from 128 to 512 on a GPU."""
    return lr_per_128 * math.sqrt(batch_size / 128)


def optimizer(hyper: Hyper, param_groups: list[dict]) -> torch.optim.Optimizer:
    """The optimizer `hyper` names over `param_groups`, each group at its own "lr" (already scaled)."""
    if hyper.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, betas=(hyper.momentum, 0.999), weight_decay=hyper.weight_decay)
    return torch.optim.SGD(param_groups, momentum=hyper.momentum, nesterov=True, weight_decay=hyper.weight_decay)


def schedule(hyper: Hyper) -> Callback | None:
    """The schedule callback `hyper` names (None: a constant rate)."""
    if not isinstance(hyper.schedule, str):
        return hyper.schedule
    return {"one-cycle": lambda: OneCycle(pct_start=hyper.warmup), "cosine": Cosine,
            "plateau": lambda: ReduceLROnPlateau("val_loss", factor=0.1, patience=1),
            "constant": lambda: None}[hyper.schedule]()


def train(name: str, model: nn.Module, loaders: Loaders, hyper: Hyper, cfg: Config, *,
          param_groups: list[dict] | None = None, callbacks: list[Callback] = (),
          checkpoint: Path | None = None) -> Run:
    """Train `model` with the course's recipe and score it on the test set once, at the end.

    cfg: where to train (cfg.device), in which compute format (cfg.compute_format: the
        hardware's default unless asked otherwise) and how to show progress.
    param_groups: parts of the model with their own peak rate ("lr", per 128 images, as
        hyper.lr); the default is one group of every parameter at hyper.lr.
    callbacks: anything that acts at fit()'s events: freezing, MixUp, a distillation loss, monitors.
    checkpoint: keep the epoch with the best validation top-1 there (checkpoints.save) and
        end with its weights.
    A split without test images (09's challenge: its test images are scored when handed in)
    has no test pass: the Run's test is then None.
    """
    seed_everything(hyper.seed)  # shuffling, augmentation and dropout of this run
    compute_format = choose(cfg.compute_format, model, loaders.batch_size, cfg.device)
    prepared = prepare(model, compute_format, cfg.device)
    model = prepared.module  # the model itself: its weights are saved under their own names
    groups = param_groups or [{"params": list(model.parameters())}]
    groups = [{**g, "lr": scaled_lr(g.get("lr", hyper.lr), loaders.batch_size)} for g in groups]
    fit_callbacks = [c for c in (schedule(hyper), *callbacks) if c is not None]
    watching = monitors(name, cfg, hyper.seed, hparams(hyper, loaders, prepared, cfg))
    if checkpoint is not None:
        info = checkpoints.Info(name, loaders.splits.fingerprint, loaders.mean, loaders.std, loaders.train_images)
        fit_callbacks.append(Checkpoint(checkpoint, model, info))
    history = fit(prepared, loaders.train, loaders.val, epochs=hyper.epochs, optimizer=optimizer(hyper, groups),
                  callbacks=[*fit_callbacks, *watching])
    score_test = len(loaders.splits.test) > 0
    logits, labels = predict(prepared, loaders.test, cfg.device) if score_test else (None, None)
    run = Run(name, prepared, history, scores(logits, labels) if score_test else None, cfg.device,
              loaders.train_images, compute_format, checkpoint, test_logits=logits, test_labels=labels, hyper=hyper)
    for board in (w for w in watching if isinstance(w, TensorBoard)):
        board.finish(run.test or {})
    print(run.summary())
    return run


def monitors(name: str, cfg: Config, seed: int, hparams: dict | None = None) -> list[Callback]:
    """What watches a run: its progress bar, and its curves for TensorBoard when cfg asks for
    them (cfg.tensorboard/<name>/seed<seed>)."""
    watching = [Progress(name, cfg.progress)]
    if cfg.tensorboard is not None:
        watching.append(TensorBoard(cfg.tensorboard / name / f"seed{seed}", hparams or {}))
    return watching


def hparams(hyper: Hyper, loaders: Loaders, model: nn.Module, cfg: Config) -> dict:
    """The hyperparameters of a run as TensorBoard takes them (numbers and strings): Hyper's, and
    what else tells two runs apart: the model, the augmentation, the compute format (a Prepared
    model's; fp32 otherwise), the data, the profile and the budget."""
    values = {k: v if isinstance(v, (int, float, str)) else type(v).__name__ for k, v in vars(hyper).items()}
    compute_format = model.compute_format if isinstance(model, Prepared) else PLAIN
    return {**values, "model": _model_name(model), "augmentation": loaders.augment.describe() if loaders.augment else "none",
            "compute_format": compute_format.name, "profile": cfg.profile.name, "dataset": cfg.dataset,
            "pipeline": loaders.pipeline, "batch_size": loaders.batch_size, "train_images": loaders.train_images}


def _model_name(model: nn.Module) -> str:
    """The architecture's registry name, with its builder's options and its input side when not 32
    ("resnet18_cifar(widths=(16, 32, 64, 128))"); a model not built by name: its class."""
    inner = unwrap(model)
    architecture = getattr(inner, "architecture", None)
    if architecture is None:
        return type(inner).__name__
    options = ", ".join(f"{k}={v}" for k, v in sorted(architecture.options.items()))
    side = f" at {architecture.input_px} px" if architecture.input_px != 32 else ""
    return f"{architecture.name}({options}){side}" if options else f"{architecture.name}{side}"


def test_only(name: str, model: nn.Module, loaders: Loaders, cfg: Config, train_images: int = 0) -> Run:
    """Score a model trained elsewhere (a loaded checkpoint) as a Run with no epochs here."""
    compute_format = choose(cfg.compute_format, model, loaders.batch_size, cfg.device)
    prepared = prepare(model, compute_format, cfg.device)
    logits, labels = predict(prepared, loaders.test, cfg.device)
    return Run(name, prepared, [], scores(logits, labels), cfg.device, train_images, compute_format,
               test_logits=logits, test_labels=labels)
