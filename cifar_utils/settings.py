"""Profiles, the notebooks' stable parameters resolved into one settings object, and devices."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

PROFILE_ENV = "CIFAR_COURSE_PROFILE"  # overrides PROFILE="auto" (nbval runs notebooks small)
DATA_ENV = "CIFAR_DATA_DIR"
RESULTS_ENV = "CIFAR_RESULTS_DIR"
DATASETS = ("cifar10", "cifar100")
DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass(frozen=True)
class Profile:
    """How big a run is: how much data, how many epochs per kind of model, what batch size."""

    name: str
    train_size: int | None  # training images kept before the validation split (None: all)
    test_size: int | None  # test images kept (None: all)
    val_fraction: float  # share of the kept training images held out for validation
    batch_size: int
    epochs: dict[str, int] = field(default_factory=dict)  # model family -> epochs
    resnet_train_size: int | None = None  # training images for ResNet-sized models (None: all)
    description: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", train_size=5000, test_size=1000, val_fraction=0.1, batch_size=64,
        epochs={"linear": 2, "cnn": 3, "resnet": 2, "transfer": 2, "student": 2},
        resnet_train_size=500,
        description="the bundled sample, a few steps: seconds per notebook on a CPU, for tests",
    ),
    "laptop": Profile(
        "laptop", train_size=None, test_size=None, val_fraction=0.1, batch_size=128,
        epochs={"linear": 5, "cnn": 8, "resnet": 3, "transfer": 3, "student": 3},
        resnet_train_size=10000,  # a ResNet18 step costs ~30 SimpleCNN steps on a CPU
        description="real CIFAR, minutes per notebook on a laptop CPU",
    ),
    "full": Profile(
        "full", train_size=None, test_size=None, val_fraction=0.1, batch_size=512,
        epochs={"linear": 20, "cnn": 30, "resnet": 40, "transfer": 10, "student": 30},
        description="all of CIFAR and enough epochs for headline accuracy on one GPU",
    ),
}


@dataclass(frozen=True)
class Settings:
    """Everything a notebook decided from its parameters cell, resolved and checked."""

    profile: Profile
    dataset: str
    data_dir: str | None  # None: the profile's default source; "sample": the bundled sample
    download: bool
    device: torch.device
    seed: int
    epochs_override: int | None
    batch_size: int
    results_dir: Path

    def epochs(self, family: str) -> int:
        """Return EPOCHS if the notebook set it, else the profile's epochs for this model family."""
        if self.epochs_override is not None:
            return self.epochs_override
        return self.profile.epochs[family]

    def summary(self) -> str:
        """One line for the notebook to print."""
        return (f"profile={self.profile.name} dataset={self.dataset} device={self.device} "
                f"seed={self.seed} batch_size={self.batch_size} results_dir={self.results_dir}")


def resolve_profile(name: str = "auto") -> Profile:
    """Turn auto|smoke|laptop|full into a Profile; auto honours $CIFAR_COURSE_PROFILE."""
    if name == "auto":
        name = os.environ.get(PROFILE_ENV) or ("full" if torch.cuda.is_available() else "laptop")
        source = f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "PROFILE='auto'"
    else:
        source = "PROFILE"
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r} (from {source}): choose one of "
                         f"auto, {', '.join(PROFILES)}.")
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


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` (bf16: no loss scaling needed) when one is given, otherwise run as is."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so that a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve(profile: str = "auto", dataset: str = "cifar10", data_dir: str | None = None,
            download: bool = True, device: str = "auto", seed: int = 0,
            epochs: int | None = None, batch_size: int | None = None,
            results_dir: str | None = None) -> Settings:
    """Check the stable parameters of a notebook and resolve them into Settings (and seed)."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}.")
    for name, value in (("EPOCHS", epochs), ("BATCH_SIZE", batch_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive whole number or None, not {value!r}.")
    if not isinstance(seed, int):
        raise ValueError(f"SEED must be a whole number, not {seed!r}.")
    resolved = resolve_profile(profile)
    seed_everything(seed)
    return Settings(
        profile=resolved,
        dataset=dataset,
        data_dir=data_dir,
        download=bool(download),
        device=resolve_device(device),
        seed=seed,
        epochs_override=epochs,
        batch_size=batch_size or resolved.batch_size,
        results_dir=Path(results_dir or os.environ.get(RESULTS_ENV) or "results"),
    )
