"""Every figure of the course. Each takes ax=None, draws, and returns the axes."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator
from PIL import Image

from .settings import seeded


def _axes(ax, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def panels(rows: int = 1, cols: int = 2, width: float = 6.0, height: float = 4.0):
    """A figure of rows x cols axes (width x height inches each) whose layout makes room for every
    legend beside its axes, so that no legend lies on the next panel: (figure, axes)."""
    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), layout="constrained")


def legend_beside(ax, fontsize: int | None = None, title: str | None = None):
    """The legend right of the axes, where it covers no data (a layout makes room for it)."""
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=fontsize, title=title,
                       title_fontsize=fontsize)
    if title:
        legend.get_title().set_multialignment("left")
    return legend


def _tile(images: np.ndarray, ncols: int, gap: int = 2) -> np.ndarray:
    """Lay (N, H, W, 3) uint8 images out in a grid with white gaps: (rows*H', cols*W', 3)."""
    n, h, w, _ = images.shape
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return canvas


def sample_grid(images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                per_class: int = 8, ax=None):
    """One row per class: the first `per_class` images of each, labelled on the left."""
    rows = [images[labels == c][:per_class] for c in range(len(classes))]
    ax = _axes(ax, figsize=(per_class * 0.9, len(classes) * 0.9))
    ax.imshow(_tile(np.concatenate(rows), per_class), interpolation="nearest")  # real pixels
    step = images.shape[1] + 2
    ax.set_yticks([step * i + images.shape[1] / 2 for i in range(len(classes))], classes)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax


def augmentation_preview(image: np.ndarray, augmentations: dict, n: int = 6, seed: int = 0,
                         ax=None):
    """One row per augmentation: the original, then n random draws of it (drawn from `seed`,
    leaving the global random stream as it was)."""
    pil = Image.fromarray(image)
    rows, names = [], []
    with seeded(seed):  # torchvision's transforms draw from torch's global stream
        for name, transform in augmentations.items():
            rows.append([image] + [np.asarray(transform(pil)) for _ in range(n)])
            names.append(name)
    ax = _axes(ax, figsize=((n + 1) * 1.0, len(rows) * 1.0))
    ax.imshow(_tile(np.array([img for row in rows for img in row]), n + 1), interpolation="nearest")
    step = image.shape[0] + 2
    ax.set_yticks([step * i + image.shape[0] / 2 for i in range(len(rows))], names)
    ax.set_xticks([image.shape[1] / 2], ["original"])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax


def learning_curves(history: list[dict], metric: str = "top1", label: str = "", ax=None,
                    against: str = "epoch"):
    """Train and validation `metric` (loss or top1) per epoch, or against the seconds of
    training so far (against="seconds")."""
    ax = _axes(ax)
    if against == "seconds":
        x = np.cumsum([r["seconds"] for r in history])
        ax.set_xlabel("seconds of training")
    else:
        x = [r["epoch"] for r in history]
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
    prefix = f"{label} " if label else ""
    line, = ax.plot(x, [r[f"val_{metric}"] for r in history], marker="o", label=f"{prefix}validation")
    if f"train_{metric}" in history[0]:
        ax.plot(x, [r[f"train_{metric}"] for r in history], linestyle="--",
                color=line.get_color(), label=f"{prefix}train")
    ax.set_ylabel("top-1 accuracy" if metric == "top1" else metric)
    legend_beside(ax)
    ax.grid(alpha=0.3)
    return ax


def compared_curves(histories: dict[str, list[dict]], views: Sequence[tuple[str, str]], title: str = ""):
    """A panel per view, (metric, against) such as ("top1", "epoch") or ("loss", "seconds"), with
    the train and validation curves of every labelled history, the whole under `title`.
    Returns the figure."""
    fig, _ = panels(1, len(views))
    for ax, (metric, against) in zip(fig.axes, views):
        for label, history in histories.items():
            learning_curves(history, metric, label=label, ax=ax, against=against)
        ax.get_legend().remove()  # every panel draws the same lines: one legend serves them all
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside right upper")
    if title:
        fig.suptitle(title)
    return fig


def confusion_matrix(cm: np.ndarray, classes: Sequence[str], normalize: bool = True, title: str = "", ax=None):
    """Heatmap of true (rows) against predicted (columns) classes, as row shares if normalize."""
    values = cm / cm.sum(axis=1, keepdims=True).clip(min=1) if normalize else cm
    ax = _axes(ax, figsize=(7, 6))
    small = len(classes) <= 20
    sns.heatmap(values, annot=small, fmt=".2f" if normalize else "d", cmap="Blues",
                xticklabels=classes if small else False, yticklabels=classes if small else False,
                square=True, cbar=True, ax=ax, annot_kws={"size": 7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return ax


MANY_CLASSES = 20  # beyond this, classes are labelled by index, every tenth


def _grouped_bars(values: dict[str, np.ndarray], classes: Sequence[str], ylabel: str, ax):
    """One group of bars per class, one bar per named series; each class named (vertically, so
    that no two names meet), or with many classes every tenth by its index."""
    few = len(classes) <= MANY_CLASSES
    ax = _axes(ax, figsize=(max(6, len(classes) * 0.6), 4) if few else (12, 4))
    width = 0.8 / len(values)
    x = np.arange(len(classes))
    for i, (name, v) in enumerate(values.items()):
        ax.bar(x + (i - (len(values) - 1) / 2) * width, v, width, label=name)
    if few:
        ax.set_xticks(x, classes, rotation=90)
    else:
        ax.set_xticks(x[::10], [str(i) for i in x[::10]])
        ax.set_xlabel("class (index; the names are in torchvision's order)")
    ax.set_ylabel(ylabel)
    legend_beside(ax)
    ax.grid(axis="y", alpha=0.3)
    return ax


def per_class_accuracy(accuracies: dict[str, np.ndarray], classes: Sequence[str], ax=None):
    """Grouped bars: per-class test accuracy for each named model."""
    ax = _grouped_bars(accuracies, classes, "test accuracy", ax)
    ax.set_ylim(0, 1)
    return ax


def class_counts(counts: dict[str, np.ndarray], classes: Sequence[str], ax=None):
    """Grouped bars: images per class for each named split."""
    return _grouped_bars(counts, classes, "images", ax)


def misclassified(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                  classes: Sequence[str], n: int = 16, ncols: int = 8, title: str = ""):
    """The model's `n` most confident mistakes: each test image with its true class, the
    prediction and the probability the model gave it, under `title`. Returns the figure."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    shown = wrong[np.argsort(probabilities[wrong, predicted[wrong]])[::-1][:n]]
    nrows = max(1, -(-len(shown) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.5, nrows * 1.8 + 0.4 * bool(title)), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        ax.imshow(images[i], interpolation="nearest")
        ax.set_title(f"{classes[labels[i]]}\nas {classes[predicted[i]]} {probabilities[i, predicted[i]]:.0%}",
                     fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def prediction(image: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
               top: int = 5, title: str = "", ax=None):
    """A bar chart of the model's top classes for one image, with the image as a corner inset."""
    ax = _axes(ax, figsize=(6, 3))
    order = np.argsort(probabilities)[::-1][:top]
    ax.barh([classes[i] for i in order][::-1], probabilities[order][::-1], color="tab:blue")
    ax.set(xlim=(0, 1), xlabel="probability", title=title)
    inset = ax.inset_axes([0.7, 0.1, 0.28, 0.5])
    inset.imshow(image)
    inset.axis("off")
    return ax


COST_LABELS = {"train_seconds": "training time (s)", "params": "parameters",
               "flops": "FLOPs per image", "cpu_latency_ms": "CPU latency at batch 1 (ms)"}


MARKERS = "osD^vP*Xhp<>d8H"  # one per run of a group, so that no label needs to sit on the data


def accuracy_against_cost(records: Sequence[dict], cost: str = "train_seconds",
                          group: str | None = None, log: bool = True, title: str = "", ax=None,
                          group_order: Sequence | None = None):
    """Test top-1 of each run against what it cost (a key of its record).

    Each run gets its own hollow marker, so that runs at one point stay visible (its group's
    colour: group is a key such as the notebook; group_order fixes the colours, for panels that
    agree), named in a legend beside the axes, so that no name covers a point or another name.
    Where the runs' budgets (epochs x training images) differ, each name carries its budget (or
    that it trained in another notebook: 0 epochs here) and the legend's title says so. log: a
    log scale, where the costs span more than a decade.
    """
    ax = _axes(ax, figsize=(8, 4.5))
    budgets = {(r.get("epochs"), r.get("train_images")) for r in records if r.get("epochs") != 0}
    differ = len(budgets) > 1 and all(e is not None and n is not None for e, n in budgets)
    groups = list(dict.fromkeys(r.get(group) for r in records)) if group else [None]
    order = list(group_order) if group_order is not None else groups
    for name in groups:
        colour = f"C{order.index(name) % 10}"
        mine = [r for r in records if group is None or r.get(group) == name]
        for k, r in enumerate(mine):
            budget = f"{r['epochs']} x {r['train_images']:,}" if r.get("epochs") else "trained in another notebook"
            label = f"{r['name']} ({budget})" if differ or r.get("epochs") == 0 else r["name"]
            colour = colour if group else f"C{k % 10}"  # no groups: a colour per run, as well as a marker
            ax.scatter(r[cost], r["test_top1"], facecolors="none", edgecolors=colour, linewidths=1.6,
                       marker=MARKERS[k % len(MARKERS)], s=70, zorder=2, label=f"{name}: {label}" if group else label)
    costs = [r[cost] for r in records]
    log = log and min(costs) > 0 and max(costs) > 10 * min(costs)  # within a decade a log scale shows little
    if log:
        ax.set_xscale("log")
        # within a decade or two matplotlib labels minor ticks, 3 and 4 x 10^n side by side: keep 2
        # and 5, and write every tick as a plain number (5 M, 10 M, 20 M), not 2 x 10^7
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(sep=" "))
        if max(costs) <= 100 * min(costs):  # over more decades the powers of ten are ticks enough
            ax.xaxis.set_minor_formatter(EngFormatter(sep=" "))
    ax.set_xlabel(COST_LABELS.get(cost, cost) + (" (log scale)" if log else ""))
    ax.set(ylabel="test top-1", title=title)
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=7, title="budgets differ (epochs x training images):\ncompare with care" if differ else None)
    return ax


