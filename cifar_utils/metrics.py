"""Accuracy: top-k, evaluation (with flip test-time augmentation), confusion matrices, per-class
accuracy, the mistakes a model makes most, and linear probes of a model's features. What a model costs is the `cost` module's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def topk_correct(logits: torch.Tensor, labels: torch.Tensor,
                 ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Count, for each k, the rows whose label is among the k highest scores (device tensors).

    Tied scores (frequent in bf16) rank in class order, as argmax breaks them, so that the top-1
    agrees with every prediction taken by argmax (confusion matrices, errors); topk breaks them
    as it likes."""
    top = logits.argsort(dim=1, descending=True, stable=True)[:, :min(max(ks), logits.shape[1])]  # (B, kmax)
    hits = top == labels[:, None]  # (B, kmax)
    return [hits[:, :k].any(dim=1).sum() for k in ks]


# Test-time augmentation: views of a batch and the weight of each in the mean of the scores.
FLIP = {"identity": 0.5, "mirror": 0.5}  # an image and its mirror image, as likely as CIFAR images
# airbench's multi-crop (Jordan 2024): half the weight on the image and its mirror, half on two
# windows shifted by one pixel (up-left, down-right; the edge reflected), each with its mirror
MULTI_CROP = {"identity": 0.25, "mirror": 0.25, "up-left": 0.125, "mirror up-left": 0.125,
              "down-right": 0.125, "mirror down-right": 0.125}
SHIFTS = {"up-left": (0, 0), "down-right": (2, 2)}  # where the window starts in the image padded by 1 pixel


def view(x: torch.Tensor, name: str) -> torch.Tensor:
    """One view of a batch (B, C, H, W): "identity", "mirror", a shift (the window moved one pixel
    "up-left" or "down-right", so the content moves the other way, the edge reflected in), or a
    mirrored shift ("mirror up-left": shifted, then mirrored)."""
    words = name.split()
    if not set(words) <= {"identity", "mirror", *SHIFTS} or not words:
        raise ValueError(f"Unknown view {name!r}: the views are identity, mirror, {', '.join(SHIFTS)} "
                         "and mirrored shifts ('mirror up-left').")
    for word in words:
        if word in SHIFTS:
            (top, left), (h, w) = SHIFTS[word], x.shape[-2:]
            x = F.pad(x, (1, 1, 1, 1), mode="reflect")[..., top:top + h, left:left + w]
    return x.flip(3) if "mirror" in words else x  # shifted, then mirrored, as airbench does


def logits_of(model: nn.Module, x: torch.Tensor, flip_tta: bool = False,
              views: dict[str, float] | None = None) -> torch.Tensor:
    """The model's fp32 scores for a batch; with test-time augmentation, the weighted mean of its
    scores over `views` (name -> weight, as MULTI_CROP), or over FLIP's with flip_tta."""
    views = FLIP if flip_tta else views
    if not views:
        return model(x).float()
    return sum(weight * model(view(x, name)).float() for name, weight in views.items())


