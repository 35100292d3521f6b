"""Grade the challenge (notebook 09) into a class leaderboard.

    course challenge submissions/ --minutes 10 --csv board.csv --markdown board.md
    course challenge submissions/ --test-set private/   # the teacher's own test images are scored

Each submission runs once, alone on the machine (`--jobs 1`, the default: the budget is time,
and runs side by side would slow each other), from its first cell, in the grader's sandbox, with
the budget as its whole time limit: the run's clock starts when the grader starts it, so start-up
counts and there is no slack to train in. The run sees what `handout` gives it and hands in its
network and its predictions for the test images it was shown. The grader then scores the network
in a fresh sandbox, on test images the run never saw in any form (handout.py), and checks that the
handed-in predictions agree with what the network predicts for the images they answer.

A network trained elsewhere has no easy way in: only the notebook's code cells run (its outputs,
attachments and other files handed in stay out), the sandbox holds no checkpoint and reaches no
network, and the code may hold at most MAX_CODE_BYTES. Marked for the teacher to look at (not
ranked): code that loads saved weights or builds names at run time, long non-ASCII strings,
predictions that disagree with the network, and a run that went over its budget.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
import re
import secrets
import sys
import time
import tokenize
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from cifar_utils import data
from cifar_utils.challenge import NETWORK, PREDICTIONS
from cifar_utils.settings import CHALLENGE_ENV, CHALLENGE_OUT_ENV, CHALLENGE_SECONDS_ENV, CHALLENGE_STARTED_ENV, PROFILE_ENV

from . import assignments, sandbox, tables
from .handout import Handout, hand_out, private_test_set

MAX_CODE_BYTES = 20_000  # room for any recipe; a network's weights written out as text need far more
MAX_FOREIGN_BYTES = 300  # non-ASCII bytes in one string literal: room for a name, not for packed weights
LOADS_WEIGHTS = re.compile(r"torch\.load|torch\.hub|load_state_dict_from_url|np\.load|numpy\.load|pickle|base64|"
                           r"urllib|requests|weights\s*=\s*['\"]|pretrained\s*\(|checkpoints\.(?:load|read|strongest)|"
                           r"getattr\s*\(|__import__|importlib|\beval\s*\(|\bexec\s*\(|marshal|zlib|lzma|bz2|gzip|"
                           r"frombuffer|fromstring|b85decode|a85decode|b64decode")
MIN_AGREEMENT = 0.9  # of the handed-in predictions with the network's own (rounding may move a few)
MAX_PREDICTIONS_BYTES = 16 * 2**20
MAX_NETWORK_BYTES = 512 * 2**20
SCORER = Path(__file__).with_name("_score.py")
SCORING_SECONDS = 300  # for the scorer to load the network and run it on the test images


# --- what a submission is --------------------------------------------------------------------------------

def runnable(nb) -> tuple[object, int]:
    """The notebook the grader runs: its code cells only (no outputs, attachments, markdown or
    metadata a run could read data back from), and how many bytes of code they hold (UTF-8)."""
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        fresh = nbformat.v4.new_code_cell(str(cell.get("source", "")))
        if "parameters" in (cell.get("metadata", {}).get("tags", []) or []):
            fresh.metadata["tags"] = ["parameters"]
        cells.append(fresh)
    clean = nbformat.v4.new_notebook(cells=cells)
    clean.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return clean, sum(len(c.source.encode("utf-8", "surrogatepass")) for c in cells)


def foreign_bytes(source: str) -> int:
    """The most non-ASCII bytes in one string literal of `source` (all of its non-ASCII bytes
    where it does not tokenize)."""
    def outside_ascii(text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass")) - sum(ch.isascii() for ch in text)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return outside_ascii(source)
    strings = [t.string for t in tokens if t.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1))]
    return max(map(outside_ascii, strings), default=0)


def marks(nb, code_bytes: int) -> list[str]:
    """Why a teacher should look at a submission before ranking it (empty: no reason)."""
    found = []
    if code_bytes > MAX_CODE_BYTES:
        found.append(f"holds {code_bytes:,} bytes of code (more than {MAX_CODE_BYTES:,}: room for weights trained "
                     "elsewhere, written out as text)")
    for number, cell in enumerate(nb.cells, 1):
        foreign = foreign_bytes(cell.source)
        if foreign > MAX_FOREIGN_BYTES:
            found.append(f"code cell {number} holds a string with {foreign:,} bytes of non-ASCII text (room for packed "
                         "data)")
            break
    for number, cell in enumerate(nb.cells, 1):
        match = LOADS_WEIGHTS.search(cell.source)
        if match:
            found.append(f"loads saved weights or data, or builds names at run time ({match.group(0)!r} in code cell "
                         f"{number}): the challenge trains from scratch")
            break
    return found


def read_classes(path: Path, count: int, classes: int) -> np.ndarray | str:
    """Class indices a run or the scorer left (a plain .npy array), or why they cannot be used."""
    try:
        content = sandbox.read_back(path, MAX_PREDICTIONS_BYTES)
        predicted = np.load(io.BytesIO(content), allow_pickle=False)
    except FileNotFoundError:
        return "no predictions"
    except Exception as err:  # a link, a FIFO, too large, or anything but a plain array
        return f"unreadable predictions ({type(err).__name__}: {str(err)[:100]})"
    if predicted.shape != (count,) or not np.issubdtype(predicted.dtype, np.integer):
        return f"{predicted.dtype} {predicted.shape}, not one class index per test image ({count})"
    if count and (predicted.min() < 0 or predicted.max() >= classes):
        return "class indices outside 0..classes-1"
    return predicted


def checked_network(content: bytes) -> tuple[bytes, int]:
    """A handed-in network archive (torch.export's zip) made safe to load, and the numbers it
    holds (its weights and constants, counted from the archive's own description, as data).

    torch.export.load unpickles what the archive asks it to (a weight marked use_pickle, a custom
    or opaque constant, sample inputs it cannot read as plain tensors): code of the run's own,
    which could then answer in the scorer's place. So such an archive is refused, and its sample
    inputs are replaced by the grader's own; ValueError says why an archive is refused."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        names = archive.namelist()
        if sum(info.file_size for info in archive.infolist()) > 2 * MAX_NETWORK_BYTES:
            raise ValueError("it unpacks to more than it may hold")
        size = 0
        for name in names:
            if not name.endswith(("weights_config.json", "constants_config.json")):
                continue
            for entry in json.loads(archive.read(name))["config"].values():
                if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(("weight_", "tensor_")):
                    raise ValueError(f"{name} holds something other than plain tensors (pickled objects run code)")
                size += math.prod(int(s["as_int"]) for s in entry["tensor_meta"]["sizes"])
        rebuilt = io.BytesIO()
        with zipfile.ZipFile(rebuilt, "w") as out:
            for name in names:
                is_sample = "/data/sample_inputs/" in f"/{name}"
                out.writestr(archive.getinfo(name), _plain_sample_inputs() if is_sample else archive.read(name))
    except (zipfile.BadZipFile, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"it is not the archive task.submit writes ({type(err).__name__})") from None
    return rebuilt.getvalue(), size


@functools.cache
def _plain_sample_inputs() -> bytes:
    """The sample inputs of a network exported as the challenge exports them, made here."""
    import torch

    from cifar_utils.challenge import EXPORT_BATCH

    class Cast(torch.nn.Module):
        def forward(self, images):
            return images.float()
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(Cast(), (torch.zeros(EXPORT_BATCH, 32, 32, 3, dtype=torch.uint8),)), buffer)
    with zipfile.ZipFile(buffer) as archive:
        return archive.read(next(n for n in archive.namelist() if "/data/sample_inputs/" in f"/{n}"))


# --- one submission ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """How every run of a grading goes: what it is handed, its budget and limits, its sandboxes."""

    handout: Handout
    seconds: float  # the budget, start-up included
    memory_bytes: int
    profile: str | None  # the runs' profile (None: as this machine resolves "auto")
    threads: int
    jail: sandbox.Sandbox | None  # where the runs train (the handout readable)
    scorer: sandbox.Sandbox | None  # where their networks are scored (a fresh one: no handout)


def score_network(handed_in: Path, setting: Setting) -> tuple[np.ndarray, np.ndarray, int | None] | str:
    """Run the network a run handed in on the held images (disguised) and on the shown ones, in
    a fresh sandbox: (held predictions, shown predictions, parameters), or why it cannot be scored."""
    try:
        network, size = checked_network(sandbox.read_back(handed_in / NETWORK, MAX_NETWORK_BYTES))
    except FileNotFoundError:
        return "handed in no network (task.submit saves it)"
    except (sandbox.Untrusted, ValueError) as err:
        return f"its network was refused: {err}"
    handout = setting.handout
    shown = np.load(handout.folder / "test_images.npy", allow_pickle=False)
    with sandbox.work_folder("challenge-score-", sandbox.Limits.disk_bytes) as work:
        (work / NETWORK).write_bytes(network)
        np.save(work / "images.npy", np.concatenate([handout.held_images, shown]))
        limits = sandbox.Limits(SCORING_SECONDS, SCORING_SECONDS, setting.memory_bytes)  # its work folder: a tmpfs
        failed, _ = sandbox.run([sys.executable, str(SCORER), NETWORK, "images.npy", "."], work,
                                sandbox.child_env(work, setting.threads), limits, setting.scorer)
        predicted = read_classes(work / "predictions.npy", len(handout.held_images) + len(shown), len(handout.classes))
    if isinstance(predicted, str):
        return f"its network could not be scored ({failed or predicted})"
    return predicted[:len(handout.held_images)], predicted[len(handout.held_images):], size


def run_one(student: str, path: Path, setting: Setting) -> dict:
    """Run one submission within the budget and score the network it handed in: its leaderboard
    entry. Whatever goes wrong is this entry's, with the reason; nothing is raised."""
    entry = {"student": student, "notebook": path.name, "test_top1": None, "agreement": None, "seconds": None,
             "params": None}
    try:
        nb, code_bytes = runnable(assignments.read_notebook(path))
    except (ValueError, OSError) as err:  # not a notebook, a FIFO, too large: nothing of it can run
        return {**entry, "status": "crashed", "note": str(err)}
    try:
        return _run_and_score(entry, student, path, nb, code_bytes, setting)
    except Exception as err:  # whatever the run left that the grader could not read
        return {**entry, "status": "crashed", "note": f"the grader could not read what the run left "
                                                      f"({type(err).__name__}: {str(err)[:200]})"}


def _run_and_score(entry: dict, student: str, path: Path, nb, code_bytes: int, setting: Setting) -> dict:
    handout, seconds = setting.handout, setting.seconds
    flags, notes = marks(nb, code_bytes), []
    if student != path.stem:  # a folder of the student's own: say what else was handed in, unused
        ignored = sorted(p.name for p in path.parent.iterdir() if p != path and not p.name.startswith("."))
        if ignored:
            notes.append(f"not used (only the notebook runs): {', '.join(ignored)[:300]}")
    with sandbox.work_folder("challenge-run-", sandbox.Limits.disk_bytes) as work:
        out = work / "handed_in"
        out.mkdir()
        notebook, executed_path = work / "submitted.ipynb", work / "graded.ipynb"
        nbformat.write(nb, notebook)
        settings = {CHALLENGE_ENV: str(handout.folder), CHALLENGE_OUT_ENV: str(out), CHALLENGE_SECONDS_ENV: str(seconds),
                    CHALLENGE_STARTED_ENV: repr(time.time()), **({PROFILE_ENV: setting.profile} if setting.profile else {})}
        limits = sandbox.Limits(seconds, seconds, setting.memory_bytes)  # the budget is the limit: start-up included
        start = time.perf_counter()
        stopped, _ = sandbox.run(
            [sys.executable, str(assignments.CHILD), str(notebook), str(executed_path), str(limits.cell_seconds),
             '{"RESULTS_DIR": "results"}', "1"], work, sandbox.child_env(work, setting.threads, **settings), limits,
            setting.jail)
        entry["seconds"] = round(time.perf_counter() - start, 1)
        try:
            executed = assignments.read_notebook(executed_path)
        except FileNotFoundError:
            executed = None
        except (ValueError, OSError) as err:
            executed = None
            stopped = "; ".join(filter(None, [stopped, f"its executed notebook was refused: {err}"]))
        handed = read_classes(out / PREDICTIONS, len(handout.shown_labels), len(handout.classes))
        scored = score_network(out, setting) if not stopped else stopped
    if isinstance(scored, tuple):
        held, shown, entry["params"] = scored
        entry["test_top1"] = float((held == handout.held_labels).mean())
        if isinstance(handed, np.ndarray):
            entry["agreement"] = float((shown == handed).mean())
            if entry["agreement"] < MIN_AGREEMENT:
                flags.append(f"its handed-in predictions agree with its own network on {entry['agreement']:.0%} of the "
                             f"images (less than {MIN_AGREEMENT:.0%}): they do not come from that network")
    if "past its" in stopped:  # the time limit
        status, why = "over budget", f"still running after its {seconds:.0f} s: stopped"
    elif first_error(executed) or (stopped and not isinstance(scored, tuple)):
        status, why = "crashed", first_error(executed) or stopped
    elif isinstance(handed, str):
        status, why = "no predictions", f"handed in {handed}"
    elif isinstance(scored, str):
        status, why = "not scored", scored
    else:
        status, why = "ranked", ""
    return {**entry, "status": "marked" if flags and status == "ranked" else status,
            "note": "; ".join(filter(None, [*flags, why, *notes]))}


def first_error(executed) -> str:
    for cell in executed.cells if executed is not None else []:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename', 'an error')}: {out.get('evalue', '')}".strip()[:200]
    return ""


# --- the class -----------------------------------------------------------------------------------------

def grade_challenge(paths: list[Path], cifar: data.CifarData, minutes: float, jobs: int = 1,
                    use_sandbox: bool = True, memory_bytes: int = 8 * 2**30, profile: str | None = None,
                    progress=print, private: data.ImageSet | None = None, on_entry=None) -> list[dict]:
    """Run and score every submission; the leaderboard's entries, ranked first. on_entry(board so
    far) is called as each run is done (to write the leaderboard)."""
    work = assignments.submissions(paths)
    copies = assignments.duplicates(work, key=lambda student, path: student)  # one run each, whatever its name
    threads = max(1, (os.cpu_count() or 1) // jobs)
    entries: list[dict] = []
    with sandbox.work_folder("challenge-") as tmp:
        handout = hand_out(cifar, tmp / "handout", secrets.randbits(63), private)
        progress(f"{len(handout.shown_labels):,} test images shown to each run, {len(handout.held_labels):,} held "
                 f"back to score its network ({handout.held_from}; {handout.left_out:,} left out: the bundled sample "
                 f"holds them), {len(cifar.train):,} training images; {minutes:g} minutes per run", flush=True)
        hidden = [Path(cifar.location)] if Path(cifar.location).exists() else []
        setting = Setting(handout, 60 * minutes, memory_bytes, profile, threads,
                          sandbox.sandbox([*hidden, *(p for _, p in work)], read_only=(handout.folder,), wanted=use_sandbox),
                          sandbox.sandbox([*hidden, *(p for _, p in work)], wanted=use_sandbox))  # the scorer's: no handout

        def one(student_path):
            student, path = student_path
            if student in copies:
                entry = {"student": student, "notebook": path.name, "test_top1": None, "agreement": None,
                         "seconds": None, "params": None, "status": "refused",
                         "note": assignments.refused_copies(copies[student])}
            else:
                entry = run_one(student, path, setting)
            entries.append(entry)
            shown = f"{entry['test_top1']:.1%}" if entry["test_top1"] is not None else "–"
            progress(f"{entry['student']!r}: {entry['status']}, {shown}, {entry['seconds']} s", flush=True)
            if on_entry:
                on_entry(ranked(entries))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, work))
    return ranked(entries)


