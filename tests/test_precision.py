"""Compute formats: applied to the model once, computing the same, and chosen from the hardware."""

import copy

import pytest
import torch
from torch import nn

from cifar_utils import models, precision, train

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
    with torch.no_grad():  # the model itself is left as it was: it computes the same, in fp32, by itself
        assert type(model) is models.SimpleCNN and torch.allclose(model(x), before, atol=1e-5)
        assert model(x).dtype == torch.float32


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


def test_fp16_training_scales_the_loss_and_skips_a_step_whose_gradients_overflow():
    """What Colab's T4 trains in: fp16 autocast with a GradScaler, here on the CPU."""
    torch.manual_seed(0)
    model = precision.prepare(nn.Linear(4, 3), precision.ComputeFormat(torch.float16, False), CPU)
    batch = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))]
    start = model.module.weight.detach().clone()
    scales = []

    class RecordScale(train.Callback):
        def on_batch_end(self, state):
            scales.append(state.scaler.get_scale())

    class Overflow(train.Callback):
        def on_loss(self, state):
            state.loss = state.loss * float("inf")

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train.fit(model, batch, batch, epochs=1, optimizer=optimizer, callbacks=[Overflow(), RecordScale()])
    assert torch.equal(model.module.weight, start)  # the step was skipped
    assert scales == [65536.0 / 2]  # and the scale halved
    train.fit(model, batch, batch, epochs=1, optimizer=optimizer, callbacks=[RecordScale()])
    assert not torch.equal(model.module.weight, start)  # a finite loss steps, as in fp32


def test_cuda_without_bf16_units_defaults_to_fp16_and_fp32_models_scale_nothing(monkeypatch):
    monkeypatch.setattr(precision, "_cuda_has_bf16_units", lambda: False)
    net = models.build("simple_cnn", 10)
    assert precision.default_format(net, torch.device("cuda")).name == "fp16,channels-last"
    assert precision.parse("fp16,channels-last", torch.device("cuda")).scales_the_loss
    with pytest.raises(ValueError, match="not a compute format for cpu"):
        precision.parse("fp16,channels-last", CPU)
    state = {}

    class Keep(train.Callback):
        def on_fit_start(self, s):
            state["scaler"] = s.scaler

    batch = [(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))]
    train.fit(precision.prepare(net, precision.PLAIN, CPU), batch, batch, epochs=1,
              optimizer=torch.optim.SGD(net.parameters(), lr=0.01), callbacks=[Keep()])
    assert not state["scaler"].is_enabled()  # a pass-through: the loss and the step as they are
    loss = torch.tensor(3.0)
    assert state["scaler"].scale(loss) is loss
