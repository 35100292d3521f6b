"""Helpers the tests import: tiny data sets written in the real on-disk formats the course reads."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_utils import data

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pickle(path: Path, payload: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(payload, f)


def write_torchvision_layout(root: Path, dataset: str, n_train: int = 50, n_test: int = 20,
                             monkeypatch=None) -> dict:
    """Write torchvision's CIFAR folder with random images; point the MD5 lists at the fakes."""
    tv = data.TORCHVISION_CLASSES[dataset]
    folder = root / tv.base_folder
    folder.mkdir(parents=True)
    classes = data.class_names(dataset)
    rng = np.random.default_rng(0)
    label_key = "labels" if dataset == "cifar10" else "fine_labels"
    names = CIFAR10_FILES if dataset == "cifar10" else ["train"]
    expected = {"train": [], "test": []}
    train_list = []
    for name in names:
        n = n_train // len(names)
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, len(classes), n)]
        _pickle(folder / name, {"data": x, label_key: y})
        expected["train"].append((x, y))
        train_list.append([name, md5(folder / name)])
    x = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, len(classes), n_test)]
    test_name = "test_batch" if dataset == "cifar10" else "test"
    _pickle(folder / test_name, {"data": x, label_key: y})
    expected["test"].append((x, y))
    meta_key = "label_names" if dataset == "cifar10" else "fine_label_names"
    _pickle(folder / tv.meta["filename"], {meta_key: classes})
    if monkeypatch is not None:
        monkeypatch.setattr(tv, "train_list", train_list)
        monkeypatch.setattr(tv, "test_list", [[test_name, md5(folder / test_name)]])
        monkeypatch.setattr(tv, "meta", {**tv.meta, "md5": md5(folder / tv.meta["filename"])})
    return expected


def write_image_folder(root: Path, classes=None, per_class: int = 3, size=(32, 32),
                       suffix: str = ".png") -> Path:
    """Write train/<class>/*.png and test/<class>/*.png with random pixels."""
    classes = classes or data.class_names("cifar10")
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:04d}{suffix}")
    return root


def pack(folder: Path, archive: Path, top: str = "") -> Path:
    """Pack an image folder into a .tar.gz or .zip, optionally under a top-level folder."""
    if archive.name.endswith(".zip"):
        import zipfile
        with zipfile.ZipFile(archive, "w") as z:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    z.write(f, f"{top}{f.relative_to(folder).as_posix()}")
    else:
        with tarfile.open(archive, "w:gz") as t:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    t.add(f, f"{top}{f.relative_to(folder).as_posix()}")
    return archive


def snapshot(root: Path) -> dict:
    """Every file under root with its bytes' hash: compare before and after to see changes."""
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