def accuracy_against_cost_by_task(records: Sequence[dict], cost: str, num_classes: int, group: str = "notebook", title=""):
    """accuracy_against_cost in a panel per task, one above the other: runs scored on fewer classes
    than num_classes (a record's `classes`) share no axis with the rest. Returns the figure."""
    tasks = sorted({r.get("classes", num_classes) for r in records}, reverse=True)
    fig, _ = panels(len(tasks), 1, width=9.5, height=3.6)
    for ax, classes in zip(fig.axes, tasks):
        accuracy_against_cost([r for r in records if r.get("classes", num_classes) == classes], cost, group=group, ax=ax,
                              group_order=list(dict.fromkeys(r.get(group) for r in records)),
                              title=f"scored on {classes} classes (chance {1 / classes:.0%})")
    fig.suptitle(title)
    return fig


def learning_rates(lrs: Sequence[Sequence[float]], groups: Sequence[str],
                   mark_step: int | None = None, title: str = "", ax=None):
    """Each parameter group's learning rate per step (callbacks.LRMonitor), on a log scale; a
    step where the group was frozen (None) is left blank, a group frozen throughout is left out,
    and groups whose rates are the same at every step share one line and one legend entry."""
    ax = _axes(ax, figsize=(5, 3.2))
    trace = np.asarray(lrs, dtype=float)  # (steps, groups); None becomes NaN, which is not drawn
    lines: dict[bytes, list[str]] = {}  # a trace (as bytes: NaN equals NaN) -> the groups that follow it
    for g, name in enumerate(groups):
        if not np.isnan(trace[:, g]).all():
            lines.setdefault(trace[:, g].tobytes(), []).append(name)
    for key, names in lines.items():
        ax.plot(np.frombuffer(key), label=", ".join(names))
    if mark_step is not None:
        ax.axvline(mark_step, color="grey", linestyle=":", label="unfreeze")
    ax.set(xlabel="step", ylabel="learning rate", yscale="log")
    ax.set_title(title, fontsize=9)
    legend_beside(ax, fontsize=7)
    return ax


