"""Image folders and archives of them (train/<class>/*.png, test/<class>/...), as people export
CIFAR for Kaggle and the like: read, checked and decoded. An archive's decoded arrays are kept
beside it in a file of their own (ARCHIVE_CACHE_SUFFIX), so that each notebook reads them in a
fraction of a second instead of decoding the archive again; nothing else is written."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from .images import IMAGE_SUFFIXES, WAYS, CifarData, DataError, ImageSet, class_names

ARCHIVE_CACHE_SUFFIX = ".decoded.npz"  # beside an image-folder archive: its arrays, for the next load


def load_image_folder(dataset: str, path: str | os.PathLike, keep_decoded: bool = True) -> CifarData:
    """Load train/<class>/* and test/<class>/* images from a folder or an archive of one. An
    archive is read from the arrays decoded last time while it is unchanged; keep_decoded=False
    neither reads nor writes them."""
    path = Path(path)
    keep = keep_decoded and path.is_file()
    if keep and (cached := _read_archive_cache(dataset, path)) is not None:
        return cached
    loaded = _decode_image_folder(dataset, path)
    if keep:
        _write_archive_cache(loaded, path)
    return loaded


def decoded_arrays_path(archive: Path) -> Path:
    """Where an image-folder archive's decoded arrays are kept: beside it."""
    return archive.with_name(archive.name + ARCHIVE_CACHE_SUFFIX)


def _archive_stamp(path: Path) -> np.ndarray:
    """What says an archive is unchanged: its size and modification time."""
    stat = path.stat()
    return np.asarray([stat.st_size, stat.st_mtime_ns], dtype=np.int64)


def _read_archive_cache(dataset: str, path: Path) -> CifarData | None:
    """The arrays decoded from `path` last time, or None if there are none for it as it is now
    (a missing, stale or unreadable cache is decoded again)."""
    try:
        with np.load(decoded_arrays_path(path), allow_pickle=False) as kept:
            if str(kept["dataset"]) != dataset or not np.array_equal(kept["stamp"], _archive_stamp(path)):
                return None
            return CifarData(dataset, "folder", str(path), [str(c) for c in kept["classes"]],
                             ImageSet(kept["train_images"], kept["train_labels"]),
                             ImageSet(kept["test_images"], kept["test_labels"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _write_archive_cache(loaded: CifarData, path: Path) -> None:
    """Keep the decoded arrays beside the archive, written whole or not at all; where the folder
    cannot be written to, the next load decodes again."""
    try:
        tmp = tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False)
    except OSError:
        return
    try:
        with tmp:
            np.savez(tmp, dataset=loaded.dataset, stamp=_archive_stamp(path), classes=np.asarray(loaded.classes),
                     train_images=loaded.train.images, train_labels=loaded.train.labels,
                     test_images=loaded.test.images, test_labels=loaded.test.labels)
        os.chmod(tmp.name, path.stat().st_mode & 0o777 | 0o600)  # readable by whoever may read the archive
        os.replace(tmp.name, decoded_arrays_path(path))
    except OSError:
        Path(tmp.name).unlink(missing_ok=True)


def _decode_image_folder(dataset: str, path: Path) -> CifarData:
    """Read and decode every image of an image folder or archive, checking its layout."""
    files: dict[str, dict[str, list[tuple[str, bytes]]]] = {"train": {}, "test": {}}
    for member, data in _walk_images(path):
        parts = PurePosixPath(member).parts
        if len(parts) >= 3 and parts[-3] in files:
            files[parts[-3]].setdefault(parts[-2], []).append((member, data))
    if not files["train"] or not files["test"]:
        missing = " and ".join(s for s in ("train", "test") if not files[s])
        raise DataError(f"{path} has no images in {missing}/<class>/ (looked for "
                        f"{', '.join(IMAGE_SUFFIXES)} files). An image folder needs "
                        f"train/<class>/*.png and test/<class>/*.png.\n{WAYS}")
    classes, folder_to_index = _match_classes(dataset, path, files)
    splits = {split: _decode(by_class, folder_to_index) for split, by_class in files.items()}
    return CifarData(dataset, "folder", str(path), classes, splits["train"], splits["test"])


def _walk_images(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (posix path inside, file bytes) for every image file, in sorted order."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                yield file.relative_to(path).as_posix(), file.read_bytes()
        return
    if not path.exists():
        raise DataError(f"DATA_DIR {path} does not exist.\n{WAYS}")
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for name in sorted(archive.namelist()):
                    if name.lower().endswith(IMAGE_SUFFIXES):
                        yield name, archive.read(name)
        else:
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                        yield member.name, archive.extractfile(member).read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(f"The archive {path} is truncated or damaged ({err}). Download or "
                        "pack it again; nothing was extracted.") from err


def _match_classes(dataset: str, path: Path, files: dict) -> tuple[list[str], dict[str, int]]:
    """Map class folder names to the data set's class indices, or explain the mismatch."""
    train, test = set(files["train"]), set(files["test"])
    empty = [f"{split}/{name}/" for split, names in _class_folders(path).items()
             for name in sorted(names - set(files[split]))] if train != test else []
    if empty:
        raise DataError(f"{path}: {', '.join(empty)} holds no images ({', '.join(IMAGE_SUFFIXES)} files). Put the "
                        "class's images there, or remove the folder from both train/ and test/.")
    if train != test:
        lacking = [f"{split}/ lacks {', '.join(sorted(other - own))}" for split, own, other
                   in (("train", train, test), ("test", test, train)) if other - own]
        raise DataError(f"{path}: the class folders of train/ and test/ differ ({'; '.join(lacking)}). "
                        "Each split needs the same classes.")
    expected = class_names(dataset)
    if train == set(expected):
        return expected, {name: i for i, name in enumerate(expected)}
    if train == {str(i) for i in range(len(expected))}:  # folders named by label index
        return expected, {str(i): i for i in range(len(expected))}
    unexpected, missing = sorted(train - set(expected)), sorted(set(expected) - train)
    raise DataError(f"{path}: the class folders do not match {dataset}'s classes "
                    f"(unexpected: {unexpected[:10]}; missing: {missing[:10]}). Name them "
                    f"as torchvision does ({', '.join(expected[:5])}, ...) or 0..{len(expected) - 1}, "
                    f"or set DATASET to the data set they hold.")


def _class_folders(path: Path) -> dict[str, set[str]]:
    """The class folders under train/ and test/, empty ones included (for an archive, the folders
    it lists)."""
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_dir()]
    elif path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            names = [name.rstrip("/") for name in archive.namelist() if name.endswith("/")]
    else:
        with tarfile.open(path) as archive:
            names = [member.name for member in archive if member.isdir()]
    folders: dict[str, set[str]] = {"train": set(), "test": set()}
    for parts in (PurePosixPath(name).parts for name in names):
        if len(parts) >= 2 and parts[-2] in folders:
            folders[parts[-2]].add(parts[-1])
    return folders


def _decode(by_class: dict[str, list[tuple[str, bytes]]], folder_to_index: dict[str, int]) -> ImageSet:
    """Decode every image, insisting on 32x32 pixels; RGBA and grey become RGB."""
    images, labels = [], []
    for folder, members in sorted(by_class.items(), key=lambda kv: folder_to_index[kv[0]]):
        for member, data in members:
            try:
                with Image.open(io.BytesIO(data)) as img:
                    if img.size != (32, 32):
                        raise DataError(f"{member} is {img.size[0]}x{img.size[1]} pixels; CIFAR "
                                        "images are 32x32. Resize the folder's images to 32x32 "
                                        "or point DATA_DIR at the original data.")
                    images.append(np.asarray(img.convert("RGB")))
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"{member} is not a readable image ({err}).") from err
            labels.append(folder_to_index[folder])
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64))
