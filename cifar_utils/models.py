"""The course's models, torchvision's ImageNet models adapted to CIFAR, and a registry by name.

Every model `build` makes carries its `architecture`: what it takes to build it again (the
registry name, the builder's options, the classes, the input side), which a checkpoint stores
beside the weights.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

from .settings import seeded


class LogisticRegression(nn.Module):
    """One linear layer from the 3072 pixel values to the class scores (softmax in the loss)."""

    def __init__(self, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(3 * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flatten(x))  # (B, 3, 32, 32) -> (B, 3072) -> (B, classes)


class SimpleCNN(nn.Module):
    """Two conv+pool blocks, then a 512-unit hidden layer with dropout."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int] = (32, 64),
                 hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        c1, c2 = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, c1, 16, 16)
            nn.Conv2d(c1, c2, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, c2, 8, 8)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, c2 * 64)
            nn.Linear(c2 * 8 * 8, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus a shortcut: the block learns a correction to its input."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()  # identity, unless the shape changes
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))  # the residual connection


class CifarResNet18(nn.Module):
    """ResNet18 for 32x32 images: a 3x3 stem and no max-pool, so layer1 works at 32x32."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, c_in = [], widths[0]
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2  # 32 -> 32 -> 16 -> 8 -> 4
            layers.append(nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out)))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 64, 32, 32)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, 4, 4)
        return self.fc(torch.flatten(self.pool(x), 1))


class Whitening(nn.Conv2d):
    """A first layer that whitens 2x2 patches, fitted to training images and then frozen
    (tysam-code's hlb-CIFAR10, then Jordan's airbench; the idea is Page's and older, ZCA).

    Its filters are the eigenvectors of the patches' covariance, each divided by the square root
    of its eigenvalue, and their negatives (GELU keeps half of each): on the patches it was
    fitted to, its first half outputs uncorrelated features of variance about 1. The network
    starts from decorrelated input, which the first epochs would otherwise spend learning.
    Only its bias trains, for the first epochs (speedrun.FreezeWhiteningBias)."""

    def __init__(self, in_channels: int = 3, kernel_size: int = 2):
        super().__init__(in_channels, 2 * in_channels * kernel_size ** 2, kernel_size, bias=True)
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the filters from normalised images (N, C, H, W); eps keeps the smallest
        eigenvalues (noise) from being blown up."""
        covariance = patch_covariance(images, self.kernel_size[0]).double()  # the smallest eigenvalues need it
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        filters = eigenvectors.T.flip(0) / (eigenvalues.flip(0) + eps).sqrt()[:, None]  # largest variance first
        self.weight.copy_(torch.cat([filters, -filters]).view_as(self.weight))


def patch_covariance(images: torch.Tensor, size: int) -> torch.Tensor:
    """The (uncentred) covariance of every size x size patch of images (N, C, H, W), flattened
    as a convolution's filter is: (C*size*size, C*size*size)."""
    c = images.shape[1]
    patches = images.float().unfold(2, size, 1).unfold(3, size, 1)  # (N, C, H', W', size, size)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * size * size)
    return patches.T @ patches / len(patches)


class ConvGroup(nn.Module):
    """airbench's block: conv, max-pool (halves the grid), BatchNorm, GELU, conv, BatchNorm, GELU.
    The convolutions start as identity maps on their first channels (Dirac)."""

    def __init__(self, c_in: int, c_out: int, batchnorm_momentum: float = 0.4):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(c_out, eps=1e-12, momentum=batchnorm_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, eps=1e-12, momentum=batchnorm_momentum)
        for conv in (self.conv1, self.conv2):
            nn.init.dirac_(conv.weight[:conv.in_channels])
        self.pool, self.act = nn.MaxPool2d(2), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class SpeedrunNet(nn.Module):
    """airbench's network (Jordan 2024): a 2x2 first layer, three ConvGroups (32 -> 16 -> 8 -> 4),
    a 3x3 max-pool, a linear layer without bias, and the scores scaled by 1/9.

    widths: the three groups' channels (airbench94: 64, 256, 256; airbench93: 64, 128, 128).
    whitening: the first layer is a frozen Whitening (fit it to training images before training);
    False: an ordinary trainable convolution of the same shape, for comparison."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256), whitening: bool = True):
        super().__init__()
        self.first = Whitening() if whitening else nn.Conv2d(3, 24, 2)
        groups, c_in = [], self.first.out_channels
        for c_out in widths:
            groups.append(ConvGroup(c_in, c_out))
            c_in = c_out
        self.features = nn.Sequential(nn.GELU(), *groups)  # (B, widths[2], 4, 4): what Grad-CAM reads
        self.pool = nn.Sequential(nn.MaxPool2d(3), nn.Flatten())
        self.head = nn.Linear(c_in, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(self.first(x)))) / 9  # (B, 3, 32, 32) -> (B, classes)


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither in torchvision's cache nor downloadable here."""


# torchvision name -> (builder, its ImageNet weights enum); a "_cifar" MobileNet is the same
# network (and weights) with a stem that keeps CIFAR's resolution (keep_resolution)
TORCHVISION_MODELS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    "mobilenet_v2": (torchvision.models.mobilenet_v2,
                     torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1),
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small,
                           torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
}
TORCHVISION_MODELS |= {f"{name}_cifar": TORCHVISION_MODELS[name] for name in ("mobilenet_v2", "mobilenet_v3_small")}


