"""The course's models and a registry that builds them by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


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


REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "logistic_regression": LogisticRegression,
    "simple_cnn": SimpleCNN,
}


def build(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model by name."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(REGISTRY)}.")
    return REGISTRY[name](num_classes=num_classes, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Count the model's parameters (only those that will train, if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
