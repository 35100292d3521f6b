"""Model shapes, parameter counts against a hand count, and the registry."""

import pytest
import torch

from cifar_utils import cost, models


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_every_model_maps_a_batch_to_class_scores(name, num_classes):
    model = models.build(name, num_classes)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, num_classes)


def test_parameter_counts_match_a_hand_count():
    assert cost.count_parameters(models.build("logistic_regression", 10)) == 3072 * 10 + 10
    conv1 = 3 * 32 * 9 + 32
    conv2 = 32 * 64 * 9 + 64
    fc1 = 64 * 8 * 8 * 512 + 512
    fc2 = 512 * 10 + 10
    assert cost.count_parameters(models.build("simple_cnn", 10)) == conv1 + conv2 + fc1 + fc2


def test_trainable_only_skips_frozen_parameters():
    model = models.build("simple_cnn", 10)
    for p in model.features.parameters():
        p.requires_grad = False
    assert cost.count_parameters(model, trainable_only=True) == (
        cost.count_parameters(model) - sum(p.numel() for p in model.features.parameters()))


def test_unknown_model_lists_the_registry():
    with pytest.raises(ValueError, match="Unknown model 'resnet'.*simple_cnn"):
        models.build("resnet", 10)


def test_trace_stages_follows_the_grid_through_each_resnet():
    assert models.trace_stages(models.build("resnet18_cifar", 10), 32) == (
        "stem 32×32 -> layer1 32×32 -> layer2 16×16 -> layer3 8×8 -> layer4 4×4")
    assert models.trace_stages(models.build("resnet18", 10), 64).endswith("layer4 2×2")


def test_the_classifier_of_each_torchvision_model_is_the_layer_that_scores_classes():
    for name in ("resnet18", "mobilenet_v2", "mobilenet_v3_small"):
        net = models.build(name, 7)
        last = [m for m in models.classifier_of(net).modules() if isinstance(m, torch.nn.Linear)][-1]
        assert last.out_features == 7


@pytest.mark.parametrize("name", ["resnet18", "resnet18_cifar"])
def test_a_resnets_stages_hold_each_parameter_once_from_the_input_up(name):
    net = models.build(name, 10)
    parts = models.stages(net)
    assert [stage for stage, _ in parts] == ["stem+layer1", "layer2", "layer3", "layer4", "fc"]
    held = [id(p) for _, module in parts for p in module.parameters()]
    assert sorted(held) == sorted(id(p) for p in net.parameters())  # every parameter, none twice
    assert parts[-1][1] is net.fc


@pytest.mark.parametrize("name,head", [("resnet18", "fc"), ("mobilenet_v2", "classifier"),
                                       ("mobilenet_v3_small", "classifier")])
def test_split_head_parts_every_parameter_into_body_and_head(name, head):
    net = models.build(name, 10)
    body, head_params = models.split_head(net)
    assert head_params == list(getattr(net, head).parameters())
    assert len(body) + len(head_params) == len(list(net.parameters()))
    assert not {id(p) for p in body} & {id(p) for p in head_params}


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_a_cifar_mobilenet_keeps_the_resolution_and_the_shapes_imagenets_weights_have(name):
    imagenet, cifar = (models.build(n, 10, seed=0).eval() for n in (name, f"{name}_cifar"))
    x = torch.zeros(2, 3, 32, 32)
    assert imagenet.features(x).shape[-1] == 1  # ImageNet's stem: 32 px halved five times
    assert cifar.features(x).shape[-1] == 4  # halved three times: the last blocks still see a grid
    assert {k: v.shape for k, v in cifar.state_dict().items()} == {k: v.shape for k, v in imagenet.state_dict().items()}
    assert cifar(x).shape == (2, 10)
    assert models.TORCHVISION_MODELS[f"{name}_cifar"][1] is models.TORCHVISION_MODELS[name][1]  # the same weights file
