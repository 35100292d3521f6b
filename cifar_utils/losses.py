"""Losses other than plain cross-entropy, as callbacks that replace the batch's loss (on_loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .train import Callback, FitState


class LabelSmoothing(Callback):
    """Cross-entropy against targets with `smoothing` of each spread evenly over the classes."""

    def __init__(self, smoothing: float = 0.1):
        self.smoothing = smoothing

    def on_loss(self, state: FitState) -> None:
        state.loss = F.cross_entropy(state.logits, state.y, label_smoothing=self.smoothing)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      targets: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, targets).

    Both distributions are softened by the temperature T; the KL term is averaged over the
    batch ("batchmean", the true KL per example) and scaled by T² so that its gradients keep
    the same size as T changes (Hinton et al., 2015).
    """
    t = temperature
    soft_student = F.log_softmax(student_logits.float() / t, dim=1)  # (B, classes)
    soft_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    kd = F.kl_div(soft_student, soft_teacher, reduction="batchmean", log_target=True) * t * t
    return alpha * kd + (1 - alpha) * F.cross_entropy(student_logits.float(), targets)


class Distillation(Callback):
    """Train against a frozen teacher: it scores the same augmented batch the student sees, and
    the loss becomes distillation_loss of the two."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9):
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def on_fit_start(self, state: FitState) -> None:
        self.teacher.to(state.device)

    def on_epoch_start(self, state: FitState) -> None:
        self.teacher.eval()  # its BatchNorm statistics and dropout stay fixed, whatever trains

    def on_loss(self, state: FitState) -> None:
        with torch.no_grad():
            teacher_logits = self.teacher(state.x)
        state.loss = distillation_loss(state.logits, teacher_logits, state.y, self.temperature, self.alpha)
