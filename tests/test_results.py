"""The results JSON of COURSE.md: written, read back, and refused when incomplete."""

import pytest

from cifar_utils import data, results, settings


def test_round_trip(tmp_path):
    cfg = settings.resolve("smoke", results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    run = {"name": "m", "params": 3, "epochs": 1, "train_seconds": 0.5, "test_top1": 0.4,
           "test_top5": 0.9, "flops": 12}
    path = results.write("99_test", cfg, cifar, [run], note="extra")
    record = results.read(path)
    assert record["notebook"] == "99_test" and record["data_source"] == "sample"
    assert record["profile"] == "smoke" and record["device"] == "cpu" and record["seed"] == 0
    assert record["runs"] == [run] and record["note"] == "extra"
    assert "bundled CIFAR-10 sample" in record["data_note"]


def test_incomplete_runs_and_percentages_are_refused(tmp_path):
    cfg = settings.resolve("smoke", results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    with pytest.raises(ValueError, match="lacks \\['test_top5'\\]"):
        results.write("x", cfg, cifar, [{"name": "m", "params": 1, "epochs": 1,
                                         "train_seconds": 1, "test_top1": 0.1}])
    with pytest.raises(ValueError, match="not a fraction"):
        results.write("x", cfg, cifar, [{"name": "m", "params": 1, "epochs": 1,
                                         "train_seconds": 1, "test_top1": 41.0,
                                         "test_top5": 0.9}])