def keep_resolution(net: nn.Module) -> nn.Module:
    """Give an ImageNet MobileNet a stem that keeps CIFAR's resolution: stride 1 in its first
    convolution and in its first block that halves the grid, so that a 32x32 image reaches the
    last blocks at 4x4 instead of 1x1 (kuangliu's CIFAR MobileNetV2 does the same). The weights
    keep their shapes, so ImageNet's still load; the operations grow with the grid they run on."""
    first_stride_2 = next(m for block in net.features[1:] for m in block.modules()
                          if isinstance(m, nn.Conv2d) and m.stride == (2, 2))  # a depthwise 3x3
    for conv in (net.features[0][0], first_stride_2):
        conv.stride = (1, 1)
    return net


def weights_file(name: str) -> Path:
    """Where torchvision's cache ($TORCH_HOME/hub/checkpoints) keeps a model's ImageNet weights."""
    weights = TORCHVISION_MODELS[name][1]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def imagenet_weights(name: str, download: bool = True):
    """Return the weights enum for `name` if its file is cached or can be downloaded.

    Raises WeightsUnavailable with the file's URL and the path to copy it to.
    """
    weights = TORCHVISION_MODELS[name][1]
    path = weights_file(name)
    if path.is_file():
        return weights
    how = (f"Download {weights.url} on a machine with internet access and copy the file to "
           f"{path} (torchvision's cache; set TORCH_HOME to move it).")
    if not download:
        raise WeightsUnavailable(f"ImageNet weights for {name} are not cached. {how}")
    try:
        torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except Exception as err:  # no network, a proxy, a bad hash: all mean no weights
        raise WeightsUnavailable(f"ImageNet weights for {name} are not cached and downloading "
                                 f"them failed ({err}). {how}") from err
    return weights


def pretrained_available(name: str, download: bool = True) -> tuple[bool, str | None]:
    """(True, None) if the ImageNet weights of `name` can be loaded, else (False, what to do)."""
    try:
        imagenet_weights(name, download)
    except WeightsUnavailable as err:
        return False, str(err)
    return True, None


def torchvision_model(name: str, num_classes: int, weights: str | None = None,
                      download: bool = True) -> nn.Module:
    """A torchvision ImageNet architecture with a fresh classifier for `num_classes`.

    weights="imagenet" loads the ImageNet weights through torchvision's weights enum (never a
    random stand-in: WeightsUnavailable is raised when they cannot be had); None: random.
    """
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights={weights!r}: use 'imagenet' or None.")
    builder, _ = TORCHVISION_MODELS[name]
    weights = imagenet_weights(name, download) if weights else None
    model = builder(weights=weights)
    if weights is None:
        # MobileNetV3 averages BatchNorm statistics with momentum 0.01, tuned for hundreds of
        # ImageNet epochs; after a short run from scratch its eval-mode statistics are still
        # far from the data (it predicts one class), so random-init models use the usual 0.1.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    if name == "resnet18":
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)
    return keep_resolution(model) if name.endswith("_cifar") else model


def classifier_of(net: nn.Module) -> nn.Module:
    """The layer of a torchvision model that holds its class scores: `fc` or `classifier`."""
    return net.fc if hasattr(net, "fc") else net.classifier


