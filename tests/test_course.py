"""The course runner's mechanics on tiny stand-in notebooks: checks, failures, resume, report."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import nbformat
import pytest

from cifar_course import runner
from cifar_course.__main__ import main as course_main
from cifar_utils import settings

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"

BODY = """
import json, os, pathlib
if os.path.exists(FAIL_IF):
    raise RuntimeError("asked to fail")
with open(LOG, "a") as f:
    f.write(NAME + "\\n")
run = {"name": NAME, "params": 10, "epochs": EPOCHS or 1, "train_images": 100, "train_seconds": 0.1,
       "test_top1": 0.5, "test_top5": 0.9}
record = {"notebook": NAME, "dataset": "cifar10", "data_source": "sample", "profile": PROFILE,
          "device": "cpu", "seed": 0, "runs": [run]}
pathlib.Path(RESULTS_DIR, NAME + ".json").write_text(json.dumps(record))
"""


def write_notebooks(folder: Path, log: Path, fail_flag: Path, count: int = 4) -> None:
    folder.mkdir()
    for i in range(count):
        name = f"{i:02d}_step"
        params = nbformat.v4.new_code_cell(
            f'PROFILE = "auto"  # auto | smoke | laptop | full\nEPOCHS = None\nRESULTS_DIR = None\n'
            f'LOG = {str(log)!r}\nFAIL_IF = {str(fail_flag) if i == count - 1 else "/nonexistent"!r}\n'
            f'NAME = {name!r}')
        params.metadata["tags"] = ["parameters"]
        nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(BODY)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")


def test_an_unknown_parameter_is_refused_before_anything_runs(tmp_path, capsys):
    status = course_main(["run", "-p", "EPOCHZ", "3", "--out", str(tmp_path / "run"),
                          "--notebooks", str(NOTEBOOK_DIR)])
    err = capsys.readouterr().err
    assert status == 2
    assert "Unknown parameter 'EPOCHZ'" in err and "EPOCHS" in err and "DATA_DIR" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", [
    (["-p", "EPOCHS", "three"], "EPOCHS='three' (str) does not fit"),
    (["--profile", "fast"], "PROFILE='fast' is not one of auto, auto-short, smoke, laptop, short, full"),
    (["--dataset", "cifar1000"], "DATASET='cifar1000' is not one of cifar10, cifar100"),
    (["-p", "DOWNLOAD", "1"], "DOWNLOAD=1 (int) does not fit"),
    (["-p", "SEED", "None"], "SEED=None (NoneType) does not fit"),
])
def test_values_of_the_wrong_type_or_outside_the_choices_are_refused(args, message, tmp_path,
                                                                     capsys):
    status = course_main(["run", *args, "--out", str(tmp_path / "run"),
                          "--notebooks", str(NOTEBOOK_DIR)])
    assert status == 2 and message in capsys.readouterr().err


def test_unknown_notebook_in_only_is_refused(capsys):
    assert course_main(["run", "--only", "42", "--notebooks", str(NOTEBOOK_DIR)]) == 2
    assert "error: --only 42: no such notebook" in capsys.readouterr().err


def test_parse_value_reads_like_papermill():
    assert [runner.parse_value(v) for v in ("None", "true", "3", "0.5", "cifar10")] == [
        None, True, 3, 0.5, "cifar10"]


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_a_failure_is_reported_the_run_goes_on_and_resume_runs_only_the_rest(tmp_path, capsys):
    notebooks, log, fail = tmp_path / "nbs", tmp_path / "log.txt", tmp_path / "fail"
    write_notebooks(notebooks, log, fail)
    fail.touch()
    out = tmp_path / "run"
    args = ["run", "--profile", "smoke", "-p", "EPOCHS", "2", "--out", str(out),
            "--notebooks", str(notebooks)]
    assert course_main(args) == 1  # the fourth notebook failed: non-zero exit
    printed = capsys.readouterr().out
    assert "03_step: FAILED in cell" in printed and "RuntimeError: asked to fail" in printed
    assert log.read_text().split() == ["00_step", "01_step", "02_step"]
    assert (out / "report.md").exists()  # a report of what did finish

    fail.unlink()
    assert course_main([*args, "--resume"]) == 0
    assert log.read_text().split() == ["00_step", "01_step", "02_step", "03_step"]
    printed = capsys.readouterr().out
    assert printed.count("done earlier with the same parameters, skipped") == 3

    # other parameters: resume runs everything again
    assert course_main(["run", "--profile", "smoke", "-p", "EPOCHS", "3", "--out", str(out),
                        "--notebooks", str(notebooks), "--resume"]) == 0
    assert log.read_text().split().count("00_step") == 2
    rows = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| 0")]
    assert len(rows) == 4
    assert json.loads((out / "run.json").read_text())["done"]["03_step"]["EPOCHS"] == 3


def test_report_rebuilds_from_a_folder(tmp_path, capsys):
    notebooks, log = tmp_path / "nbs", tmp_path / "log.txt"
    write_notebooks(notebooks, log, tmp_path / "never", count=2)
    out = tmp_path / "run"
    assert course_main(["run", "--profile", "smoke", "--out", str(out),
                        "--notebooks", str(notebooks)]) == 0
    (out / "report.md").unlink()
    assert course_main(["report", str(out)]) == 0
    rows = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| 0")]
    assert len(rows) == 2
    assert "ran on the bundled CIFAR-10 sample" in (out / "report.html").read_text()
    assert "00_step, 01_step ran on the bundled CIFAR-10 sample" in (out / "report.md").read_text()


def test_the_console_shows_a_line_per_notebook_and_the_kernels_chatter_goes_to_a_log(tmp_path, capfd):
    notebooks, log = tmp_path / "nbs", tmp_path / "log.txt"
    write_notebooks(notebooks, log, tmp_path / "never", count=2)
    out = tmp_path / "run"
    assert course_main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", str(notebooks)]) == 0
    printed = capfd.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if line.strip()]
    assert lines[0] == ("Data: the bundled CIFAR-10 sample (the smoke profile runs on it): accuracies on it are not "
                        f"CIFAR results. Profile smoke, device {settings.resolve_device('auto')}.")  # before anything runs
    assert [line.split(":")[1].split()[0] for line in lines[1:5]] == ["running", "finished"] * 2
    assert lines[5].startswith("All done in") and len(lines) == 6, lines
    assert (out / "00_step.log").is_file() and (out / "01_step.log").is_file()


@pytest.mark.slow  # starts kernels or a sandbox: seconds each
def test_a_terminal_also_sees_the_current_cell(tmp_path):
    """On a terminal, a line that shows the current cell, erased when the notebook finishes."""
    notebooks, log = tmp_path / "nbs", tmp_path / "log.txt"
    write_notebooks(notebooks, log, tmp_path / "never", count=1)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100 characters
    command = [sys.executable, "-m", "cifar_course", "run", "--profile", "smoke",
               "--out", str(tmp_path / "run"), "--notebooks", str(notebooks)]
    child = subprocess.Popen(command, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the child
            break
        if not chunk:
            break
        seen += chunk
    assert child.wait(60) == 0
    text = seen.decode()
    assert "\r[1/1] 00_step: cell 1/3" in text  # redrawn in place; papermill adds a parameters cell
    assert "00_step: finished in" in text.split("cell 1/3")[-1]


SEEDED = """
import json, pathlib
runs = [{"name": name, "params": 10, "epochs": 1, "train_images": 100, "train_seconds": 0.1,
         "test_top1": top1, "test_top5": 0.9}
        for name, top1 in (("varies", 0.50 + 0.01 * SEED), ("steady", 0.505), ("far", 0.40))]
