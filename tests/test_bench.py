"""The benchmark's quick mode, as CI runs it, and its JSON."""

import json

import pytest
import torch

from cifar_utils import bench


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
    assert "course/ceiling" in capsys.readouterr().out


def test_throughput_counts_only_the_timed_steps():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    batches = [(torch.randn(5, 3, 2, 2), torch.randint(0, 3, (5,)))] * 10
    seen = []

    class Counting(list):
        def __iter__(self):
            for b in batches:
                seen.append(1)
                yield b
    rate = bench.throughput(model, Counting(), steps=4, device=torch.device("cpu"), warmup=2)
    assert rate > 0 and len(seen) == 6  # 2 warm-up + 4 timed, nothing more drawn