class Averaged(nn.Module):
    """A network whose scores are its mean over test-time views (logits_of): one module, to
    export or hand in."""

    def __init__(self, network: nn.Module, views: dict[str, float]):
        super().__init__()
        self.network, self.views = network, dict(views)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.network, x, views=self.views)


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device, flip_tta: bool = False,
            views: dict[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits float32 (N, classes), labels (N,)) on the CPU, in the loader's order; with
    test-time augmentation over `views` (or FLIP's, with flip_tta) as logits_of takes them."""
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        outs.append(logits_of(model, x.to(device, non_blocking=True), flip_tta, views))
        labels.append(y.to(device))
    return torch.cat(outs).cpu(), torch.cat(labels).cpu()


@torch.no_grad()
def features(model: nn.Module, head: nn.Module, loader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """What `model` hands its `head` (the last layer) for every image of a loader, in eval mode:
    (features float32 (N, D), labels (N,)) on the CPU. The model's train mode is left as it was."""
    caught, was_training = [], model.training
    hook = head.register_forward_pre_hook(lambda _, inputs: caught.append(inputs[0].float().flatten(1).cpu()))
    try:
        _, labels = predict(model, loader, device)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(caught), labels


def linear_probe(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 steps: int = 100, weight_decay: float = 1e-3) -> float:
    """Test top-1 of a logistic regression fitted (L-BFGS, full batch) to frozen features:
    train and test are (features (N, D), labels (N,)), standardised by the train statistics.
    How much of the classes the features still separate with a line, whatever the head did."""
    x, y = train
    if not (torch.isfinite(x).all() and torch.isfinite(test[0]).all()):
        return float("nan")  # features that overflowed separate nothing: no probe to fit
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    x = (x - mean) / std
    # a convex problem: start anywhere, end alike; from zeros, skipping the random initialisation, so
    # that a probe in the middle of a run draws nothing from the random stream the run goes on with
    linear = nn.utils.skip_init(nn.Linear, x.shape[1], int(max(y.max(), test[1].max())) + 1)
    nn.init.zeros_(linear.weight), nn.init.zeros_(linear.bias)
    lbfgs = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        loss = F.cross_entropy(linear(x), y) + weight_decay * linear.weight.square().sum()
        loss.backward()
        return loss

    lbfgs.step(closure)
    with torch.no_grad():
        return (linear((test[0] - mean) / std).argmax(1) == test[1]).float().mean().item()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device,
             flip_tta: bool = False) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (fractions) over a loader."""
    return scores(*predict(model, loader, device, flip_tta))


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (fractions) of logits (N, classes) for labels (N,)."""
    top1, top5 = topk_correct(logits, labels, (1, 5))
    n = len(labels)
    return {"loss": F.cross_entropy(logits, labels).item(), "top1": top1.item() / n, "top5": top5.item() / n}


def mirrored(loader):
    """The loader's batches with every image mirrored left to right (the width reversed)."""
    return ((x.flip(3), y) for x, y in loader)


def confusion_matrix(preds: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """Count (true class, predicted class) pairs: rows are the truth."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    return np.bincount(labels * num_classes + preds,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Share of each true class that was predicted right (NaN for a class with no images)."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)


def most_confused(cm: np.ndarray, classes: Sequence[str], top: int = 5) -> list[tuple[str, str, float]]:
    """The `top` (true, predicted, share of the true class) mistakes, most frequent share first."""
    totals = cm.sum(axis=1, keepdims=True).clip(min=1)
    shares = cm / totals
    np.fill_diagonal(shares, 0)
    order = np.argsort(shares, axis=None)[::-1][:top]
    return [(classes[i], classes[j], float(shares[i, j])) for i, j in zip(*np.unravel_index(order, cm.shape))
            if shares[i, j] > 0]


def error_summary(cm: np.ndarray, classes: Sequence[str], top: int = 5) -> str:
    """Two lines a person can read for 10 or 100 classes: the most confused pairs, and the
    classes from worst to best (all of them for 10 classes, the five at each end for more)."""
    pairs = ", ".join(f"{t} as {p} {share:.0%}" for t, p, share in most_confused(cm, classes, top))
    accuracy = per_class_accuracy(cm)
    ranked = [f"{classes[i]} {accuracy[i]:.0%}" for i in np.argsort(accuracy) if not np.isnan(accuracy[i])]
    if len(ranked) > 12:
        ranked = [*ranked[:5], "...", *ranked[-5:]]
    return (f"most confused (true as predicted, share of the true class): {pairs}\n"
            f"per class, worst to best: {', '.join(ranked)}")


def calibration(logits: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> dict:
    """How far the top probability is from how often the model is right (Guo et al., 2017).

    The test images are binned by their top softmax probability (bins of equal width); each
    bin has a mean confidence and an accuracy. ECE, the expected calibration error, is the gap
    between the two averaged over the bins, weighted by their share of the images: 0 for a model
    whose 80%-confident answers are right 80% of the time, and so on. Returns ece and, per bin,
    confidence, accuracy and counts (numpy arrays).
    """
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    correct = (predicted == labels).double().numpy()
    confidence = confidence.double().numpy()
    which = np.minimum((confidence * bins).astype(int), bins - 1)  # bin i holds [i/bins, (i+1)/bins)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / counts
        accuracy = np.bincount(which, correct, bins) / counts
    gaps = np.nan_to_num(np.abs(accuracy - mean_confidence))
    return {"ece": float((counts * gaps).sum() / len(labels)), "confidence": mean_confidence,
            "accuracy": accuracy, "counts": counts}
