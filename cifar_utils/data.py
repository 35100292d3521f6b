"""Find CIFAR-10/100 (on disk, by download, in an image folder, or the bundled sample) and split it.

Every source ends up as the same thing: uint8 images (N, 32, 32, 3) and int64 labels in memory,
which is how torchvision's own CIFAR classes hold them (images.py). Nothing in DATA_DIR is
overwritten or deleted: an official archive is extracted only into a folder that does not exist
yet, a download goes to a temporary folder first, and an image folder is read as folders.py
says.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import check_integrity, extract_archive

from .folders import decoded_arrays_path, load_image_folder  # noqa: F401 (data.X for the notebooks)
from .images import ARCHIVE_SUFFIXES, IMAGE_SUFFIXES, WAYS, CifarData, DataError, ImageSet, class_names  # noqa: F401
from .photo import load_image, load_photo, to_cifar_size  # noqa: F401 (moved to photo.py; data.X for notebooks 02 and 08)
from .settings import DATASETS, Config

TORCHVISION_CLASSES = {"cifar10": torchvision.datasets.CIFAR10,
                       "cifar100": torchvision.datasets.CIFAR100}
SAMPLE_ARCHIVE = "cifar10-sample.tar.gz"


# --- finding the data ----------------------------------------------------------------------

def load(dataset: str = "cifar10", data_dir: str | os.PathLike = "data",
         download: bool = True) -> CifarData:
    """Find the data set by the course's five steps (the README's *Where the data comes from*)
    and load it into memory.

    data_dir: "sample" for the bundled sample; or a folder (torchvision layout, official
    archive, or train/ and test/ image folders) or an image-folder archive.
    """
    way, root = _find(dataset, data_dir, download)
    if way == "sample":
        return load_sample(dataset, reason="DATA_DIR='sample' asks for it")
    if way == "file":
        return _load_file(dataset, root)
    if way == "official archive":
        _extract_official_archive(dataset, root)
    if way in ("torchvision", "official archive"):
        return _load_torchvision(dataset, root)
    if way == "image folder":
        return load_image_folder(dataset, root)
    try:
        _download(dataset, root)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; bad MD5 a RuntimeError
        return load_sample(dataset, reason=f"downloading {dataset} failed ({err})")
    return _load_torchvision(dataset, root)


def _find(dataset: str, data_dir: str | os.PathLike, download: bool) -> tuple[str, Path]:
    """Which of the five ways has the data, without reading it: (way, path). The ways: sample,
    file (an archive named by DATA_DIR), torchvision, official archive, image folder, download."""
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}.")
    if str(data_dir) == "sample":
        return "sample", Path("sample")
    root = Path(data_dir).expanduser()
    if root.is_file():
        return "file", root
    if root.exists() and not root.is_dir():
        raise DataError(f"DATA_DIR {root} is neither a folder nor a file.")
    tv = TORCHVISION_CLASSES[dataset]
    if (root / tv.base_folder).is_dir():
        return "torchvision", root
    if (root / tv.filename).is_file():
        return "official archive", root
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "image folder", root
    nested = _one_level_down(root, dataset)
    if nested is not None:  # before a download: the data is there, in the wrong place
        raise DataError(f"{root} holds no {dataset} data itself, but {nested} does: set DATA_DIR to {nested}.")
    if download:
        return "download", root
    raise DataError(f"No {dataset} data in {root.resolve()} and DOWNLOAD=False.\n{WAYS}")


def locate(cfg: Config) -> str:
    """Where a notebook with these settings will find its data, in one line, without reading it
    (the course runner says it before the first notebook runs)."""
    if cfg.data_dir is None and cfg.profile.name == "smoke":
        way, root = "sample", Path("sample")
        why = "the smoke profile runs on it"
    else:
        way, root = _find(cfg.dataset, cfg.default_data_dir if cfg.data_dir is None else cfg.data_dir, cfg.download)
        why = "DATA_DIR='sample' asks for it"
    tv = TORCHVISION_CLASSES[cfg.dataset]
    return {"sample": f"the bundled CIFAR-10 sample ({why}): accuracies on it are not CIFAR results",
            "file": f"{cfg.dataset} from {root}",
            "torchvision": f"{cfg.dataset} in torchvision's layout, {root / tv.base_folder}",
            "official archive": f"{cfg.dataset} from the official archive {root / tv.filename}",
            "image folder": f"{cfg.dataset} from the image folder {root}",
            "download": f"{cfg.dataset}, downloaded into {root} first (none there yet); should the download fail, "
                        "the bundled CIFAR-10 sample, whose accuracies are not CIFAR results"}[way]


def load_for(cfg: Config, show: bool = True) -> CifarData:
    """Load what a notebook's settings ask for; the smoke profile defaults to the sample.
    show: print the settings and what was loaded, the first lines a notebook's run shows."""
    if cfg.data_dir is None and cfg.profile.name == "smoke":
        loaded = load_sample(cfg.dataset, reason="the smoke profile runs on it")
    else:
        loaded = load(cfg.dataset, cfg.default_data_dir if cfg.data_dir is None else cfg.data_dir, cfg.download)
    if show:
        print(cfg.summary(), loaded.describe(), sep="\n")
    return loaded


