"""What each notebook's runs found, in words: the sentences its takeaways print.

Each function makes one sentence from the numbers a run measured, and words its verdict by
those numbers (who is ahead, whether a gain is larger than the spread of the seeds), so that
no notebook states a result its run did not produce. The notebooks print them through
results.Takeaways, which keeps them for the results JSON and the course report.
Accuracies are fractions (0.667), differences are said in percentage points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import CifarData, Splits
from .recipe import Run
from .regimes import Verdict, describe, regime_of
from .results import mean_std, paired_gain, within_spread


def _points(difference: float) -> str:
    return f"{100 * difference:+.1f} points"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def seed_by_seed(before: Sequence[float], after: Sequence[float]) -> str:
    """How much `after` gained on `before`: test top-1 per seed of two arms trained with the same
    seeds, each seed giving both the same initial weights. The gain of each seed, their mean and
    standard deviation, and whether the gain is larger than the spread of the seeds."""
    gains = ", ".join(f"{100 * (b - a):+.1f}" for a, b in zip(before, after, strict=True))
    if len(before) == 1:
        return f"{gains} points (one seed: no spread measured)"
    mean, std = paired_gain(before, after)
    noise = within_spread((mean, std), (0.0, 0.0))
    return (f"seed by seed {gains} points, {100 * mean:+.1f} ± {100 * std:.1f}: "
            + ("within" if noise else "larger than") + " the spread of the seeds")


MEMORISING = "where each image came back often enough for the network to learn it by heart"


def where_it_pays(method: str, verdicts: Sequence[Verdict], records: dict[str, dict], why: str = MEMORISING) -> str:
    """One sentence on a method in every regime it was tried in (regimes.verdict, one per regime):
    its gain there with the verdict of the paired seeds, how well the control and the arm fitted
    their training images (the last epoch's train and validation top-1, first seed; train top-1 is
    measured in train mode, dropout and augmentation on), and where it paid; `why`, when it paid
    only in the regimes of more epochs per image."""
    def regime(v: Verdict) -> str:
        return describe(regime_of(v.arm))

    def fitted(v: Verdict) -> str:
        control, arm = (records[name]["history"][-1] for name in (v.control, v.arm))
        return (f"last epoch, train against validation top-1: the control {control['train_top1']:.0%} against "
                f"{control['val_top1']:.0%}, the arm {arm['train_top1']:.0%} against {arm['val_top1']:.0%}")

    parts = [f"on {regime(v)} {100 * v.mean:+.1f} ± {100 * v.std:.1f} points, {v.outcome} ({fitted(v)})"
             for v in verdicts]
    paid = [v for v in verdicts if v.outcome == "ahead"]
    rest = [v for v in verdicts if v.outcome != "ahead"]
    if not paid:
        end = f"it paid in {'neither regime' if len(verdicts) == 2 else 'no regime'} beyond the spread of the seeds."
    elif not rest:
        end = "it paid in every regime tried here."
    else:
        epochs = {v: int(regime_of(v.arm).split("x")[1]) for v in verdicts}
        reason = f", {why}," if min(epochs[v] for v in paid) > max(epochs[v] for v in rest) else ""
        end = f"so it paid on {' and '.join(map(regime, paid))}{reason} and not on {' and '.join(map(regime, rest))}."
    return f"{method}: " + "; ".join(parts) + "; " + end


# 00 · the data
def data_set(cifar: CifarData, splits: Splits) -> str:
    return (f"{cifar.dataset} ({cifar.source} data): {splits.describe()} in {cifar.num_classes} classes; "
            f"chance top-1 {1 / cifar.num_classes:.1%}.")


def channel_statistics(mean: np.ndarray, std: np.ndarray) -> str:
    return (f"Channel mean {np.round(mean, 3)}, std {np.round(std, 3)} (R, G, B, pixels scaled to 0..1): "
            "the numbers every later notebook normalises with.")


# 01 · logistic regression
def one_step(loss_before: float, loss_after: float, rate: float, squared_norm: float) -> str:
    """A plain gradient step by hand on one batch: the loss before and after it, against the drop
    its slope promised to first order (the rate times the squared gradient norm), and the rate
    above which that promise would exceed the whole loss."""
    change, promised = loss_after - loss_before, rate * squared_norm
    verdict = (f"down {-change:.4f}, where the slope promised {promised:.4f} (a first-order estimate: the loss "
               "curves away from it as the step grows)" if change < 0 else
               f"up {change:.4f}, although the slope promised a drop of {promised:.4f}: the step went past the "
               "valley and up its far side")
    return (f"Loss on this batch: {loss_before:.4f} before the step, {loss_after:.4f} after: {verdict}. Here a rate "
            f"above {loss_before / squared_norm:.3f} would promise a drop larger than the whole loss, which no step "
            f"can deliver; the step took {rate:g}.")


def folds(val_top1: Sequence[float], single_split: float) -> str:
    mean, std = mean_std(val_top1)
    return (f"{len(val_top1)}-fold validation top-1 {mean:.1%} ± {std:.1%} (standard deviation), from "
            f"{min(val_top1):.1%} to {max(val_top1):.1%}: {100 * (max(val_top1) - min(val_top1)):.1f} points "
            f"between folds; the single split above gave {single_split:.1%}.")


def against_chance(top1: float, per_class: np.ndarray, classes: Sequence[str]) -> str:
    best, worst = np.nanargmax(per_class), np.nanargmin(per_class)
    return (f"Test top-1 {top1:.1%} against chance {1 / len(classes):.1%}; best class: {classes[best]} "
            f"({per_class[best]:.0%}), worst: {classes[worst]} ({per_class[worst]:.0%}).")


def fit_gap(train_top1: float, val_top1: float) -> str:
    verdict = ("a gap this small says the model is limited by what it can express, not by overfitting."
               if train_top1 - val_top1 < 0.05 else "it fits its training images better than new ones (the train "
               "figure is a running mean over an epoch while the weights still change: a rough guide).")
    return f"Train top-1 {train_top1:.1%} against validation {val_top1:.1%}: {verdict}"


# 02 · a small CNN
def augmentation_gap(augmented: Run, plain: Run) -> str:
    gap = [run.history[-1]["train_top1"] - run.history[-1]["val_top1"] for run in (augmented, plain)]
    return (f"Train minus validation top-1 in the last epoch: {100 * gap[0]:+.1f} points with augmentation, "
            f"{100 * gap[1]:+.1f} without; test top-1 {augmented.test['top1']:.1%} against {plain.test['top1']:.1%}.")


def cnn_against_linear(cnn: Run, linear: Run, parameters: dict[str, int], per_class_gain: np.ndarray,
                       classes: Sequence[str]) -> str:
    best, worst = np.nanargmax(per_class_gain), np.nanargmin(per_class_gain)
    return (f"SimpleCNN ({cnn.name}, {cnn.epochs} epochs) {cnn.test['top1']:.1%} against logistic regression "
            f"({linear.epochs} epochs) {linear.test['top1']:.1%} test top-1 on the same {cnn.train_images:,} training "
            f"images, with {parameters['simple_cnn'] / parameters['logistic_regression']:.0f}× the parameters; biggest gain "
            f"on {classes[best]} ({100 * per_class_gain[best]:+.0f} points), smallest on {classes[worst]} "
            f"({100 * per_class_gain[worst]:+.0f} points).")


def compute_formats(rates: dict, batch_size: int, device: str, trained_in: str) -> str:
    """rates: images per second of one training step, per compute format."""
    fastest, slowest = max(rates, key=rates.get), min(rates, key=rates.get)
    return (f"SimpleCNN training step, batch {batch_size}, on {device}: fastest in {fastest.name}, "
            f"{rates[fastest] / rates[slowest]:.1f}× the rate of {slowest.name}. The runs above trained in "
            f"{trained_in}, this hardware's default.")


def input_pipeline(rates: dict[str, float], batch_size: int, device: str, workers: int, format_name: str) -> str:
    """rates: images per second fed by the "tutorial" path (DataLoader, fp32), the "DataLoader" in
    this hardware's format, the "tensor path", and the "ceiling" (one batch in place)."""
    tensor_path = rates["tensor path"]
    return (f"SimpleCNN training step on {device}, batch {batch_size}, {workers} DataLoader "
            f"worker{'s' * (workers != 1)}. In {format_name}, the tensor path ran at "
            f"{tensor_path / rates['DataLoader']:.1f}× the DataLoader's rate and at {tensor_path / rates['ceiling']:.0%} "
            f"of the ceiling; through the DataLoader, the format alone was worth "
            f"{rates['DataLoader'] / rates['tutorial']:.1f}×.")


