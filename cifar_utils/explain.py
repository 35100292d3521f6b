"""What a network looks at: first-layer filters, feature maps, and Grad-CAM.

Each reads a model through forward (and backward) hooks: a hook is a function PyTorch calls
with a layer's output as the model runs, so nothing in the model has to change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data import ImageSet, stratified_indices
from .loaders import normalise
from .precision import unwrap


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first convolution: its filters look at the pixels themselves."""
    for module in unwrap(model).modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"{type(unwrap(model)).__name__} has no convolution")


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The output of each named layer (model.get_submodule names) for a batch: name -> (B, C, H, W)."""
    outputs = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda module, args, out, name=name: outputs.__setitem__(name, out.detach().clone()))
        for name in layers]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: outputs[name] for name in layers}


def right_and_wrong(model: nn.Module, images: ImageSet, mean: Sequence[float], std: Sequence[float],
                    n: int = 8, seed: int = 0) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Up to n images the model classifies right, then up to n it gets wrong, out of 128 drawn in
    the classes' proportions (seeded), each n taken from one true class after another (a data set
    stored class by class would otherwise show n of its first class): their indices in `images`,
    the model's input for them (normalised with mean and std), and its prediction for each."""
    pool = stratified_indices(images.labels, 128, seed)
    x = normalise(images.images[pool], mean, std)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    truth = images.labels[pool]
    right = (predicted == torch.from_numpy(truth)).numpy()

    def in_turn(positions: np.ndarray) -> np.ndarray:  # one of each class, then a second of each, ...
        by_class = [positions[truth[positions] == c] for c in np.unique(truth[positions])]
        return np.array([ix[k] for k in range(max(map(len, by_class), default=0)) for ix in by_class if k < len(ix)],
                        dtype=int)

    shown = np.concatenate([in_turn(np.flatnonzero(right))[:n], in_turn(np.flatnonzero(~right))[:n]])
    return pool[shown], x[shown], predicted[shown]


def cam_layer(model: nn.Module) -> str:
    """The layer Grad-CAM reads for one of the course's models: the last stage before the
    classifier (`layer4` of a ResNet, `features` of SimpleCNN and the MobileNets), inside the
    Upsampled or compute-format wrapper if there is one."""
    names = dict(model.named_modules())
    for prefix in ("", "model.", "module.", "module.model."):
        for stage in ("layer4", "features"):
            if prefix + stage in names:
                return prefix + stage
    raise ValueError(f"{type(unwrap(model)).__name__} has no convolutional stage for Grad-CAM to read")


def grad_cam(model: nn.Module, layer: str, x: torch.Tensor,
             classes: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017): where in each image the evidence for a class lies.

    Take the named layer's feature maps A (B, C, h, w) and the gradient of the class score
    with respect to them; weight each channel by its mean gradient (how much the score grows
    with that channel), sum the weighted maps, keep the positive part, and scale the map up
    to the input's size. classes: one class per image (default: the predicted one).
    Name a block or an activation, not a convolution whose output an in-place ReLU overwrites.
    Returns (B, H, W), each map scaled to [0, 1].
    """
    saved = {}
    hook = model.get_submodule(layer).register_forward_hook(
        lambda module, args, out: saved.__setitem__("maps", out))
    try:
        with torch.enable_grad():
            scores = model(x.detach().requires_grad_(True))  # (B, classes); a graph even if frozen
            if classes is None:
                classes = scores.argmax(dim=1)
            maps = saved.get("maps")
            if maps is None:
                raise ValueError(f"{layer!r} did not run in the forward pass: name a layer the scores come from")
            # the gradient with respect to the maps only: nothing accumulates in the weights' .grad
            grads, = torch.autograd.grad(scores.gather(1, classes.view(-1, 1)).sum(), maps,
                                         allow_unused=True)
    finally:
        hook.remove()
    if grads is None:
        raise ValueError(f"no gradient reached {layer!r}: name a layer the class scores depend on")
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    cam = F.relu((weights * maps.detach()).sum(dim=1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)
    return cam / peak.view(-1, 1, 1)


def overlay(image: np.ndarray, cam: torch.Tensor, side: int = 256, share: float = 0.45) -> np.ndarray:
    """A uint8 image (H, W, 3) enlarged to side x side (nearest: its real pixels) with a Grad-CAM map
    (h, w, in [0, 1]) laid over it in a heat colour map: `share` of the map, the rest the image."""
    from matplotlib import colormaps

    picture = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST), dtype=np.float32)
    heat = F.interpolate(cam[None, None].float(), size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    colours = colormaps["jet"](heat.clamp(0, 1).numpy())[..., :3] * 255  # (side, side, 3)
    return ((1 - share) * picture + share * colours).round().clip(0, 255).astype(np.uint8)
