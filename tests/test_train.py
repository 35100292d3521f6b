"""The training loop and its callbacks: learning, determinism, schedules, checkpoints, stopping."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from cifar_utils import callbacks, checkpoints, data, loaders, metrics, models, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample_split():
    cifar = data.load("cifar10", "sample")
    return data.split(cifar, 0.1, seed=0, train_size=1000, test_size=200)


def tiny_loaders(splits, batch_size=50, augment=False):
    return loaders.make_loaders(splits, batch_size, CPU, augment=augment)


def test_one_batch_overfits(sample_split):
    torch.manual_seed(0)
    batch = sample_split.train.take(np.arange(32))
    dl = tiny_loaders(data.Splits(batch, batch, batch), batch_size=32)
    model = models.build("simple_cnn", 10, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = train.fit(model, dl.train, dl.val, epochs=60, optimizer=optimizer)
    assert history[-1]["val_top1"] == 1.0  # memorised all 32 real images
    assert history[-1]["train_loss"] < 0.05 < history[0]["train_loss"]


def test_simple_cnn_learns_real_images_above_chance(sample_split):
    torch.manual_seed(0)
    dl = tiny_loaders(sample_split)
    model = models.build("simple_cnn", 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    history = train.fit(model, dl.train, dl.val, epochs=3, optimizer=optimizer)
    assert history[-1]["val_top1"] > 0.2  # chance is 0.1 on 10 balanced classes
    assert set(history[0]) == {"epoch", "lr", "train_loss", "train_top1", "val_loss",
                               "val_top1", "val_top5", "seconds"}


def run_twice(sample_split, seed):
    weights = []
    for _ in range(2):
        torch.manual_seed(seed)
        dl = loaders.make_loaders(sample_split, 50, CPU, augment=True, mean=(0.5,) * 3, std=(0.25,) * 3)
        model = models.build("simple_cnn", 10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        train.fit(model, dl.train, dl.val, epochs=1, optimizer=optimizer)
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
    model, batches, opt = linear_setup(n=256, lr=1.0)
    rec = Recorder()
    train.fit(model, batches, batches, epochs=2, optimizer=opt,
              callbacks=[callbacks.OneCycle(pct_start=0.25), rec])
    assert rec.calls == ["fit_start", "epoch_start 1", "epoch_end 1", "epoch_start 2",
                         "epoch_end 2", "fit_end"]
    peak = int(np.argmax(rec.lrs))
    assert 0 < peak < len(rec.lrs) - 1 and max(rec.lrs) == pytest.approx(1.0, rel=0.05)
    assert rec.lrs[-1] < 0.01


def test_one_cycle_peaks_at_each_groups_own_rate():
    model = models.build("logistic_regression", 10)
    opt = torch.optim.SGD([{"params": [model.linear.weight], "lr": 0.5},
                           {"params": [model.linear.bias], "lr": 0.05}], momentum=0.9)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8)]
    monitor = callbacks.LRMonitor()
    train.fit(model, batches, batches[:1], epochs=2, optimizer=opt,
              callbacks=[callbacks.OneCycle(), monitor])
    peaks = np.max(np.asarray(monitor.lrs), axis=0)
    assert peaks == pytest.approx([0.5, 0.05], rel=0.05)


@pytest.mark.parametrize("epochs,batches_per_epoch", [(2, 2), (1, 1), (1, 3)])
def test_one_cycle_survives_a_run_of_a_few_steps(epochs, batches_per_epoch):
    """OneCycleLR alone divides by zero on 4 steps at 25% warm-up, and trains a single step at
    a rate of zero; the course's schedule warms up for a whole step and reaches the peak."""
    model = models.build("logistic_regression", 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))] * batches_per_epoch
    before = model.linear.weight.detach().clone()
    monitor = callbacks.LRMonitor()
    train.fit(model, batches, batches, epochs=epochs, optimizer=opt,
              callbacks=[callbacks.OneCycle(), monitor])
    assert len(monitor.lrs) == epochs * batches_per_epoch
    assert max(lr for [lr] in monitor.lrs) == pytest.approx(0.5)  # the peak is reached
    assert not torch.equal(before, model.linear.weight)  # every step trained at a rate above zero