# 03 · ResNet18
def width(rates: dict[tuple, float], flops: dict[tuple, int], device: str) -> str:
    """What a narrower network saves: rates and flops, keyed by the stages' widths (the full
    widths first), are the images per second of a timed training step and the FLOPs per image."""
    full, narrow = list(rates)[:2]
    faster, fewer = rates[narrow] / rates[full], flops[full] / flops[narrow]
    sentence = (f"On {device}, a training step of the CIFAR ResNet18 at widths {narrow} ran at {faster:.1f}x "
                f"the images per second of one at {full}, for {fewer:.0f}x fewer FLOPs per image")
    if faster < fewer / 2:
        return sentence + ": the time fell far less than the operations, as small layers keep the hardware less busy."
    return sentence + "."


def depth(resnet: Run, cnn: Run, profile: str) -> str:
    lead = resnet.test["top1"] - cnn.test["top1"]
    verdict = (f"the deeper network is {100 * lead:.1f} points ahead" if lead > 0 else
               f"SimpleCNN is {100 * -lead:.1f} points ahead: on this budget depth has not paid yet")
    return (f"On {resnet.train_images:,} images x {resnet.epochs} epochs ({profile} profile): ResNet18 "
            f"{resnet.test['top1']:.1%} test top-1 in {resnet.train_seconds:.0f} s, SimpleCNN {cnn.test['top1']:.1%} "
            f"in {cnn.train_seconds:.0f} s: {verdict}. A ResNet18 epoch took "
            f"{resnet.train_seconds / max(cnn.train_seconds, 1e-9):.0f}x a SimpleCNN epoch.")


