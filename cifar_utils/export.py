"""ONNX: export a trained model, run it in ONNX Runtime, and check it against PyTorch.

ONNX is a file format for a network's graph and weights that runtimes other than PyTorch run
(ONNX Runtime on servers and phones, TensorRT, browsers). The export traces the model once
on an example batch; the runtime then needs no Python model code at all.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .metrics import median_ms
from .precision import plain_copy

PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the exporter needs the first two


def missing() -> str | None:
    """None when export and ONNX Runtime can run here, else a sentence saying what to install."""
    absent = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return (f"ONNX export is skipped: {', '.join(absent)} not installed. "
            f"`pip install {' '.join(absent)}` (requirements.txt lists them) and run again.")


def to_onnx(model: nn.Module, path: str | Path, image_size: int = 32) -> Path:
    """Export an fp32, eval-mode copy of the model to `path`, with a free batch size.

    Input "images" (batch, 3, image_size, image_size), normalised as in training; output
    "logits" (batch, classes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, image_size, image_size)  # 2, not 1: a batch of 1 fixes the size
    torch.onnx.export(plain_copy(model), (example,), path, input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False)
    return path


def session(path: str | Path):
    """An ONNX Runtime session on the CPU for an exported model."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(session, images: torch.Tensor) -> np.ndarray:
    """ONNX Runtime's logits for a batch of normalised images (batch, classes)."""
    return session.run(["logits"], {"images": images.float().cpu().numpy()})[0]


@torch.no_grad()
def largest_difference(model: nn.Module, session, images: torch.Tensor) -> float:
    """The largest absolute difference between ONNX Runtime's and PyTorch's fp32 logits."""
    expected = plain_copy(model)(images.float().cpu()).numpy()
    return float(np.abs(run(session, images) - expected).max())


def latency_ms(session, image_size: int = 32, runs: int = 50, warmup: int = 5) -> float:
    """Median time of one image (batch 1) through ONNX Runtime on the CPU, in milliseconds."""
    x = {"images": np.random.default_rng(0).standard_normal((1, 3, image_size, image_size),
                                                             dtype=np.float32)}
    return median_ms(lambda: session.run(["logits"], x), runs, warmup)
