"""The benchmark: each path fed and formatted as it claims, its quick mode as CI runs it, time to accuracy."""

import dataclasses
import itertools
import json

import numpy as np
import torch

from cifar_course import bench
from cifar_course.__main__ import main as course_main
from cifar_utils import cost, data, precision, settings

CPU = torch.device("cpu")


def test_each_path_gets_its_input_and_format(monkeypatch):
    fastest = precision.ComputeFormat(None, True)
    monkeypatch.setattr(cost, "measure", lambda *a, **k: {precision.PLAIN: 1.0, fastest: 2.0})
    seen = {}

    def fake_compare(build, feeds, device, steps, rounds):
        for name, (compute_format, batches) in feeds.items():
            first, second = itertools.islice(batches(), 2)
            seen[name] = (compute_format, first, second)
        return {"tutorial": 100.0, "course": 400.0, "ceiling": 500.0}

    monkeypatch.setattr(cost, "compare_feeds", fake_compare)
    sample = data.load("cifar10", "sample").train.take(np.arange(256))
    result = bench.compare_paths("simple_cnn", sample, CPU, 64, steps=2, workers=0)
    assert seen["tutorial"][0] == precision.PLAIN and seen["course"][0] == seen["ceiling"][0] == fastest
    ceiling_a, ceiling_b = seen["ceiling"][1:]
    assert torch.equal(ceiling_a[0], ceiling_b[0])  # the ceiling trains on one batch in place
    course_a, course_b = seen["course"][1:]
    assert not torch.equal(course_a[0], course_b[0])  # the course path moves through the data
    assert isinstance(seen["tutorial"][1][0], torch.Tensor) and seen["tutorial"][1][0].shape == (64, 3, 32, 32)
    assert result["compute_format"] == "fp32,channels-last" and result["formats"]["fp32,channels-first"] == 1.0
    assert (result["course_over_ceiling"], result["course_over_tutorial"]) == (0.8, 4.0)


def test_quick_benchmark_writes_its_table_as_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert course_main(["bench", "--quick", "--steps", "3", "--repeats", "1", "--workers", "0",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device_type"] in ("cpu", "cuda", "mps") and report["data_source"] == "sample"
    assert set(report["models"]) == {"logistic_regression", "simple_cnn"}
    for r in report["models"].values():
        assert min(r["tutorial"], r["course"], r["ceiling"]) > 0
        assert len(r["formats"]) == (4 if report["device_type"] != "mps" else 2)
    assert "course/ceiling" in capsys.readouterr().out


def test_time_to_accuracy_reports_the_fastest_budget_that_reached_the_target():
    sample = data.load("cifar10", "sample")
    small = dataclasses.replace(sample, train=sample.train.take(np.arange(0, 5000, 40)),
                                test=sample.test.take(np.arange(0, 1000, 20)))  # 125 / 50 images
    cfg = settings.resolve(device="cpu", progress="off")
    result = bench.time_to_accuracy(small, cfg, target=0.0, budgets=[2, 1], batch_size=64)
    assert [r["epoch_budget"] for r in result["runs"]] == [1, 2]
    assert all(r["reached"] and r["epochs_run"] == 1 for r in result["runs"])  # 0% is met at once
    assert result["seconds_to_target"] == min(r["seconds_to_target"] for r in result["runs"])
    unreachable = bench.time_to_accuracy(small, cfg, target=1.01, budgets=[1], batch_size=64)
    assert not unreachable["reached"] and unreachable["seconds_to_target"] is None
    assert unreachable["runs"][0]["epochs_run"] == 1
