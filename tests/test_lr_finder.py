"""The learning-rate range test: it finds a sensible rate on real images and changes nothing."""

import numpy as np
import pytest
import torch

from cifar_utils import data, loaders, lr_finder, models, recipe

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample_loaders():
    splits = data.split(data.load("cifar10", "sample"), 0.1, seed=0, train_size=2000, test_size=200)
    return loaders.make_loaders(splits, 64, CPU, augment=False)


def test_the_range_test_restores_the_model_and_the_optimizer_it_was_given(sample_loaders):
    torch.manual_seed(0)
    model = models.build("logistic_regression", 10)
    optimizer = recipe.optimizer(recipe.Hyper(epochs=1), [{"params": model.parameters(), "lr": 0.01}])
    x, y = next(iter(sample_loaders.train))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # momentum buffers exist now: they too must come back unchanged
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = {k: v["momentum_buffer"].clone() for k, v in optimizer.state_dict()["state"].items()}
    result = lr_finder.range_test(model, sample_loaders.train, optimizer, steps=40)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(momentum[k], v["momentum_buffer"]) for k, v in optimizer.state_dict()["state"].items())
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert len(result.lrs) == len(result.losses) <= 40


def test_on_real_images_the_loss_falls_then_blows_up_and_the_suggestion_lies_between(sample_loaders):
    torch.manual_seed(0)
    model = models.build("simple_cnn", 10)
    optimizer = recipe.optimizer(recipe.Hyper(epochs=1), [{"params": model.parameters(), "lr": 0.01}])
    result = lr_finder.range_test(model, sample_loaders.train, optimizer, start_lr=1e-4, end_lr=100, steps=120)
    ratios = np.array(result.lrs[1:]) / np.array(result.lrs[:-1])
    assert np.allclose(ratios, ratios[0])  # geometric steps
    assert len(result.lrs) < 120  # it stopped once the loss diverged
    assert min(result.losses) < result.losses[0] - 0.1  # the loss fell somewhere on the way
    assert 1e-3 < result.suggested < result.lrs[int(np.argmin(result.losses))]


def test_steepest_descent_finds_where_the_loss_falls_fastest():
    lrs = np.logspace(-5, 1, 61)
    losses = 2.3 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 2) * 3))  # falls fastest at 1e-2
    losses[-5:] = [3, 4, 5, 6, 7]  # and blows up at the end
    assert lr_finder.steepest_descent(list(lrs), list(losses)) == pytest.approx(1e-2, rel=0.3)
