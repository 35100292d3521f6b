"""Grad-CAM on a model built to look at one thing, feature maps and filters through hooks."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from cifar_utils import data, explain, loaders, models, plots, precision


def bright_spot_detector() -> nn.Module:
    """Class 0 is 'something bright': its score is the mean of a map that lights up where the
    image is bright; class 1 is the opposite. A stride-2 conv makes the map half the input's size."""
    model = nn.Sequential()
    model.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
    model.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.head = nn.Linear(4, 2)
    with torch.no_grad():
        model.features[0].weight.zero_()
        model.features[0].weight[0, :, 1, 1] = 1.0  # channel 0: the brightness at each position
        model.features[0].bias.zero_()
        model.head.weight.zero_()
        model.head.weight[0, 0], model.head.weight[1, 0] = 1.0, -1.0
        model.head.bias.zero_()
    return model.eval()


def planted(top: int, left: int, size: int = 6) -> torch.Tensor:
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, top:top + size, left:left + size] = 1.0
    return x


@pytest.mark.parametrize("top, left", [(20, 4), (3, 22)])
def test_grad_cam_has_the_input_size_and_peaks_on_the_planted_object(top, left):
    cam = explain.grad_cam(bright_spot_detector(), "features", planted(top, left), torch.tensor([0]))
    assert cam.shape == (1, 32, 32)
    assert cam.max().item() == pytest.approx(1.0)
    row, col = divmod(cam[0].argmax().item(), 32)
    assert top <= row < top + 6 and left <= col < left + 6
    inside = cam[0, top:top + 6, left:left + 6].mean()
    outside = cam[0].sum() - cam[0, top:top + 6, left:left + 6].sum()
    assert inside > 0.5 and outside / (32 * 32 - 36) < 0.1 * inside


def test_grad_cam_defaults_to_the_predicted_class_and_leaves_no_gradients():
    model = bright_spot_detector()
    x = torch.cat([planted(20, 4), planted(3, 22)])
    assert torch.equal(explain.grad_cam(model, "features", x),
                       explain.grad_cam(model, "features", x, torch.tensor([0, 0])))
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad


def test_feature_maps_are_each_layers_output_and_the_hooks_are_removed():
    model = models.build("simple_cnn", 10, seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = explain.feature_maps(model, x, ["features.0", "features.3"])
    assert maps["features.0"].shape == (2, 32, 32, 32) and maps["features.3"].shape == (2, 64, 16, 16)
    assert torch.equal(maps["features.0"], model.features[0](x))
    assert not model.features[0]._forward_hooks


def test_first_conv_and_the_plain_copy_see_through_a_prepared_model():
    model = models.build("resnet18_cifar", 10, seed=0)
    prepared = precision.prepare(model, precision.ComputeFormat(torch.bfloat16, True), torch.device("cpu"))
    assert explain.first_conv(prepared) is model.stem[0]
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    copy = precision.plain_copy(prepared)
    assert not copy.training and copy is not model and all(p.dtype == torch.float32 for p in copy.parameters())
    assert copy.stem[0].weight.is_contiguous()  # channels-first again, PyTorch's default
    assert explain.grad_cam(copy, "layer4", torch.randn(2, 3, 32, 32)).shape == (2, 32, 32)


def test_grad_cam_works_on_a_frozen_model():
    model = bright_spot_detector().requires_grad_(False)
    cam = explain.grad_cam(model, "features", planted(20, 4), torch.tensor([0]))
    assert divmod(cam[0].argmax().item(), 32)[0] in range(20, 26)


class WithASpare(nn.Module):
    """The bright-spot detector beside a layer its scores do not depend on."""

    def __init__(self, run_the_spare: bool):
        super().__init__()
        self.detector, self.spare, self.run_the_spare = bright_spot_detector(), nn.Conv2d(3, 3, 1), run_the_spare

    def forward(self, x):
        if self.run_the_spare:
            self.spare(x)  # runs, but the scores do not depend on it
        return self.detector(x)


def test_grad_cam_refuses_a_layer_the_scores_do_not_come_from():
    with pytest.raises(ValueError, match="no gradient reached 'spare'"):
        explain.grad_cam(WithASpare(run_the_spare=True), "spare", planted(20, 4))
    with pytest.raises(ValueError, match="'spare' did not run"):
        explain.grad_cam(WithASpare(run_the_spare=False), "spare", planted(20, 4))


def test_the_pictures_draw():
    model = models.build("simple_cnn", 10, seed=0).eval()
    image = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()
    assert plots.filters(explain.first_conv(model).weight).images
    maps = explain.feature_maps(model, torch.randn(1, 3, 32, 32), ["features.0", "features.3"])
    assert len(plots.feature_maps(image, maps).axes) == 2 * 9
    cams = explain.grad_cam(model, "features.4", torch.randn(3, 3, 32, 32))
    assert len(plots.grad_cam([image] * 3, cams, ["a", "b", "c"], ncols=3).axes) == 6
    fig = plots.grad_cam_right_and_wrong([image] * 3, cams, [0, 1, 2], [0, 2, 2], ["cat", "dog", "fox"], title="three")
    assert fig.get_suptitle() == "three (2 right, 1 wrong)"
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["cat", "dog\nas fox", "fox"]  # a mistake names the prediction


@pytest.mark.parametrize("name,expected", [("simple_cnn", "features"), ("resnet18_cifar", "layer4"),
                                           ("mobilenet_v3_small", "features")])
def test_grad_cam_reads_the_last_stage_through_any_wrapper(name, expected):
    net = models.build(name, 10)
    assert explain.cam_layer(net) == expected
    assert explain.cam_layer(models.Upsampled(net, 64)) == "model." + expected
    prepared = precision.prepare(models.Upsampled(net, 64), precision.PLAIN, torch.device("cpu"))
    assert explain.cam_layer(prepared) == "module.model." + expected
    with pytest.raises(ValueError, match="no convolutional stage"):
        explain.cam_layer(models.build("logistic_regression", 10))


def test_right_and_wrong_picks_images_the_model_gets_right_then_ones_it_gets_wrong():
    """A 'model' that always answers class 3: right exactly on the images of class 3."""
    always_three = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with torch.no_grad():
        always_three[1].weight.zero_()
        always_three[1].bias.copy_(torch.arange(10) == 3)
    labels = np.repeat(np.arange(10), 30)
    test = data.ImageSet(np.random.default_rng(0).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8), labels)
    shown, x, predicted = explain.right_and_wrong(always_three, test, (0.5,) * 3, (0.25,) * 3, n=4, seed=0)
    assert len(shown) == 8 and x.shape == (8, 3, 32, 32) and (predicted == 3).all()
    assert (labels[shown[:4]] == 3).all() and (labels[shown[4:]] != 3).all()  # four right, then four wrong
    assert torch.allclose(x[0], loaders.normalise(test.images[shown[0]], (0.5,) * 3, (0.25,) * 3)[0])


class ReadsTheLabel(nn.Module):
    """Reads the class written into each image's first pixel (20 x the class, normalised with mean
    0.5 and std 0.25): right on classes 0-5, and takes every image of 6-9 for class 0."""

    def forward(self, x):
        label = ((x[:, 0, 0, 0] * 0.25 + 0.5) * 255 / 20).round().long()
        return nn.functional.one_hot(torch.where(label < 6, label, 0), 10).float()


def test_right_and_wrong_takes_its_examples_from_one_class_after_another():
    """A test set stored class by class (as an image-folder archive is read) showed eight airplanes
    as 03's right examples: now the right ones and the wrong ones each come one class after another."""
    labels = np.repeat(np.arange(10), 30)  # class by class, as a folder of test/<class>/ is read
    images = np.random.default_rng(0).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = 20 * labels
    shown, _, predicted = explain.right_and_wrong(ReadsTheLabel(), data.ImageSet(images, labels), (0.5,) * 3,
                                                  (0.25,) * 3, n=4, seed=0)
    assert labels[shown[:4]].tolist() == [0, 1, 2, 3] and predicted[:4].tolist() == [0, 1, 2, 3]  # right
    assert labels[shown[4:]].tolist() == [6, 7, 8, 9] and predicted[4:].tolist() == [0, 0, 0, 0]  # wrong
