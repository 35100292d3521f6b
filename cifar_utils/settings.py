"""Profiles and budgets, the notebooks' stable parameters resolved into one Config, and devices."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# Every environment variable the course reads. They all start with CIFAR_.
PROFILE_ENV = "CIFAR_COURSE_PROFILE"
DATA_ENV = "CIFAR_DATA_DIR"
RESULTS_ENV = "CIFAR_RESULTS_DIR"
PLAIN_PROGRESS_ENV = "CIFAR_COURSE_PLAIN_PROGRESS"
FORMAT_ENV = "CIFAR_COURSE_FORMAT"
TENSORBOARD_ENV = "CIFAR_COURSE_TENSORBOARD"
CHALLENGE_ENV = "CIFAR_CHALLENGE_DIR"  # these three: set by the challenge's grader, for a graded run
CHALLENGE_OUT_ENV = "CIFAR_CHALLENGE_OUT"
CHALLENGE_SECONDS_ENV = "CIFAR_CHALLENGE_SECONDS"
CHALLENGE_STARTED_ENV = "CIFAR_CHALLENGE_STARTED"
ENVIRONMENT = {
    PROFILE_ENV: "the profile PROFILE='auto' (or 'auto-short') resolves to (smoke | laptop | short | full)",
    DATA_ENV: "where DATA_DIR=None looks for the data (default ./data)",
    RESULTS_ENV: "where RESULTS_DIR=None writes results and checkpoints (default ./results)",
    PLAIN_PROGRESS_ENV: "'1': progress bars as plain text lines instead of widgets",
    FORMAT_ENV: "the precision and memory layout models train in: unset for the default of "
                "this hardware, 'measure' to time all four and take the fastest, or one of "
                "them pinned ('bf16,channels-last', 'fp32,channels-first', ...)",
    TENSORBOARD_ENV: "a folder: every training run writes its curves there for TensorBoard, one folder "
                     "per run (the course runner's --tensorboard sets it per notebook)",
    CHALLENGE_ENV: "set by `course challenge` for a graded run of 09: the folder with its training images "
                   "and the test images without labels",
    CHALLENGE_OUT_ENV: "set by `course challenge`: where the graded run hands in its predictions",
    CHALLENGE_SECONDS_ENV: "set by `course challenge`: the graded run's time budget in seconds",
    CHALLENGE_STARTED_ENV: "set by `course challenge`: when the grader started the run (seconds since the epoch)",
}

DATASETS = ("cifar10", "cifar100")
DEVICES = ("auto", "cuda", "mps", "cpu")
PROGRESS_STYLES = ("widget", "text", "off")


@dataclass(frozen=True)
class Budget:
    """How long one kind of training runs in a profile."""

    epochs: int
    train_images: int | None = None  # training images kept before the validation split (None: all)
    seeds: int = 1  # how many times each arm trains, with seeds SEED, SEED + 1, ...: mean ± std


FULL_WIDTHS = (64, 128, 256, 512)  # ResNet18's channels per stage, as He et al. built it
QUARTER_WIDTHS = (16, 32, 64, 128)  # a quarter of them: a sixteenth of the weights and operations

# The kinds of training the notebooks do, each with its own budget. A "_few_images" kind is the
# regime where a network would overfit (few images, many epochs), beside the kind of the same
# name: where a regulariser pays, and where it doesn't yet.
KINDS = ("logistic_regression", "simple_cnn", "simple_cnn_few_images", "resnet18_cifar", "pretrain", "fine_tune",
         "fine_tune_few_images", "student", "tricks", "tricks_few_images", "speedrun")


@dataclass(frozen=True)
class Profile:
    """How big a run is: a budget per kind of training, the test set, the batch size."""

    name: str
    budgets: dict[str, Budget]  # kind of training (KINDS) -> budget
    test_images: int | None  # test images kept (None: all)
    val_fraction: float  # share of the kept training images held out for validation
    batch_size: int
    resnet_widths: tuple[int, ...] = FULL_WIDTHS  # the channels of the CIFAR ResNet18's four stages
    challenge_minutes: float = 10.0  # 09's and 10's time budget: a whole run, from the kernel's start
    idea_seconds: float = 50.0  # 10's build-up: the training time each step gets
    description: str = field(default="", compare=False)


def _profile(name, epochs, train_images, test_images, batch_size, description, seeds=None,
             resnet_widths=FULL_WIDTHS, challenge_minutes=10.0, idea_seconds=50.0) -> Profile:
    budgets = {kind: Budget(epochs[kind], train_images.get(kind), (seeds or {}).get(kind, 1))
               for kind in KINDS}
    return Profile(name, budgets, test_images, 0.1, batch_size, resnet_widths, challenge_minutes, idea_seconds,
                   description)


PROFILES: dict[str, Profile] = {
    "smoke": _profile(
        "smoke",
        epochs={"logistic_regression": 2, "simple_cnn": 2, "simple_cnn_few_images": 3, "resnet18_cifar": 2,
                "pretrain": 2, "fine_tune": 2, "fine_tune_few_images": 3, "student": 2, "tricks": 1, "tricks_few_images": 2,
                "speedrun": 2},
        # a handful of steps for the ResNet-sized models: one CIFAR ResNet18 step costs about 40
        # SimpleCNN steps on a CPU, and the test command runs every notebook several times
        train_images={"simple_cnn_few_images": 300, "resnet18_cifar": 200, "pretrain": 300, "fine_tune": 200,
                      "fine_tune_few_images": 150, "student": 200, "tricks": 500, "tricks_few_images": 300,
                      "speedrun": 600},
        test_images=300, batch_size=64, resnet_widths=QUARTER_WIDTHS,
        # two seeds wherever arms are compared, so that the tests see the spread at work
        seeds={"simple_cnn": 2, "simple_cnn_few_images": 2, "fine_tune": 2, "fine_tune_few_images": 2, "student": 2,
               "tricks": 2, "tricks_few_images": 2, "speedrun": 2},
        challenge_minutes=2, idea_seconds=2,
        description="the bundled sample, a few steps per model: at most minutes per notebook, for tests"),
    "laptop": _profile(
        "laptop",
        epochs={"logistic_regression": 5, "simple_cnn": 2, "simple_cnn_few_images": 30, "resnet18_cifar": 3,
                "pretrain": 3, "fine_tune": 3, "fine_tune_few_images": 12, "student": 11, "tricks": 2,
                "tricks_few_images": 30, "speedrun": 10},
        # 02's and 07's arms in two regimes, three seeds each: every image a few times (nothing
        # memorised yet), and 2,500 images 30 times (memorised without a regulariser: 99.6% train
        # accuracy). 03's ResNet at a quarter of the width (QUARTER_WIDTHS) on every image; the
        # offline pretraining on 15,000 images of the source classes; fine-tuning and the distilled
        # student on 5,000 images (the student with three seeds, to measure its spread); 04's
        # fine-tuning also on 500 images at a high rate, where a random head's gradients do damage
        train_images={"simple_cnn_few_images": 2500, "pretrain": 15000, "fine_tune": 5000, "fine_tune_few_images": 500,
                      "student": 5000, "tricks": 10000, "tricks_few_images": 2500},
        test_images=None, batch_size=128, resnet_widths=QUARTER_WIDTHS,
        seeds={"simple_cnn": 3, "simple_cnn_few_images": 3, "fine_tune": 3, "fine_tune_few_images": 3, "student": 3,
               "tricks": 3, "tricks_few_images": 3, "speedrun": 3},
        # 10's speedrun: at most airbench94's 10 epochs, as many as fit in 10 minutes; its build-up
        # gives each step 50 s of training, about one epoch of airbench's network on two cores
        challenge_minutes=10, idea_seconds=50,
        description="real CIFAR, minutes per notebook on a laptop CPU"),
    "short": _profile(
        "short",
        epochs={"logistic_regression": 5, "simple_cnn": 10, "simple_cnn_few_images": 30, "resnet18_cifar": 8,
                "pretrain": 10, "fine_tune": 3, "fine_tune_few_images": 12, "student": 8, "tricks": 15,
                "tricks_few_images": 30, "speedrun": 8},
        train_images={"simple_cnn_few_images": 2500, "fine_tune_few_images": 1200, "tricks_few_images": 2500},
        test_images=None, batch_size=512, challenge_minutes=5, idea_seconds=10,
        seeds={"simple_cnn": 3, "simple_cnn_few_images": 3, "fine_tune": 3, "fine_tune_few_images": 3, "tricks": 3,
               "tricks_few_images": 3, "speedrun": 3},
        description="all of CIFAR, a few epochs: minutes per notebook on one GPU (assignments)"),
    "full": _profile(
        "full",
        epochs={"logistic_regression": 20, "simple_cnn": 30, "simple_cnn_few_images": 100, "resnet18_cifar": 40,
                "pretrain": 30, "fine_tune": 10, "fine_tune_few_images": 12, "student": 30, "tricks": 30,
                "tricks_few_images": 100, "speedrun": 10},
        train_images={"simple_cnn_few_images": 5000, "fine_tune_few_images": 1200, "tricks_few_images": 5000},
        test_images=None, batch_size=512,
        seeds={"simple_cnn": 3, "simple_cnn_few_images": 3, "fine_tune": 3, "fine_tune_few_images": 3, "student": 3,
               "tricks": 3, "tricks_few_images": 3, "speedrun": 3},
        challenge_minutes=10, idea_seconds=20,
        description="all of CIFAR and enough epochs for headline accuracy on one GPU"),
}


@dataclass(frozen=True)
class Config:
    """Everything a notebook decided from its parameters cell, resolved and checked."""

    profile: Profile
    dataset: str
    data_dir: str | None  # None: the profile's default source; "sample": the bundled sample
    download: bool
    device: torch.device
    seed: int
    epochs_override: int | None  # EPOCHS: replaces every budget's epochs
    batch_size: int
    results_dir: Path
    default_data_dir: str = "data"  # where DATA_DIR=None looks: $CIFAR_DATA_DIR, else ./data
    compute_format: str = ""  # "" the hardware's default, "measure" the fastest timed, or a format's name
    progress: str = "widget"  # widget | text | off: how training shows its progress
    tensorboard: Path | None = None  # where runs write their curves for TensorBoard (None: they do not)

    def budget(self, kind: str) -> Budget:
        """The budget of one kind of training (KINDS), with EPOCHS applied if the notebook set it."""
        if kind not in self.profile.budgets:
            raise ValueError(f"Unknown kind of training {kind!r}: choose one of {', '.join(KINDS)}.")
        budget = self.profile.budgets[kind]
        if self.epochs_override is None:
            return budget
        return dataclasses.replace(budget, epochs=self.epochs_override)

    def epochs(self, kind: str) -> int:
        """Epochs for one kind of training (KINDS)."""
        return self.budget(kind).epochs

    def seeds(self, kind: str, n: int | None = None) -> list[int]:
        """The seeds each arm of one kind of training (KINDS) trains with: SEED, SEED + 1, ...,
        n of them (the SEEDS parameter), or as many as the profile's budget says (n=None)."""
        check_whole("SEEDS", n, allow_none=True, minimum=1)
        return [self.seed + k for k in range(n or self.budget(kind).seeds)]

    @property
    def checkpoint_dir(self) -> Path:
        return self.results_dir / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """Where a run called `name` keeps its checkpoint for this data set: every notebook's,
        so that a later one finds it (checkpoints.save and load read and write the file)."""
        return self.checkpoint_dir / f"{self.dataset}_{name}.pt"

    def summary(self) -> str:
        """One line for the notebook to print."""
        return (f"profile={self.profile.name} dataset={self.dataset} device={self.device} "
                f"seed={self.seed} batch_size={self.batch_size} results_dir={self.results_dir}")


