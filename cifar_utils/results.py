"""Each notebook's results JSON (COURSE.md's stable interface), written and read."""

from __future__ import annotations

import json
from pathlib import Path

from .data import CifarData
from .models import count_parameters
from .settings import Settings
from .train import train_seconds

RUN_KEYS = ("name", "params", "epochs", "train_seconds", "test_top1", "test_top5")
DATA_SOURCES = ("torchvision", "folder", "sample")


def write(notebook: str, cfg: Settings, data: CifarData, runs: list[dict], **extra) -> Path:
    """Write RESULTS_DIR/<notebook>.json and return its path; every run needs RUN_KEYS.

    extra: further top-level entries (statistics a notebook computed, say).
    """
    for run in runs:
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise ValueError(f"run {run.get('name', '?')!r} lacks {missing}")
        for key in ("test_top1", "test_top5"):
            if not 0.0 <= run[key] <= 1.0:
                raise ValueError(f"run {run['name']!r}: {key}={run[key]} is not a fraction")
    record = {"notebook": notebook, "dataset": cfg.dataset, "data_source": data.source,
              "profile": cfg.profile.name, "device": cfg.device.type, "seed": cfg.seed,
              "runs": runs, **extra}
    if data.banner:
        record["data_note"] = data.banner
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.results_dir / f"{notebook}.json"
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return path


def run_record(name: str, model, history: list[dict], test: dict[str, float], **extra) -> dict:
    """One run's entry: the six keys every run has, its learning curve, and what else it measured."""
    curve = [{k: round(r[k], 4) for k in ("epoch", "train_loss", "train_top1", "val_loss",
                                          "val_top1")} for r in history]
    return {"name": name, "params": count_parameters(model), "epochs": len(history),
            "train_seconds": round(train_seconds(history), 2), "test_top1": test["top1"],
            "test_top5": test["top5"], **extra, "history": curve}


def read(path: str | Path) -> dict:
    """Read one results JSON, checking the keys COURSE.md promises."""
    record = json.loads(Path(path).read_text())
    for key in ("notebook", "dataset", "data_source", "profile", "device", "seed", "runs"):
        if key not in record:
            raise ValueError(f"{path} lacks {key!r}: not a course results file")
    if record["data_source"] not in DATA_SOURCES:
        raise ValueError(f"{path}: data_source {record['data_source']!r} is not one of {DATA_SOURCES}")
    for run in record["runs"]:
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise ValueError(f"{path}: run {run.get('name', '?')!r} lacks {missing}")
    return record
