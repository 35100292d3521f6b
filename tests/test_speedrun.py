"""The speedrun's ideas, each by its mechanism: whitening whitens, only BatchNorm biases train,
Lookahead's slow weights move by its rule, test-time augmentation averages the views it names,
the alternating flip alternates; and the whole recipe learns real images."""

import dataclasses
import json
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cifar_utils import callbacks, data, loaders, metrics, models, settings, speedrun, train
from cifar_utils.tensor_loader import ALTERNATING, Augment, TensorLoader

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample_split():
    return data.split(data.load("cifar10", "sample"), 0.1, seed=0, train_size=1000, test_size=200)


def normalised(split, n=500):
    mean, std = data.channel_stats(split.train.images)
    return loaders.normalise(split.train.images[:n], mean, std)


def test_whitening_whitens_the_patches_it_was_fitted_to(sample_split):
    images = normalised(sample_split)
    layer = models.Whitening()
    layer.fit(images, eps=1e-7)
    out = F.conv2d(images, layer.weight[:12])  # the first half: one output per eigenvector
    pixels = out.permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = pixels.T @ pixels / len(pixels)
    assert torch.allclose(covariance, torch.eye(12), atol=1e-2)  # float32 sums over 450,000 patches
    assert torch.equal(layer.weight[12:], -layer.weight[:12])  # and their negatives, for GELU
    before = models.patch_covariance(images, 2)
    assert before[0, 3].abs() > 0.5  # neighbouring pixels of a real image: strongly correlated


def test_whitening_damps_the_noise_directions_with_eps(sample_split):
    images = normalised(sample_split)
    layer = models.Whitening()
    layer.fit(images)  # eps 5e-4: a direction of variance v comes out with v / (v + eps)
    pixels = F.conv2d(images, layer.weight[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = pixels.T @ pixels / len(pixels)
    eigenvalues = torch.linalg.eigvalsh(models.patch_covariance(images, 2))
    expected = (eigenvalues / (eigenvalues + 5e-4)).flip(0)  # the layer's filters, largest first
    assert torch.allclose(covariance.diagonal().sort(descending=True).values, expected, atol=2e-3)
    assert (covariance - covariance.diagonal().diag()).abs().max() < 2e-3


def test_only_the_batchnorm_biases_train_besides_the_convolutions(sample_split):
    setup = speedrun.FINAL
    model = setup.build(10, seed=0)
    batches = loaders.make_loaders(sample_split, 64, CPU, augment=ALTERNATING)
    speedrun.fit_whitening(model, batches)
    groups = speedrun.param_groups(model, setup, 64)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [id(p) for p in groups[1]["params"]] == [id(m.bias) for m in norms]
    assert groups[1]["lr"] == pytest.approx(64 * groups[0]["lr"])  # the biases' rate: 64 times
    assert groups[1]["lr"] * groups[1]["weight_decay"] == pytest.approx(groups[0]["lr"] * groups[0]["weight_decay"])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(groups, momentum=0.85, nesterov=True)
    x, y = next(iter(batches.train))
    train.step(F.cross_entropy(model(x), y), optimizer, torch.amp.GradScaler("cpu", enabled=False))
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    norm_weights = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert not {f"{n}.weight" for n in norm_weights} & moved  # the scales stay at 1
    assert {f"{n}.bias" for n in norm_weights} <= moved
    assert "first.weight" not in moved and "first.bias" in moved  # whitening frozen, its bias trains
    assert "head.weight" in moved


def test_the_whitening_bias_stops_training_after_its_epochs():
    bias = nn.Parameter(torch.zeros(3))
    freeze = callbacks.FreezeAfter([bias], epochs=2)
    seen = []
    for epoch in (1, 2, 3, 4):
        freeze.on_epoch_start(dataclasses.replace(train.FitState(None, None, 4, 1, CPU), epoch=epoch))
        seen.append(bias.requires_grad)
    assert seen == [True, True, False, False]


def test_lookahead_moves_the_slow_weights_as_its_rule_says():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    look = callbacks.Lookahead(every=2, decay=lambda progress: 0.5)
    state = train.FitState(model, optimizer, epochs=1, steps_per_epoch=6, device=CPU)
    look.on_fit_start(state)
    slow = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 5):
        loss = model(torch.randn(8, 4)).square().mean()
        train.step(loss, optimizer, torch.amp.GradScaler("cpu", enabled=False))
        state.step = step
        fast = [p.detach().clone() for p in model.parameters()]
        look.on_batch_end(state)
        if step % 2:  # between updates the fast weights go their own way
            assert all(torch.equal(p, f) for p, f in zip(model.parameters(), fast))
        else:  # slow <- slow + (1 - 0.5) (fast - slow), and the fast weights restart from it
            slow = [s + 0.5 * (f - s) for s, f in zip(slow, fast)]
            assert all(torch.allclose(p, s) for p, s in zip(model.parameters(), slow))


def test_lookahead_ends_on_the_slow_weights():
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    look = callbacks.Lookahead(every=5)
    state = train.FitState(model, optimizer, epochs=1, steps_per_epoch=3, device=CPU)
    look.on_fit_start(state)
    start = [p.detach().clone() for p in model.parameters()]
    for step in (1, 2, 3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # the optimizer's steps, by hand
        state.step = step
        look.on_batch_end(state)
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), start))  # no update came before the end