def ranked(entries: list[dict]) -> list[dict]:
    """The ranked entries by test top-1 (then fewer seconds), each with its rank; the others after,
    unranked (marked, over budget, crashed, without predictions, refused)."""
    order = sorted((e for e in entries if e["status"] == "ranked"), key=lambda e: (-e["test_top1"], e["seconds"]))
    rest = [e for e in entries if e["status"] != "ranked"]
    return [{"rank": i, **e} for i, e in enumerate(order, 1)] + [{"rank": None, **e} for e in rest]


COLUMNS = ["rank", "student", "test_top1", "agreement", "seconds", "params", "status", "note"]


def markdown(board: list[dict], minutes: float) -> str:
    """The leaderboard as Markdown, every student-written text escaped."""
    rows = [[e["rank"] or "–", tables.markdown_cell(e["student"]),
             f"{e['test_top1']:.1%}" if e["test_top1"] is not None else "–",
             f"{e['agreement']:.0%}" if e.get("agreement") is not None else "–", e["seconds"],
             f"{e['params']:,}" if e["params"] is not None else "–", e["status"], tables.markdown_cell(e["note"])]
            for e in board]
    header = ["rank", "student", "test top-1 (its network, unseen images)", "agrees with its network", "seconds",
              "parameters", "status", "note"]
    return f"# Challenge leaderboard ({minutes:g} minutes per run)\n\n" + tables.markdown(header, rows, "rlrrrrll")