# What PROFILE='auto' and 'auto-short' pick: (on a CUDA GPU, elsewhere). The course runs 'auto';
# student versions 'auto-short', so that an assignment takes minutes on a GPU as on a laptop.
SELECTORS = {"auto": ("full", "laptop"), "auto-short": ("short", "laptop")}


def resolve_profile(name: str = "auto") -> Profile:
    """Turn a profile's name, or auto | auto-short, into a Profile; the two honour $CIFAR_COURSE_PROFILE."""
    if name in SELECTORS:
        on_gpu, elsewhere = SELECTORS[name]
        source = f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else f"PROFILE={name!r}"
        name = os.environ.get(PROFILE_ENV) or (on_gpu if torch.cuda.is_available() else elsewhere)
    else:
        source = "PROFILE"
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r} (from {source}): choose one of "
                         f"{', '.join(SELECTORS)}, {', '.join(PROFILES)}.")
    return PROFILES[name]


def resolve_device(name: str = "auto") -> torch.device:
    """Turn auto|cuda|mps|cpu into a torch.device, refusing one this machine does not have."""
    if name not in DEVICES:
        raise ValueError(f"Unknown device {name!r}: choose one of {', '.join(DEVICES)}.")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("DEVICE='cuda' but PyTorch sees no CUDA GPU here: use DEVICE='auto' or 'cpu'.")
    if name == "mps" and not has_mps:
        raise ValueError("DEVICE='mps' but this machine has no Apple GPU: use DEVICE='auto' or 'cpu'.")
    return torch.device(name)


