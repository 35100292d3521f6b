"""Pretrained starting weights: ImageNet's where torchvision has them, the course's own elsewhere.

A network pretrained on one task (the source) and trained further on another (the target)
starts from features that already respond to edges, textures and parts. Online, a torchvision
architecture starts from its ImageNet weights (the weights enum, through torchvision's cache)
and the target is the whole data set. Where those weights cannot be had (offline, behind a
firewall, in CI), the course pretrains a network itself on the data it has: on the first half
of the classes (the source task), and transfers it to the second half, classes the backbone
never saw, as Yosinski et al. (2014) split ImageNet's classes in two. That network is the same
architecture, or one a notebook names as better suited to a CPU's budget (03 and 04 take the
CIFAR ResNet18 of 03, which learns far more per second at 32x32 than ImageNet's). The
pretraining is a checkpoint, made once per data set and profile and reused by every notebook
that asks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import checkpoints, data, loaders, models
from .recipe import Hyper, train
from .settings import Config

PRETRAIN_LR = 0.1  # peak learning rate per 128 images of the course's own pretraining: 03's scratch rate
# Fine-tuning rates (peak, per 128 images, SGD). ImageNet's weights, learned over 90 epochs of
# 1.28 million photos, take a tenth of the scratch rate, the usual choice. The course's own,
# learned in a few epochs on a few thousand images, are far from settled: at a tenth they were
# still under-trained after the laptop's 3 epochs; at half the scratch rate they kept their
# head start from the first epoch and ended within two points of the full rate on validation
# (docs/measurements.md).
IMAGENET_FINE_TUNE_LR = 0.01
COURSE_FINE_TUNE_LR = 0.05


@dataclass
class Pretrained:
    """Where a backbone's starting weights come from, and the task they transfer to."""

    name: str  # the architecture (models.REGISTRY)
    options: dict  # its builder's options (widths=...)
    source: str  # "imagenet" or "course"
    trained_on: str  # the source task, in a few words: "ImageNet", or the classes of the course's pretraining
    description: str  # where the weights come from, in full, for the notebook and the results
    target: data.CifarData  # what the network trains and is tested on after pretraining
    mean: tuple[float, ...]  # the normalisation the pretraining saw, per channel: feed the target the same
    std: tuple[float, ...]
    fine_tune_lr: float  # the peak rate (per 128 images, SGD) that suits fine-tuning them
    weights: dict | None = None  # the course's pretrained weights; ImageNet's come through torchvision
    source_classes: list[str] | None = None  # the classes the course's pretraining learned
    missing: str | None = None  # why ImageNet's weights could not be had (None if they could)

    def build(self, seed: int, download: bool = True) -> nn.Module:
        """The architecture with the pretrained weights and a fresh last layer for the target's
        classes, drawn from `seed`."""
        if self.source == "imagenet":
            return models.build(self.name, self.target.num_classes, seed=seed, weights="imagenet",
                                download=download)
        net = models.build(self.name, len(self.source_classes), **self.options)
        net.load_state_dict(self.weights)
        return models.new_head(net, self.target.num_classes, seed)

    def summary(self, batches: loaders.Loaders | None = None) -> str:
        """Where the weights come from and why not ImageNet's if not; given the fine-tuning
        batches, the task they transfer to as well. For the notebook to print."""
        return summary({self.name: self}, batches)

    def fine_tune_loaders(self, cfg: Config, kind: str = "fine_tune") -> loaders.Loaders:
        """Batches of the target task with the profile's budget for `kind` (fine_tune, or
        fine_tune_few_images), normalised as the pretraining's images were."""
        return loaders.make_loaders(data.split_for(self.target, cfg, kind), cfg.batch_size, cfg.device,
                                    mean=self.mean, std=self.std)

    def provenance(self) -> dict:
        """Where the weights came from, as a notebook's results JSON records it."""
        return {"pretrained_from": self.source, "pretrained_weights": self.description,
                "pretrained_missing": self.missing}

    def random_init(self, seed: int) -> nn.Module:
        """The same architecture from random weights, for the target's classes: the control arm."""
        return models.build(self.name, self.target.num_classes, seed=seed, **self.options)


def pretrained(name: str, cifar: data.CifarData, cfg: Config, offline: str | None = None,
               **options) -> Pretrained:
    """The starting weights of torchvision's `name`: ImageNet's if torchvision can have them here
    (cached, or downloaded when cfg.download allows). Else the course's own pretraining of
    `offline` (a registry name, built with `options`; by default `name` itself) on the first half
    of cifar's classes, made now if no usable checkpoint holds it; the target is then the
    second half."""
    found, missing = models.pretrained_available(name, download=cfg.download)
    if found:
        return _imagenet(name, cifar)
    return _course(offline or name, options, cifar, cfg, missing)


def pretrained_all(names: list[str], cifar: data.CifarData, cfg: Config) -> dict[str, Pretrained]:
    """Starting weights for several torchvision architectures from one source, so that they
    compare on one task: ImageNet's where torchvision has them for every one, else the
    course's own pretraining for every one (each told why)."""
    missing = {name: models.pretrained_available(name, download=cfg.download)[1] for name in names}
    if not any(missing.values()):
        return {name: _imagenet(name, cifar) for name in names}
    why = "; ".join(f"{name}: {reason}" for name, reason in missing.items() if reason)
    return {name: _course(name, {}, cifar, cfg, why) for name in names}


