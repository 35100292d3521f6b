"""The benchmark's quick mode, as CI runs it, and its JSON."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from cifar_utils import bench, data


def test_quick_benchmark_writes_its_table_as_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--steps", "3", "--repeats", "1", "--workers", "0",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device_type"] in ("cpu", "cuda", "mps") and report["data_source"] == "sample"
    assert set(report["models"]) == {"logistic_regression", "simple_cnn"}
    for r in report["models"].values():
        assert min(r["tutorial"], r["course"], r["ceiling"]) > 0
        assert r["course_over_ceiling"] == pytest.approx(r["course"] / r["ceiling"])
        assert r["course_over_tutorial"] == pytest.approx(r["course"] / r["tutorial"])
        assert len(r["setups"]) == (4 if report["device_type"] != "mps" else 2)
        assert r["setups"][r["setup"]] == max(r["setups"].values())  # the course trains in the fastest
    assert "course/ceiling" in capsys.readouterr().out


def test_time_to_accuracy_reports_the_fastest_budget_that_reached_the_target():
    sample = data.load("cifar10", "sample")
    small = dataclasses.replace(sample, train=sample.train.take(np.arange(0, 5000, 20)),
                                test=sample.test.take(np.arange(0, 1000, 10)))  # 250 / 100
    result = bench.time_to_accuracy(small, torch.device("cpu"), target=0.0, budgets=[2, 1],
                                    batch_size=64)
    assert [r["epoch_budget"] for r in result["runs"]] == [1, 2]
    assert all(r["reached"] and r["epochs_run"] == 1 for r in result["runs"])  # 0% is met at once
    assert result["seconds_to_target"] == min(r["seconds_to_target"] for r in result["runs"])
    unreachable = bench.time_to_accuracy(small, torch.device("cpu"), target=1.01, budgets=[1],
                                         batch_size=64)
    assert not unreachable["reached"] and unreachable["seconds_to_target"] is None
    assert unreachable["runs"][0]["epochs_run"] == 1
