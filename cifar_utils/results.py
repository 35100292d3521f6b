"""Each notebook's results JSON (the README's stable interface): written, read, found in a
folder (RESULTS_FILES), and stamped as the team's reference (as_reference). The one owner of
that file: everything else calls these."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .cost import count_parameters
from .data import CifarData
from .recipe import Run
from .settings import Config

# The team's measured runs, per profile, in a clone of the repository (docs/reference/<profile>/)
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "docs" / "reference"
RUN_KEYS = ("name", "params", "epochs", "train_images", "train_seconds", "test_top1", "test_top5")
DATA_SOURCES = ("torchvision", "folder", "sample")
RESULTS_FILES = "[0-9][0-9]_*.json"  # a notebook's results in a run or reference folder: <notebook stem>.json
MEASURED = "measured"  # a reference's stamp: {"machine": ..., "data": ..., "date": ...}


class Takeaways(list):
    """The sentences a notebook concludes with, printed as they come and kept for its results
    JSON (results.write(..., takeaways=...)), where the course report quotes them."""

    def say(self, sentence: str) -> None:
        """Print the sentence and keep it. (It returns nothing, so that a cell ending with it
        shows the sentence once, not again as the cell's value.)"""
        print(sentence)
        self.append(sentence)


def write(notebook: str, cfg: Config, data: CifarData, runs: list[dict], **extra) -> Path:
    """Write RESULTS_DIR/<notebook>.json and return its path; every run needs RUN_KEYS.

    extra: further top-level entries (statistics a notebook computed, its takeaways, say).
    """
    for run in runs:
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise ValueError(f"run {run.get('name', '?')!r} lacks {missing}")
        for key in ("test_top1", "test_top5"):
            if run[key] is not None and not 0.0 <= run[key] <= 1.0:
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


def run_record(run: Run, **extra) -> dict:
    """One run's entry: the keys every run has, where its best epoch is kept (if it is), its
    learning curve, and what else it measured."""
    curve = [{k: round(r[k], 4) for k in ("epoch", "train_loss", "train_top1", "val_loss",
                                          "val_top1")} for r in run.history]
    return {"name": run.name, "params": count_parameters(run.model), "epochs": run.epochs,
            "train_images": run.train_images, "train_seconds": round(run.train_seconds, 2),
            "test_top1": run.test["top1"] if run.test else None, "test_top5": run.test["top5"] if run.test else None,
            "device": run.device.type, "compute_format": run.compute_format.name,
            **({"test_top1_flip": run.test_flip["top1"]} if run.test_flip else {}),
            **({"checkpoint": str(run.checkpoint)} if run.checkpoint else {}), **extra,
            "history": curve}


def over_seeds(runs: list[Run], flip: bool = False, **extra) -> dict:
    """One arm trained once per seed, as one entry: test top-1 and top-5 (and flip TTA's top-1,
    and the training seconds) are the means over the seeds, with test_top1_std, each seed's
    test top-1 in test_top1_per_seed, `seeds` (how many) and `seed_list` (which). The curve is the
    first seed's.
    flip: the entry's test scores are those with flip TTA (Run.test_flip)."""
    record = run_record(runs[0], **extra)
    scores = [run.test_flip if flip else run.test for run in runs]
    top1 = [s["top1"] for s in scores]
    top1_mean, top1_std = mean_std(top1)
    record.update(seeds=len(runs), seed_list=[run.hyper.seed if run.hyper else None for run in runs], test_top1=top1_mean,
                  test_top1_std=top1_std, test_top1_per_seed=top1,
                  test_top5=mean_std([s["top5"] for s in scores])[0],
                  train_seconds=round(mean_std([run.train_seconds for run in runs])[0], 2))
    if all(run.test_flip for run in runs):
        record["test_top1_flip"] = mean_std([run.test_flip["top1"] for run in runs])[0]
    return record


def over_folds(val_top1: list[float]) -> dict:
    """A cross-validation's entry: each fold's validation top-1, their mean and spread."""
    mean, std = mean_std(val_top1)
    return {"folds": len(val_top1), "val_top1": val_top1, "mean": mean, "std": std}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def paired_gain(before: list[float], after: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of after - before, seed by seed. For two arms that share
    each seed's initial weights and data order, the luck a seed gives both arms cancels out."""
    return mean_std([b - a for a, b in zip(before, after, strict=True)])


def within_spread(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (mean, std) differ by less than their standard deviations added: a difference
    that small may be noise."""
    return abs(a[0] - b[0]) < a[1] + b[1]


# How a number reads, by what its key says it is: the first rule whose words the key holds
NUMBER_RULES = [
    (("top1", "top5", "_share", "same_class"), "{:.1%}"),  # accuracies and shares, fractions
    (("points",), "{:+.1f}"),  # a difference in percentage points
    (("diff",), "{:.1e}"),  # a largest absolute difference
    (("ece",), "{:.3f}"),
    (("flops",), lambda f: f"{f / 1e6:,.1f} M"),
    (("_ms",), "{:.2f}"),  # milliseconds
    (("_mb",), "{:.2f}"),  # megabytes
    (("seconds",), "{:.1f}"),
    (("params", "images", "_per_s", "seeds", "epochs"), "{:,.0f}"),  # counts and rates
]


def number_format(key: str):
    """The format of a results key's numbers (a format string or a function), or None."""
    return next((fmt for words, fmt in NUMBER_RULES if any(w in key for w in words)), None)


def shown(key: str, value) -> str:
    """One value of a results record as the course's tables show it."""
    if value is None:
        return "–"
    fmt = number_format(key) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if fmt is None:
        return str(value)
    return fmt(value) if callable(fmt) else fmt.format(value)


def table(records: list[dict], columns: list[str]):
    """A table of runs, one row each, with the course's number formats (a pandas Styler)."""
    import pandas as pd

    frame = pd.DataFrame(records).set_index("name").reindex(columns=columns)
    return frame.style.format({c: number_format(c) for c in columns if number_format(c)}, na_rep="–")


def in_folder(folder: str | Path) -> list[dict]:
    """Every notebook's results file in `folder` (a run's, or a reference's), read and checked, in course order."""
    return [read(path) for path in sorted(Path(folder).glob(RESULTS_FILES))]


def as_reference(record: dict, machine: str, data: str, date: str) -> dict:
    """A results record as the team's reference keeps it: where it was measured (MEASURED), and
    the numbers without the per-epoch curves, which stay in the run's folder."""
    runs = [{k: v for k, v in run.items() if k != "history"} for run in record["runs"]]
    return {**record, "runs": runs, MEASURED: {"machine": machine, "data": data, "date": date}}


def collect(folder: str | Path, dataset: str, profile: str) -> list[dict]:
    """Every run recorded in `folder` for this data set and profile, each with its notebook's number."""
    runs = []
    for record in in_folder(folder):
        if (record["dataset"], record["profile"]) == (dataset, profile):
            runs += [{**run, "notebook": record["notebook"][:2]} for run in record["runs"]]
    return runs


def read(path: str | Path) -> dict:
    """Read one results JSON, checking the keys every notebook writes."""
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


def reference(notebook: str, profile: str, dataset: str, folder: Path = REFERENCE_DIR) -> dict | None:
    """The team's reference results of a notebook for a profile and data set, or None."""
    path = Path(folder) / profile / f"{notebook}.json"
    if not path.is_file():
        return None
    record = read(path)
    return record if record["dataset"] == dataset else None


def beside_reference(notebook: str, cfg: Config, records: list[dict], folder: Path = REFERENCE_DIR):
    """This run's test top-1 beside the reference of its profile and the full profile's.

    Prints where each reference comes from (machine, data, date) or that there is none yet;
    returns a table with a column per source, one row per run name. A run that is a reference
    (the same runs and numbers, as_reference keeps them) gets no second column of itself.
    """
    references = {profile: reference(notebook, profile, cfg.dataset, folder)
                  for profile in dict.fromkeys([cfg.profile.name, "full"])}
    lines, styler = reference_table(records, references, cfg.dataset)
    print("\n".join(lines))
    return styler


def reference_table(records: list[dict], references: dict[str, dict | None], dataset: str):
    """What beside_reference shows, given the references (profile -> reference record, or None):
    the lines it prints and the table (a pandas Styler). tools/make_reference.py redraws a
    reference notebook's table with it, against the reference that notebook has just become."""
    import pandas as pd

    lines, columns, mine = [], {"this run": {r["name"]: r["test_top1"] for r in records}}, "this run"
    for profile, ref in references.items():
        if ref is None:
            lines.append(f"no reference for the {profile} profile on {dataset} yet")
            continue
        measured = ref[MEASURED]  # as_reference wrote it
        where = f"{measured['machine']}; {measured['data']}; {measured['date']}"
        if same_runs(records, ref["runs"]):
            lines.append(f"this run is the {profile} profile's reference: {where}")
            columns[f"this run = {profile} reference"] = columns.pop(mine)
            mine = f"this run = {profile} reference"
            continue
        lines.append(f"reference, {profile} profile: {where}")
        columns[f"{profile} reference"] = {r["name"]: r["test_top1"] for r in ref["runs"]}
        if not set(columns[f"{profile} reference"]) & set(columns[mine]):
            lines.append(f"(the {profile} reference's runs have other names than this run's: it predates this version "
                         "of the notebook, and no row compares)")
    frame = pd.DataFrame(columns).rename_axis("test top-1")
    return lines, frame.style.format("{:.1%}", na_rep="–")


def same_runs(records: list[dict], others: list[dict]) -> bool:
    """Whether two lists of runs are one and the same: the same names with the same RUN_KEYS
    numbers (a reference keeps them as the run wrote them, to the last digit)."""
    def numbers(runs):
        return {r["name"]: tuple(r.get(k) for k in RUN_KEYS) for r in runs}
    return numbers(records) == numbers(others)


TOP5_CLASSES = 5  # with this many classes or fewer every label is among the top five: top-5 is always 100%


def informative(columns: list[str], num_classes: int) -> list[str]:
    """The columns of a table worth showing for a task of num_classes classes: test_top5 left out
    where it cannot be below 100% (TOP5_CLASSES)."""
    return [c for c in columns if not (c == "test_top5" and num_classes <= TOP5_CLASSES)]
