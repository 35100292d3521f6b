"""Run everything pytest collects (unit tests and nbval's notebooks) small, offline and quiet."""

import os
import tempfile

import matplotlib
import pytest

from cifar_utils.settings import DATA_ENV, FORMAT_ENV, PLAIN_PROGRESS_ENV, PROFILE_ENV, RESULTS_ENV

matplotlib.use("Agg")
_scratch = tempfile.mkdtemp(prefix="cifar-course-tests-")
os.environ[PROFILE_ENV] = "smoke"  # PROFILE="auto" in the notebooks becomes smoke
os.environ[PLAIN_PROGRESS_ENV] = "1"
# the kernels the tests start draw off-screen, and every figure they show is checked for overlapping
# text (tests/figure_check_backend.py; test_notebooks reads the log)
_tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests")
os.environ["MPLBACKEND"] = "module://figure_check_backend"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_tests, os.environ.get("PYTHONPATH")]))
os.environ["FIGURE_CHECK_LOG"] = os.path.join(_scratch, "figures.jsonl")
os.environ.pop(FORMAT_ENV, None)  # every run in the hardware's default format
os.environ.setdefault(RESULTS_ENV, os.path.join(_scratch, "results"))
os.environ.setdefault(DATA_ENV, os.path.join(_scratch, "no-data-here"))
os.environ["TORCH_HOME"] = os.path.join(_scratch, "torch")  # an empty weights cache


def pytest_collection_modifyitems(items):
    """Whatever runs the smoke course (a test that reads it, nbval's notebooks), nbgrader or a
    browser is `slow`, like the tests marked so for their kernels and sandboxes: the quick tier,
    `pytest -m "not slow"`, leaves them out."""
    for item in items:
        runs_the_course = "smoke_course" in getattr(item, "fixturenames", ()) or item.nodeid.split("::")[0].endswith(".ipynb")
        if runs_the_course or item.get_closest_marker("nbgrader") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
