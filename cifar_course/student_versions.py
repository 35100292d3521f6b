"""Student versions of the course notebooks: solutions blanked by nbgrader's own preprocessor,
checks kept, outputs cleared, and the profile of student runs.

    course generate --out student/
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError(\"Exercise: replace this line with your code\")"
ANSWER_STUB = "YOUR ANSWER HERE"  # nbgrader's text for a written answer in the student version
STUDENT_PROFILE = ('PROFILE = "auto-short"  # minutes per notebook: laptop on a CPU, short on a GPU '
                   '| auto | smoke | laptop | short | full')


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


def add_generate_arguments(gen: argparse.ArgumentParser) -> None:
    """The `generate` command's arguments."""
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--notebooks", type=Path, default=Path("notebooks"))


def generate_command(args: argparse.Namespace) -> int:
    """`generate`: student versions of the numbered notebooks."""
    for path in generate(sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb")), args.out):
        print("wrote", path)
    return 0