def test_airbench_decay_is_small_early_and_large_late():
    assert callbacks.airbench_decay(0.0) == 0.0
    assert callbacks.airbench_decay(1.0) == pytest.approx(0.95 ** 5)


def test_tta_averages_the_views_it_names():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 5))
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :32, :32], padded[..., 2:, 2:]
    by_hand = (0.25 * model(x) + 0.25 * model(x.flip(3)) + 0.125 * model(up_left) + 0.125 * model(up_left.flip(3))
               + 0.125 * model(down_right) + 0.125 * model(down_right.flip(3)))
    assert torch.allclose(metrics.logits_of(model, x, views=metrics.MULTI_CROP), by_hand, atol=1e-6)
    assert torch.allclose(metrics.logits_of(model, x, views={"mirror": 1.0}), model(x.flip(3)))
    assert torch.allclose(metrics.logits_of(model, x, flip_tta=True), (model(x) + model(x.flip(3))) / 2)
    assert up_left[0, 0, 1, 1] == x[0, 0, 0, 0]  # "up-left" moves the content one pixel down and right
    with pytest.raises(ValueError, match="Unknown view 'mirrorr'"):
        metrics.view(x, "mirrorr")


def test_the_alternating_flip_shows_each_image_both_ways_in_two_passes():
    images = np.zeros((6, 32, 32, 3), np.uint8)
    images[:, :, :16] = 255  # the left half white: a mirror image has it on the right
    loader = TensorLoader(data.ImageSet(images, np.arange(6)), 6, (0.5,) * 3, (0.5,) * 3, shuffle=False,
                          augment=Augment(padding=0, flip="alternate"))
    torch.manual_seed(0)
    passes = [next(iter(loader))[0][:, 0, 0, 0] > 0 for _ in range(4)]  # True: not mirrored
    assert all(torch.equal(passes[k], ~passes[k + 1]) for k in range(3))
    assert 0 < int(passes[0].sum()) < 6  # the first pass's flips are drawn at random


def test_reflected_translation_leaves_no_black_band():
    images = np.full((20, 32, 32, 3), 200, np.uint8)
    loader = TensorLoader(data.ImageSet(images, np.zeros(20, np.int64)), 20, (0,) * 3, (1 / 255,) * 3,
                          shuffle=True, augment=ALTERNATING)
    torch.manual_seed(0)
    x, _ = next(iter(loader))
    assert torch.all(x == 200)  # zero padding would have shifted black into some images


def test_torchvision_pipeline_refuses_an_augmentation_it_cannot_do(sample_split):
    with pytest.raises(ValueError, match="needs pipeline='tensor'"):
        loaders.make_loaders(sample_split, 64, CPU, pipeline="torchvision", augment=ALTERNATING)


def test_decoupled_rates_keep_the_step_and_the_shrinking_per_image():
    hyper = speedrun.Decoupled()
    assert hyper.rate(1024) == pytest.approx(11.5 / (1 + 1 / 0.15))  # airbench's rate for a mean loss
    assert hyper.rate(512) == pytest.approx(hyper.rate(1024) / 2)
    # the weights shrink by the same amount per image at any batch size
    assert hyper.rate(512) * hyper.sgd_weight_decay() * 2 == pytest.approx(hyper.rate(1024) * hyper.sgd_weight_decay())


