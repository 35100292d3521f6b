"""Grade the challenge (notebook 09) into a class leaderboard.

    python -m cifar_utils.course challenge submissions/ --minutes 10 --csv board.csv --markdown board.md

Each submission runs once, alone on the machine (`--jobs 1`, the default: the budget is time,
and runs side by side would slow each other), from its first cell, in the grader's sandbox
(assignments.Sandbox) with a time limit: the budget plus START_SECONDS for the kernel to start.
The run sees the training images with their labels and the test images without theirs, in an
order the grader draws, and hands in one class per test image. The grader scores those
predictions outside the sandbox, where the labels are; it counts the network's parameters from
the state_dict the run saved, read as data.

A network trained elsewhere has no way in: only the notebook's code cells run (its outputs,
attachments and other files handed in stay out), the sandbox holds no checkpoint and reaches
no network, and the test images that the course's bundled sample holds with their labels are
left out of the test set. Code that loads saved weights, or is long enough to carry them
written out as text, is marked for the teacher to look at; so is a run that took too long.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import re
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from .. import data
from ..challenge import PREDICTIONS, WEIGHTS
from ..settings import CHALLENGE_ENV, CHALLENGE_OUT_ENV, CHALLENGE_SECONDS_ENV, PROFILE_ENV
from . import assignments

START_SECONDS = 30  # beyond the budget, for the sandbox and the kernel to start
MAX_CODE_CHARS = 20_000  # room for any recipe; a network's weights written out as text need far more
LOADS_WEIGHTS = re.compile(r"torch\.load|torch\.hub|load_state_dict_from_url|np\.load|numpy\.load|pickle|base64|"
                           r"urllib|requests|weights\s*=\s*['\"]|pretrained\s*\(|checkpoints\.(?:load|read|strongest)")
MAX_PREDICTIONS_BYTES = 16 * 2**20


# --- what the runs see ----------------------------------------------------------------------------

def in_sample(images: np.ndarray, tolerance: float = 4.0) -> np.ndarray:
    """Which images are (near) copies of an image of the bundled sample, whose labels every run
    can read from the package: 8x8 thumbnails closer than `tolerance` (RMS, 0-255)."""
    reference = _sample_thumbnails()
    found = np.zeros(len(images), dtype=bool)
    for start in range(0, len(images), 2000):
        chunk = _thumbnails(images[start:start + 2000])
        squared = (chunk ** 2).sum(1)[:, None] + (reference ** 2).sum(1)[None, :] - 2 * chunk @ reference.T
        found[start:start + 2000] = squared.min(1) < tolerance ** 2 * reference.shape[1]
    return found


@functools.cache
def _sample_thumbnails() -> np.ndarray:
    sample = data.load_sample("cifar10", reason="")
    return _thumbnails(np.concatenate([sample.train.images, sample.test.images]))


def _thumbnails(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(images), -1).astype(np.float32)


class ChallengeError(ValueError):
    """The challenge cannot be graded as asked."""


@dataclass(frozen=True)
class Handout:
    """What the grader hands every run (a folder), and the test labels it keeps."""

    folder: Path
    test_labels: np.ndarray  # in the order the runs see the test images
    classes: list[str]
    left_out: int  # test images left out because the bundled sample holds them


def hand_out(cifar: data.CifarData, folder: Path, seed: int) -> Handout:
    """Write train.npz (images, labels, classes) and test_images.npy (no labels, shuffled) into `folder`."""
    keep = np.flatnonzero(~in_sample(cifar.test.images))
    if len(keep) == 0:
        raise ChallengeError(f"Every test image of {cifar.location} is in the course's bundled sample, whose labels a "
                         "run could read: grade the challenge on the full data set.")
    order = np.random.default_rng(seed).permutation(keep)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", images=cifar.train.images, labels=cifar.train.labels, classes=np.array(cifar.classes))
    np.save(folder / "test_images.npy", cifar.test.images[order])
    return Handout(folder, cifar.test.labels[order], cifar.classes, len(cifar.test) - len(keep))


# --- one submission ----------------------------------------------------------------------------------

def runnable(nb) -> tuple[object, int]:
    """The notebook the grader runs: its code cells only (no outputs, attachments, markdown or
    metadata a run could read data back from), and how many characters of code they hold."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        fresh = nbformat.v4.new_code_cell(cell.source)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            fresh.metadata["tags"] = ["parameters"]
        cells.append(fresh)
    clean = nbformat.v4.new_notebook(cells=cells)
    clean.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return clean, sum(len(c.source) for c in cells)


