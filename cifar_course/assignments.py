"""A grader for what students hand in (student_versions.py makes what they are handed).

    course grade submissions/ --jobs 4 --csv grades.csv --json grades.json

Exercises use nbgrader's conventions and metadata, so nbgrader itself takes the notebooks as
they are: a solution cell (nbgrader.solution, grade_id "exNN_name_answer") holds the answer
between `### BEGIN SOLUTION` and `### END SOLUTION`; the locked check cell after it
(nbgrader.grade, grade_id "exNN_name") asserts what a correct answer must do. A written answer
(a markdown cell with nbgrader.grade and nbgrader.solution, grade_id "exNN_name_written") is
graded by a person: the grader hands its text on, unscored.

The grader trusts nothing a student hands in but the code: every locked cell (the checks) is
put back from the course's own notebook by grade_id before the run, as nbgrader's autograde
does, and a check that is missing or was edited scores zero and says so. An exercise that asks
for an implementation scores zero if its solution calls the library instead (own_work). Each
submission runs in a sandbox (sandbox.py) with limits on its time, memory, processes, disk and
output, and whatever it leaves is read defensively: one student's malformed file is that
student's zero, never the class's. One submission per student and notebook.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from cifar_utils.settings import PLAIN_PROGRESS_ENV, PROFILE_ENV, RESULTS_ENV

from . import gradebook, own_work, probes, sandbox
from .student_versions import ANSWER_STUB

# the course's own notebooks: beside the package in a clone, else ./notebooks
_REPOSITORY_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHILD = Path(__file__).with_name("_child.py")  # runs each submission, inside the sandbox
COURSE_NOTEBOOKS = _REPOSITORY_NOTEBOOKS if _REPOSITORY_NOTEBOOKS.is_dir() else Path("notebooks")


def _grading(cell) -> dict:
    """A cell's nbgrader metadata; {} where a submission put anything else there."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    found = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


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


# --- grading ---------------------------------------------------------------------------------

MAX_NOTEBOOK_BYTES = 64 * 2**20  # a handed-in or executed notebook larger than this is not read
MAX_CELLS = 2_000  # nor one of more cells (the course's have under 100): checking each takes the grader's time