def test_one_cycle_restarts_with_a_fresh_warm_up_after_the_given_epoch():
    model, batches, opt = linear_setup(n=256)  # 16 steps per epoch
    rec = Recorder()
    train.fit(model, batches, batches, epochs=4, optimizer=opt,
              callbacks=[callbacks.OneCycle(max_lr=1.0, restart_after=1), rec])
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
    train.fit(model, batches, batches, epochs=2, optimizer=opt,
              callbacks=[callbacks.Cosine(), rec])
    assert rec.lrs == sorted(rec.lrs, reverse=True) and rec.lrs[-1] == pytest.approx(0, abs=1e-9)


class FakeValidation(train.Callback):
    """Replace each epoch's validation loss by the next of `losses`: a plateau on demand."""

    def __init__(self, losses):
        self.losses = list(losses)

    def on_epoch_end(self, state):
        state.history[-1]["val_loss"] = self.losses[state.epoch - 1]


@pytest.mark.parametrize("patience,first_cut_epoch", [(0, 4), (1, 5), (2, 6)])
def test_reduce_on_plateau_cuts_after_more_than_patience_epochs_without_improvement(patience, first_cut_epoch):
    """Epoch 2 is the best; epochs 3, 4, 5... do not improve. PyTorch cuts once the epochs without
    improvement exceed `patience`: patience=1 trains epochs 3 and 4 at the old rate."""
    model, batches, opt = linear_setup(lr=0.1)
    history = train.fit(model, batches, batches, epochs=6, optimizer=opt,
                        callbacks=[FakeValidation([1.0, 0.9, 0.95, 0.96, 0.97, 0.98]),
                                   callbacks.ReduceLROnPlateau(factor=0.5, patience=patience)])
    rates = [r["lr"] for r in history]  # the rate each epoch trained at
    assert rates[:first_cut_epoch - 1] == [0.1] * (first_cut_epoch - 1)
    assert rates[first_cut_epoch - 1] == pytest.approx(0.05)


def test_early_stopping_ends_training():
    model, batches, opt = linear_setup(lr=0.0)
    history = train.fit(model, batches, batches, epochs=10, optimizer=opt,
                        callbacks=[callbacks.EarlyStopping("val_loss", patience=2)])
    assert len(history) == 3  # epoch 1 sets the best; two epochs without improvement stop it


def test_early_stopping_leaves_a_stop_another_callback_asked_for():
    class StopNow(train.Callback):
        def on_epoch_end(self, state):
            state.stop = True

    model, batches, opt = linear_setup()
    history = train.fit(model, batches, batches, epochs=5, optimizer=opt,
                        callbacks=[StopNow(), callbacks.EarlyStopping("val_loss", patience=3)])
    assert len(history) == 1


def test_checkpoint_keeps_and_restores_the_best_epoch(tmp_path):
    model, batches, opt = linear_setup()
    saved = {}

    class Spy(train.Callback):
        def on_epoch_end(self, state):
            saved[state.epoch] = {k: v.clone() for k, v in state.model.state_dict().items()}

    best = callbacks.Checkpoint(tmp_path / "best.pt", model, checkpoints.Info("linear", {}), monitor="val_loss")
    history = train.fit(model, batches, batches, epochs=4, optimizer=opt, callbacks=[Spy(), best])
    best_epoch = min(history, key=lambda r: r["val_loss"])["epoch"]
    stored = checkpoints.read(tmp_path / "best.pt")
    assert stored["epoch"] == best_epoch and stored["name"] == "linear"
    assert stored["val_loss"] == pytest.approx(best.best) and "val_top1" in stored
    for key, value in model.state_dict().items():  # the model ends with the best weights
        assert torch.equal(value, saved[best_epoch][key])
    loaded = checkpoints.load(tmp_path / "best.pt")  # rebuilt from its architecture alone
    assert isinstance(loaded.model, models.LogisticRegression) and loaded.name == "linear"
    assert loaded.info.epoch == best_epoch and loaded.info.scores["val_loss"] == pytest.approx(best.best)
    assert all(torch.equal(v, saved[best_epoch][k]) for k, v in loaded.model.state_dict().items())