def marks(nb, code_chars: int) -> list[str]:
    """Why a teacher should look at a submission before ranking it (empty: no reason)."""
    found = []
    if code_chars > MAX_CODE_CHARS:
        found.append(f"holds {code_chars:,} characters of code (more than {MAX_CODE_CHARS:,}: room for weights "
                     "trained elsewhere, written out as text)")
    for number, cell in enumerate(nb.cells, 1):
        match = LOADS_WEIGHTS.search(cell.source)
        if match:
            found.append(f"loads saved weights or data ({match.group(0)!r} in code cell {number}): the challenge "
                         "trains from scratch")
            break
    return found


def read_predictions(folder: Path, count: int, classes: int) -> np.ndarray | str:
    """The predictions a run handed in, read as data only, or why they cannot be scored."""
    path = folder / PREDICTIONS
    if not path.is_file():
        return "handed in no predictions"
    if path.stat().st_size > MAX_PREDICTIONS_BYTES:
        return "its predictions file is too large"
    try:
        predicted = np.load(path, allow_pickle=False)
    except Exception as err:  # anything but the plain array Task.submit writes
        return f"its predictions are not a plain array ({type(err).__name__})"
    if predicted.shape != (count,) or not np.issubdtype(predicted.dtype, np.integer):
        return f"handed in {predicted.dtype} {predicted.shape}, not one class index per test image ({count})"
    if predicted.min() < 0 or predicted.max() >= classes:
        return "handed in class indices outside 0..classes-1"
    return predicted


def count_parameters(folder: Path) -> int | None:
    """The parameters of the network a run saved (its state_dict, read as data), without
    BatchNorm's running statistics; None if it saved none that can be read."""
    import torch

    path = folder / WEIGHTS
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # not the plain state_dict Task.submit writes
        return None
    if not isinstance(state, dict):
        return None
    return sum(v.numel() for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
               and not k.endswith(("running_mean", "running_var")))


def first_error(executed) -> str:
    for cell in executed.cells if executed is not None else []:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out['ename']}: {out['evalue']}".strip()[:200]
    return ""


def run_one(student: str, path: Path, handout: Handout, seconds: float, sandbox: assignments.Sandbox | None,
            memory_bytes: int, profile: str | None, threads: int) -> dict:
    """Run one submission within the budget and score what it handed in: its leaderboard entry."""
    entry = {"student": student, "notebook": path.name, "test_top1": None, "seconds": None, "params": None}
    try:
        nb, code_chars = runnable(nbformat.read(path, as_version=4))
    except Exception as err:  # not a notebook: nothing of it can run
        return {**entry, "status": "crashed", "note": f"not a readable notebook ({err})"}
    flags = marks(nb, code_chars)
    notes = []
    if student != path.stem:  # a folder of the student's own: say what else was handed in, unused
        ignored = sorted(p.name for p in path.parent.iterdir() if p != path and not p.name.startswith("."))
        if ignored:
            notes.append(f"not used (only the notebook runs): {', '.join(ignored)}")
    with tempfile.TemporaryDirectory(prefix="challenge-run-") as tmp:
        work = Path(tmp).resolve()
        out = work / "handed_in"
        out.mkdir()
        notebook, executed_path = work / "submitted.ipynb", work / "graded.ipynb"
        nbformat.write(nb, notebook)
        env = assignments.child_env(work, threads)
        env.pop(PROFILE_ENV)
        if profile:
            env[PROFILE_ENV] = profile
        env.update({CHALLENGE_ENV: str(handout.folder), CHALLENGE_OUT_ENV: str(out), CHALLENGE_SECONDS_ENV: str(seconds)})
        limits = assignments.Limits(seconds + START_SECONDS, seconds + START_SECONDS + 60, memory_bytes)  # the run's limit rules
        start = time.perf_counter()
        stopped = assignments.run_isolated(
            [sys.executable, str(assignments.CHILD), str(notebook), str(executed_path), str(limits.cell_seconds),
             str(limits.memory_bytes), '{"RESULTS_DIR": "results"}', "1"], work, env, limits, sandbox)
        entry["seconds"] = round(time.perf_counter() - start, 1)
        executed = nbformat.read(executed_path, as_version=4) if executed_path.exists() else None
        predicted = read_predictions(out, len(handout.test_labels), len(handout.classes))
        entry["params"] = count_parameters(out)
    if isinstance(predicted, np.ndarray):
        entry["test_top1"] = float((predicted == handout.test_labels).mean())
    if "past its" in stopped:  # the time limit
        status, why = "over budget", f"still running after {seconds + START_SECONDS:.0f} s: stopped"
    elif first_error(executed) or (stopped and not isinstance(predicted, np.ndarray)):
        status, why = "crashed", first_error(executed) or stopped
    elif not isinstance(predicted, np.ndarray):
        status, why = "no predictions", predicted
    else:
        status, why = "ranked", ""
    return {**entry, "status": "marked" if flags else status, "note": "; ".join(filter(None, [*flags, why, *notes]))}