def test_the_speedrun_learns_real_images(sample_split):
    cfg = settings.resolve(profile="smoke", data_dir="sample", progress="off", compute_format="fp32,channels-first")
    setup = dataclasses.replace(speedrun.FINAL, batch_size=64, widths=(32, 64, 64))  # 14 steps an epoch
    model, batches = speedrun.prepared(setup, sample_split, 10, cfg, seed=0)
    run = speedrun.train("speedrun", setup, model, batches, cfg, seed=0, epochs=4)
    assert run.test["top1"] > 0.25  # chance: 0.1; 900 images, 4 epochs
    tta = run.score_with_views(batches.test, metrics.MULTI_CROP)
    assert tta["top1"] > 0.25


def test_a_misspelt_augmentation_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="Unknown flip 'alternating': choose one of random, alternate"):
        Augment(flip="alternating")
    with pytest.raises(ValueError, match="Unknown pad_mode 'mirror'"):
        Augment(pad_mode="mirror")


def test_the_graded_network_carries_the_views_inside():
    from cifar_utils import challenge

    torch.manual_seed(0)
    model = models.build("speedrun_net", 10, seed=0, widths=(8, 16, 16)).eval()
    images = torch.randint(0, 256, (challenge.EXPORT_BATCH, 32, 32, 3), dtype=torch.uint8)
    mean, std = (0.5,) * 3, (0.25,) * 3
    program = challenge.export_graded(model, mean, std, views=metrics.MULTI_CROP)
    x = (images.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        expected = metrics.logits_of(model, x, views=metrics.MULTI_CROP).softmax(1)
        assert torch.allclose(program.module()(images), expected, atol=1e-5)


def test_the_bar_09_cites_is_the_speedruns_own_run_or_says_there_is_none(tmp_path):
    cfg = settings.resolve(profile="smoke", data_dir="sample", results_dir=str(tmp_path))
    assert speedrun.bar(cfg).startswith("No speedrun has been run for cifar10 in the smoke profile here yet")
    run = {"name": "speedrun", "params": 1, "epochs": 10, "train_images": 48000, "train_seconds": 420.0,
           "test_top1": 0.9012, "test_top5": 0.99, "test_top1_std": 0.002, "seeds": 3,
           "run_seconds_per_seed": [500.1, 480.0, 479.5], "budget_seconds": 600.0}
    (tmp_path / "10_speedrun.json").write_text(json.dumps({
        "notebook": "10_speedrun", "dataset": "cifar10", "data_source": "sample", "profile": "smoke",
        "device": "cpu", "seed": 0, "runs": [run]}))
    assert speedrun.bar(cfg) == ("The bar to beat, notebook 10's speedrun (your run of notebook 10 in "
                                 f"{tmp_path / '10_speedrun.json'}): test top-1 90.1% ± 0.2% over 3 seeds, each whole "
                                 "run 480 to 500 s of the 600 s budget.")


class Clock:
    """A stand-in for time.perf_counter: a millisecond passes at each reading."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


class Slow:
    """A validation loader whose every pass takes 100 s of the clock."""

    def __init__(self, batches, clock: Clock):
        self.batches, self.clock = list(batches), clock

    def __iter__(self):
        self.clock.now += 100.0
        return iter(self.batches)


def test_the_validation_curve_keeps_its_passes_off_the_clock(sample_split, monkeypatch):
    batches = loaders.make_loaders(sample_split, 100, CPU, augment=False)
    model = models.build("simple_cnn", 10, seed=0)
    clock = Clock()
    curve = callbacks.ValidationCurve(Slow(batches.val, clock), every_seconds=0.0)  # a pass after every step
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    monkeypatch.setattr(time, "perf_counter", clock)
    history = train.fit(model, batches.train, batches.val, epochs=1, optimizer=optimizer, callbacks=[curve])
    monkeypatch.undo()
    assert len(curve.points) == len(batches.train) == 9
    seconds = [s for s, _ in curve.points]
    assert seconds == sorted(seconds) and all(0 <= top1 <= 1 for _, top1 in curve.points)
    assert history[0]["seconds"] < 1.0 and seconds[-1] < 1.0  # 900 s of passes, none of them on the clock