def test_a_checkpoint_save_interrupted_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    model = models.build("logistic_regression", 10)
    checkpoints.save(path, model, checkpoints.Info("first", {}, epoch=1))
    before = path.read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # a kernel restart or a timeout in the middle of torch.save
    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(path, model, checkpoints.Info("second", {}, epoch=2))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    assert checkpoints.read(path)["epoch"] == 1


def test_a_damaged_foreign_or_alien_checkpoint_is_refused_and_says_why(tmp_path):
    expected = {"dataset": "cifar10", "profile": "laptop"}
    path = tmp_path / "teacher.pt"
    with pytest.raises(checkpoints.CheckpointError, match=f"there is no checkpoint at {path}"):
        checkpoints.load(path, expected)
    path.write_bytes(b"")
    with pytest.raises(checkpoints.CheckpointError, match="is damaged"):
        checkpoints.load(path, expected)
    torch.save({"model": {}}, path)  # a file some other code wrote
    with pytest.raises(checkpoints.CheckpointError, match="not a checkpoint of this course"):
        checkpoints.load(path, expected)
    model = models.build("simple_cnn", 10, widths=(8, 16))
    checkpoints.save(path, model, checkpoints.Info("cnn", {"dataset": "cifar10", "profile": "smoke"}))
    with pytest.raises(checkpoints.CheckpointError, match=r"made for another profile \(profile='smoke'\)"):
        checkpoints.load(path, expected)
    checkpoints.save(path, model, checkpoints.Info("cnn", expected))
    loaded = checkpoints.load(path, expected)
    assert loaded.model.features[0].out_channels == 8  # the saved options rebuild the same shape


def test_an_upsampled_model_comes_back_upsampled(tmp_path):
    net = models.Upsampled(models.build("resnet18", 10), 48)
    checkpoints.save(tmp_path / "up.pt", net, checkpoints.Info("up", {}))
    loaded = checkpoints.load(tmp_path / "up.pt").model
    assert isinstance(loaded, models.Upsampled) and loaded.size == 48
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))


def test_the_strongest_checkpoint_is_chosen_on_validation_among_the_usable_ones(tmp_path):
    expected = {"dataset": "cifar10", "profile": "laptop"}
    scratch, fine_tuned, foreign, missing = (tmp_path / f"{n}.pt" for n in ("scratch", "tuned", "foreign", "none"))
    model = models.build("logistic_regression", 10)
    checkpoints.save(scratch, model, checkpoints.Info("scratch", expected, scores={"val_top1": 0.61}))
    checkpoints.save(fine_tuned, model, checkpoints.Info("tuned", expected, scores={"val_top1": 0.83}))
    checkpoints.save(foreign, model, checkpoints.Info("foreign", {**expected, "profile": "full"}, scores={"val_top1": 0.99}))
    saved, notes = checkpoints.strongest([scratch, fine_tuned, foreign, missing], expected)
    assert (saved.name, saved.path) == ("tuned", fine_tuned)  # the foreign one scores higher but is not usable
    assert len(notes) == 3 and any("0.6100 against 0.8300" in n for n in notes)
    assert any("made for another profile" in n for n in notes) and any("no checkpoint at" in n for n in notes)
    assert checkpoints.strongest([missing], expected)[0] is None
    saved, _ = checkpoints.strongest([scratch, fine_tuned], expected, monitor="val_loss")
    assert saved is None  # neither records a validation loss: nothing to compare them on
    checkpoints.save(scratch, model, checkpoints.Info("scratch", expected, scores={"val_top1": 0.61, "val_loss": 0.9}))
    checkpoints.save(fine_tuned, model, checkpoints.Info("tuned", expected, scores={"val_top1": 0.83, "val_loss": 1.2}))
    assert checkpoints.strongest([scratch, fine_tuned], expected, monitor="val_loss")[0].name == "scratch"