def fingerprint(data: CifarData, cfg: Config) -> dict:
    """What a checkpoint must have been trained on to be reused: data set, source, classes, profile."""
    return {"dataset": data.dataset, "source": data.source, "classes": data.classes,
            "profile": cfg.profile.name}


def split_for(data: CifarData, cfg: Config, kind: str, val_fraction: float | None = None) -> Splits:
    """Split the data for one kind of training (settings.KINDS), sized by the profile's budget,
    holding out `val_fraction` for validation (None: the profile's)."""
    budget = cfg.budget(kind)
    val_fraction = cfg.profile.val_fraction if val_fraction is None else val_fraction
    splits = split(data, val_fraction, cfg.seed, budget.train_images, cfg.profile.test_images)
    return replace(splits, fingerprint=fingerprint(data, cfg))


def kfold_for(data: CifarData, cfg: Config, kind: str, k: int) -> list[Splits]:
    """k folds of the images split_for keeps for this kind of training (its train and val)."""
    return [replace(fold, fingerprint=fingerprint(data, cfg))
            for fold in kfold(data, k, cfg.seed, cfg.budget(kind).train_images, cfg.profile.test_images)]


def _one_level_down(root: Path, dataset: str) -> Path | None:
    """A folder right inside `root` that holds the data set (any layout the course reads), or None."""
    if not root.is_dir():
        return None
    tv = TORCHVISION_CLASSES[dataset]
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if any((folder / name).exists() for name in ("train", "test", tv.base_folder, tv.filename)):
            return folder
    return None


def _load_file(dataset: str, path: Path) -> CifarData:
    """Load an official archive given by its path, or an image-folder archive."""
    tv = TORCHVISION_CLASSES[dataset]
    if path.name == tv.filename:
        if not (path.parent / tv.base_folder).is_dir():
            _extract_official_archive(dataset, path.parent)
        return _load_torchvision(dataset, path.parent)
    if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise DataError(f"DATA_DIR {path} is a file but not an archive this course reads "
                        f"({', '.join(ARCHIVE_SUFFIXES)}).\n{WAYS}")
    return load_image_folder(dataset, path)


def _load_torchvision(dataset: str, root: Path) -> CifarData:
    """Load torchvision's on-disk layout after checking every file's checksum."""
    tv = TORCHVISION_CLASSES[dataset]
    folder = root / tv.base_folder
    for name, md5 in [*tv.train_list, *tv.test_list, (tv.meta["filename"], tv.meta["md5"])]:
        if not check_integrity(str(folder / name), md5):
            problem = "is missing" if not (folder / name).exists() else "fails its checksum"
            raise DataError(
                f"{folder / name} {problem}: the folder {folder} is incomplete or damaged. "
                f"Move it aside (nothing was changed) and place the official archive "
                f"{tv.filename} in {root}, or download again.")
    train = tv(str(root), train=True, download=False)
    test = tv(str(root), train=False, download=False)
    return CifarData(dataset, "torchvision", str(folder), list(train.classes),
                     ImageSet(train.data, np.asarray(train.targets, dtype=np.int64)),
                     ImageSet(test.data, np.asarray(test.targets, dtype=np.int64)))


def _extract_official_archive(dataset: str, root: Path) -> None:
    """Check the official archive's checksum, then unpack it beside itself."""
    tv = TORCHVISION_CLASSES[dataset]
    archive = root / tv.filename
    if not check_integrity(str(archive), tv.tgz_md5):
        raise DataError(
            f"{archive} fails its checksum (MD5 should be {tv.tgz_md5}): it is probably "
            f"half-downloaded or damaged. Download it again from {tv.url} and replace it; "
            f"nothing was extracted.")
    extract_archive(str(archive), str(root))


def _download(dataset: str, root: Path) -> None:
    """Download through torchvision into a temporary folder, then move the result into root."""
    tv = TORCHVISION_CLASSES[dataset]
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        tv(tmp, train=True, download=True)  # verifies the archive's MD5 before extracting
        for name in (tv.filename, tv.base_folder):
            if not (root / name).exists():
                shutil.move(os.path.join(tmp, name), root / name)