def summary(weights: dict[str, Pretrained], batches: loaders.Loaders | None = None) -> str:
    """Where each architecture's starting weights come from (one source for all), why not
    ImageNet's if not, and, given the fine-tuning batches, the task they transfer to."""
    first = next(iter(weights.values()))
    if len(weights) == 1:
        lines = [f"Pretrained weights: {first.description}."]
    else:
        lines = [f"{name}: {w.description}" for name, w in weights.items()]
    if first.missing:
        lines.append(f"(ImageNet's weights were not to be had here. {first.missing})")
    if batches is not None:
        classes = first.target.classes
        lines.append(f"The task: {', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}; "
                     f"{batches.splits.describe()}")
    return "\n".join(lines)


def _imagenet(name: str, cifar: data.CifarData) -> Pretrained:
    weights = models.TORCHVISION_MODELS[name][1]
    preprocess = weights.transforms()  # ImageNet's statistics, which the weights were trained with
    return Pretrained(name, {}, "imagenet", "ImageNet",
                      f"ImageNet ({type(weights).__name__}.{weights.name}, torchvision)", cifar,
                      tuple(preprocess.mean), tuple(preprocess.std), IMAGENET_FINE_TUNE_LR)


def _course(name: str, options: dict, cifar: data.CifarData, cfg: Config, missing: str) -> Pretrained:
    source, target = data.class_split(cifar)
    saved = course_weights(name, options, source, cfg)
    trained_on = f"{', '.join(source.classes[:5])}{', ...' if len(source.classes) > 5 else ''} ({cifar.dataset})"
    description = (f"this course's pretraining of {name} on the first {len(source.classes)} of the "
                   f"{cifar.num_classes} classes, {trained_on}: "
                   f"{saved.info.train_images:,} images, best validation top-1 {saved.info.val_top1:.1%} "
                   f"at epoch {saved.info.epoch}, kept in {saved.path}")
    return Pretrained(name, options, "course", trained_on, description, target, saved.info.mean,
                      saved.info.std, COURSE_FINE_TUNE_LR, saved.model.state_dict(), source.classes, missing)


def course_weights(name: str, options: dict, source: data.CifarData, cfg: Config) -> checkpoints.Saved:
    """The course's pretraining of `name` (built with `options`) on `source`, the first half of
    the classes: the checkpoint if a usable one holds it, else trained now with the profile's
    `pretrain` budget."""
    path = cfg.checkpoint(f"{name}_pretrained_first_half")
    expect = data.fingerprint(source, cfg)
    try:
        saved = checkpoints.load(path, expect)
        if saved.info.architecture["options"] == options:
            return saved
        why = f"{path} holds another shape of {name} ({saved.info.architecture['options']})"
    except checkpoints.CheckpointError as err:
        why = str(err)
    print(f"Pretraining {name} on {len(source.classes)} classes ({', '.join(source.classes)}), "
          f"once: {why}.")
    batches = loaders.make_loaders(data.split_for(source, cfg, "pretrain"), cfg.batch_size, cfg.device)
    hyper = Hyper(cfg.epochs("pretrain"), lr=PRETRAIN_LR, seed=cfg.seed)
    train(f"{name}_pretraining", models.build(name, source.num_classes, seed=cfg.seed, **options), batches,
          hyper, cfg, checkpoint=path)
    return checkpoints.load(path, expect)


def teacher(cifar: data.CifarData, cfg: Config) -> tuple[checkpoints.Saved, str]:
    """06's teacher and where it comes from, in words: of notebook 03's, 04's and 10's checkpoints
    made for this data (03's CIFAR ResNet18 from scratch, 04's fine-tuned ImageNet ResNet18s, 10's
    speedrun, when it has run), the one with the best validation top-1; if none is usable, 03's
    CIFAR ResNet18 trained now with 03's budget and kept where 03 keeps it."""
    scratch = cfg.checkpoint("resnet18_cifar")
    paths = {scratch: "03", **{path: "04" for path in
                               sorted(cfg.checkpoint_dir.glob(f"{cfg.dataset}_resnet18_finetuned_*.pt"))},
             cfg.checkpoint("speedrun"): "10"}
    expect = data.fingerprint(cifar, cfg)
    found, passed_over = checkpoints.strongest(paths, expect)
    for why in passed_over:
        print(f"passed over: {why}")
    if found:
        return found, (f"notebook {paths[found.path]}'s checkpoint ({found.path}: {found.name}, validation "
                       f"top-1 {found.info.val_top1:.1%}, the strongest of {len(paths)})")
    print("Training a teacher here: no usable checkpoint.")
    # 03's network, split, budget and scratch rate (PRETRAIN_LR is 03's LR), kept where 03 keeps it
    batches = loaders.make_loaders(data.split_for(cifar, cfg, "resnet18_cifar"), cfg.batch_size, cfg.device)
    net = models.build("resnet18_cifar", cifar.num_classes, seed=cfg.seed, widths=cfg.profile.resnet_widths)
    train("resnet18_cifar_scratch", net, batches, Hyper(cfg.epochs("resnet18_cifar"), lr=PRETRAIN_LR, seed=cfg.seed),
          cfg, checkpoint=scratch)
    return checkpoints.load(scratch, expect), f"trained here ({'; '.join(passed_over)})"
