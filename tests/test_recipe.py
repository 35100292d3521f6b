"""The one training recipe: it learns, repeats exactly, scales rates, and takes its variations as
hyperparameters, parameter groups and callbacks."""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from cifar_utils import (
    callbacks,
    checkpoints,
    data,
    loaders,
    losses,
    metrics,
    models,
    precision,
    recipe,
    settings,
)
from cifar_utils.tensor_loader import CROP_AND_FLIP

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cfg():
    return settings.resolve(profile="smoke", device="cpu", compute_format="", progress="off")


@pytest.fixture(scope="module")
def sample_loaders(cfg):
    cifar = data.load("cifar10", "sample")
    splits = data.split(cifar, 0.1, seed=0, train_size=1000, test_size=200)
    return loaders.make_loaders(data.Splits(splits.train, splits.val, splits.test, data.fingerprint(cifar, cfg)),
                                50, CPU)


def test_simple_cnn_beats_chance_on_real_images_and_the_run_records_its_budget(sample_loaders, cfg, tmp_path):
    hyper = recipe.Hyper(epochs=3, lr=0.05)
    run = recipe.train("simple_cnn", models.build("simple_cnn", 10, seed=0), sample_loaders, hyper, cfg,
                       checkpoint=tmp_path / "cnn.pt")
    assert run.test["top1"] > 0.2  # chance is 0.1 on 10 balanced classes
    assert (run.epochs, run.train_images, run.device, run.hyper) == (3, 900, CPU, hyper)
    assert run.train_seconds == pytest.approx(sum(r["seconds"] for r in run.history))
    assert isinstance(run.model, precision.Prepared)
    assert run.compute_format == precision.default_format(run.model, CPU)
    saved = checkpoints.load(run.checkpoint, expect=data.fingerprint(data.load("cifar10", "sample"), cfg))
    best = max(run.history, key=lambda r: r["val_top1"])
    assert saved.info.epoch == best["epoch"] and saved.info.data["profile"] == "smoke"
    assert saved.info.train_images == 900 and saved.info.mean == pytest.approx(sample_loaders.mean)
    # the run ends with the best epoch's weights, and the checkpoint rebuilds that very model
    assert all(torch.equal(v, saved.model.state_dict()[k]) for k, v in run.model.module.state_dict().items())


def fingerprint(run):
    return [round(r["train_loss"], 6) for r in run.history], run.test


def test_the_same_seed_gives_the_same_numbers_whatever_ran_before(sample_loaders, cfg):
    def once(seed):
        return recipe.train("r", models.build("simple_cnn", 10, seed=seed), sample_loaders,
                            recipe.Hyper(epochs=1, seed=seed), cfg)

    first = once(3)
    torch.rand(1000)  # other work in between draws from the global stream
    next(iter(sample_loaders.train))
    assert fingerprint(once(3)) == fingerprint(first)
    assert fingerprint(once(4)) != fingerprint(first)


def test_rates_are_per_128_images_and_each_group_peaks_at_its_own(sample_loaders, cfg):
    net = models.build("logistic_regression", 10)
    monitor = callbacks.LRMonitor()
    plain = settings.resolve(profile="smoke", device="cpu", compute_format="fp32,channels-first", progress="off")
    run = recipe.train("groups", net, sample_loaders, recipe.Hyper(epochs=1, lr=0.1), plain,
                       param_groups=[{"params": [net.linear.weight], "lr": 0.4}, {"params": [net.linear.bias]}],
                       callbacks=[monitor])
    scale = (50 / 128) ** 0.5  # batch 50
    assert np.max(np.asarray(monitor.lrs), axis=0) == pytest.approx([0.4 * scale, 0.1 * scale], rel=0.05)
    assert run.compute_format == precision.PLAIN  # the format the Config asked for


@pytest.mark.parametrize("name,expected", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_the_optimizer_takes_the_hyperparameters_momentum_and_weight_decay(name, expected):
    hyper = recipe.Hyper(epochs=1, optimizer=name, momentum=0.8, weight_decay=1e-3)
    optimizer = recipe.optimizer(hyper, [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.1}])
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, expected) and group["weight_decay"] == 1e-3 and group["lr"] == 0.1
    assert (group["betas"][0] if name == "adamw" else group["momentum"]) == 0.8


@pytest.mark.parametrize("wrong,message", [({"epochs": 0}, "epochs must be a positive whole number"),
                                           ({"optimizer": "adam"}, "Unknown optimizer 'adam'"),
                                           ({"schedule": "onecycle"}, "Unknown schedule 'onecycle'"),
                                           ({"warmup": 25}, "warmup is a share"), ({"lr": 0}, "lr must be above 0")])
def test_a_typo_in_the_hyperparameters_is_named(wrong, message):
    with pytest.raises(ValueError, match=message):
        recipe.Hyper(**{"epochs": 2, **wrong})