def pretraining(trained_on: str, pretrained: Run, control: Run) -> str:
    return (f"Pretrained on {trained_on}, then fine-tuned on {pretrained.train_images:,} images x "
            f"{pretrained.epochs} epochs: {pretrained.test['top1']:.1%} test top-1 ({pretrained.name}); the same "
            f"network from random weights: {control.test['top1']:.1%}. Pretraining bought "
            f"{_points(pretrained.test['top1'] - control.test['top1'])} on this budget.")


def upsampling(small: Run, big: Run, size: int) -> str:
    cost = big.history[-1]["seconds"] / max(small.history[-1]["seconds"], 1e-9)
    return (f"Upsampling: {small.test['top1']:.1%} at 32 px, {big.test['top1']:.1%} at {size} px, where a step "
            f"costs {cost:.1f}× the time.")


# 04 · freeze, then unfreeze
def linear_probes(top1: dict[str, float], epochs: int, trained_on: str) -> str:
    return (f"Linear probes, {epochs} epochs: {top1['frozen']:.1%} on the pretrained backbone against "
            f"{top1['frozen_random_init']:.1%} on random weights: the pretraining ({trained_on}) is worth "
            f"{_points(top1['frozen'] - top1['frozen_random_init'])} to a frozen backbone.")


def feature_damage(probes: dict[str, list[dict[int, float]]], labels: dict[str, str], images: int) -> str:
    """probes: per arm, each seed's FeatureProbe.top1 by epoch (0: before training); labels: each
    arm in words. What each arm's training did to the features a linear probe reads, epoch by epoch."""
    before = mean_std([seed[0] for runs in probes.values() for seed in runs])[0]  # the same backbone in every arm
    epochs = sorted({epoch for runs in probes.values() for seed in runs for epoch in seed} - {0})
    moments = []
    for epoch in epochs:
        parts = []
        for arm, runs in probes.items():
            after, spread = mean_std([seed[epoch] for seed in runs])
            parts.append(f"{labels[arm]} {after:.1%} ± {spread:.1%} ({_points(after - before)})")
        moments.append(f"after epoch {epoch}: " + ", ".join(parts))
    return (f"A linear probe on the body's features, fitted on the {images:,} training images and scored on the "
            f"test images (mean ± std over the seeds): {before:.1%} before fine-tuning; " + "; ".join(moments) + ".")


def best_on_validation(best: Run) -> str:
    """best: the run best on validation, scored with flip TTA too."""
    return (f"Best on validation: {best.name}, {best.test['top1']:.1%} test top-1 ({best.test_flip['top1']:.1%} "
            "with flip TTA).")


# 05 · MobileNet
def small_network(small: dict, big: dict, trained_on: str) -> str:
    """small, big: the results records of MobileNetV3-small and ResNet18 (their train_images and
    epochs, parameters, FLOPs and CPU latency). When latency fell far less than FLOPs, says why."""
    sentence = (f"MobileNetV3-small: {small['test_top1']:.1%} test top-1 with {small['params'] / big['params']:.0%} "
                f"of ResNet18's parameters, {small['flops'] / big['flops']:.0%} of its FLOPs and "
                f"{small['cpu_latency_ms'] / big['cpu_latency_ms']:.0%} of its CPU latency; ResNet18 reached "
                f"{big['test_top1']:.1%} ({trained_on} pretraining, {big['train_images']:,} images x "
                f"{big['epochs']} epochs).")
    latency, flops = small["cpu_latency_ms"] / big["cpu_latency_ms"], small["flops"] / big["flops"]
    why = ("small depthwise layers keep the processor less busy per operation than big dense convolutions, and "
           "at batch 1 fixed per-layer costs count.")
    if latency >= 1 > flops:
        sentence += f" Fewer operations, yet no faster at batch 1 on this CPU: {why}"
    elif latency > 2 * flops:
        sentence += f" Latency fell far less than FLOPs: {why}"
    return sentence


