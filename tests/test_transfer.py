"""Pretrained weights through torchvision's cache, freezing, the KD loss, and FLOPs."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from cifar_utils import callbacks, checkpoints, cost, data, losses, models, settings, train, transfer

CPU = torch.device("cpu")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and no network for the code under test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no network in this test")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path


def test_weights_load_from_a_file_in_torchvisions_cache(torch_home):
    stand_in = models.torchvision_model("resnet18", 1000)  # random ImageNet-shaped weights
    path = models.weights_file("resnet18")
    assert path.parent == torch_home / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.save(stand_in.state_dict(), path)
    model = models.build("resnet18", 10, weights="imagenet")  # the weights enum's own code path
    assert torch.equal(model.conv1.weight, stand_in.conv1.weight)
    assert torch.equal(model.layer4[1].conv2.weight, stand_in.layer4[1].conv2.weight)
    assert model.fc.out_features == 10  # a fresh head for CIFAR


def test_missing_weights_say_where_to_put_the_file(torch_home):
    with pytest.raises(models.WeightsUnavailable) as err:
        models.build("mobilenet_v2", 10, weights="imagenet")
    message = str(err.value)
    assert "downloading them failed (no network in this test)" in message
    assert "mobilenet_v2-" in message and str(torch_home / "hub" / "checkpoints") in message
    with pytest.raises(models.WeightsUnavailable, match="not cached. Download https://"):
        models.imagenet_weights("resnet18", download=False)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small"])
def test_torchvision_models_get_a_cifar_head(name):
    model = models.Upsampled(models.build(name, 100), 64)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_cifar_resnet18_flops_match_the_published_count():
    flops = cost.count_flops(models.build("resnet18_cifar", 10))
    assert abs(flops - 1.11e9) / 1.11e9 < 0.02


def test_flop_counter_matches_a_hand_count_for_a_convolution():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    assert cost.count_flops(conv, 10, channels=8) == 2 * 9 * 8 * 16 * 10 * 10


def net_and_batches():
    torch.manual_seed(0)
    net = models.build("resnet18_cifar", 10, widths=(8, 8, 8, 8))
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    return net, [(x[:8], y[:8]), (x[8:], y[8:])]


def test_frozen_parameters_stay_put_and_unfreezing_trains_them_at_their_group_rate():
    net, batches = net_and_batches()
    body = torch.nn.ModuleList([net.stem, net.layer1, net.layer2, net.layer3, net.layer4])
    body_params = [p for p in body.parameters()]
    optimizer = torch.optim.SGD([{"params": body_params, "lr": 0.001},
                                 {"params": net.fc.parameters(), "lr": 0.1}],
                                momentum=0.9, weight_decay=5e-4)
    snapshots = []

    class Snapshot(train.Callback):
        def on_epoch_end(self, state):
            snapshots.append({"body": [p.detach().clone() for p in body_params],
                              "bn_mean": net.stem[1].running_mean.clone(),
                              "fc": net.fc.weight.detach().clone(),
                              "trainable": cost.count_parameters(net, trainable_only=True),
                              "grads": [p.requires_grad for p in body_params]})

    before = [p.detach().clone() for p in body_params]
    bn_before = net.stem[1].running_mean.clone()
    fc_before = net.fc.weight.detach().clone()
    rates = callbacks.LRMonitor()
    train.fit(net, batches, batches, epochs=2, optimizer=optimizer,
              callbacks=[callbacks.FreezeThenUnfreeze(body, frozen_epochs=1), Snapshot(), rates])
    first, second = snapshots
    steps = len(batches)  # the monitor leaves out the body's rate while it moves nothing
    assert rates.lrs[:steps] == [[None, 0.1]] * steps and rates.lrs[steps:] == [[0.001, 0.1]] * steps
    # epoch 1: the body is frozen (weights and BatchNorm statistics), the head learns
    assert all(torch.equal(a, b) for a, b in zip(before, first["body"]))
    assert torch.equal(bn_before, first["bn_mean"])
    assert not torch.equal(fc_before, first["fc"])
    assert first["trainable"] == sum(p.numel() for p in net.fc.parameters())
    # epoch 2: unfrozen, the body learns, at its own group's rate
    assert all(second["grads"])
    assert any(not torch.equal(a, b) for a, b in zip(first["body"], second["body"]))
    assert second["trainable"] == cost.count_parameters(net)
    assert [g["lr"] for g in optimizer.param_groups] == [0.001, 0.1]
    assert optimizer.param_groups[0]["params"] == body_params


def test_always_frozen_body_never_changes():
    net, batches = net_and_batches()
    body = torch.nn.ModuleList([net.stem, net.layer1, net.layer2, net.layer3, net.layer4])
    before = [p.detach().clone() for p in body.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    train.fit(net, batches, batches, epochs=3, optimizer=optimizer,
              callbacks=[callbacks.FreezeThenUnfreeze(body)])
    assert all(torch.equal(a, b) for a, b in zip(before, body.parameters()))


def test_distillation_loss_matches_a_hand_computation():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    teacher = torch.tensor([[1.5, 1.0, -0.5], [-1.0, 2.0, 0.0]])
    targets = torch.tensor([0, 2])
    t, alpha = 3.0, 0.7
    kl = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        ps = [math.exp(v / t) for v in s_row]
        pt = [math.exp(v / t) for v in t_row]
        ps = [v / sum(ps) for v in ps]
        pt = [v / sum(pt) for v in pt]
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    kl /= 2  # batchmean: per example
    ce = 0.0
    for row, label in zip(student.tolist(), targets.tolist()):
        ce += -math.log(math.exp(row[label]) / sum(math.exp(v) for v in row))
    ce /= 2
    expected = alpha * t * t * kl + (1 - alpha) * ce
    got = losses.distillation_loss(student, teacher, targets, t, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def batch_state(x, logits, y):
    """The part of fit()'s state a loss callback reads and sets."""
    return SimpleNamespace(x=x, logits=logits, y=y, loss=F.cross_entropy(logits, y), device=torch.device("cpu"))