@contextlib.contextmanager
def seeded(seed: int | None, devices: list | tuple = ()):
    """Draw from torch's global stream seeded with `seed` inside the block, and leave the stream
    (the CPU's, and the CUDA `devices`') as it was outside it; seed None: neither seed nor fork."""
    with torch.random.fork_rng(devices=list(devices), enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so that a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_whole(name: str, value, allow_none: bool, minimum: int) -> None:
    """Refuse a parameter that is not a whole number >= minimum (or None where allowed), naming it."""
    ok = (value is None and allow_none) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum)
    if not ok:
        kind = "a positive whole number" if minimum > 0 else "a whole number"
        raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}, not {value!r}.")


# The parameters every notebook's parameters cell defines (the README's stable interface), in order.
STABLE_PARAMETERS = ("PROFILE", "DATASET", "DATA_DIR", "DOWNLOAD", "DEVICE", "SEED", "EPOCHS", "BATCH_SIZE", "RESULTS_DIR")


def from_parameters(parameters: Mapping[str, object], **options) -> Config:
    """resolve() the stable parameters found by name in `parameters`: a notebook passes its
    globals() (what its parameters cell and papermill set), the course runner its -p values;
    one that is not there takes resolve's default. options: resolve's other keywords."""
    return resolve(**{name.lower(): parameters[name] for name in STABLE_PARAMETERS if name in parameters}, **options)


