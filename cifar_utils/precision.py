"""The number format and memory layout a model computes in, applied once, to the model.

Two switches change the speed of a training step without changing what the model computes
(beyond rounding):
  precision: bf16 autocast runs convolutions and matrix products in 16-bit floats. Hardware
    with bf16 units (NVIDIA GPUs since Ampere, x86 CPUs with AVX-512 BF16 or AMX) runs them
    faster (about 2x per training step on a 2-core AVX-512 BF16 CPU, as 02 measures); without
    such units they are emulated, and slower. GPUs without bf16 (Colab's T4, V100, Turing,
    Pascal) have fp16 units instead: fp16 keeps fewer exponent bits, so small gradients would
    round to zero, and training scales the loss up before backward (a GradScaler) and the
    gradients down before the step;
  memory layout: channels-last (NHWC) stores the channels of a pixel side by side, the layout
    tensor cores and oneDNN's convolutions prefer.
`prepare` wraps a model so that it runs in one such format by itself: it puts every input in
its layout and runs its forward under autocast, and it carries the GradScaler its loss is scaled
with (`loss_scaler`: enabled for fp16, a pass-through otherwise), so the training loop,
evaluation and the benchmark never pass a precision around. Which format: `requested` reads
what the notebook asked for, and `default_format` decides from what the hardware has, not from
a timing, so the same seed on the same machine gives the same numbers, busy or not ("measure",
the one request that times the formats, is cost.choose's).
"""

from __future__ import annotations

import contextlib
import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class ComputeFormat:
    """A precision (bf16 or fp16 autocast, or fp32) and a memory layout for a model's tensors."""

    amp_dtype: torch.dtype | None  # None: fp32 throughout
    channels_last: bool

    @property
    def name(self) -> str:
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.amp_dtype]
        return f"{precision},{'channels-last' if self.channels_last else 'channels-first'}"

    @property
    def scales_the_loss(self) -> bool:
        """fp16 needs loss scaling (a GradScaler) so that small gradients survive; bf16 does not."""
        return self.amp_dtype == torch.float16

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


PLAIN = ComputeFormat(amp_dtype=None, channels_last=False)  # fp32, channels-first: PyTorch's default
MEASURE = "measure"  # the compute-format request that times the formats and takes the fastest
NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)  # a pass-through: the loss of a model in fp32 or bf16


def candidates(device: torch.device) -> list[ComputeFormat]:
    """The formats a model can train in on this kind of device: fp16 on CUDA GPUs, bf16 on
    them and on CPUs, fp32 everywhere (the course trains Apple GPUs in fp32)."""
    offered = {"cuda": [None, torch.bfloat16, torch.float16], "cpu": [None, torch.bfloat16]}
    dtypes = offered.get(device.type, [None])
    return [ComputeFormat(dtype, layout) for dtype in dtypes for layout in (False, True)]


def parse(text: str, device: torch.device) -> ComputeFormat:
    """Read a format's name ('bf16,channels-last'), checked against this device."""
    offered = {f.name: f for f in candidates(device)}
    wanted = text.replace(" ", "")
    if wanted not in offered:
        raise ValueError(f"{text!r} is not a compute format for {device.type}: choose one of "
                         f"{', '.join(offered)}.")
    return offered[wanted]


def autocast(device_type: str, dtype: torch.dtype | None):
    """Autocast to `dtype` when one is given, otherwise run as is."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


class Prepared(nn.Module):
    """A model that runs in one compute format: input layout and autocast, then fp32 logits.

    loss_scaler: the GradScaler the loss is scaled with, enabled for a format that needs it (fp16).
    """

    def __init__(self, module: nn.Module, compute_format: ComputeFormat, device_type: str = "cpu"):
        super().__init__()
        self.module, self.compute_format = module, compute_format
        self.loss_scaler = torch.amp.GradScaler(device_type, enabled=compute_format.scales_the_loss)

    def extra_repr(self) -> str:
        return f"compute_format={self.compute_format.name}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.compute_format.memory_format)
        with autocast(x.device.type, self.compute_format.amp_dtype):
            out = self.module(x)
        return out.float()  # losses and metrics work in fp32


def loss_scaler(model: nn.Module) -> torch.amp.GradScaler:
    """The GradScaler a model's loss is scaled with: its own if prepare() gave it one, else a pass-through."""
    return model.loss_scaler if isinstance(model, Prepared) else NO_SCALING


def requested(request: str, model: nn.Module, device: torch.device) -> ComputeFormat | None:
    """The format a request (Config.compute_format) names: "" for this hardware's default, a
    format's name ("bf16,channels-last") checked against the device, or None for MEASURE (time
    them: cost.choose)."""
    if request == MEASURE:
        return None
    if not request:
        return default_format(model, device)
    try:
        return parse(request, device)
    except ValueError as err:
        raise ValueError(f"{err} Or '{MEASURE}' to time them, or nothing for the default of this "
                         "hardware.") from None


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a Prepared wrapper (or the model itself)."""
    return model.module if isinstance(model, Prepared) else model


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of the model that computes in PyTorch's default format (fp32, channels-first), in
    eval mode on the CPU, unwrapped: for timing one format against another, drawing what the
    model looks at, or exporting it."""
    return copy.deepcopy(unwrap(model)).to("cpu", torch.float32, memory_format=torch.contiguous_format).eval()


def prepare(model: nn.Module, compute_format: ComputeFormat, device: torch.device) -> Prepared:
    """Move the model to `device` in the format's layout and wrap it to run in that format."""
    inner = unwrap(model).to(device, memory_format=compute_format.memory_format)
    return Prepared(inner, compute_format, device.type)


def cpu_has_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX; read from Linux's cpuinfo)."""
    if not sys.platform.startswith("linux") or not cpuinfo.is_file():
        return False  # elsewhere: assume emulation, where fp32 is the faster choice
    flags = cpuinfo.read_text(errors="ignore").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cuda_has_bf16_units() -> bool:
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 has no including_emulation
        return torch.cuda.get_device_capability()[0] >= 8


def default_format(model: nn.Module, device: torch.device) -> ComputeFormat:
    """The format `model` trains fastest in on `device`, decided from the hardware, not timed.

    The rules follow the measurements in docs/measurements.md: bf16 where the device has bf16
    units, except depthwise convolutions on a CPU (oneDNN ran MobileNets slower in bf16 than
    in fp32); fp16 with loss scaling on CUDA GPUs without bf16 units; channels-last for
    convolutional models (1.3-1.5x on the CPU, tensor cores on a GPU), channels-first for models
    without convolutions, where the layout changes nothing.
    """
    convs = [m for m in unwrap(model).modules() if isinstance(m, nn.Conv2d)]
    depthwise = any(m.groups > 1 for m in convs)
    if device.type == "cuda":
        dtype = torch.bfloat16 if _cuda_has_bf16_units() else torch.float16
    elif device.type == "cpu":
        dtype = torch.bfloat16 if cpu_has_bf16_units() and not depthwise else None
    else:  # mps: fp32 is what the course supports there
        dtype = None
    return ComputeFormat(dtype, channels_last=bool(convs))
