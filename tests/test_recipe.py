"""The one training recipe: it learns, repeats exactly, scales rates, and takes its variations as arguments."""

import numpy as np
import pytest
import torch

from cifar_utils import callbacks, data, loaders, losses, metrics, models, precision, recipe

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample_loaders():
    cifar = data.load("cifar10", "sample")
    splits = data.split(cifar, 0.1, seed=0, train_size=1000, test_size=200)
    return loaders.make_loaders(splits, 50, CPU)


def test_simple_cnn_beats_chance_on_real_images_and_the_run_records_its_budget(sample_loaders, tmp_path):
    run = recipe.train("simple_cnn", models.build("simple_cnn", 10, seed=0), sample_loaders,
                       epochs=3, lr=0.05, device=CPU, seed=0, checkpoint=tmp_path / "cnn.pt",
                       metadata={"dataset": "cifar10"})
    assert run.test["top1"] > 0.2  # chance is 0.1 on 10 balanced classes
    assert (run.epochs, run.train_images, run.device) == (3, 900, CPU)
    assert run.train_seconds == pytest.approx(sum(r["seconds"] for r in run.history))
    assert isinstance(run.model, precision.Prepared)
    assert run.compute_format == precision.default_format(run.model, CPU)
    saved = callbacks.load_checkpoint(run.checkpoint)
    best = max(run.history, key=lambda r: r["val_top1"])
    assert saved["epoch"] == best["epoch"] and saved["dataset"] == "cifar10"
    assert saved["train_images"] == 900 and saved["mean"] == pytest.approx(sample_loaders.mean)
    # the run ends with the best epoch's weights, saved without the wrapper's prefix
    assert all(torch.equal(v, saved["model"][k]) for k, v in run.model.module.state_dict().items())


def fingerprint(run):
    return [round(r["train_loss"], 6) for r in run.history], run.test


def test_the_same_seed_gives_the_same_numbers_whatever_ran_before(sample_loaders):
    def once(seed):
        return recipe.train("r", models.build("simple_cnn", 10, seed=seed), sample_loaders, epochs=1,
                            lr=0.05, device=CPU, seed=seed)

    first = once(3)
    torch.rand(1000)  # other work in between draws from the global stream
    next(iter(sample_loaders.train))
    assert fingerprint(once(3)) == fingerprint(first)
    assert fingerprint(once(4)) != fingerprint(first)


def test_rates_are_per_128_images_and_each_group_peaks_at_its_own(sample_loaders):
    net = models.build("logistic_regression", 10)
    monitor = callbacks.LRMonitor()
    recipe.train("groups", net, sample_loaders, epochs=1, lr=0.1, device=CPU,
                 param_groups=[{"params": [net.linear.weight], "lr": 0.4}, {"params": [net.linear.bias]}],
                 callbacks=[monitor], compute_format=precision.PLAIN)
    scale = (50 / 128) ** 0.5  # batch 50
    assert np.max(np.asarray(monitor.lrs), axis=0) == pytest.approx([0.4 * scale, 0.1 * scale], rel=0.05)


def test_a_frozen_body_stays_put_through_the_recipe(sample_loaders):
    net = models.build("resnet18_cifar", 10, widths=(8, 8, 8, 8), seed=0)
    body = torch.nn.ModuleList([net.stem, net.layer1, net.layer2, net.layer3, net.layer4])
    before = [p.detach().clone() for p in body.parameters()]
    fc_before = net.fc.weight.detach().clone()
    recipe.train("frozen", net, sample_loaders, epochs=1, lr=0.1, device=CPU,
                 callbacks=[callbacks.FreezeThenUnfreeze(body)], optimizer=recipe.adamw)
    assert all(torch.equal(a, b) for a, b in zip(before, body.parameters()))
    assert not torch.equal(fc_before, net.fc.weight)


def test_distillation_plugs_in_as_a_loss_and_a_loaded_model_scores_without_training(sample_loaders):
    teacher = recipe.test_only("teacher", models.build("simple_cnn", 10, seed=1), sample_loaders, CPU)
    assert teacher.epochs == 0 and teacher.train_seconds == 0 and 0 <= teacher.test["top1"] <= 1
    student = recipe.train("student", models.build("logistic_regression", 10, seed=0), sample_loaders,
                           epochs=1, lr=0.01, device=CPU, loss_fn=losses.Distillation(teacher.model))
    assert np.isfinite(student.history[0]["train_loss"]) and student.epochs == 1


def test_build_with_a_seed_gives_the_same_weights_and_leaves_the_global_stream(sample_loaders):
    torch.manual_seed(0)
    a = models.build("simple_cnn", 10, seed=7)
    drawn = torch.rand(1)
    torch.manual_seed(0)
    b = models.build("simple_cnn", 10, seed=7)
    assert torch.equal(drawn, torch.rand(1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.features[0].weight, models.build("simple_cnn", 10, seed=8).features[0].weight)


def test_the_run_keeps_its_test_logits_and_flip_tta_reuses_them(sample_loaders):
    run = recipe.train("cnn", models.build("simple_cnn", 10, seed=0), sample_loaders, epochs=1,
                       lr=0.05, device=CPU, seed=0, flip_tta=True)
    logits, labels = metrics.predict(run.model, sample_loaders.test, CPU)
    assert torch.allclose(run.test_logits, logits) and torch.equal(run.test_labels, labels)
    assert run.test == pytest.approx(metrics.evaluate(run.model, sample_loaders.test, CPU))
    # the plain pass's logits and one pass of mirror images give what two fresh passes give
    assert run.test_flip == pytest.approx(metrics.evaluate(run.model, sample_loaders.test, CPU, flip_tta=True))
    assert run.test_flip != run.test
