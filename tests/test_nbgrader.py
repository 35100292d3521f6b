"""nbgrader itself on the course, as a teacher who uses it would: generate, then autograde.

One assignment holds every notebook with exercises; generate_assignment releases all of them.
Three students hand in its two cheapest notebooks (HANDED_IN, 00 and 01): one with the course's
own solutions (full marks on the autograded checks), one with the released version untouched
(zero) and one who replaced every check with a print (zero: nbgrader puts the locked checks
back). The written answers are graded by hand, so autograde leaves them open. Putting the checks
back is one mechanism for every notebook; that each course notebook earns full marks and each
blank student version zero, the course's own grader shows for all eight in
tests/test_assignments.py. Autograde still runs six notebooks, so this round trip is marked
`nbgrader` and `.ci/run` runs it as a step of its own: `python -m pytest -m nbgrader`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import NOTEBOOK_DIR

from cifar_course import assignments, student_versions

pytest.importorskip("nbgrader")
WITH_EXERCISES = [p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
                  if assignments.exercise_cells(nbformat.read(p, as_version=4))]
ASSIGNMENT = "cifar"
HANDED_IN = WITH_EXERCISES[:2]  # the two cheapest: autograde runs each once per student


def nbgrader(course: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def released_course(tmp_path_factory):
    """A course folder after nbgrader's generate_assignment of every notebook with exercises."""
    course = tmp_path_factory.mktemp("nbgrader")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.ExecutePreprocessor.timeout = 300\n")
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for path in WITH_EXERCISES:
        shutil.copy(path, source / path.name)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    return course


@pytest.fixture(scope="module")
def graded_course(released_course):
    """The same folder after autograde of three students' submissions."""
    course = released_course
    release = course / "release" / ASSIGNMENT
    for student, make in (("solved", lambda p: nbformat.read(NOTEBOOK_DIR / p.name, as_version=4)),
                          ("released", lambda p: nbformat.read(p, as_version=4)),
                          ("cheater", _checks_replaced)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for path in HANDED_IN:
            nbformat.write(make(release / path.name), folder / path.name)
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    return course


def _checks_replaced(path: Path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = 'print("checked")'
    return nb


@pytest.mark.slow  # seconds: nbgrader generate_assignment on the course
def test_generate_assignment_blanks_every_solution_and_keeps_every_check(released_course):
    release = released_course / "release" / ASSIGNMENT
    assert sorted(p.name for p in release.glob("*.ipynb")) == [p.name for p in WITH_EXERCISES]
    for path in WITH_EXERCISES:
        released = nbformat.read(release / path.name, as_version=4)
        course = nbformat.read(path, as_version=4)
        assert len(assignments.exercise_cells(released)) == len(assignments.exercise_cells(course))
        written = [c for _, c in assignments.written_answers(released)]
        assert len(written) == len(assignments.written_answers(course))
        assert all(c.source.strip() == student_versions.ANSWER_STUB for c in written)  # nbgrader's stub
        assert student_versions.BEGIN not in "".join(c.source for c in released.cells)


@pytest.mark.nbgrader
@pytest.mark.parametrize("student,expected", [("solved", "full"), ("released", 0), ("cheater", 0)])
def test_autograde_gives_the_course_full_marks_and_blank_or_edited_checks_zero(graded_course,
                                                                               student, expected):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gradebook:
        for path in HANDED_IN:
            graded = gradebook.find_submission_notebook(path.stem, ASSIGNMENT, student)
            assert graded.max_code_score >= 1 and graded.max_written_score >= 1, path.name
            want = graded.max_code_score if expected == "full" else expected
            assert graded.code_score == want, (student, path.name, graded.code_score)
            # written answers wait for a person (a blank one, as released, scores zero by itself)
            assert graded.needs_manual_grade == (student != "released"), (student, path.name)
