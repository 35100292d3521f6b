"""Run the whole course headless with papermill, then report what every notebook measured.

    course run [--only 00 02] [--profile smoke] [-p EPOCHS 3] [--out DIR]
    course run --out DIR --resume   # skip notebooks already done
    course run --seeds 0 1 2        # once per seed, then mean ± std
    course report DIR               # rebuild DIR/report.md and .html

The command line itself is cifar_course.__main__'s; this module adds the arguments of
`run` and `report` and carries them out.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from cifar_utils import data, settings
from cifar_utils.settings import DATASETS, DEVICES, PLAIN_PROGRESS_ENV, PROFILES, SELECTORS, TENSORBOARD_ENV

from . import report

STATE_FILE = "run.json"
# Checked beyond their type: the stable parameters whose values come from a fixed list.
CHOICES = {"PROFILE": (*SELECTORS, *PROFILES), "DATASET": DATASETS, "DEVICE": DEVICES}
# The stable parameters whose default None hides their type: what else they accept.
NONE_OR = {"EPOCHS": int, "BATCH_SIZE": int, "SEEDS": int, "DATA_DIR": str, "RESULTS_DIR": str}
# What a notebook does when the one it builds on failed (it still runs).
DEPENDS_ON = {"06": ("03", "06 trains its own ResNet18 teacher, since 03 left no checkpoint")}


class ParameterError(ValueError):
    """A parameter the notebooks do not define, or a value they cannot take."""


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks of `folder`, in order, or those whose number or stem is in `only`."""
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"No numbered notebooks (00_*.ipynb ...) in {folder}: pass --notebooks.")
    if only:
        known = {nb.stem[:2] for nb in notebooks} | {nb.stem for nb in notebooks}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ParameterError(f"--only {' '.join(unknown)}: no such notebook in {folder} "
                                 f"(have {', '.join(nb.stem for nb in notebooks)}).")
        notebooks = [nb for nb in notebooks if nb.stem[:2] in only or nb.stem in only]
    return notebooks