def onnx_runtime(record: dict) -> str:
    """An exported model's ONNX Runtime copy against PyTorch (a run's entry after
    export.to_onnx_checked): the largest difference in their outputs, and which is faster at
    batch 1 on the CPU, by how much."""
    onnx_ms, torch_ms = record["onnx_latency_ms"], record["cpu_latency_ms"]
    faster = f"{torch_ms / onnx_ms:.1f}× as fast" if onnx_ms <= torch_ms else f"{onnx_ms / torch_ms:.1f}× slower"
    return (f"{record['name']}: ONNX Runtime against PyTorch (fp32): largest difference {record['onnx_max_abs_diff']:.1e}; "
            f"batch 1 on the CPU {onnx_ms:.2f} ms against {torch_ms:.2f} ms in PyTorch, {faster}")


# 06 · distillation
def distillation(alone: dict, distilled: dict, temperature: float, alpha: float) -> str:
    """alone, distilled: the results records of the two arms (results.over_seeds)."""
    return (f"Distillation changed the student's test top-1 by {_points(distilled['test_top1'] - alone['test_top1'])}: "
            f"alone {alone['test_top1']:.1%} ± {alone['test_top1_std']:.1%}, distilled {distilled['test_top1']:.1%} "
            f"± {distilled['test_top1_std']:.1%} (mean ± std over {_seeds(alone['seeds'])}, T={temperature}, "
            f"alpha={alpha}); " + seed_by_seed(alone["test_top1_per_seed"], distilled["test_top1_per_seed"]) + ".")


def teacher_lead(teacher: Run, student: dict) -> str:
    """student: the results record of the student trained alone."""
    return (f"The teacher {teacher.test['top1']:.1%} against the student alone {student['test_top1']:.1%} test "
            f"top-1: a lead of {100 * (teacher.test['top1'] - student['test_top1']):.1f} points, from "
            f"{teacher.train_images:,} training images against the student's {student['train_images']:,}.")


# 07 · training tricks
def rate_cuts(rates: Sequence[float], epochs: int) -> str:
    """rates: a schedule's learning rate at every step."""
    cuts = sum(later < earlier for earlier, later in zip(rates, rates[1:]))
    return f"ReduceLROnPlateau cut the rate {cuts} time{'s' * (cuts != 1)} in {epochs} epochs."


def flip_gains(records: Sequence[dict]) -> str:
    """records: arms scored plain (test_top1) and with flip TTA (test_top1_flip)."""
    return "Flip TTA against the plain score, per arm (points): " + ", ".join(
        f"{r['name']} {100 * (r['test_top1_flip'] - r['test_top1']):+.1f}" for r in records)


def calibration(ece_plain: float, ece_smoothed: float) -> str:
    verdict = ("label smoothing calibrated this run better." if ece_smoothed < ece_plain else "label smoothing "
               "did not calibrate this run better; compare how confident each model is on average with how "
               "often it is right, above.")
    return f"ECE {ece_plain:.3f} plain, {ece_smoothed:.3f} with label smoothing: {verdict}"


def confidence(run: Run, ece: float) -> str:
    """How sure a model is on average (its mean top probability on the test set) against how
    often it is right: over- or under-confident."""
    sure = run.test_logits.softmax(1).max(1).values.mean().item()
    verdict = "over-confident" if sure > run.test["top1"] else "under-confident"
    return f"ECE {ece:.3f}; mean top probability {sure:.1%} against accuracy {run.test['top1']:.1%}: {verdict}"


# 09 · the challenge
def time_used(seconds: float, seconds_left: float, epochs: int, planned_epochs: int, share: float | None) -> str:
    """How much of the time left before training the training took (validation passes included),
    against the share planned for it (share None: the epochs were set by hand, no plan)."""
    used = seconds / seconds_left
    stopped = f" (stopped after {epochs} of the {planned_epochs} epochs planned)" if epochs < planned_epochs else ""
    sentence = (f"Training took {seconds:.0f} s for {epochs} epochs{stopped}: {used:.0%} of the {seconds_left:.0f} s "
                "left when it began")
    if share is None:
        return sentence + "."
    if abs(used - share) <= 0.03:
        verdict = "the plan, timed on a few steps, held"
    else:  # a busy machine makes the few timed steps optimistic; a quiet one after a busy start, cautious
        verdict = (f"the plan, timed on a few steps, was {'optimistic' if used > share else 'cautious'} by "
                   f"{abs(used / share - 1):.0%}")
    return sentence + f", against the {share:.0%} planned: {verdict}."
