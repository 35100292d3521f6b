"""cifar_utils: the small helper package of the CIFAR-10/100 PyTorch course.

Notebooks import its modules with a prefix: `from cifar_utils import data, models, recipe`.
The modules, from the bottom layer up (each imports only modules listed before it):

    settings       profiles and budgets, the stable parameters, devices, seeding
    data           finding CIFAR-10/100, splits, statistics
    tensor_loader  the tensor input path: batched crop, flip and normalisation
    loaders        the torchvision pipeline and make_loaders for either path
    models         the course's models, torchvision's ImageNet models, the registry
    precision      the precision and memory layout a model computes in, applied to the model
    explain        what a network looks at: filters, feature maps, Grad-CAM (through hooks)
    speed          throughput, and the compute formats timed against each other
    metrics        top-k accuracy, evaluation (with flip TTA), confusion matrices, FLOPs, latency, size
    export         ONNX export, checked and timed in ONNX Runtime
    losses         cross-entropy and knowledge distillation
    train          fit(), the one training loop (with batch transforms: MixUp, CutMix), its callbacks' protocol
    callbacks      schedules, checkpoints (and the strongest of several), early stopping, freezing
    lr_finder      the learning-rate range test
    recipe         the one training recipe and the Run it returns
    results        the results JSON of every notebook
    plots          every figure

The tooling around the course (runner, report, assignments, benchmark) is the subpackage
`cifar_utils.course`: `python -m cifar_utils.course --help`.
"""

from . import (
    callbacks,
    data,
    explain,
    export,
    loaders,
    losses,
    lr_finder,
    metrics,
    models,
    plots,
    precision,
    recipe,
    results,
    settings,
    speed,
    train,
)
from .data import CifarData, DataError, ImageSet, Splits
from .recipe import Run
from .settings import Config, resolve
from .train import Callback, fit

__all__ = ["callbacks", "data", "explain", "export", "loaders", "losses", "lr_finder", "metrics", "models", "plots", "precision",
           "recipe", "results", "settings", "speed", "train", "CifarData", "DataError", "ImageSet",
           "Splits", "Run", "Config", "resolve", "Callback", "fit"]
__version__ = "0.1.0"
