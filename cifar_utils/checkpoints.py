"""Checkpoints: what a saved model holds, written whole or not at all, and read back checked.

A checkpoint is one file, written only by `save` and read only by `load`: the model's weights
and its Info, each field a key of the file (the scores one key each, val_top1, ...):

    weights        the model's state_dict
    architecture   how to build the model again (models.Architecture: name, options, classes,
                   input side), so that loading needs no code from the notebook that saved it
    data           what it learned from: data set, source, classes, profile (data.fingerprint)
    mean, std      the per-channel normalisation its inputs had (fractions of 255)
    name, epoch    the run's name and the epoch saved, with that epoch's scores (val_top1, ...)
    train_images   the images of its training split; with the epochs, its budget

Where a checkpoint lives is Config.checkpoint(name)'s to say.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .models import Architecture, rebuild

REQUIRED = ("weights", "architecture", "data", "name")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message says why."""


@dataclass(frozen=True)
class Info:
    """What a checkpoint says of its model, besides the weights."""

    name: str  # the run's name
    data: dict  # data.fingerprint: data set, source, classes, profile
    mean: tuple[float, ...] = ()  # the per-channel normalisation its inputs had (fractions of 255)
    std: tuple[float, ...] = ()
    train_images: int = 0  # the images of its training split
    epoch: int | None = None  # the epoch saved
    scores: dict[str, float] = field(default_factory=dict)  # that epoch's: val_top1, val_loss, val_top5
    architecture: dict = field(default_factory=dict)  # models.Architecture's fields: save fills them in

    @property
    def classes(self) -> list[str]:
        return list(self.data.get("classes", []))

    @property
    def val_top1(self) -> float | None:
        return self.scores.get("val_top1")

    def at_epoch(self, epoch: int, scores: dict[str, float]) -> Info:
        """This info for the model as it was after `epoch`, with that epoch's validation scores."""
        return replace(self, epoch=epoch, scores=dict(scores))

    def to_file(self) -> dict:
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "scores"}
        return {**fields, "mean": list(self.mean), "std": list(self.std), **self.scores}

    @classmethod
    def from_file(cls, payload: dict) -> Info:
        scores = {k: v for k, v in payload.items() if k.startswith("val_")}
        return cls(payload["name"], payload["data"], tuple(payload.get("mean", ())), tuple(payload.get("std", ())),
                   payload.get("train_images", 0), payload.get("epoch"), scores, payload["architecture"])


@dataclass
class Saved:
    """A model read back from its checkpoint: rebuilt, its weights loaded, in eval mode on the CPU."""

    path: Path
    model: nn.Module
    info: Info

    @property
    def name(self) -> str:
        return self.info.name


def save(path: str | Path, model: nn.Module, info: Info) -> Path:
    """Write `model` (built by models.build, so that it knows its architecture) and its `info`.

    The file is written whole or not at all: a temporary file beside it, then a rename, so an
    interrupted save leaves the previous checkpoint as it was.
    """
    if not hasattr(model, "architecture"):
        raise TypeError(f"{type(model).__name__} does not know its architecture: build it with models.build")
    info = replace(info, architecture=dataclasses.asdict(model.architecture))
    payload = {"weights": model.state_dict(), **info.to_file()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def read(path: str | Path) -> dict:
    """The checkpoint's contents, weights included, checked to be a course checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"there is no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, empty, or not a torch file at all
        raise CheckpointError(f"{path} is damaged ({type(err).__name__}: {err}); delete it or train "
                              "again to replace it") from err
    missing = [key for key in REQUIRED if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this course (it lacks {', '.join(missing)}); "
                              "delete it or train again to replace it")
    return payload


def load(path: str | Path, expect: dict | None = None) -> Saved:
    """Rebuild the model saved at `path`, refusing one made for other data than `expect`
    (data.fingerprint: data set, source, classes, profile) with a message that says which."""
    payload = read(path)
    differs = [key for key, value in (expect or {}).items() if payload["data"].get(key) != value]
    if differs:
        made_for = ", ".join(f"{k}={payload['data'].get(k)!r}" for k in differs if k != "classes")
        raise CheckpointError(f"{path} was made for another {', '.join(differs)} ({made_for})")
    model = rebuild(Architecture(**payload["architecture"]))
    model.load_state_dict(payload.pop("weights"))
    return Saved(Path(path), model.eval(), Info.from_file(payload))


def strongest(paths: Iterable[str | Path], expect: dict, monitor: str = "val_top1"
              ) -> tuple[Saved | None, list[str]]:
    """Of the checkpoints at `paths` made for `expect`, the one with the best `monitor` (the
    lowest for a loss, else the highest: validation top-1 by default, chosen on validation,
    never on test), and why each other one was passed over. (None, reasons) if none is usable."""
    usable, passed_over = [], []
    for path in paths:
        try:
            saved = load(path, expect)
        except CheckpointError as err:
            passed_over.append(str(err))
            continue
        if monitor in saved.info.scores:
            usable.append(saved)
        else:
            passed_over.append(f"{path} records no {monitor}")
    if not usable:
        return None, passed_over
    usable.sort(key=lambda saved: saved.info.scores[monitor], reverse=not monitor.endswith("loss"))
    best = usable[0].info.scores[monitor]
    passed_over += [f"{s.path} has {monitor} {s.info.scores[monitor]:.4f} against {best:.4f}" for s in usable[1:]]
    return usable[0], passed_over