record = {"notebook": "00_seeded", "dataset": "cifar10", "data_source": "sample", "profile": PROFILE,
          "device": "cpu", "seed": SEED, "runs": runs}
pathlib.Path(RESULTS_DIR, "00_seeded.json").write_text(json.dumps(record))
"""


def test_seeds_run_everything_once_per_seed_and_report_mean_and_spread(tmp_path, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    params = nbformat.v4.new_code_cell('PROFILE = "auto"\nSEED = 0\nRESULTS_DIR = None')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(SEEDED)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "00_seeded.ipynb")
    out = tmp_path / "run"
    assert course_main(["run", "--profile", "smoke", "--seeds", "0", "2", "--out", str(out),
                        "--notebooks", str(folder)]) == 0
    assert [json.loads((out / f"seed-{s}" / "00_seeded.json").read_text())["seed"] for s in (0, 2)] == [0, 2]
    rows = {line.split(" | ")[1]: line for line in (out / "report.md").read_text().splitlines()
            if line.startswith("| 00_seeded")}
    assert "51.0% ± 1.4% | 50.0%, 52.0% | best" in rows["varies"]  # mean of 0.50 and 0.52, stdev 0.014
    assert "50.5% ± 0.0%" in rows["steady"] and "0.5 points (within the spread)" in rows["steady"]
    assert rows["far"].endswith("| 11.0 points |")  # 11 points behind: beyond the spread
    assert "Across the seeds:" in capsys.readouterr().out


@pytest.mark.slow  # three interpreters that import torch
def test_the_tooling_answers_as_course_and_as_python_m_and_the_old_name_says_where_it_went():
    scripts = Path(sys.executable).parent
    for command in ([str(scripts / "course"), "--help"], [sys.executable, "-m", "cifar_course", "--help"],
                    [sys.executable, "-m", "cifar_utils.course", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "grade" in done.stdout and "challenge" in done.stdout, command
        old = "cifar_utils.course" in command
        assert ("is now `course`" in done.stderr) == old, done.stderr
