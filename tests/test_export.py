"""ONNX export checked in ONNX Runtime against PyTorch, and the message when it cannot run."""

import importlib.util

import numpy as np
import pytest
import torch

from cifar_utils import cost, export, models, precision

pytestmark = pytest.mark.skipif(export.missing() is not None, reason=str(export.missing()))


def test_a_prepared_model_exports_as_fp32_and_agrees_with_pytorch(tmp_path):
    model = models.build("resnet18_cifar", 10, seed=0)
    prepared = precision.prepare(model, precision.ComputeFormat(torch.bfloat16, True), torch.device("cpu"))
    path = export.to_onnx(prepared, tmp_path / "deep" / "resnet.onnx")
    session = export.session(path)
    images = torch.randn(5, 3, 32, 32)  # a batch size the export never saw
    assert export.run(session, images).shape == (5, 10)
    difference = export.largest_difference(prepared, session, images)
    assert difference < 1e-3
    with torch.no_grad():  # the check compares with fp32, not with the bf16 the model trains in
        bf16 = prepared.eval()(images).float().numpy()
    assert np.abs(export.run(session, images) - bf16).max() > difference


@pytest.mark.slow  # seconds: an export at 64 px, then timed
def test_an_upsampling_model_exports_and_times(tmp_path):
    model = models.Upsampled(models.build("mobilenet_v3_small", 10, seed=0), 64).eval()
    session = export.session(export.to_onnx(model, tmp_path / "m.onnx"))
    assert export.largest_difference(model, session, torch.randn(3, 3, 32, 32)) < 1e-3
    assert 0 < export.latency_ms(session, runs=3, warmup=1) < 1000


def test_missing_packages_are_named_with_the_command_that_installs_them(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    message = export.missing()
    assert "onnxruntime not installed" in message and "pip install onnxruntime" in message


def test_an_export_is_checked_against_pytorch_timed_and_weighed(tmp_path):
    model = models.build("simple_cnn", 10, seed=0).eval()
    measured = export.to_onnx_checked(model, tmp_path / "cnn.onnx", torch.randn(4, 3, 32, 32), runs=3)
    assert measured["onnx_max_abs_diff"] < 1e-4 and measured["onnx_latency_ms"] > 0
    assert measured["onnx_mb"] == pytest.approx((tmp_path / "cnn.onnx").stat().st_size / 1e6, abs=0.01)
    assert measured["onnx_mb"] == pytest.approx(cost.count_parameters(model) * 4 / 1e6, rel=0.05)  # fp32 weights
