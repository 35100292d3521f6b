"""The training loop and its callbacks: learning, determinism, schedules, checkpoints, stopping."""

import numpy as np
import pytest
import torch

from cifar_utils import callbacks, data, loaders, models, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample_split():
    cifar = data.load("cifar10", "sample")
    return data.split(cifar, 0.1, seed=0, train_size=1000, test_size=200)


def tiny_loaders(split, batch_size=50, augment=False):
    train, val, test = split
    mean, std = data.channel_stats(train.images)
    return loaders.make_loaders(train, val, test, batch_size, CPU, mean, std, augment=augment)


def test_one_batch_overfits(sample_split):
    torch.manual_seed(0)
    batch = sample_split[0].take(np.arange(32))
    dl = tiny_loaders((batch, batch, batch), batch_size=32)
    model = models.build("simple_cnn", 10, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = train.fit(model, dl.train, dl.val, epochs=60, optimizer=optimizer, device=CPU,
                        show_progress=False)
    assert history[-1]["val_top1"] == 1.0  # memorised all 32 real images
    assert history[-1]["train_loss"] < 0.05 < history[0]["train_loss"]


def test_simple_cnn_learns_real_images_above_chance(sample_split):
    torch.manual_seed(0)
    dl = tiny_loaders(sample_split)
    model = models.build("simple_cnn", 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    history = train.fit(model, dl.train, dl.val, epochs=3, optimizer=optimizer, device=CPU,
                        show_progress=False)
    assert history[-1]["val_top1"] > 0.2  # chance is 0.1 on 10 balanced classes
    assert set(history[0]) == {"epoch", "lr", "train_loss", "train_top1", "val_loss",
                               "val_top1", "val_top5", "seconds"}


def run_twice(sample_split, seed):
    weights = []
    for _ in range(2):
        torch.manual_seed(seed)
        dl = loaders.make_loaders(*sample_split[:2], sample_split[2], 50, CPU, (0.5,) * 3,
                                  (0.25,) * 3, augment=True, seed=seed)
        model = models.build("simple_cnn", 10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        train.fit(model, dl.train, dl.val, epochs=1, optimizer=optimizer, device=CPU,
                  show_progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return weights


def test_same_seed_same_result_on_cpu(sample_split):
    a, b = run_twice(sample_split, seed=1)
    assert torch.equal(a, b)
    c, _ = run_twice(sample_split, seed=2)
    assert not torch.equal(a, c)


class Recorder(train.Callback):
    def __init__(self):
        self.calls, self.lrs = [], []

    def on_fit_start(self, state):
        self.calls.append("fit_start")

    def on_epoch_start(self, state):
        self.calls.append(f"epoch_start {state.epoch}")

    def on_batch_end(self, state):
        self.lrs.append(state.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, state):
        self.calls.append(f"epoch_end {state.epoch}")

    def on_fit_end(self, state):
        self.calls.append("fit_end")


def linear_setup(n=64, lr=0.1):
    torch.manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]
    model = models.build("logistic_regression", 10)
    return model, batches, torch.optim.SGD(model.parameters(), lr=lr)


def test_callbacks_run_in_order_and_one_cycle_shapes_the_rate():
    model, batches, opt = linear_setup(n=256)
    rec = Recorder()
    train.fit(model, batches, batches, epochs=2, optimizer=opt, device=CPU,
              callbacks=[callbacks.OneCycle(1.0, pct_start=0.25), rec], show_progress=False)
    assert rec.calls == ["fit_start", "epoch_start 1", "epoch_end 1", "epoch_start 2",
                         "epoch_end 2", "fit_end"]
    peak = int(np.argmax(rec.lrs))
    assert 0 < peak < len(rec.lrs) - 1 and max(rec.lrs) == pytest.approx(1.0, rel=0.05)
    assert rec.lrs[-1] < 0.01


def test_one_cycle_restarts_with_a_fresh_warm_up_after_the_given_epoch():
    model, batches, opt = linear_setup(n=256)  # 16 steps per epoch
    rec = Recorder()
    train.fit(model, batches, batches, epochs=4, optimizer=opt, device=CPU,
              callbacks=[callbacks.OneCycle(1.0, restart_after=1), rec], show_progress=False)
    first, second = rec.lrs[:16], rec.lrs[16:]  # rates after each step: epoch 1, epochs 2-4
    assert len(second) == 48
    for cycle in (first, second):
        peak = int(np.argmax(cycle))
        assert 0 < peak < len(cycle) - 1 and max(cycle) == pytest.approx(1.0, rel=0.1)
        assert cycle[-1] < 0.01  # each cycle anneals to nearly zero
    assert second[0] < 0.1 and second[-1] < second[0]  # the second starts low again


def test_cosine_decays_to_zero():
    model, batches, opt = linear_setup()
    rec = Recorder()
    train.fit(model, batches, batches, epochs=2, optimizer=opt, device=CPU,
              callbacks=[callbacks.Cosine(), rec], show_progress=False)
    assert rec.lrs == sorted(rec.lrs, reverse=True) and rec.lrs[-1] == pytest.approx(0, abs=1e-9)


def test_reduce_on_plateau_cuts_the_rate_when_validation_stalls():
    model, batches, opt = linear_setup(lr=1e-7)  # too small to improve the loss by 0.01%
    history = train.fit(model, batches, batches, epochs=4, optimizer=opt, device=CPU,
                        callbacks=[callbacks.ReduceLROnPlateau(factor=0.5, patience=0)],
                        show_progress=False)
    assert history[-1]["lr"] < history[0]["lr"]


def test_early_stopping_ends_training():
    model, batches, opt = linear_setup(lr=0.0)
    history = train.fit(model, batches, batches, epochs=10, optimizer=opt, device=CPU,
                        callbacks=[callbacks.EarlyStopping("val_loss", patience=2)],
                        show_progress=False)
    assert len(history) == 3  # epoch 1 sets the best; two epochs without improvement stop it


def test_checkpoint_keeps_and_restores_the_best_epoch(tmp_path):
    model, batches, opt = linear_setup()
    saved = {}

    class Spy(train.Callback):
        def on_epoch_end(self, state):
            saved[state.epoch] = {k: v.clone() for k, v in state.model.state_dict().items()}

    best = callbacks.Checkpoint(tmp_path / "best.pt", monitor="val_loss",
                                metadata={"name": "linear"})
    history = train.fit(model, batches, batches, epochs=4, optimizer=opt, device=CPU,
                        callbacks=[Spy(), best], show_progress=False)
    best_epoch = min(history, key=lambda r: r["val_loss"])["epoch"]
    stored = callbacks.load_checkpoint(tmp_path / "best.pt")
    assert stored["epoch"] == best_epoch and stored["name"] == "linear"
    assert stored["val_loss"] == pytest.approx(best.best)
    for key, value in model.state_dict().items():  # the model ends with the best weights
        assert torch.equal(value, saved[best_epoch][key])


def test_train_seconds_adds_epochs():
    assert train.train_seconds([{"seconds": 1.5}, {"seconds": 2.0}]) == 3.5