def parse_value(text: str):
    """Read a -p value the way papermill's command line does: None, True, 3, 0.1, or a string."""
    lowered = {"none": None, "true": True, "false": False}
    if text.lower() in lowered:
        return lowered[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _type_ok(name: str, value, default) -> bool:
    """Whether `value` may replace parameter `name`, whose default is `default`."""
    if value is None:
        return default is None or name in NONE_OR
    if default is None:  # EPOCHS = None takes an int; a notebook's own None takes a string
        kind = NONE_OR.get(name, str)
        return isinstance(value, kind) and not isinstance(value, bool)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(notebooks: list[Path], parameters: dict) -> dict[Path, dict]:
    """Check every name and value against the notebooks' parameters cells, before running.

    Returns, per notebook, the parameters it defines (a notebook gets only its own).
    """
    import papermill

    declared = {nb: papermill.inspect_notebook(str(nb)) for nb in notebooks}
    valid = sorted({name for params in declared.values() for name in params})
    for name, value in parameters.items():
        if name not in valid:
            raise ParameterError(f"Unknown parameter {name!r}: the notebooks define "
                                 f"{', '.join(valid)}.")
        if name in CHOICES and value not in CHOICES[name]:
            raise ParameterError(f"{name}={value!r} is not one of {', '.join(CHOICES[name])}.")
        for nb, params in declared.items():
            if name in params:
                default = _literal(params[name]["default"])
                if not _type_ok(name, value, default):
                    raise ParameterError(
                        f"{name}={value!r} ({type(value).__name__}) does not fit {nb.name}, "
                        f"where it defaults to {params[name]['default']} "
                        f"({params[name]['help'] or type(default).__name__}).")
    return {nb: {k: v for k, v in parameters.items() if k in params}
            for nb, params in declared.items()}


def _literal(source: str):
    """The value of a parameter's default as papermill reports it (source text)."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def _load_state(out: Path) -> dict:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {"done": {}}


def _save_state(out: Path, state: dict) -> None:
    (out / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send everything written to standard error (by this process or a kernel it starts) to a file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _environment(variables: dict[str, str]):
    """Set environment variables for what starts inside (a kernel inherits them), then put back
    what was there: the runner's own process is left as it was."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cell_progress(label: str) -> dict | bool:
    """papermill's bar of the current cell, on a terminal only; a log file gets no bar."""
    if not sys.stdout.isatty():
        return False
    return {"file": sys.stdout, "desc": label, "leave": False,
            "bar_format": "{desc}: cell {n_fmt}/{total_fmt}, {elapsed}"}


def data_line(parameters: dict) -> str:
    """The first thing a run says: the data the notebooks will find, the profile and the device."""
    cfg = settings.from_parameters(parameters, progress="off")
    return f"Data: {data.locate(cfg)}. Profile {cfg.profile.name}, device {cfg.device}."


def run(notebooks: list[Path], parameters: dict, out: Path, resume: bool = False,
        timeout: float | None = None, tensorboard: bool = False) -> int:
    """Execute the notebooks in order into `out`; return the number that failed.

    tensorboard: every training run writes its curves to out/tensorboard/<notebook>/<run>.
    """
    import papermill

    per_notebook = check_parameters(notebooks, {**parameters, "RESULTS_DIR": str(out)})
    said = data_line(parameters)  # before anything runs: a wrong or missing data set shows at once
    print(said, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out) if resume else {"done": {}}
    state["data"] = said
    failed: dict[str, str] = {}
    start = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        params = per_notebook[nb]
        label = f"[{i}/{len(notebooks)}] {nb.stem}"
        if resume and state["done"].get(nb.stem) == params and (out / f"{nb.stem}.json").exists():
            print(f"{label}: done earlier with the same parameters, skipped")
            continue
        dependency = DEPENDS_ON.get(nb.stem[:2])
        if dependency and any(stem.startswith(dependency[0]) for stem in failed):
            print(f"{label}: note: {dependency[1]}")
        print(f"{label}: running ({time.perf_counter() - start:.0f} s into the run)", flush=True)
        began = time.perf_counter()
        log = out / f"{nb.stem}.log"
        try:  # text bars in the kernels (they inherit the variable): small notebooks
            kernel_environment = {PLAIN_PROGRESS_ENV: "1"}
            if tensorboard:
                kernel_environment[TENSORBOARD_ENV] = str((out / "tensorboard" / nb.stem).resolve())
            with _stderr_to(log), _environment(kernel_environment):  # and papermill's chatter to the log
                papermill.execute_notebook(str(nb), str(out / nb.name), parameters=params,
                                           kernel_name="python3", progress_bar=_cell_progress(label),
                                           cwd=os.getcwd(), execution_timeout=timeout)
        except papermill.PapermillExecutionError as err:
            failed[nb.stem] = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
            print(f"{label}: FAILED in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                  f"see {out / nb.name}", flush=True)
            continue
        except Exception as err:  # a dead kernel, a timeout: name it, go on with the rest
            failed[nb.stem] = f"{type(err).__name__}: {err}"
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
            print(f"{label}: FAILED ({type(err).__name__}: {err}); the kernel's last words "
                  f"({log}):\n    " + "\n    ".join(tail), flush=True)
            continue
        state["done"][nb.stem] = params
        _save_state(out, state)
        print(f"{label}: finished in {time.perf_counter() - began:.0f} s", flush=True)
    paths = report.write(out)
    print(f"\nAll done in {time.perf_counter() - start:.0f} s. Report: {paths[0]} and {paths[1]}")
    for stem, why in failed.items():
        print(f"FAILED {stem}: {why}")
    return len(failed)


def add_run_arguments(go: argparse.ArgumentParser) -> None:
    """The `run` command's arguments."""
    go.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or stems to run")
    go.add_argument("--profile", default="auto", help="auto | auto-short | smoke | laptop | short | full")
    go.add_argument("--dataset", default=None, help="cifar10 | cifar100")
    go.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                    metavar=("NAME", "VALUE"), help="any parameter, as papermill takes it")
    go.add_argument("--out", type=Path, help="output folder (default: runs/<time>-<profile>)")
    go.add_argument("--resume", action="store_true",
                    help="skip notebooks already done in --out with the same parameters")
    go.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                    help="folder of numbered notebooks (default: ./notebooks)")
    go.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell")
    go.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                    help="run everything once per seed (into --out/seed-N), then report mean ± std")
    go.add_argument("--tensorboard", action="store_true",
                    help="every training run writes its curves to OUT/tensorboard/<notebook>/<run>")


def run_command(args: argparse.Namespace) -> int:
    """`run`: the notebooks, once or once per seed; the exit status counts failures."""
    parameters = {name: parse_value(value) for name, value in args.parameter}
    parameters["PROFILE"] = parameters.get("PROFILE", args.profile)
    if args.dataset:
        parameters["DATASET"] = args.dataset
    if args.resume and not args.out:
        raise ParameterError("--resume needs the --out folder of the run to resume")
    if args.seeds and "SEED" in parameters:
        raise ParameterError("give the seeds either with --seeds or with -p SEED, not both")
    out = args.out or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{parameters['PROFILE']}"
    notebooks = find_notebooks(args.notebooks, args.only)
    if not args.seeds:
        return 1 if run(notebooks, parameters, out, args.resume, args.timeout, args.tensorboard) else 0
    failures = 0
    for seed in args.seeds:
        print(f"--- seed {seed} ---", flush=True)
        failures += run(notebooks, {**parameters, "SEED": seed}, out / f"seed-{seed}", args.resume,
                        args.timeout, args.tensorboard)
    print(f"Across the seeds: {report.write_seeds(out, [out / f'seed-{seed}' for seed in args.seeds])}")
    return 1 if failures else 0


def add_report_arguments(rep: argparse.ArgumentParser) -> None:
    """The `report` command's arguments."""
    rep.add_argument("folder", type=Path, help="a folder written by `run`")


def report_command(args: argparse.Namespace) -> int:
    """`report`: rebuild a run folder's report."""
    md, html = report.write(args.folder)
    print(f"Report: {md} and {html}")
    return 0