def test_count_trainable_sees_freezing_epoch_by_epoch():
    _, batches, _ = linear_setup()
    body, head = torch.nn.Linear(3072, 8), torch.nn.Linear(8, 10)
    model = torch.nn.Sequential(torch.nn.Flatten(), body, head)
    count = callbacks.CountTrainable()
    train.fit(model, batches, batches, epochs=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[callbacks.FreezeThenUnfreeze(body, frozen_epochs=2), count])
    assert count.per_epoch == {1: 8 * 10 + 10, 2: 8 * 10 + 10, 3: 3072 * 8 + 8 + 8 * 10 + 10}


def test_callbacks_see_the_batch_the_logits_and_the_loss_and_may_replace_them():
    model, batches, opt = linear_setup(n=32)  # two batches of 16
    seen = []

    class HalveImages(train.Callback):
        def on_batch_start(self, state):
            seen.append(("batch", tuple(state.x.shape), tuple(state.y.shape), state.logits))
            state.x = state.x * 0.5

    class DoubleLoss(train.Callback):
        def on_loss(self, state):
            expected = F.cross_entropy(model(state.x), state.y)  # the loop's loss, on the halved images
            seen.append(("loss", tuple(state.logits.shape), torch.allclose(state.loss, expected)))
            state.loss = state.loss * 2

    class Record(train.Callback):
        def on_batch_end(self, state):
            seen.append(("end", state.step, round(state.loss.item(), 5)))

    history = train.fit(model, batches, batches, epochs=1, optimizer=opt,
                        callbacks=[HalveImages(), DoubleLoss(), Record()])
    assert [s[0] for s in seen] == ["batch", "loss", "end"] * 2
    assert seen[0] == ("batch", (16, 3, 32, 32), (16,), None) and seen[1] == ("loss", (16, 10), True)
    assert [s[1] for s in seen if s[0] == "end"] == [1, 2]
    # the epoch's train loss is the mean of the losses the step minimised: the doubled ones
    assert history[0]["train_loss"] == pytest.approx(sum(s[2] for s in seen if s[0] == "end") / 2, rel=1e-4)


def test_an_error_ends_fit_with_on_fit_end_and_the_bar_closed():
    model, batches, opt = linear_setup(n=32)
    ended = []

    class Fail(train.Callback):
        def on_batch_end(self, state):
            raise RuntimeError("out of memory, say")

    class Ended(train.Callback):
        def on_fit_end(self, state):
            ended.append((state.finished, state.x))

    bar = train.Progress("doomed", style="text")
    with pytest.raises(RuntimeError, match="out of memory"):
        train.fit(model, batches, batches, epochs=2, optimizer=opt, callbacks=[bar, Fail(), Ended()])
    assert ended == [(False, None)] and bar.bar is None  # told it did not finish; the bar closed
    with pytest.raises(ValueError, match="Unknown progress style 'fancy'"):
        train.Progress("x", style="fancy")


def test_train_seconds_adds_epochs():
    assert train.train_seconds([{"seconds": 1.5}, {"seconds": 2.0}]) == 3.5