def write_board(board: list[dict], minutes: float, csv_path: Path | None, markdown_path: Path | None) -> None:
    """The leaderboard's files, each replaced whole: called after every run."""
    if csv_path:
        with tables.replaced(csv_path) as f:
            tables.write_csv(f, COLUMNS, board)
    if markdown_path:
        with tables.replaced(markdown_path) as f:
            f.write(markdown(board, minutes))


def add_challenge_arguments(parser: argparse.ArgumentParser) -> None:
    """The `challenge` command's arguments."""
    parser.add_argument("submissions", nargs="+", type=Path, help="09 notebooks, or folders with one per student")
    parser.add_argument("--minutes", type=float, default=None, help="each run's budget (default: the profile's)")
    parser.add_argument("--profile", default=None, help="the runs' profile (default: auto, as on this machine)")
    parser.add_argument("--data", default=None, help="the data set (default: $CIFAR_DATA_DIR or ./data)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    parser.add_argument("--test-set", type=Path, default=None,
                        help="the teacher's own test images (test/<class>/ as in an image folder), scored instead of "
                             "the public test set's held half: recommended for a graded challenge")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1: they would slow each other)")
    parser.add_argument("--memory-gb", type=float, default=8, help="memory per run, all its processes together")
    parser.add_argument("--no-sandbox", action="store_true", help="run without a sandbox (only for code you trust)")
    parser.add_argument("--csv", type=Path, help="write the leaderboard as CSV here")
    parser.add_argument("--markdown", type=Path, help="write the leaderboard as a Markdown table here")


def challenge_command(args: argparse.Namespace) -> int:
    """`challenge`: every submission run within the budget, and the leaderboard, written as each run ends."""
    from cifar_utils.settings import resolve

    cfg = resolve(profile=args.profile or "auto", dataset=args.dataset, data_dir=args.data, download=False)
    minutes = args.minutes or cfg.profile.challenge_minutes
    cifar = data.load(args.dataset, args.data or cfg.default_data_dir, download=False)
    private = private_test_set(args.dataset, args.test_set, cifar.classes) if args.test_set else None
    board = grade_challenge(args.submissions, cifar, minutes, args.jobs, not args.no_sandbox,
                            int(args.memory_gb * 2**30), args.profile, private=private,
                            on_entry=lambda so_far: write_board(so_far, minutes, args.csv, args.markdown))
    print(markdown(board, minutes))
    write_board(board, minutes, args.csv, args.markdown)
    return 0