def read_notebook(path: Path):
    """A notebook a student handed in, or a run left, read defensively: a plain file of bounded
    size and cell count that is a valid notebook; else ValueError (or sandbox.Untrusted) says why."""
    content = sandbox.read_back(path, MAX_NOTEBOOK_BYTES)
    try:
        cells = json.loads(content).get("cells")
        if not isinstance(cells, list) or len(cells) > MAX_CELLS:
            raise ValueError(f"{len(cells) if isinstance(cells, list) else 'no list of'} cells (at most {MAX_CELLS:,})")
        nb = nbformat.reads(content.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # not UTF-8, not JSON, not a notebook
        raise ValueError(f"{path.name} is not a readable notebook ({type(err).__name__}: {str(err)[:200]})") from None
    return nb


def _check_outcome(cell) -> tuple[bool, str]:
    """Whether a check cell passed, and its message."""
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return False, "not run (the notebook stopped or hit its time limit before this check)"
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            name = str(out.get("ename", "an error"))
            if name == "KeyboardInterrupt":
                return False, "stopped at the time limit (an endless loop?)"
            if name == "MemoryError":
                return False, "MemoryError: the cell used more memory than a submission may"
            return False, f"{name}: {out.get('evalue', '')}".strip()[:500]
    return True, "passed"


def exercise_env(work: Path, threads: int) -> dict:
    """The environment of an exercise run: the sandbox's allow-list, the smoke profile, plain
    progress lines, and results written inside `work`."""
    return sandbox.child_env(work, threads, **{PROFILE_ENV: "smoke", PLAIN_PROGRESS_ENV: "1",
                                               RESULTS_ENV: str(work / "results")})


# --- hidden checks (probes.py): the grader's own inputs, asked in a sandbox of their own ----------

@dataclass(frozen=True)
class HiddenChecks:
    """One course notebook's probes for a grading: the inputs, and the course solution's answers."""

    cases: dict[str, list]  # per exercise
    reference: dict[str, list]

    def ask(self, sources: dict[str, str], limits: sandbox.Limits, jail: sandbox.Sandbox | None,
            threads: int) -> dict[str, str]:
        """Per exercise, "" or why the answers of its graded source (`sources`) are not the course
        solution's: asked in a fresh sandbox where nothing else of the submission runs."""
        if not self.cases:  # no exercise of this notebook has a probe: nothing to ask
            return {}
        limits = dataclasses.replace(limits, notebook_seconds=min(limits.notebook_seconds, PROBE_SECONDS))
        with sandbox.work_folder("probe-", limits.disk_bytes) as work:
            probes.save_questions(self.cases, sources, work)
            sandbox.run([sys.executable, str(PROBER)], work, sandbox.child_env(work, threads), limits, jail)
            return {ex: probes.judge(ex, probes.read_answers(work, ex) if ex in sources
                                     else "the submission has no solution cell for it", self.reference[ex])
                    for ex in self.cases}


PROBER = Path(__file__).with_name("_probe.py")  # answers the hidden questions, in a sandbox of its own
PROBE_SECONDS = 180  # for that run: its start-up, and each case's own 20 s at most


def hidden_checks(source, seed: int) -> HiddenChecks:
    """Draw the probes of every exercise of `source` that has one, and answer them with the
    course's solution cells, here, in the grader's process."""
    solutions = {_grading(c)["grade_id"].removesuffix("_answer"): c.source for c in source.cells
                 if c.cell_type == "code" and _grading(c).get("solution")}
    exercises = [_grading(c)["grade_id"] for _, c in exercise_cells(source)]
    cases = probes.draw([ex for ex in exercises if ex in solutions], seed)
    return HiddenChecks(cases, {ex: probes.expected(solutions[ex], found) for ex, found in cases.items()})


def graded_sources(submitted) -> tuple[str, dict[str, str]]:
    """What each exercise is graded on: the notebook's import lines, and per exercise its solution
    cell. Nothing else of the notebook: a function must be written in its own solution cell."""
    imports, solutions = [], {}
    for cell in submitted.cells:
        if cell.get("cell_type") != "code":
            continue
        source = str(cell.get("source", ""))
        grade_id = str(_grading(cell).get("grade_id", ""))
        if _grading(cell).get("solution") and grade_id.endswith("_answer"):
            solutions[grade_id.removesuffix("_answer")] = source
        try:
            tree = ast.parse(source)
        except SyntaxError:  # magics, or a cell that does not parse: its run says so
            continue
        imports += [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "".join(f"{line}\n" for line in dict.fromkeys(imports)), solutions


def own_work_problems(imports: str, solutions: dict[str, str]) -> dict[str, str]:
    """Per exercise that asks for an implementation, why its solution cell is refused (own_work)."""
    return {ex: why for ex, source in solutions.items() if (why := own_work.refusal(ex, source, imports))}


def grade_one(student: str, path: Path, source, limits: sandbox.Limits, jail: sandbox.Sandbox | None,
              threads: int = 1, checks: HiddenChecks | None = None) -> list[dict]:
    """Grade one submission against `source`, its course notebook, in a sandbox: a record per
    exercise. With `checks`, an exercise also needs the course solution's answers to the probes.
    Whatever goes wrong with this submission, it scores zero with the reason; nothing is raised."""
    try:
        submitted = read_notebook(path)
    except (ValueError, OSError) as err:  # not a notebook, a FIFO, too large: nothing of it can run
        return score(student, path.name, source, None, crashed=f"{err}")
    try:
        return _run_and_score(student, path, submitted, source, limits, jail, threads, checks)
    except Exception as err:  # whatever the run left that the grader could not read
        return score(student, path.name, source, None, crashed=f"the grader could not read what the run left "
                                                               f"({type(err).__name__}: {str(err)[:200]})")


def _run_and_score(student, path, submitted, source, limits, jail, threads, checks) -> list[dict]:
    to_run, problems = restore_locked(submitted, source)
    imports, solutions = graded_sources(submitted)
    problems = {**own_work_problems(imports, solutions), **problems}
    with sandbox.work_folder("grade-", limits.disk_bytes) as work:
        notebook, executed = work / "submitted.ipynb", work / "graded.ipynb"
        nbformat.write(to_run, notebook)
        crashed, _ = sandbox.run(
            [sys.executable, str(CHILD), str(notebook), str(executed), str(limits.cell_seconds)],
            work, exercise_env(work, threads), limits, jail)
        try:
            graded = read_notebook(executed)
        except FileNotFoundError:
            graded = None
        except (ValueError, OSError) as err:
            graded = None
            crashed = "; ".join(filter(None, [crashed, f"the run left a graded notebook the grader will not read: {err}"]))
    sources = {exercise: imports + solution for exercise, solution in solutions.items()}
    hidden = checks.ask(sources, limits, jail, threads) if checks else {}
    return score(student, path.name, source, graded, problems, crashed, submitted, hidden)


def score(student: str, name: str, source, executed, problems: dict[str, str] | None = None,
          crashed: str = "", submitted=None, hidden: dict[str, str] | None = None) -> list[dict]:
    """One record per exercise of the course notebook `source`, read from the executed copy,
    and one per written answer, read from the submission (points None: graded by hand).
    problems: per exercise, why it scores zero whatever the run did (an edited check, the
    library called instead of the student's own work); hidden: per exercise, why its hidden
    check failed ("" if it passed)."""
    problems, hidden = problems or {}, hidden or {}
    outcomes = {}
    if executed is not None:  # every graded cell's outcome, solutions too ("<exercise>_answer")
        outcomes = {str(_grading(c)["grade_id"]): _check_outcome(c) for c in executed.cells
                    if _grading(c).get("grade_id") and c.get("cell_type") == "code"}
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
    answers = {str(_grading(c)["grade_id"]): str(c.get("source", "")) for c in (answered.cells if answered else [])
               if _grading(c).get("grade_id")}
    for _, cell in written_answers(source):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        text = answers.get(grade_id, "").strip()
        written = bool(text) and text != ANSWER_STUB
        records.append({"student": student, "notebook": name, "exercise": grade_id, "points": None,
                        "max_points": float(cell.metadata["nbgrader"].get("points", 1)), "passed": None,
                        "message": "written answer: grade it by hand" if written else "no written answer",
                        "answer": text[:20_000] if written else ""})
    return records


def submissions(paths: list[Path]) -> list[tuple[str, Path]]:
    """(student, notebook) pairs: a folder holds one folder per student (or one file each)."""
    found = []
    for path in paths:
        if path.is_dir():
            for nb in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in nb.parts or nb.is_symlink():
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


def duplicates(work: list[tuple[str, Path]], key=lambda student, path: (student, path.name)) -> dict:
    """What was handed in more than once, by `key` (default: student and notebook name), with
    every copy's path: one submission each, so each copy is refused until the teacher keeps one."""
    copies: dict = {}
    for student, path in work:
        copies.setdefault(key(student, path), []).append(path)
    return {key: paths for key, paths in copies.items() if len(paths) > 1}


def refused_copies(paths: list[Path]) -> str:
    return (f"handed in {len(paths)} times ({', '.join(str(p) for p in paths)}): one submission per student "
            "and notebook, so none was graded; keep one and grade again")


def grade(paths: list[Path], source_dir: Path = COURSE_NOTEBOOKS, jobs: int | None = None,
          limits: sandbox.Limits | None = None, use_sandbox: bool = True, progress=print,
          on_graded=None) -> list[dict]:
    """Grade every submission, `jobs` at a time, each in its own sandbox; a record per exercise.
    on_graded(records so far) is called as each submission is done (to write the gradebook)."""
    limits = limits or sandbox.Limits()
    work = submissions(paths)
    known = {path.name for _, path in work if (source_dir / path.name).is_file()}
    if not known:  # the wrong --source, most likely: said before anything runs
        course_version(work[0][1], source_dir)
    stray = sorted({f"{student}/{path.name}" for student, path in work if path.name not in known})
    if stray:  # a student's own notes, say: named, and the class goes on
        progress(f"not graded (no course notebook of that name in {source_dir}): {', '.join(stray)}", flush=True)
        work = [(student, path) for student, path in work if path.name in known]
    # each course notebook read once
    sources = {name: nbformat.read(source_dir / name, as_version=4) for name in known}
    ungraded = sorted({name for name, nb in sources.items() if not exercise_cells(nb) and not written_answers(nb)})
    if ungraded:  # 09's challenge: `course challenge` grades it, within its time budget
        progress(f"not graded here (no exercises): {', '.join(ungraded)}", flush=True)
        work = [(student, path) for student, path in work if path.name not in ungraded]
    jail = sandbox.sandbox([source_dir, *(p for _, p in work)], wanted=use_sandbox)
    copies = duplicates(work)
    seed = secrets.randbits(63)  # the hidden inputs of this grading: drawn now, seen by no one
    checks = {name: hidden_checks(source, seed) for name, source in sources.items()}
    records: dict[int, list[dict]] = {}
    start = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // jobs)  # the cores shared out between the runs
    for i, (student, path) in enumerate(work):
        if (student, path.name) in copies:
            records[i] = score(student, path.name, sources[path.name], None,
                               problems={grade_id: refused_copies(copies[student, path.name])
                                         for grade_id in (c.metadata.nbgrader.grade_id
                                                          for _, c in exercise_cells(sources[path.name]))})
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_one, student, path, sources[path.name], limits, jail, threads,
                               checks[path.name]): i
                   for i, (student, path) in enumerate(work) if i not in records}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            records[i] = future.result()
            student, path = work[i]
            auto = [r for r in records[i] if r["points"] is not None]
            progress(f"[{done}/{len(futures)}] {student!r} {path.name}: {sum(r['points'] for r in auto):g}/"
                     f"{sum(r['max_points'] for r in auto):g} "
                     f"({time.perf_counter() - start:.0f} s)", flush=True)
            if on_graded:
                on_graded([r for k in sorted(records) for r in records[k]])
    return [r for i in sorted(records) for r in records[i]]