def test_schedules_by_name_and_by_callback():
    assert isinstance(recipe.schedule(recipe.Hyper(epochs=1)), callbacks.OneCycle)
    assert recipe.schedule(recipe.Hyper(epochs=1, warmup=0.1)).pct_start == 0.1
    assert isinstance(recipe.schedule(recipe.Hyper(epochs=1, schedule="cosine")), callbacks.Cosine)
    assert recipe.schedule(recipe.Hyper(epochs=1, schedule="plateau")).patience == 1
    assert recipe.schedule(recipe.Hyper(epochs=1, schedule="constant")) is None
    mine = callbacks.ReduceLROnPlateau(patience=0)
    assert recipe.schedule(recipe.Hyper(epochs=1, schedule=mine)) is mine


def test_a_frozen_body_stays_put_through_the_recipe(sample_loaders, cfg):
    net = models.build("resnet18_cifar", 10, widths=(8, 8, 8, 8), seed=0)
    body = torch.nn.ModuleList([net.stem, net.layer1, net.layer2, net.layer3, net.layer4])
    before = [p.detach().clone() for p in body.parameters()]
    fc_before = net.fc.weight.detach().clone()
    recipe.train("frozen", net, sample_loaders, recipe.Hyper(epochs=1, lr=0.1, optimizer="adamw"), cfg,
                 callbacks=[callbacks.FreezeThenUnfreeze(body)])
    assert all(torch.equal(a, b) for a, b in zip(before, body.parameters()))
    assert not torch.equal(fc_before, net.fc.weight)


def test_distillation_and_mixup_plug_in_as_callbacks_and_a_loaded_model_scores_without_training(
        sample_loaders, cfg):
    """Each callback changes what the loop minimises: the batch is mixed before the model sees
    it (soft labels, blended images), and the loss is the KD loss of those logits against the
    teacher's, to the digit."""
    teacher = recipe.test_only("teacher", models.build("simple_cnn", 10, seed=1), sample_loaders, cfg)
    assert teacher.epochs == 0 and teacher.train_seconds == 0 and 0 <= teacher.test["top1"] <= 1
    seen = []

    class Watch(callbacks.Callback):  # after MixUp and Distillation: what the step will minimise
        def on_batch_start(self, state):
            seen.append({"y": state.y.clone()})

        def on_loss(self, state):
            with torch.no_grad():
                by_hand = losses.distillation_loss(state.logits, teacher.model.eval()(state.x), state.y, 4.0, 0.7)
            seen[-1]["loss"], seen[-1]["by_hand"] = state.loss.item(), by_hand.item()
            seen[-1]["plain"] = torch.nn.functional.cross_entropy(state.logits, state.y).item()
    student = recipe.train("student", models.build("logistic_regression", 10, seed=0), sample_loaders,
                           recipe.Hyper(epochs=1, lr=0.01), cfg,
                           callbacks=[callbacks.BatchTransform(v2.MixUp(num_classes=10)),
                                      losses.Distillation(teacher.model, temperature=4.0, alpha=0.7), Watch()])
    assert np.isfinite(student.history[0]["train_loss"]) and student.epochs == 1 and seen
    for batch in seen:
        assert batch["y"].dim() == 2 and torch.allclose(batch["y"].sum(1), torch.ones(len(batch["y"])))
        assert batch["loss"] == pytest.approx(batch["by_hand"], rel=1e-4)  # the loss is the KD loss
        assert batch["loss"] != pytest.approx(batch["plain"], rel=1e-3)  # not the plain cross-entropy
    assert any((batch["y"] < 0.99).all(1).any() for batch in seen)  # mixed: some rows are no class alone