def lr_range(lrs: Sequence[float], losses: Sequence[float], marks: dict[str, float], ax=None):
    """The range test's smoothed loss against the learning rate (log scale), with named rates marked."""
    ax = _axes(ax)
    ax.plot(lrs, losses)
    for (name, lr), style in zip(marks.items(), ("--", ":", "-.")):
        ax.axvline(lr, linestyle=style, color="grey", label=f"{name}: {lr:.2g}")
    ax.set_xscale("log")
    start, low = losses[0], min(losses)
    fall = start - low  # the part worth seeing; the blow-up at the end would squash it flat
    ax.set_ylim(*((low - 0.15 * fall, start + 0.6 * fall) if fall > 0 else (None, min(max(losses), 3 * low))))
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss (smoothed)")
    legend_beside(ax)
    return ax


def channel_histograms(images: np.ndarray, ax=None):
    """Histogram of the pixel values of each colour channel of uint8 images (N, H, W, 3)."""
    ax = _axes(ax, figsize=(6, 3))
    for c, colour in enumerate(("red", "green", "blue")):
        ax.hist(images[..., c].ravel(), bins=64, color=colour, alpha=0.4, label=colour)
    ax.set_xlabel("pixel value (0-255)")
    ax.set_ylabel("pixels")
    legend_beside(ax, fontsize=8)
    return ax


