"""The whole course run headless by the course runner (papermill) in the smoke profile.

nbval executes every notebook once more as part of the test command (`--nbval-lax notebooks/`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifar_utils import course, results

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
STABLE = ["PROFILE", "DATASET", "DATA_DIR", "DOWNLOAD", "DEVICE", "SEED", "EPOCHS", "BATCH_SIZE",
          "RESULTS_DIR"]


@pytest.fixture(scope="module")
def smoke_course(tmp_path_factory):
    """Run every notebook once with `course run --profile smoke`; return the run folder."""
    out = tmp_path_factory.mktemp("course") / "smoke"
    status = course.main(["run", "--profile", "smoke", "--out", str(out),
                          "--notebooks", str(NOTEBOOK_DIR)])
    assert status == 0
    return out


def test_every_notebook_declares_the_stable_parameters_and_has_no_outputs():
    assert NOTEBOOKS
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        assert "parameters" in first_code["metadata"].get("tags", []), notebook.name
        source = "".join(first_code["source"]).splitlines()
        assert [line.split("=")[0].strip() for line in source][: len(STABLE)] == STABLE
        assert not any(c.get("outputs") or c.get("execution_count")
                       for c in cells if c["cell_type"] == "code"), notebook.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ran_in_the_smoke_profile(notebook, smoke_course):
    record = results.read(smoke_course / f"{notebook.stem}.json")
    assert (smoke_course / notebook.name).is_file()  # the executed copy, beside its JSON
    assert record["notebook"] == notebook.stem
    assert (record["dataset"], record["data_source"], record["profile"]) == ("cifar10", "sample", "smoke")
    assert record["device"] in ("cpu", "cuda", "mps") and record["seed"] == 0
    for run in record["runs"]:
        assert 0.1 < run["test_top1"] <= run["test_top5"] <= 1.0, run  # above chance
        assert run["epochs"] == len(run["history"])


def test_simple_cnn_beats_logistic_regression_on_the_sample(smoke_course):
    record = results.read(smoke_course / "02_simple_cnn.json")
    top1 = {run["name"]: run["test_top1"] for run in record["runs"]}
    assert top1["simple_cnn"] > top1["logistic_regression"] > 0.1
    assert (smoke_course / "checkpoints" / "cifar10_simple_cnn.pt").is_file()


def test_the_report_has_a_row_for_every_run(smoke_course):
    report = (smoke_course / "report.md").read_text()
    runs = [run for nb in NOTEBOOKS
            for run in results.read(smoke_course / f"{nb.stem}.json")["runs"]]
    table = [line for line in report.splitlines() if line.startswith("| 0")]
    assert len(table) == len(runs) > 0
    assert "bundled CIFAR-10 sample" in report
    page = (smoke_course / "report.html").read_text()
    assert page.count("<tr>") == len(runs) + 1 and "data:image/png;base64," in page


def test_cifar100_is_accepted_and_labelled_as_a_stand_in_on_the_sample(tmp_path):
    status = course.main(["run", "--only", "01", "--profile", "smoke", "--dataset", "cifar100",
                          "--out", str(tmp_path), "--notebooks", str(NOTEBOOK_DIR)])
    record = results.read(tmp_path / "01_logistic_regression.json")
    assert status == 0 and record["dataset"] == "cifar100" and record["data_source"] == "sample"
    assert "no CIFAR-100 images" in record["data_note"]
    assert "no CIFAR-100 images" in (tmp_path / "report.md").read_text()