@pytest.mark.slow  # starts a kernel: seconds
def test_a_finished_widget_bar_leaves_a_text_line_in_the_saved_notebook(monkeypatch):
    """In a kernel, fit()'s bar is a widget while it runs; the notebook keeps its last text line."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = ("from cifar_utils.train import progress\n"
            "for _ in progress(range(3), desc='epochs'):\n    pass\n"
            "bar = progress(range(3), desc='stopped')\n"
            "for i in bar:\n    raise_here = 1 / (1 - i)\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(notebook, timeout=120, allow_errors=True).execute()
    outputs = notebook.cells[0].outputs
    texts = [o["data"]["text/plain"] for o in outputs if o.output_type == "display_data"]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert texts[0].startswith("epochs: 100%") and "3/3" in texts[0]
    assert texts[1].startswith("stopped:") and "1/3" in texts[1]  # a bar an error stopped, too
    assert outputs[-1].output_type == "error"  # the division by zero


@pytest.mark.parametrize("mix", [v2.MixUp, v2.CutMix], ids=["mixup", "cutmix"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_batches_mix_labels_in_the_proportion_of_pixels(mix, seed):
    torch.manual_seed(seed)
    n = 4
    labels = torch.arange(n)
    images = (labels + 1.0).view(n, 1, 1, 1).expand(n, 3, 16, 16).clone()  # image i: every pixel i + 1
    mixed, soft = mix(num_classes=n)(images, labels)
    assert soft.shape == (n, n) and torch.allclose(soft.sum(1), torch.ones(n))
    for i in range(n):
        other = (i - 1) % n  # torchvision mixes each image with the one before it in the batch
        own_share = ((mixed[i] - (other + 1.0)) / (i - other)).mean()  # of the pixels, image i's part
        assert soft[i, i].item() == pytest.approx(own_share.item(), abs=1e-5)
        assert soft[i, other].item() == pytest.approx(1 - own_share.item(), abs=1e-5)


def test_fit_mixes_training_batches_only_and_learns_from_soft_labels(sample_split):
    torch.manual_seed(0)
    dl = tiny_loaders(sample_split)
    seen = []

    def mixup(x, y):
        seen.append(len(y))
        return v2.MixUp(num_classes=10)(x, y)

    model = models.build("simple_cnn", 10)
    history = train.fit(model, dl.train, dl.val, epochs=3, callbacks=[callbacks.BatchTransform(mixup)],
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9))
    assert len(seen) == 3 * len(dl.train)  # every training batch, no validation batch
    assert history[-1]["val_top1"] > 0.2  # chance is 0.1
    assert 0 < history[-1]["train_top1"] < 1


def test_a_linear_probe_separates_what_a_line_can_and_nothing_more():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 16, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()  # four classes, each cut by lines
    assert metrics.linear_probe((x[:400], y[:400]), (x[400:], y[400:])) > 0.9
    assert np.isnan(metrics.linear_probe((x[:400] * float("inf"), y[:400]), (x[400:], y[400:])))  # overflowed features
    state = torch.random.get_rng_state()
    metrics.linear_probe((x[:400], y[:400]), (x[400:], y[400:]))
    assert torch.equal(torch.random.get_rng_state(), state)  # a probe mid-run leaves the run's random stream alone
    shuffled = y[torch.randperm(600, generator=gen)]  # labels that nothing in x explains
    assert metrics.linear_probe((x[:400], shuffled[:400]), (x[400:], shuffled[400:])) < 0.4  # chance is 0.25


def test_the_feature_probe_sees_frozen_features_unchanged_and_features_trained_hard_moved(sample_split):
    batches = tiny_loaders(sample_split)
    probed = {}
    for frozen, lr in ((True, 0.05), (False, 0.5)):
        model = models.build("simple_cnn", 10, seed=0)
        body, head = torch.nn.ModuleList([model.features, *model.classifier[:-1]]), model.classifier[-1]
        probe = callbacks.FeatureProbe(head, batches.val, batches.test, after=(0, 1))
        freezing = [callbacks.FreezeThenUnfreeze(body, None)] if frozen else []
        train.fit(model, batches.train, batches.val, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
                  callbacks=[*freezing, probe])
        probed[frozen] = probe.top1
        assert set(probe.top1) == {0, 1} and all(0 <= v <= 1 for v in probe.top1.values())
    assert probed[True][1] == probed[True][0]  # a frozen body hands the head the same features
    assert probed[False][0] == probed[True][0]  # the same start ...
    assert probed[False][1] != probed[False][0]  # ... moved by an epoch at 0.5 on every weight