def test_distillation_with_alpha_zero_is_cross_entropy_and_teacher_stays_frozen():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3), torch.nn.Dropout(0.5)).train()
    x, logits, y = torch.randn(5, 3, 2, 2), torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    state = batch_state(x, logits, y)
    losses.Distillation(teacher, temperature=4.0, alpha=0.0).on_loss(state)
    assert state.loss.item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    # a dropout teacher in eval mode gives the same soft targets every time
    full = losses.Distillation(teacher, 4.0, 1.0)
    first, second = batch_state(x, logits, y), batch_state(x, logits, y)
    full.on_loss(first)
    full.on_loss(second)
    assert first.loss.item() == second.loss.item()
    assert first.loss.item() == pytest.approx(losses.distillation_loss(logits, teacher(x), y, 4.0, 1.0).item())


def test_label_smoothing_replaces_the_loss_with_smoothed_cross_entropy_by_hand():
    logits, y = torch.tensor([[4.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), torch.tensor([0, 2])
    state = batch_state(None, logits, y)
    losses.LabelSmoothing(0.1).on_loss(state)
    targets = 0.9 * F.one_hot(y, 3) + 0.1 / 3  # 0.1 of each target spread over the 3 classes
    by_hand = -(targets * logits.log_softmax(1)).sum(1).mean()
    assert state.loss.item() == pytest.approx(by_hand.item())


def test_models_from_scratch_average_batchnorm_statistics_at_the_usual_rate():
    model = models.build("mobilenet_v3_small", 10)
    moments = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert moments == {0.1}


@pytest.fixture(scope="module")
def smoke_cfg(tmp_path_factory):
    return settings.resolve(profile="smoke", device="cpu", compute_format="", progress="off", download=False,
                            results_dir=str(tmp_path_factory.mktemp("results")))


def test_offline_the_course_pretrains_on_half_the_classes_once_and_transfers_to_the_other_half(
        torch_home, smoke_cfg, monkeypatch, capsys):
    cifar = data.load("cifar10", "sample")
    found = transfer.pretrained("resnet18", cifar, smoke_cfg)
    assert found.source == "course" and "not cached" in found.missing
    assert found.target.classes == ["dog", "frog", "horse", "ship", "truck"]  # classes it never saw
    assert found.source_classes == ["airplane", "automobile", "bird", "cat", "deer"]
    assert "pretraining of resnet18 on the first 5 of the 10 classes, airplane" in found.description
    assert "other half" not in found.description and "airplane" in found.trained_on
    net = found.build(seed=0)
    assert net.fc.out_features == 5 and net.architecture.num_classes == 5
    assert torch.equal(net.conv1.weight, found.weights["conv1.weight"])  # the pretrained body
    source_half = data.class_split(cifar)[0]
    stats = data.channel_stats(data.split_for(source_half, smoke_cfg, "pretrain").train.images)
    assert found.mean == pytest.approx(stats[0])  # the target is normalised as the source half was
    assert not torch.equal(net.conv1.weight, found.random_init(seed=0).conv1.weight)
    # made once: a second notebook reuses the checkpoint instead of training again
    monkeypatch.setattr(transfer, "train", lambda *a, **k: pytest.fail("pretrained twice"))
    again = transfer.pretrained("resnet18", cifar, smoke_cfg)
    assert all(torch.equal(v, again.weights[k]) for k, v in found.weights.items())


def test_online_the_imagenet_weights_transfer_to_the_whole_data_set(torch_home, smoke_cfg):
    stand_in = models.torchvision_model("resnet18", 1000)
    models.weights_file("resnet18").parent.mkdir(parents=True)
    torch.save(stand_in.state_dict(), models.weights_file("resnet18"))
    cifar = data.load("cifar10", "sample")
    found = transfer.pretrained("resnet18", cifar, smoke_cfg)
    assert found.source == "imagenet" and found.missing is None and found.target is cifar
    assert "IMAGENET1K_V1" in found.description
    assert found.mean == (0.485, 0.456, 0.406)  # the target is normalised as ImageNet's images were
    net = found.build(seed=0, download=False)
    assert net.fc.out_features == 10 and torch.equal(net.conv1.weight, stand_in.conv1.weight)


def test_offline_a_notebook_may_name_a_cheaper_architecture_and_a_new_shape_is_pretrained_anew(
        torch_home, smoke_cfg, capsys):
    cifar = data.load("cifar10", "sample")
    found = transfer.pretrained("resnet18", cifar, smoke_cfg, offline="resnet18_cifar", widths=(8, 8, 8, 8))
    assert (found.source, found.name, found.options) == ("course", "resnet18_cifar", {"widths": (8, 8, 8, 8)})
    assert found.build(seed=0).fc.in_features == 8 and found.random_init(seed=0).fc.out_features == 5
    capsys.readouterr()
    transfer.pretrained("resnet18", cifar, smoke_cfg, offline="resnet18_cifar", widths=(8, 8, 8, 8))
    assert "Pretraining" not in capsys.readouterr().out  # the same shape: reused
    wider = transfer.pretrained("resnet18", cifar, smoke_cfg, offline="resnet18_cifar", widths=(8, 8, 8, 16))
    assert "holds another shape of resnet18_cifar" in capsys.readouterr().out
    assert wider.build(seed=0).fc.in_features == 16


def test_several_architectures_start_from_one_source_so_that_they_compare(torch_home, smoke_cfg, monkeypatch):
    """ResNet18's ImageNet file is cached, MobileNetV3's is not: both take the course's own."""
    models.weights_file("resnet18").parent.mkdir(parents=True)
    torch.save(models.torchvision_model("resnet18", 1000).state_dict(), models.weights_file("resnet18"))
    cifar = data.load("cifar10", "sample")
    monkeypatch.setattr(transfer, "course_weights", lambda name, options, source, cfg: checkpoints.Saved(
        torch_home / f"{name}.pt", models.build(name, source.num_classes),
        checkpoints.Info(name, {}, (0.5,) * 3, (0.25,) * 3, 270, epoch=2, scores={"val_top1": 0.5})))
    found = transfer.pretrained_all(["resnet18", "mobilenet_v3_small"], cifar, smoke_cfg)
    assert {p.source for p in found.values()} == {"course"}
    assert {p.target.num_classes for p in found.values()} == {5}
    assert "mobilenet_v3_small: ImageNet weights" in found["resnet18"].missing
    said = transfer.summary(found, found["resnet18"].fine_tune_loaders(smoke_cfg)).splitlines()
    assert said[0].startswith("resnet18: ") and said[1].startswith("mobilenet_v3_small: ")
    assert said[2].startswith("(ImageNet's weights were not to be had here. ") and len(said) == 4
    assert said[3].startswith(f"The task: {', '.join(cifar.classes[5:])}; ") and said[3].endswith(" test images")


def test_the_teacher_is_the_strongest_checkpoint_on_validation_and_says_whose_it_is(tmp_path, capsys):
    cfg = settings.resolve(profile="smoke", device="cpu", compute_format="", progress="off", download=False,
                           results_dir=str(tmp_path))
    cifar = data.load("cifar10", "sample")
    made_for = data.fingerprint(cifar, cfg)
    info = checkpoints.Info("resnet18_cifar_scratch", made_for, (0.5,) * 3, (0.25,) * 3, 450, epoch=2,
                            scores={"val_top1": 0.61})
    checkpoints.save(cfg.checkpoint("resnet18_cifar"), models.build("simple_cnn", 10, seed=0), info)
    strongest = models.build("simple_cnn", 10, seed=1)
    checkpoints.save(cfg.checkpoint("resnet18_finetuned_full_fine_tune"), strongest,
                     replace(info, name="full_fine_tune", scores={"val_top1": 0.72}))
    checkpoints.save(cfg.checkpoint("resnet18_finetuned_frozen"), models.build("simple_cnn", 10),
                     replace(info, name="frozen", scores={"val_top1": 0.99}, data={**made_for, "profile": "full"}))
    teacher, origin = transfer.teacher(cifar, cfg)  # 10's speedrun has not run: its checkpoint is missing
    assert teacher.name == "full_fine_tune" and torch.equal(teacher.model.features[0].weight, strongest.features[0].weight)
    assert origin.startswith("notebook 04's checkpoint (") and "validation top-1 72.0%, the strongest of 4" in origin
    passed_over = capsys.readouterr().out
    assert "was made for another profile" in passed_over  # the full profile's, though its score is higher
    assert "has val_top1 0.6100 against 0.7200" in passed_over
    assert f"there is no checkpoint at {cfg.checkpoint('speedrun')}" in passed_over
    checkpoints.save(cfg.checkpoint("speedrun"), models.build("speedrun_net", 10, widths=(8, 16, 16)),
                     replace(info, name="speedrun", scores={"val_top1": 0.80}))
    teacher, origin = transfer.teacher(cifar, cfg)
    assert teacher.name == "speedrun" and origin.startswith("notebook 10's checkpoint (")
