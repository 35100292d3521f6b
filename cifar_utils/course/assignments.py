"""Student versions of the course notebooks, and a grader for what students hand in.

    python -m cifar_utils.course generate --out student/
    python -m cifar_utils.course grade submissions/*.ipynb --csv grades.csv --json grades.json

Exercises use nbgrader's conventions, so a teacher who uses nbgrader can take the notebooks
as they are: a solution cell (metadata nbgrader.solution) holds the answer between
`### BEGIN SOLUTION` and `### END SOLUTION`; the check cell after it (nbgrader.grade, locked)
asserts what a correct answer must do. The grader runs each submission in its own folder and
process (papermill, smoke profile), with a time limit per cell and per notebook, and scores
each check cell that ran without an error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from ..settings import PLAIN_PROGRESS_ENV, PROFILE_ENV, RESULTS_ENV

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError(\"Exercise: replace this line with your code\")"
STUDENT_PROFILE = 'PROFILE = "laptop"   # auto | smoke | laptop | full (laptop: minutes on a CPU)'


def exercise_cells(nb) -> list[tuple[int, dict]]:
    """(index, cell) of every check cell, in order."""
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def blank_solutions(source: str) -> str:
    """Replace each BEGIN/END SOLUTION region with a stub at the region's indentation."""
    pattern = re.compile(rf"^([ \t]*){re.escape(BEGIN)}\n.*?^[ \t]*{re.escape(END)}[ \t]*$",
                         re.DOTALL | re.MULTILINE)
    return pattern.sub(lambda m: f"{m.group(1)}{STUB}", source)


def student_version(nb):
    """A copy of a course notebook with solutions blanked, checks kept and outputs cleared."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = blank_solutions(cell.source)
        if "parameters" in cell.metadata.get("tags", []):
            # 'auto' would pick the full profile on a GPU box: minutes, not an hour, for students
            cell.source = re.sub(r'^PROFILE = "auto".*$', STUDENT_PROFILE, cell.source,
                                 flags=re.MULTILINE)
    return nb


def generate(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student version of every notebook that has exercises; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if not exercise_cells(nb):
            continue
        target = out / path.name
        nbformat.write(student_version(nb), target)
        written.append(target)
    return written


# --- grading -------------------------------------------------------------------------------

def _execute(source: Path, target: Path, cell_timeout: float) -> None:
    """Run one notebook, keeping going past errors (the grader's child process)."""
    import papermill

    try:
        papermill.execute_notebook(str(source), str(target), kernel_name="python3",
                                   parameters={"PROFILE": "smoke", "RESULTS_DIR": "results"},
                                   progress_bar=False, execution_timeout=cell_timeout,
                                   allow_errors=True, interrupt_on_timeout=True,
                                   cwd=str(target.parent))
    except papermill.PapermillExecutionError:
        pass  # errors are the grader's to read from the executed notebook


def _check_outcome(cell) -> tuple[bool, str]:
    """Whether a check cell passed, and its message."""
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return False, "not run (the notebook stopped or hit its time limit before this check)"
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            if out["ename"] == "KeyboardInterrupt":
                return False, "stopped at the time limit (an endless loop?)"
            return False, f"{out['ename']}: {out['evalue']}".strip()
    return True, "passed"


def grade_one(path: Path, notebook_timeout: float, cell_timeout: float) -> list[dict]:
    """Grade one submission in a folder and process of its own: one record per exercise."""
    original = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="grade-") as work:
        work_dir = Path(work)
        source, target = work_dir / "submitted.ipynb", work_dir / "graded.ipynb"
        nbformat.write(original, source)
        env = {**os.environ, PROFILE_ENV: "smoke", PLAIN_PROGRESS_ENV: "1",
               RESULTS_ENV: str(work_dir / "results"), "MPLBACKEND": "Agg"}
        crashed = ""
        try:
            subprocess.run([sys.executable, "-m", "cifar_utils.course.assignments", "_execute",
                            str(source), str(target), str(cell_timeout)],
                           cwd=work_dir, env=env, timeout=notebook_timeout,
                           capture_output=True, text=True, check=True)
        except subprocess.TimeoutExpired:
            crashed = f"the notebook ran past its {notebook_timeout:.0f} s limit"
        except subprocess.CalledProcessError as err:
            crashed = f"the run failed: {err.stderr.strip().splitlines()[-1:] or err}"
        graded = nbformat.read(target, as_version=4) if target.exists() else None
    return score(path.name, original, graded, crashed)


def score(name: str, submitted, executed, crashed: str = "") -> list[dict]:
    """One record per exercise of `submitted`, read from its executed copy (None: no run)."""
    outcomes = {}
    if executed is not None:
        outcomes = {c.metadata["nbgrader"]["grade_id"]: _check_outcome(c)
                    for _, c in exercise_cells(executed)}
    records = []
    for _, cell in exercise_cells(submitted):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        passed, message = outcomes.get(grade_id, (False, crashed or "check cell missing"))
        if not passed and crashed and message.startswith("not run"):
            message = crashed
        records.append({"notebook": name, "exercise": grade_id, "passed": passed,
                        "message": message})
    return records


def grade(paths: list[Path], notebook_timeout: float = 600, cell_timeout: float = 60) -> list[dict]:
    """Grade every submission; one record per exercise."""
    return [r for path in paths for r in grade_one(path, notebook_timeout, cell_timeout)]


def print_table(records: list[dict]) -> None:
    width = max([len(r["notebook"]) for r in records] + [8])
    for r in records:
        mark = "PASS" if r["passed"] else "FAIL"
        print(f"{r['notebook']:<{width}}  {r['exercise']:<22} {mark}  {r['message'][:90]}")
    by_notebook: dict[str, list[bool]] = {}
    for r in records:
        by_notebook.setdefault(r["notebook"], []).append(r["passed"])
    for name, marks in by_notebook.items():
        print(f"{name}: {sum(marks)}/{len(marks)}")
    print(f"score: {sum(r['passed'] for r in records)}/{len(records)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifar_utils.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write student versions of the notebooks")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    grd = commands.add_parser("grade", help="run submissions and score their exercises")
    grd.add_argument("submissions", nargs="+", type=Path)
    grd.add_argument("--timeout", type=float, default=600, help="seconds per notebook")
    grd.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell")
    grd.add_argument("--csv", type=Path, help="write the gradebook as CSV here")
    grd.add_argument("--json", type=Path, help="write one record per exercise as JSON here")
    run = commands.add_parser("_execute")  # the grader's child process
    run.add_argument("source", type=Path)
    run.add_argument("target", type=Path)
    run.add_argument("cell_timeout", type=float)
    args = parser.parse_args(argv)

    if args.command == "_execute":
        _execute(args.source, args.target, args.cell_timeout)
        return 0
    if args.command == "generate":
        notebooks = sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb"))
        for path in generate(notebooks, args.out):
            print("wrote", path)
        return 0
    missing = [str(p) for p in args.submissions if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    records = grade(args.submissions, args.timeout, args.cell_timeout)
    print_table(records)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["notebook", "exercise", "passed", "message"])
            writer.writeheader()
            writer.writerows(records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