def test_build_with_a_seed_gives_the_same_weights_and_leaves_the_global_stream():
    torch.manual_seed(0)
    a = models.build("simple_cnn", 10, seed=7)
    drawn = torch.rand(1)
    torch.manual_seed(0)
    b = models.build("simple_cnn", 10, seed=7)
    assert torch.equal(drawn, torch.rand(1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.features[0].weight, models.build("simple_cnn", 10, seed=8).features[0].weight)


def test_the_run_keeps_its_test_logits_and_flip_tta_reuses_them(sample_loaders, cfg):
    run = recipe.train("cnn", models.build("simple_cnn", 10, seed=0), sample_loaders, recipe.Hyper(epochs=1), cfg)
    run.score_with_flip(sample_loaders.test)
    logits, labels = metrics.predict(run.model, sample_loaders.test, CPU)
    assert torch.allclose(run.test_logits, logits) and torch.equal(run.test_labels, labels)
    assert run.test == pytest.approx(metrics.evaluate(run.model, sample_loaders.test, CPU))
    # the plain pass's logits and one pass of mirror images give what two fresh passes give
    assert run.test_flip == pytest.approx(metrics.evaluate(run.model, sample_loaders.test, CPU, flip_tta=True))
    assert run.test_flip != run.test
    cm = run.confusion_matrix()  # from the kept logits: every test image once, the right ones on the diagonal
    assert cm.shape == (10, 10) and cm.sum() == len(labels) and cm.trace() == round(run.test["top1"] * len(labels))


def test_tensorboard_holds_every_epoch_of_the_history_and_the_test_scores(sample_loaders, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = settings.resolve(profile="smoke", device="cpu", progress="off", tensorboard=str(tmp_path / "tb"))
    run = recipe.train("cnn", models.build("simple_cnn", 10, seed=0), sample_loaders,
                       recipe.Hyper(epochs=2, seed=3), cfg)
    events = EventAccumulator(str(tmp_path / "tb" / "cnn" / "seed3")).Reload()
    for tag, key in (("top1/val", "val_top1"), ("loss/train", "train_loss"), ("lr", "lr")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in run.history], rel=1e-6)
    assert events.Scalars("test/top1")[0].value == pytest.approx(run.test["top1"])


def read_hparams(events) -> dict:
    """The hyperparameters a run wrote (SummaryWriter.add_hparams), as TensorBoard's HPARAMS tab reads them."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    written = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in written.items()}


def test_tensorboard_tells_runs_apart_by_augmentation_and_shows_one_cycle_step_by_step(sample_loaders, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = settings.resolve(profile="smoke", device="cpu", progress="off", tensorboard=str(tmp_path / "tb"))
    # batches of 45: 20 steps, so that one-cycle's 25% of warm-up ends on a whole step, at the peak
    batches = {name: loaders.make_loaders(sample_loaders.splits, 45, CPU, augment=augment)
               for name, augment in (("aug", True), ("no_aug", False))}  # as 02's two SimpleCNN runs
    hyper = recipe.Hyper(epochs=1, lr=0.05, seed=3)
    runs = {name: recipe.train(name, models.build("logistic_regression", 10, seed=0), b, hyper, cfg)  # the cheapest
            for name, b in batches.items()}
    events = {name: EventAccumulator(str(tmp_path / "tb" / name / "seed3")).Reload() for name in runs}
    augmented, not_augmented = (read_hparams(events[name]) for name in runs)
    assert {k for k in augmented if augmented[k] != not_augmented[k]} == {"augmentation"}
    assert (augmented["augmentation"], not_augmented["augmentation"]) == (CROP_AND_FLIP.describe(), "none")
    assert augmented["model"] == "logistic_regression" and augmented["profile"] == "smoke"
    assert augmented["compute_format"] == runs["aug"].compute_format.name  # e.g. "bf16,channels-first"
    assert augmented["dataset"] == "cifar10" and augmented["pipeline"] == "tensor"
    assert augmented["lr"] == 0.05 and augmented["batch_size"] == 45 and augmented["epochs"] == 1

    logged = events["aug"].Scalars("lr/step")
    assert [e.step for e in logged] == list(range(1, len(batches["aug"].train) + 1)) == list(range(1, 21))
    lrs = np.array([e.value for e in logged])  # the rate each step took
    top = int(lrs.argmax())
    assert 0 < top < len(lrs) - 1
    assert (np.diff(lrs[:top + 1]) > 0).all() and (np.diff(lrs[top:]) < 0).all()  # rises, then falls
    assert lrs[top] == pytest.approx(recipe.scaled_lr(hyper.lr, 45), rel=1e-6)  # the peak is the configured max
    assert lrs[0] == pytest.approx(lrs[top] / 25, rel=1e-5)  # OneCycleLR's warm-up starts at max / 25
    assert lrs[0] == pytest.approx(runs["aug"].history[0]["lr"], rel=1e-6)  # the epoch's "lr": its first step's
    assert [e.step for e in events["aug"].Scalars("lr")] == [1]  # the per-epoch curve is still there


def test_without_tensorboard_installed_a_run_says_so_and_trains(sample_loaders, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    cfg = settings.resolve(profile="smoke", device="cpu", progress="off", tensorboard=str(tmp_path / "tb"))
    run = recipe.train("cnn", models.build("logistic_regression", 10, seed=0), sample_loaders, recipe.Hyper(1), cfg)
    assert run.epochs == 1 and "TensorBoard logging is off: the tensorboard package is not installed" in capsys.readouterr().out
    assert not (tmp_path / "tb").exists()


def test_a_split_without_test_images_trains_and_says_its_validation_score(sample_loaders, cfg, capsys):
    """09's challenge: its test images have no labels in the run, and are scored when handed in."""
    splits = sample_loaders.splits
    no_test = loaders.make_loaders(data.Splits(splits.train, splits.val, splits.test.take(np.arange(0))), 50, CPU)
    run = recipe.train("no_test", models.build("simple_cnn", 10, seed=0), no_test, recipe.Hyper(epochs=1, lr=0.05), cfg)
    assert run.test is None and run.test_logits is None
    assert f"no_test: validation top-1 {run.history[-1]['val_top1']:.1%} (no test pass here)" in capsys.readouterr().out