def class_templates(weight: torch.Tensor, classes: Sequence[str], ax=None):
    """A linear model's weights drawn as one 32x32 image per class, each stretched to 0-255."""
    w = weight.detach().float().cpu().view(-1, 3, 32, 32)[:10]  # (classes, 3, 32, 32)
    low, high = w.amin(dim=(1, 2, 3), keepdim=True), w.amax(dim=(1, 2, 3), keepdim=True)
    images = ((w - low) / (high - low) * 255).byte().permute(0, 2, 3, 1).numpy()
    ax = _axes(ax, figsize=(12, 1.8))
    ax.imshow(_tile(images, len(images)), interpolation="nearest")
    ax.set_xticks([34 * i + 16 for i in range(len(images))], classes[:len(images)], fontsize=8)
    ax.set_yticks([])
    return ax


def reliability(curves: dict[str, dict], title: str = "", ax=None):
    """Accuracy against confidence per bin (metrics.calibration), one line per model, beside the
    diagonal a perfectly calibrated model would follow; each label gives its ECE."""
    ax = _axes(ax, figsize=(5, 4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for name, c in curves.items():
        filled = c["counts"] > 0
        ax.plot(c["confidence"][filled], c["accuracy"][filled], marker="o", label=f"{name} (ECE {c['ece']:.3f})")
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    legend_beside(ax)
    return ax


def _stretch(t: torch.Tensor) -> np.ndarray:
    """Each (C, H, W) or (H, W) map of a batch stretched to 0-255 on its own, as uint8 numpy."""
    t = t.detach().float().cpu()
    dims = tuple(range(1, t.ndim))
    low, high = t.amin(dim=dims, keepdim=True), t.amax(dim=dims, keepdim=True)
    return ((t - low) / (high - low).clamp_min(1e-12) * 255).byte().numpy()


def filters(weight: torch.Tensor, ncols: int = 8, title: str = "", ax=None):
    """A first convolution's filters (out, 3, k, k) as colour images, ncols to a row and 0.8 inch
    each, each stretched; the title wraps to the grid's width."""
    images = _stretch(weight).transpose(0, 2, 3, 1)  # (out, k, k, 3)
    ncols = min(ncols, len(images))
    width = max(ncols * 0.8, 4.0)
    ax = _axes(ax, figsize=(width, -(-len(images) // ncols) * 0.8 + 0.5 * bool(title)))
    ax.imshow(_tile(images, ncols, gap=1), interpolation="nearest")
    ax.axis("off")
    ax.set_title(textwrap.fill(title, width=int(width * 10)), fontsize=10)  # about 10 characters an inch at 10 pt
    return ax


def feature_maps(image: np.ndarray, maps: dict[str, torch.Tensor], channels: int = 8):
    """One image, then per layer its first `channels` feature maps (grey, each stretched).
    maps: layer name -> (1, C, H, W) as explain.feature_maps returns. Returns the figure."""
    fig, axes = plt.subplots(len(maps), channels + 1, figsize=((channels + 1) * 1.1, len(maps) * 1.2),
                             squeeze=False)
    for row, (name, m) in zip(axes, maps.items()):
        row[0].imshow(image, interpolation="nearest")
        row[0].set_ylabel(f"{name}\n{tuple(m.shape[1:])}", fontsize=7)
        for ax, fmap in zip(row[1:], _stretch(m[0, :channels])):
            ax.imshow(fmap, cmap="gray", interpolation="nearest")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def grad_cam(images: np.ndarray, maps: torch.Tensor, titles: Sequence[str], ncols: int = 8, title: str = ""):
    """Each image with its Grad-CAM map laid over it (bright: where the class evidence is), the
    whole under `title`. Returns the figure."""
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(ncols * 1.5, nrows * 3.4), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, cam, caption) in enumerate(zip(images, maps.detach().cpu().numpy(), titles)):
        r, c = divmod(i, ncols)
        axes[2 * r, c].imshow(image, interpolation="nearest")
        axes[2 * r, c].set_title(caption, fontsize=8)
        axes[2 * r + 1, c].imshow(image, interpolation="nearest")
        axes[2 * r + 1, c].imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
    if title:
        fig.suptitle(title)
    return fig


def grad_cam_right_and_wrong(images: np.ndarray, maps: torch.Tensor, truth: Sequence[int], predicted: Sequence[int],
                             classes: Sequence[str], title: str = ""):
    """grad_cam of test images whose truth is known (explain.right_and_wrong): each captioned with
    its true class and, if it was misread, the prediction; `title` gains the count right and wrong."""
    truth, predicted = [int(t) for t in truth], [int(p) for p in predicted]
    right = sum(t == p for t, p in zip(truth, predicted))
    return grad_cam(images, maps, [classes[t] + ("" if t == p else f"\nas {classes[p]}") for t, p in zip(truth, predicted)],
                    title=f"{title} ({right} right, {len(truth) - right} wrong)".lstrip())


def mixed_batch(images: torch.Tensor, soft_labels: torch.Tensor, classes: Sequence[str], title: str = ""):
    """Mixed images (B, 3, H, W) in [0, 1], each titled with its two largest label shares, the
    whole under `title`. Returns the figure."""
    pictures = (images.clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    fig, axes = plt.subplots(1, len(pictures), figsize=(len(pictures) * 1.5, 2), squeeze=False, layout="constrained")
    for ax, picture, soft in zip(axes[0], pictures, soft_labels.cpu()):
        shares, which = soft.topk(2)
        ax.imshow(picture, interpolation="nearest")
        ax.set_title("\n".join(f"{share:.2f} {classes[c]}" for share, c in zip(shares.tolist(),
                                                                              which.tolist()) if share > 0),
                     fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig
