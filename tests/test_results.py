"""The results JSON of COURSE.md: written from a Run, read back, collected, and refused when incomplete."""

import pytest
import torch

from cifar_utils import data, models, recipe, results, settings

HISTORY = [{"epoch": 1, "train_loss": 2.0, "train_top1": 0.2, "val_loss": 1.9, "val_top1": 0.25,
            "seconds": 1.25}, {"epoch": 2, "train_loss": 1.5, "train_top1": 0.4, "val_loss": 1.6,
                               "val_top1": 0.38, "seconds": 1.0}]


def a_run():
    model = models.build("logistic_regression", 10)
    return recipe.Run("linear", model, HISTORY, {"loss": 1.6, "top1": 0.375, "top5": 0.8},
                      device=torch.device("cpu"), train_images=4500)


def test_a_run_becomes_a_record_with_its_budget_and_round_trips(tmp_path):
    cfg = settings.resolve(profile="smoke", results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    record = results.run_record(a_run(), flops=12)
    assert {k: record[k] for k in results.RUN_KEYS} == {
        "name": "linear", "params": 3072 * 10 + 10, "epochs": 2, "train_images": 4500,
        "train_seconds": 2.25, "test_top1": 0.375, "test_top5": 0.8}
    assert record["flops"] == 12 and record["compute_format"] == "fp32,channels-first"
    assert [h["val_top1"] for h in record["history"]] == [0.25, 0.38]
    path = results.write("99_test", cfg, cifar, [record], note="extra")
    back = results.read(path)
    assert back["notebook"] == "99_test" and back["data_source"] == "sample"
    assert back["profile"] == "smoke" and back["device"] == "cpu" and back["seed"] == 0
    assert back["runs"] == [record] and back["note"] == "extra"
    assert "bundled CIFAR-10 sample" in back["data_note"]
    assert results.collect(tmp_path, "cifar10", "smoke") == [{**record, "notebook": "99"}]
    assert results.collect(tmp_path, "cifar10", "laptop") == []


def test_incomplete_runs_and_percentages_are_refused(tmp_path):
    cfg = settings.resolve(profile="smoke", results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    good = {"name": "m", "params": 1, "epochs": 1, "train_images": 10, "train_seconds": 1,
            "test_top1": 0.1, "test_top5": 0.9}
    with pytest.raises(ValueError, match="lacks \\['test_top5'\\]"):
        results.write("x", cfg, cifar, [{k: v for k, v in good.items() if k != "test_top5"}])
    with pytest.raises(ValueError, match="not a fraction"):
        results.write("x", cfg, cifar, [{**good, "test_top1": 41.0}])


def test_the_table_formats_fractions_as_percentages():
    html = results.table([results.run_record(a_run())], ["train_images", "test_top1"]).to_html()
    assert "37.5%" in html and "4,500" in html
