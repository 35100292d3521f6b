"""ONNX: export a trained model, run it in ONNX Runtime, check it against PyTorch, quantise it.

ONNX is a file format for a network's graph and weights that runtimes other than PyTorch run
(ONNX Runtime on servers and phones, TensorRT, browsers). The export traces the model once
on an example batch; the runtime then needs no Python model code at all.

Two kinds of export: `to_onnx` writes the model as it trains (normalised float images in,
logits out), for checking and timing; `to_onnx_deployable` writes what an application needs,
uint8 RGB images (N, 32, 32, 3) in and probabilities out, with the normalisation inside the graph
and, in the file's metadata and doc string, the class names, the training statistics and how a
photo of any size becomes a 32x32 input (the centre square, shrunk with PIL's bicubic filter).
`quantize_int8` makes an int8 copy of the latter, calibrated on training images.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cost import median_ms
from .precision import plain_copy

PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the exporter needs the first two
INPUT, OUTPUT = "images", "probabilities"  # a deployable graph's input and output names


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
                      dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False,
                      verbose=False)  # one file, weights inside: what the size on disk measures
    return path


class Deployable(nn.Module):
    """A trained model that takes uint8 RGB images (N, 32, 32, 3), as PIL and numpy hold them, and
    returns class probabilities (N, classes). The training data's normalisation is inside."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()  # (N, 3, 32, 32), 0-255
        return self.model((x - self.mean) / self.std).softmax(dim=1)


def description(classes: Sequence[str], mean: Sequence[float], std: Sequence[float],
                image_size: int = 32) -> dict[str, str]:
    """What a deployable file says of itself (its metadata_props): the input and how a photo
    becomes one, the normalisation, the output and the classes in order.

    The preprocessing is photo.load_photo's and photo.to_cifar_size's, said in PIL's terms so that
    a program without the course can repeat it pixel for pixel.
    """
    side = f"{image_size}x{image_size}"
    return {
        "input": f"{INPUT}: uint8 RGB pixels 0-255, NHWC (batch, {image_size}, {image_size}, 3), as PIL and "
                 "numpy hold images; only this size",
        "preprocessing": "from a photo: turned upright as its EXIF orientation says (PIL.ImageOps.exif_transpose); "
                         "transparency laid on white, then 8-bit RGB (a grey in all three channels, 16-bit greys "
                         "scaled from 0-65535 to 0-255); the centre square, side = min(width, height), left = "
                         "(width - side) // 2, top = (height - side) // 2; resized to "
                         f"{side} with PIL's Image.Resampling.BICUBIC and reducing_gap=3.0. Not the whole photo "
                         f"squashed to {side}: that distorts the shapes the model learned and changes its answer",
        "normalisation": "inside the graph: (pixel / 255 - mean) / std per RGB channel, with this file's mean "
                         "and std (the training images'); feed the raw 0-255 pixels",
        "output": f"{OUTPUT}: float32 (batch, classes), softmax probabilities summing to 1, in the order of "
                  "this file's classes",
        "classes": json.dumps(list(classes)),
        "mean": json.dumps(list(mean)),
        "std": json.dumps(list(std)),
    }


def to_onnx_deployable(model: nn.Module, path: str | Path, classes: Sequence[str], mean: Sequence[float],
                       std: Sequence[float], image_size: int = 32, **metadata: str) -> Path:
    """Export an fp32 copy of the model that takes uint8 RGB images "images" (batch, 32, 32, 3)
    and gives "probabilities" (batch, classes), and say so in the file: `description` and
    `metadata` go into ONNX's metadata_props (ONNX Runtime reads them back as
    custom_metadata_map), and as "key: value" lines into the model's and the graph's doc_string."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    torch.onnx.export(Deployable(plain_copy(model), mean, std).eval(), (example,), path, input_names=[INPUT],
                      output_names=[OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},),
                      dynamo=True, external_data=False, verbose=False)
    exported = onnx.load(str(path))
    described = {**description(classes, mean, std, image_size), **metadata}
    for key, value in described.items():
        exported.metadata_props.add(key=key, value=value)
    text = "\n".join(f"{key}: {value}" for key, value in described.items())
    exported.doc_string = exported.graph.doc_string = text  # what Netron shows; ONNX Runtime's description
    onnx.save(exported, str(path))
    return path


def described(session) -> dict:
    """What a deployable model says of itself: its classes, normalisation and the rest."""
    found = dict(session.get_modelmeta().custom_metadata_map)
    return {k: json.loads(v) if k in ("classes", "mean", "std") else v for k, v in found.items()}


def quantize_int8(path: str | Path, int8_path: str | Path, calibration: np.ndarray, batch_size: int = 64) -> Path:
    """Post-training static quantisation with ONNX Runtime: weights and activations in int8 (QDQ,
    per channel), the activations' ranges calibrated on `calibration`, uint8 images
    (N, 32, 32, 3) as the model takes them, typically a few hundred training images."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT: calibration[i:i + batch_size]}
                                 for i in range(0, len(calibration), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    int8_path = Path(int8_path)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)  # shapes and fusions first
        quantize_static(str(prepared), str(int8_path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    source, quantised = onnx.load(str(path)), onnx.load(str(int8_path))  # the description travels along
    for prop in source.metadata_props:
        quantised.metadata_props.add(key=prop.key, value=prop.value)
    quantised.doc_string, quantised.graph.doc_string = source.doc_string, source.graph.doc_string
    onnx.save(quantised, str(int8_path))
    return int8_path


def probabilities(session, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """A deployable model's probabilities for uint8 images (N, 32, 32, 3), in batches."""
    return np.concatenate([session.run([OUTPUT], {INPUT: images[i:i + batch_size]})[0]
                           for i in range(0, len(images), batch_size)])


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


def to_onnx_checked(model: nn.Module, path: str | Path, images: torch.Tensor, runs: int = 50) -> dict:
    """Export `model` to ONNX at `path` (to_onnx) and measure the file: the largest difference
    from PyTorch's logits on `images`, ONNX Runtime's median CPU latency at batch 1 over `runs`
    passes, and its size on disk."""
    path = to_onnx(model, path)
    onnx = session(path)
    return {"onnx_max_abs_diff": largest_difference(model, onnx, images),
            "onnx_latency_ms": round(latency_ms(onnx, runs=runs), 2), "onnx_mb": round(path.stat().st_size / 1e6, 2)}


def latency_ms(session, image_size: int = 32, runs: int = 50, warmup: int = 5, batch: int = 1) -> float:
    """Median time of a batch (one image by default) through ONNX Runtime on the CPU, in
    milliseconds: normalised float images for `to_onnx`'s files, uint8 ones for deployable ones."""
    rng = np.random.default_rng(0)
    if session.get_inputs()[0].type == "tensor(uint8)":
        x = {"images": rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8)}
    else:
        x = {"images": rng.standard_normal((batch, 3, image_size, image_size), dtype=np.float32)}
    return median_ms(lambda: session.run(None, x), runs, warmup)