# --- the class -----------------------------------------------------------------------------------------

def grade_challenge(paths: list[Path], cifar: data.CifarData, minutes: float, jobs: int = 1,
                    sandbox: bool = True, memory_bytes: int = 8 * 2**30, profile: str | None = None,
                    progress=print) -> list[dict]:
    """Run and score every submission; the leaderboard's entries, ranked first."""
    bwrap = assignments.find_bwrap() if sandbox else None
    if sandbox and bwrap is None:
        raise assignments.SandboxUnavailable(assignments.NO_SANDBOX)
    work = assignments.submissions(paths)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with tempfile.TemporaryDirectory(prefix="challenge-") as tmp:
        handout = hand_out(cifar, Path(tmp).resolve() / "handout", secrets.randbits(63))
        progress(f"{len(handout.test_labels):,} test images ({handout.left_out:,} left out: the bundled sample holds "
                 f"them), {len(cifar.train):,} training images; {minutes:g} minutes per run", flush=True)
        hidden = [Path(cifar.location)] if Path(cifar.location).exists() else []
        jail = assignments.Sandbox(bwrap, tuple(assignments.hidden_paths([*hidden, *(p for _, p in work)])),
                                   read_only=(handout.folder,)) if bwrap else None
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            entries = list(pool.map(lambda sp: run_one(*sp, handout, 60 * minutes, jail, memory_bytes, profile, threads),
                                    work))
    for entry in entries:
        shown = f"{entry['test_top1']:.1%}" if entry["test_top1"] is not None else "–"
        progress(f"{entry['student']}: {entry['status']}, {shown}, {entry['seconds']} s", flush=True)
    return ranked(entries)


def ranked(entries: list[dict]) -> list[dict]:
    """The ranked entries by test top-1 (then fewer seconds), each with its rank; the others after,
    unranked (marked, over budget, crashed, without predictions)."""
    order = sorted((e for e in entries if e["status"] == "ranked"), key=lambda e: (-e["test_top1"], e["seconds"]))
    rest = [e for e in entries if e["status"] != "ranked"]
    return [{"rank": i, **e} for i, e in enumerate(order, 1)] + [{"rank": None, **e} for e in rest]


COLUMNS = ["rank", "student", "test_top1", "seconds", "params", "status", "note"]


def markdown(board: list[dict], minutes: float) -> str:
    lines = [f"# Challenge leaderboard ({minutes:g} minutes per run)", "",
             "| rank | student | test top-1 | seconds | parameters | status | note |", "|---:|---|---:|---:|---:|---|---|"]
    for e in board:
        top1 = f"{e['test_top1']:.1%}" if e["test_top1"] is not None else "–"
        params = f"{e['params']:,}" if e["params"] is not None else "–"
        lines.append(f"| {e['rank'] or '–'} | {e['student']} | {top1} | {e['seconds']} | {params} | {e['status']} | "
                     f"{e['note'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_csv(board: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(board)


def add_challenge_arguments(parser: argparse.ArgumentParser) -> None:
    """The `challenge` command's arguments."""
    parser.add_argument("submissions", nargs="+", type=Path, help="09 notebooks, or folders with one per student")
    parser.add_argument("--minutes", type=float, default=None, help="each run's budget (default: the profile's)")
    parser.add_argument("--profile", default=None, help="the runs' profile (default: auto, as on this machine)")
    parser.add_argument("--data", default=None, help="the data set (default: $CIFAR_DATA_DIR or ./data)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1: they would slow each other)")
    parser.add_argument("--memory-gb", type=float, default=8, help="address space per run")
    parser.add_argument("--no-sandbox", action="store_true", help="run without a sandbox (only for code you trust)")
    parser.add_argument("--csv", type=Path, help="write the leaderboard as CSV here")
    parser.add_argument("--markdown", type=Path, help="write the leaderboard as a Markdown table here")


def challenge_command(args: argparse.Namespace) -> int:
    """`challenge`: every submission run within the budget, and the leaderboard."""
    from ..settings import resolve

    cfg = resolve(profile=args.profile or "auto", dataset=args.dataset, data_dir=args.data, download=False)
    minutes = args.minutes or cfg.profile.challenge_minutes
    cifar = data.load(args.dataset, args.data or cfg.default_data_dir, download=False)
    board = grade_challenge(args.submissions, cifar, minutes, args.jobs, not args.no_sandbox,
                            int(args.memory_gb * 2**30), args.profile)
    table = markdown(board, minutes)
    print(table)
    if args.csv:
        write_csv(board, args.csv)
    if args.markdown:
        args.markdown.write_text(table)
    return 0