def load_sample(dataset: str = "cifar10", reason: str = "") -> CifarData:
    """Load the CIFAR-10 sample shipped inside the package, with a banner that says so and why."""
    with resources.as_file(resources.files("cifar_utils") / "sample" / SAMPLE_ARCHIVE) as path:
        data = load_image_folder("cifar10", path, keep_decoded=False)  # never write into the package
    banner = (f"Using the bundled CIFAR-10 sample ({len(data.train):,} train / "
              f"{len(data.test):,} test real images): {reason or 'asked for'}. "
              "Accuracies on it are far below what the full data set gives.")
    if dataset == "cifar100":
        banner += (" The sample holds no CIFAR-100 images: this cifar100 run trains on its 10 "
                   "CIFAR-10 classes to exercise the code, and its numbers say nothing about "
                   "CIFAR-100.")
    return replace(data, dataset=dataset, source="sample", banner=banner)


# --- splits and statistics -----------------------------------------------------------------

def class_split(data: CifarData) -> tuple[CifarData, CifarData]:
    """The data set's classes in two halves, each a data set of its own with its labels counted
    from 0: the first half a source task to pretrain on, the second a target task of classes the
    pretrained network never saw (Yosinski et al., 2014, split ImageNet's classes so). For
    CIFAR-10: airplane, automobile, bird, cat, deer | dog, frog, horse, ship, truck."""
    half = data.num_classes // 2
    return _keep_classes(data, range(half)), _keep_classes(data, range(half, data.num_classes))


def _keep_classes(data: CifarData, kept: range) -> CifarData:
    def images_of(images: ImageSet) -> ImageSet:
        chosen = np.isin(images.labels, kept)
        return ImageSet(images.images[chosen], images.labels[chosen] - kept.start)

    return replace(data, classes=data.classes[kept.start:kept.stop], train=images_of(data.train),
                   test=images_of(data.test))


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Pick n indices with the classes in their original proportions, reproducibly."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    # Sorting a random permutation by label, then dealing round-robin, keeps classes balanced.
    by_class = [order[labels[order] == c] for c in np.unique(labels)]
    share = np.floor(np.array([len(ix) for ix in by_class]) * n / len(labels)).astype(int)
    share[: n - share.sum()] += 1  # hand out the rounding remainder
    return np.sort(np.concatenate([ix[:k] for ix, k in zip(by_class, share)]))


@dataclass(frozen=True)
class Splits:
    """Training, validation and test images: every choice is made on val, test is scored once."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    fingerprint: dict = field(default_factory=dict)  # the data they came from (fingerprint), if known

    def describe(self) -> str:
        return (f"{len(self.train):,} train / {len(self.val):,} validation / "
                f"{len(self.test):,} test images")


def split(data: CifarData, val_fraction: float, seed: int, train_size: int | None = None,
          test_size: int | None = None) -> Splits:
    """A seeded, class-balanced validation split carved from train.

    train_size / test_size keep a class-balanced subset first (the profile's size).
    """
    train, test = _kept(data, seed, train_size, test_size)
    val_idx = stratified_indices(train.labels, round(len(train) * val_fraction), seed + 1)
    keep = np.ones(len(train), dtype=bool)
    keep[val_idx] = False
    return Splits(train.take(np.flatnonzero(keep)), train.take(val_idx), test)


def kfold(data: CifarData, k: int, seed: int, train_size: int | None = None,
          test_size: int | None = None) -> list[Splits]:
    """k-fold cross-validation: the kept training images dealt into k class-balanced folds;
    split i validates on fold i and trains on the other k - 1. Every image is validated once."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise ValueError(f"k-fold cross-validation needs a whole number of folds of at least 2, not {k!r}.")
    train, test = _kept(data, seed, train_size, test_size)
    order = np.random.default_rng(seed + 1).permutation(len(train))
    fold = np.empty(len(train), dtype=int)
    for c in np.unique(train.labels):  # deal each class round-robin, so every fold has its share
        members = order[train.labels[order] == c]
        fold[members] = np.arange(len(members)) % k
    return [Splits(train.take(np.flatnonzero(fold != i)), train.take(np.flatnonzero(fold == i)), test)
            for i in range(k)]


def _kept(data: CifarData, seed: int, train_size: int | None, test_size: int | None
          ) -> tuple[ImageSet, ImageSet]:
    """The class-balanced subsets of train and test a profile keeps (all when the size is None)."""
    train, test = data.train, data.test
    if train_size is not None and train_size < len(train):
        train = train.take(stratified_indices(train.labels, train_size, seed))
    if test_size is not None and test_size < len(test):
        test = test.take(stratified_indices(test.labels, test_size, seed))
    return train, test


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, H, W, 3), as fractions of 255."""
    x = torch.from_numpy(images).flatten(0, 2).double() / 255  # (N*H*W, 3)
    return tuple(x.mean(0).tolist()), tuple(x.std(0).tolist())


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """How many images each class has."""
    return np.bincount(labels, minlength=num_classes)
