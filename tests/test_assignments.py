"""Student versions and the grader: full marks for the course, zero for blanks, loops stopped."""

from __future__ import annotations

import json

import nbformat
import pytest
from helpers import NOTEBOOK_DIR

from cifar_utils.course import assignments

STUDENT_DIR = NOTEBOOK_DIR.parent / "student"
WITH_EXERCISES = [p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
                  if assignments.exercise_cells(nbformat.read(p, as_version=4))]


def test_notebooks_01_to_06_have_at_least_two_exercises_each():
    names = [p.stem[:2] for p in WITH_EXERCISES]
    assert names == ["01", "02", "03", "04", "05", "06"]
    for path in WITH_EXERCISES:
        nb = nbformat.read(path, as_version=4)
        checks = assignments.exercise_cells(nb)
        assert len(checks) >= 2, path.name
        for i, _ in checks:  # each check follows its solution cell
            assert nb.cells[i - 1].metadata["nbgrader"]["solution"], (path.name, i)


def test_student_versions_blank_solutions_and_keep_checks(tmp_path):
    written = assignments.generate(WITH_EXERCISES, tmp_path)
    assert [p.name for p in written] == [p.name for p in WITH_EXERCISES]
    for course_path, student_path in zip(WITH_EXERCISES, written):
        course, student = (nbformat.read(p, as_version=4) for p in (course_path, student_path))
        assert len(course.cells) == len(student.cells)
        for c, s in zip(course.cells, student.cells):
            grading = c.metadata.get("nbgrader", {})
            if grading.get("solution"):
                assert assignments.BEGIN not in s.source and "NotImplementedError" in s.source
                assert s.source.split("\n")[0] == c.source.split("\n")[0]  # the def line stays
            elif "parameters" in c.metadata.get("tags", []):
                assert 'PROFILE = "laptop"' in s.source
            else:
                assert s.source == c.source
            assert not s.get("outputs")


def test_committed_student_versions_are_up_to_date(tmp_path):
    """`python -m cifar_utils.assignments generate --out student` rewrites student/."""
    assignments.generate(WITH_EXERCISES, tmp_path)
    fresh = {p.name: p.read_text() for p in sorted(tmp_path.glob("*.ipynb"))}
    committed = {p.name: p.read_text() for p in sorted(STUDENT_DIR.glob("*.ipynb"))}
    assert committed == fresh, "student/ is stale: run `python -m cifar_utils.assignments " \
                               "generate --out student` and commit the result"


def test_the_course_notebooks_get_full_marks(smoke_course):
    """The smoke run executed every course notebook as the grader does (papermill, smoke)."""
    for path in WITH_EXERCISES:
        executed = nbformat.read(smoke_course / path.name, as_version=4)
        records = assignments.score(path.name, nbformat.read(path, as_version=4), executed)
        assert records and all(r["passed"] for r in records), records


def test_blank_student_versions_score_zero_and_still_complete(tmp_path):
    students = assignments.generate(WITH_EXERCISES, tmp_path / "student")
    records = assignments.grade(students, notebook_timeout=300, cell_timeout=120)
    assert len(records) >= 12
    for r in records:
        assert not r["passed"]
        assert r["message"].startswith("NotImplementedError"), r  # the check ran, and failed


def test_an_endless_loop_is_stopped_and_the_other_exercises_still_count(tmp_path):
    nb = nbformat.read(NOTEBOOK_DIR / "01_logistic_regression.ipynb", as_version=4)
    loop = "def cross_entropy(logits, labels):\n    while True:\n        pass\n"
    solution = next(c for c in nb.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "ex01_cross_entropy"
                    and c.metadata["nbgrader"]["solution"])
    solution.source = loop
    submission = tmp_path / "01_logistic_regression.ipynb"
    nbformat.write(nb, submission)
    out_json, out_csv = tmp_path / "grades.json", tmp_path / "grades.csv"
    assert assignments.main(["grade", str(submission), "--cell-timeout", "10", "--timeout", "300",
                             "--json", str(out_json), "--csv", str(out_csv)]) == 0
    records = {r["exercise"]: r for r in json.loads(out_json.read_text())}
    assert records["ex01_cross_entropy"]["passed"] is False
    assert "time limit" in records["ex01_cross_entropy"]["message"]
    assert records["ex01_topk"]["passed"] is True
    assert out_csv.read_text().splitlines()[0] == "notebook,exercise,passed,message"


def test_a_missing_submission_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        assignments.main(["grade", str(tmp_path / "nope.ipynb")])
