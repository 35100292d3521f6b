"""Timing the formats: measured without side effects, opted into, pinned, or left to the default."""

import dataclasses
import time

import pytest
import torch

from cifar_utils import models, precision, settings, speed

CPU = torch.device("cpu")
FP32_FIRST, FP32_LAST = precision.PLAIN, precision.ComputeFormat(None, True)


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
    assert set(rates) == set(precision.candidates(CPU)) and min(rates.values()) > 0
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert model.features[0].weight.is_contiguous()  # the copies got the layouts, not the model


def test_without_the_variable_the_format_is_the_hardwares_default_and_nothing_is_timed(monkeypatch):
    monkeypatch.delenv(settings.FORMAT_ENV, raising=False)
    monkeypatch.setattr(speed, "measure", lambda *a, **k: pytest.fail("the default needs no timing"))
    model = models.build("simple_cnn", 10)
    assert speed.choose(model, 8, CPU) == precision.default_format(model, CPU)


def test_measure_is_an_opt_in_that_takes_the_fastest_once_per_architecture(monkeypatch):
    calls = []
    bf16_last = dataclasses.replace(FP32_LAST, amp_dtype=torch.bfloat16)

    def fake_measure(model, batch, device):
        calls.append(model)
        return {FP32_FIRST: 10.0, FP32_LAST: 30.0, bf16_last: 20.0}

    monkeypatch.setattr(speed, "measure", fake_measure)
    monkeypatch.setattr(speed, "_fastest", {})
    monkeypatch.setenv(settings.FORMAT_ENV, "measure")
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    assert len(calls) == 1  # a second model of the same architecture trains the same way
    speed.choose(models.build("simple_cnn", 10), 16, CPU)
    speed.choose(models.Upsampled(models.build("simple_cnn", 10), 64), 8, CPU)
    assert len(calls) == 3  # another batch size, another architecture: measured anew


def test_a_pinned_format_is_used_and_a_typo_is_named(monkeypatch):
    monkeypatch.setattr(speed, "measure", lambda *a, **k: pytest.fail("a pin needs no timing"))
    monkeypatch.setenv(settings.FORMAT_ENV, "bf16, channels-last")
    assert speed.choose(models.build("simple_cnn", 10), 8, CPU) == precision.ComputeFormat(torch.bfloat16, True)
    monkeypatch.setenv(settings.FORMAT_ENV, "fp16,channels-last")
    with pytest.raises(ValueError, match=r"\$CIFAR_COURSE_FORMAT: 'fp16,channels-last' is not a "
                                         r"compute format for cpu.*'measure'"):
        speed.choose(models.build("simple_cnn", 10), 8, CPU)


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


def test_compare_feeds_trains_a_fresh_model_per_feed_in_its_format():
    built = []

    def build():
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
        built.append(model)
        return model

    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 2, (4,)))
    feeds = {"plain": (FP32_FIRST, lambda: speed.repeat(batch)),
             "last": (FP32_LAST, lambda: speed.repeat(batch))}
    rates = speed.compare_feeds(build, feeds, CPU, steps=2, rounds=2)
    assert set(rates) == {"plain", "last"} and min(rates.values()) > 0
    assert len(built) == 4  # two feeds, two rounds
    seen_formats = [m[0].weight.is_contiguous(memory_format=torch.channels_last) for m in built]
    assert seen_formats == [False, True, False, True]


def test_throughput_stops_timing_after_max_seconds():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    batch = (torch.randn(5, 3, 2, 2), torch.randint(0, 3, (5,)))
    seen = []

    def slow_batches():  # each batch takes 50 ms to arrive: 1,000 steps would take 50 s
        for b in speed.repeat(batch):
            time.sleep(0.05)
            seen.append(1)
            yield b
    start = time.perf_counter()
    rate = speed.throughput(model, slow_batches(), steps=1000, device=CPU, warmup=1, max_seconds=0.2)
    assert time.perf_counter() - start < 2 and 3 <= len(seen) <= 10
    assert rate == pytest.approx(5 / 0.05, rel=0.5)  # still images per second of the timed steps