def split_head(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """A torchvision model's parameters as (body, head): the head is `fc` (ResNet) or
    `classifier` (MobileNet), the body everything before it."""
    head = "fc" if isinstance(getattr(net, "fc", None), nn.Linear) else "classifier"
    body = [p for name, p in net.named_parameters() if not name.startswith(f"{head}.")]
    return body, list(getattr(net, head).parameters())


def new_head(net: nn.Module, num_classes: int, seed: int | None = None) -> nn.Module:
    """Give a model (ResNet: `fc`; MobileNet: `classifier`'s last layer) a fresh last layer for
    `num_classes` classes, drawn from `seed`; its architecture records the new classes."""
    with seeded(seed):
        if isinstance(getattr(net, "fc", None), nn.Linear):
            net.fc = nn.Linear(net.fc.in_features, num_classes)
        else:
            net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, num_classes)
    if hasattr(net, "architecture"):
        net.architecture = dataclasses.replace(net.architecture, num_classes=num_classes)
    return net


class Upsampled(nn.Module):
    """Resize the input batch (bilinear) before the wrapped model: 32x32 -> size x size."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model, self.size = model, size
        if hasattr(model, "architecture"):
            self.architecture = dataclasses.replace(model.architecture, input_px=size)

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.model(x)


def stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """A ResNet18's parts from the input up, CIFAR's or torchvision's: the stem with layer1, then
    layer2, layer3, layer4 and the classifier. Early stages hold generic features (edges,
    colours), later ones parts of objects; the classifier is the task's own."""
    stem = [net.stem] if hasattr(net, "stem") else [net.conv1, net.bn1]
    return [("stem+layer1", nn.ModuleList([*stem, net.layer1])), ("layer2", net.layer2),
            ("layer3", net.layer3), ("layer4", net.layer4), ("fc", net.fc)]


@torch.no_grad()
def trace_stages(model: nn.Module, size: int) -> str:
    """The feature-map side after each stage of a ResNet18 (CIFAR or ImageNet) for one image."""
    stages = (["stem", "layer1", "layer2", "layer3", "layer4"] if hasattr(model, "stem")
              else ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"])
    x, sides = torch.zeros(1, 3, size, size), []
    for name in stages:
        x = getattr(model, name)(x)
        if name in ("stem", "maxpool") or name.startswith("layer"):
            sides.append(f"{name} {x.shape[-1]}×{x.shape[-1]}")
    return " -> ".join(sides)


REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "logistic_regression": LogisticRegression,
    "simple_cnn": SimpleCNN,
    "resnet18_cifar": CifarResNet18,
    "speedrun_net": SpeedrunNet,
    **{name: functools.partial(torchvision_model, name) for name in TORCHVISION_MODELS},
}


@dataclass(frozen=True)
class Architecture:
    """What it takes to build a model again: the registry name, the builder's options, the
    number of classes and the side of the images it sees (Upsampled when not 32)."""

    name: str
    num_classes: int
    options: dict = field(default_factory=dict)  # the builder's keywords (widths=...), never weights
    input_px: int = 32


WEIGHT_OPTIONS = ("weights", "download")  # how the starting weights were had, not the architecture


def build(name: str, num_classes: int, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model by name (torchvision ones take weights="imagenet", download=).

    seed: draw the random initial weights from this seed (the same seed, the same weights),
    leaving the global random stream as it was; None draws them from the global stream.
    The model carries its Architecture as `model.architecture`.
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(REGISTRY)}.")
    with seeded(seed):
        model = REGISTRY[name](num_classes=num_classes, **kwargs)
    options = {k: v for k, v in kwargs.items() if k not in WEIGHT_OPTIONS}
    model.architecture = Architecture(name, num_classes, options)
    return model


def rebuild(architecture: Architecture) -> nn.Module:
    """A model of this architecture with fresh random weights, to load saved weights into."""
    model = build(architecture.name, architecture.num_classes, **architecture.options)
    return at_size(model, architecture.input_px)


def at_size(model: nn.Module, size: int) -> nn.Module:
    """The model as it sees images of side `size`: itself at CIFAR's 32 px, else Upsampled."""
    return model if size == 32 else Upsampled(model, size)
