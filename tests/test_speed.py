"""Precision and memory layout: applied as asked, measured without side effects, chosen once."""

import copy
import dataclasses

import pytest
import torch

from cifar_utils import models, speed

CPU = torch.device("cpu")
FP32_LAST = speed.Setup(None, True)
FP32_FIRST = speed.PLAIN


def first_conv_input(model, x):
    """The tensor that reaches the model's first convolution."""
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model(x)
    handle.remove()
    return seen[0]


def test_apply_puts_weights_and_inputs_in_the_layout_and_computes_the_same():
    torch.manual_seed(0)
    model = models.build("simple_cnn", 10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        FP32_LAST.apply(model)
        conv = model.features[0]
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert first_conv_input(model, x).is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(model(x), before, atol=1e-5)


def test_apply_again_replaces_the_layout_instead_of_stacking_conversions():
    model = models.build("simple_cnn", 10).eval()
    FP32_LAST.apply(model)
    FP32_FIRST.apply(model)
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seen = first_conv_input(model, x)
    # channels-last input would make the convolutions channels-last: the hook must undo it
    assert seen.is_contiguous() and not seen.is_contiguous(memory_format=torch.channels_last)
    assert len(model._forward_pre_hooks) == 1


def test_a_copy_takes_another_layout_without_changing_the_original():
    model = FP32_LAST.apply(models.build("simple_cnn", 10).eval())
    twin = FP32_FIRST.apply(copy.deepcopy(model))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert first_conv_input(model, x).is_contiguous(memory_format=torch.channels_last)
        assert not first_conv_input(twin, x).is_contiguous(memory_format=torch.channels_last)


def test_candidates_offer_bf16_only_where_autocast_supports_it():
    assert len(speed.candidates(CPU)) == 4
    assert {s.amp_dtype for s in speed.candidates(torch.device("mps"))} == {None}
    assert speed.Setup(torch.bfloat16, True).name == "bf16, channels-last"


def test_measure_leaves_the_model_and_the_random_stream_untouched():
    torch.manual_seed(0)
    model = models.build("simple_cnn", 10)  # has dropout: the timed steps draw random numbers
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    torch.manual_seed(1)
    rates = speed.measure(model, batch, CPU, steps=1)
    after_measure = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(after_measure, torch.rand(3))
    assert set(rates) == set(speed.candidates(CPU)) and min(rates.values()) > 0
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert not model._forward_pre_hooks  # the copies got the layouts, not the model


def test_choose_takes_the_fastest_and_measures_an_architecture_once(monkeypatch):
    calls = []
    bf16_last = dataclasses.replace(FP32_LAST, amp_dtype=torch.bfloat16)
    fake_rates = {FP32_FIRST: 10.0, FP32_LAST: 30.0, bf16_last: 20.0}

    def fake_measure(model, batch, device):
        calls.append(model)
        return fake_rates

    monkeypatch.setattr(speed, "measure", fake_measure)
    monkeypatch.setattr(speed, "_chosen", {})
    monkeypatch.delenv(speed.SETUP_ENV, raising=False)
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    assert len(calls) == 1  # a second model of the same architecture trains the same way
    speed.choose(models.build("simple_cnn", 10), 16, CPU)
    speed.choose(models.Upsampled(models.build("simple_cnn", 10), 64), 8, CPU)
    assert len(calls) == 3  # another batch size, another architecture: measured anew


def test_a_pinned_setup_is_used_without_measuring_and_a_typo_is_named(monkeypatch):
    monkeypatch.setattr(speed, "measure", lambda *a: pytest.fail("a pinned setup needs no timing"))
    monkeypatch.setenv(speed.SETUP_ENV, "bf16, channels-last")
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == speed.Setup(torch.bfloat16, True)
    monkeypatch.setenv(speed.SETUP_ENV, "fp32,channels-last")
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    monkeypatch.setenv(speed.SETUP_ENV, "fp16,channels-last")
    with pytest.raises(ValueError, match="fp32,channels-first"):
        speed.choose(models.build("simple_cnn", 10), 8, CPU)
    monkeypatch.setenv(speed.SETUP_ENV, "bf16,channels-last")
    with pytest.raises(ValueError, match="not a setup for mps"):
        speed.choose(models.build("simple_cnn", 10), 8, torch.device("mps"))


def test_choosing_draws_nothing_from_the_global_random_stream(monkeypatch):
    monkeypatch.delenv(speed.SETUP_ENV, raising=False)
    torch.manual_seed(3)
    speed.choose(models.build("logistic_regression", 10), 4, CPU)
    drawn = torch.rand(2)
    torch.manual_seed(3)
    models.build("logistic_regression", 10)
    assert torch.equal(drawn, torch.rand(2))


def test_throughput_counts_only_the_timed_steps():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    batches = [(torch.randn(5, 3, 2, 2), torch.randint(0, 3, (5,)))] * 10
    seen = []

    class Counting(list):
        def __iter__(self):
            for b in batches:
                seen.append(1)
                yield b
    rate = speed.throughput(model, Counting(), steps=4, device=CPU, warmup=2)
    assert rate > 0 and len(seen) == 6  # 2 warm-up + 4 timed, nothing more drawn
