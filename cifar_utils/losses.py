"""Losses for fit(): each takes (logits, targets, inputs), so a loss may look at the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropy(nn.Module):
    """Softmax cross-entropy, optionally with label smoothing."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                inputs: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)


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


class Distillation(nn.Module):
    """The distillation loss with a frozen teacher that scores each training batch itself."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)  # the same augmented batch the student sees
        return distillation_loss(logits, teacher_logits, targets, self.temperature, self.alpha)

    def train(self, mode: bool = True):
        """Keep the teacher in eval mode (its BatchNorm statistics and dropout stay fixed)."""
        super().train(mode)
        self.teacher.eval()
        return self
