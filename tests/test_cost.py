"""What a model costs: training throughput, and the compute formats timed without side effects,
opted into, pinned, or left to the default."""

import dataclasses
import time

import pytest
import torch
from torch import nn

from cifar_utils import cost, models, precision

CPU = torch.device("cpu")
FP32_FIRST, FP32_LAST = precision.PLAIN, precision.ComputeFormat(None, True)


def test_measure_leaves_the_model_and_the_random_stream_untouched():
    torch.manual_seed(0)
    model = models.build("simple_cnn", 10)  # has dropout: the timed steps draw random numbers
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    torch.manual_seed(1)
    rates = cost.measure(model, batch, CPU, steps=1)
    after_measure = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(after_measure, torch.rand(3))
    assert set(rates) == set(precision.candidates(CPU)) and min(rates.values()) > 0
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert model.features[0].weight.is_contiguous()  # the copies got the layouts, not the model


def test_without_a_request_the_format_is_the_hardwares_default_and_nothing_is_timed(monkeypatch):
    monkeypatch.setattr(cost, "measure", lambda *a, **k: pytest.fail("the default needs no timing"))
    model = models.build("simple_cnn", 10)
    assert cost.choose("", model, 8, CPU) == precision.default_format(model, CPU)


def test_measure_is_an_opt_in_that_takes_the_fastest_once_per_architecture(monkeypatch):
    calls = []
    bf16_last = dataclasses.replace(FP32_LAST, amp_dtype=torch.bfloat16)

    def fake_measure(model, batch, device):
        calls.append(model)
        return {FP32_FIRST: 10.0, FP32_LAST: 30.0, bf16_last: 20.0}

    monkeypatch.setattr(cost, "measure", fake_measure)
    monkeypatch.setattr(cost, "_FASTEST", {})  # a fresh process: a notebook's kernel
    assert cost.choose("measure", models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    assert cost.choose("measure", models.build("simple_cnn", 10), 8, CPU) == FP32_LAST
    assert len(calls) == 1  # a second model of the same architecture trains the same way
    cost.choose("measure", models.build("simple_cnn", 10), 16, CPU)
    cost.choose("measure", models.Upsampled(models.build("simple_cnn", 10), 64), 8, CPU)
    assert len(calls) == 3  # another batch size, another architecture: measured anew


def test_a_pinned_format_is_used_and_a_typo_is_named(monkeypatch):
    monkeypatch.setattr(cost, "measure", lambda *a, **k: pytest.fail("a pin needs no timing"))
    net = models.build("simple_cnn", 10)
    assert cost.choose("bf16, channels-last", net, 8, CPU) == precision.ComputeFormat(torch.bfloat16, True)
    with pytest.raises(ValueError, match=r"'fp16,channels-last' is not a compute format for cpu.*'measure'"):
        cost.choose("fp16,channels-last", net, 8, CPU)


def test_throughput_counts_only_the_timed_steps():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    batches = [(torch.randn(5, 3, 2, 2), torch.randint(0, 3, (5,)))] * 10
    seen = []

    class Counting(list):
        def __iter__(self):
            for b in batches:
                seen.append(1)
                yield b
    rate = cost.throughput(model, Counting(), steps=4, warmup=2)
    assert rate > 0 and len(seen) == 6  # 2 warm-up + 4 timed, nothing more drawn


def test_compare_feeds_trains_a_fresh_model_per_feed_in_its_format():
    built = []

    def build():
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
        built.append(model)
        return model

    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 2, (4,)))
    feeds = {"plain": (FP32_FIRST, lambda: cost.repeat(batch)),
             "last": (FP32_LAST, lambda: cost.repeat(batch))}
    rates = cost.compare_feeds(build, feeds, CPU, steps=2, rounds=2)
    assert set(rates) == {"plain", "last"} and min(rates.values()) > 0
    assert len(built) == 4  # two feeds, two rounds
    seen_formats = [m[0].weight.is_contiguous(memory_format=torch.channels_last) for m in built]
    assert seen_formats == [False, True, False, True]


def test_throughput_stops_timing_after_max_seconds():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    batch = (torch.randn(5, 3, 2, 2), torch.randint(0, 3, (5,)))
    seen = []

    def slow_batches():  # each batch takes 50 ms to arrive: 1,000 steps would take 50 s
        for b in cost.repeat(batch):
            time.sleep(0.05)
            seen.append(1)
            yield b
    rate = cost.throughput(model, slow_batches(), steps=1000, warmup=1, max_seconds=0.2)
    assert 3 <= len(seen) <= 6  # the warm-up, then the steps until the first past 0.2 s: however busy the machine
    # images per second of the timed steps, which the sleep holds down (the first timed batch arrived before the clock)
    assert 0 < rate <= 5 / 0.05 * len(seen) / (len(seen) - 2)


def test_throughput_takes_the_loops_step_with_the_models_loss_scaler():
    """fp16 is timed on the step that trains in it: scaled, and skipped when the gradients overflow."""
    model = precision.prepare(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)),
                              precision.ComputeFormat(torch.float16, False), CPU)
    before = model.loss_scaler.get_scale()
    batch = (torch.full((5, 3, 2, 2), 1e30), torch.randint(0, 3, (5,)))  # overflows in fp16
    cost.throughput(model, cost.repeat(batch), steps=2, warmup=1)
    assert model.loss_scaler.get_scale() < before  # the scaler saw the overflow and lowered its scale


def test_deployment_costs_count_by_hand_and_leave_gpu_throughput_to_a_gpu():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    costs = cost.deployment_costs(net, torch.device("cpu"), latency_runs=3)
    assert costs["flops"] == 2 * 3 * 8 * 9 * 32 * 32 + 2 * 8 * 10  # the convolution's and the layer's multiply-adds
    assert 314 * 4 / 1e6 < costs["size_mb"] < 0.01  # 314 fp32 parameters and the file's bookkeeping
    assert costs["cpu_latency_ms"] > 0 and costs["gpu_images_per_s"] is None


class Sleeper(nn.Module):
    """A network whose every forward pass takes at least 20 ms, whatever the batch."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        time.sleep(0.02)
        return self.linear(x.mean(dim=(2, 3)))


def test_inference_throughput_is_the_batch_over_the_time_of_a_pass():
    rate = cost.inference_throughput(Sleeper(), torch.device("cpu"), batch_size=8, steps=5)
    assert 100 < rate <= 8 / 0.02  # 8 images a pass of at least 20 ms: at most 400 a second, and not far below