def resolve(*, profile: str = "auto", dataset: str = "cifar10", data_dir: str | None = None,
            download: bool = True, device: str = "auto", seed: int = 0,
            epochs: int | None = None, batch_size: int | None = None,
            results_dir: str | None = None, compute_format: str | None = None,
            progress: str | None = None, tensorboard: str | None = None) -> Config:
    """Check a notebook's stable parameters (by keyword) and resolve them into a Config.

    Every environment variable the course reads is read here, once: the profile `auto` picks,
    the data and results folders' defaults, the compute format (compute_format=None: from
    $CIFAR_COURSE_FORMAT), the progress style (progress=None: "text" where
    $CIFAR_COURSE_PLAIN_PROGRESS is 1, else "widget") and TensorBoard's folder (tensorboard=None:
    $CIFAR_COURSE_TENSORBOARD, unset for no logging).
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}.")
    check_whole("EPOCHS", epochs, allow_none=True, minimum=1)
    check_whole("BATCH_SIZE", batch_size, allow_none=True, minimum=1)
    check_whole("SEED", seed, allow_none=False, minimum=0)
    if not isinstance(download, bool):
        raise ValueError(f"DOWNLOAD must be True or False, not {download!r}.")
    resolved = resolve_profile(profile)
    if progress is None:
        progress = "text" if os.environ.get(PLAIN_PROGRESS_ENV) == "1" else "widget"
    if progress not in PROGRESS_STYLES:
        raise ValueError(f"Unknown progress style {progress!r}: choose one of {', '.join(PROGRESS_STYLES)}.")
    return Config(
        profile=resolved,
        dataset=dataset,
        data_dir=data_dir,
        download=download,
        device=resolve_device(device),
        seed=seed,
        epochs_override=epochs,
        batch_size=batch_size or resolved.batch_size,
        results_dir=Path(results_dir or os.environ.get(RESULTS_ENV) or "results"),
        default_data_dir=os.environ.get(DATA_ENV) or "data",
        compute_format=(os.environ.get(FORMAT_ENV, "") if compute_format is None else compute_format).strip(),
        progress=progress,
        tensorboard=Path(board) if (board := tensorboard or os.environ.get(TENSORBOARD_ENV)) else None,
    )


@dataclass(frozen=True)
class GradedChallenge:
    """What the challenge's grader tells a graded run of 09 (through the environment)."""

    data: Path  # train.npz (images, labels) and test_images.npy, read-only
    out: Path  # where the predictions and the network go
    seconds: float  # the run's budget
    started: float  # when the grader started the run: the budget counts from there


def graded_challenge() -> GradedChallenge | None:
    """The grader's settings when 09 runs graded, else None (a learner's own run)."""
    if not os.environ.get(CHALLENGE_ENV):
        return None
    return GradedChallenge(Path(os.environ[CHALLENGE_ENV]), Path(os.environ[CHALLENGE_OUT_ENV]),
                           float(os.environ[CHALLENGE_SECONDS_ENV]), float(os.environ[CHALLENGE_STARTED_ENV]))
