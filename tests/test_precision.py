"""Compute formats: applied to the model once, computing the same, and chosen from the hardware."""

import copy

import pytest
import torch

from cifar_utils import models, precision

CPU = torch.device("cpu")
BF16_LAST = precision.ComputeFormat(torch.bfloat16, True)
FP32_LAST = precision.ComputeFormat(None, True)


def first_conv_input(model, x):
    """The tensor that reaches the model's first convolution."""
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model(x)
    handle.remove()
    return seen[0]


def test_a_prepared_model_puts_weights_and_inputs_in_its_layout_and_computes_the_same():
    torch.manual_seed(0)
    model = models.build("simple_cnn", 10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        prepared = precision.prepare(model, FP32_LAST, CPU)
        assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert first_conv_input(prepared, x).is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(prepared(x), before, atol=1e-5)
    assert not model._forward_pre_hooks and not hasattr(model, "compute_format")  # nothing attached


def test_bf16_runs_the_convolutions_in_bf16_and_hands_back_fp32_logits():
    model = models.build("simple_cnn", 10).eval()
    prepared = precision.prepare(model, BF16_LAST, CPU)
    seen = []
    model.features[0].register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    with torch.no_grad():
        out = prepared(torch.randn(2, 3, 32, 32))
    assert seen == [torch.bfloat16] and out.dtype == torch.float32


def test_preparing_again_replaces_the_format_instead_of_stacking_wrappers():
    model = models.build("simple_cnn", 10).eval()
    twice = precision.prepare(precision.prepare(model, FP32_LAST, CPU), precision.PLAIN, CPU)
    assert twice.module is model and twice.compute_format == precision.PLAIN
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():  # a channels-last input would make the convolutions channels-last
        seen = first_conv_input(twice, x)
    assert seen.is_contiguous() and not seen.is_contiguous(memory_format=torch.channels_last)


def test_a_copy_takes_another_format_without_changing_the_original():
    original = precision.prepare(models.build("simple_cnn", 10).eval(), FP32_LAST, CPU)
    twin = precision.prepare(copy.deepcopy(precision.unwrap(original)), precision.PLAIN, CPU)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert first_conv_input(original, x).is_contiguous(memory_format=torch.channels_last)
        assert not first_conv_input(twin, x).is_contiguous(memory_format=torch.channels_last)


def test_candidates_offer_bf16_only_where_autocast_supports_it_and_names_parse():
    assert len(precision.candidates(CPU)) == 4
    assert {f.amp_dtype for f in precision.candidates(torch.device("mps"))} == {None}
    assert precision.parse("bf16, channels-last", CPU) == BF16_LAST
    with pytest.raises(ValueError, match="not a compute format for mps"):
        precision.parse("bf16,channels-last", torch.device("mps"))
    with pytest.raises(ValueError, match="fp32,channels-first"):
        precision.parse("fp16,channels-last", CPU)


@pytest.mark.parametrize("bf16_units", [True, False])
def test_the_default_follows_the_hardware_and_the_measured_exceptions(monkeypatch, bf16_units):
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: bf16_units)
    bf16 = torch.bfloat16 if bf16_units else None
    default = {name: precision.default_format(models.build(name, 10), CPU)
               for name in ("logistic_regression", "simple_cnn", "resnet18_cifar", "mobilenet_v2")}
    assert default == {
        "logistic_regression": precision.ComputeFormat(bf16, False),  # no convolution: no layout
        "simple_cnn": precision.ComputeFormat(bf16, True),
        "resnet18_cifar": precision.ComputeFormat(bf16, True),
        "mobilenet_v2": FP32_LAST,  # depthwise convolutions measured slower in bf16 on a CPU
    }
    assert precision.default_format(models.build("simple_cnn", 10), torch.device("mps")) == FP32_LAST


def test_the_cpu_check_reads_the_bf16_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision.sys, "platform", "linux")
    cpuinfo.write_text("flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert precision.cpu_has_bf16_units(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert not precision.cpu_has_bf16_units(cpuinfo)
    assert not precision.cpu_has_bf16_units(tmp_path / "missing")