def add_grade_arguments(grd: argparse.ArgumentParser) -> None:
    """The `grade` command's arguments."""
    grd.add_argument("submissions", nargs="+", type=Path,
                     help="notebooks, or folders with one folder (or notebook) per student")
    grd.add_argument("--source", type=Path, default=COURSE_NOTEBOOKS,
                     help="the course notebooks the checks come from (default: this course's)")
    grd.add_argument("--jobs", type=int, default=None, help="submissions at a time (default: cores)")
    grd.add_argument("--timeout", type=float, default=600, help="seconds per notebook")
    grd.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell")
    grd.add_argument("--memory-gb", type=float, default=8, help="memory per submission, all its processes together")
    grd.add_argument("--no-sandbox", action="store_true",
                     help="run submissions without a sandbox (only for code you trust)")
    grd.add_argument("--csv", type=Path, help="write the gradebook (a row per student) as CSV here")
    grd.add_argument("--json", type=Path, help="write one record per exercise as JSON here")


def grade_command(args: argparse.Namespace) -> int:
    """`grade`: every submission in its sandbox, a table, and the gradebook, written as each
    submission is graded."""
    limits = sandbox.Limits(args.timeout, args.cell_timeout, int(args.memory_gb * 2**30))
    records = grade(args.submissions, args.source, args.jobs, limits, not args.no_sandbox,
                    on_graded=lambda so_far: gradebook.write(so_far, args.csv, args.json))
    gradebook.print_table(records)
    gradebook.write(records, args.csv, args.json)
    return 0
