"""Model shapes, parameter counts against a hand count, and the registry."""

import pytest
import torch

from cifar_utils import models


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_every_model_maps_a_batch_to_class_scores(name, num_classes):
    model = models.build(name, num_classes)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, num_classes)


def test_parameter_counts_match_a_hand_count():
    assert models.count_parameters(models.build("logistic_regression", 10)) == 3072 * 10 + 10
    conv1 = 3 * 32 * 9 + 32
    conv2 = 32 * 64 * 9 + 64
    fc1 = 64 * 8 * 8 * 512 + 512
    fc2 = 512 * 10 + 10
    assert models.count_parameters(models.build("simple_cnn", 10)) == conv1 + conv2 + fc1 + fc2


def test_trainable_only_skips_frozen_parameters():
    model = models.build("simple_cnn", 10)
    for p in model.features.parameters():
        p.requires_grad = False
    assert models.count_parameters(model, trainable_only=True) == (
        models.count_parameters(model) - sum(p.numel() for p in model.features.parameters()))


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
