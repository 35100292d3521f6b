"""cifar_utils: the small helper package of the CIFAR-10/100 PyTorch course.

Notebooks import its modules with a prefix: `from cifar_utils import data, models, recipe`.
The modules, from the bottom layer up (each imports only modules listed before it):

    settings       profiles and budgets, the stable parameters, every environment variable, seeding
    images         what every data source ends up as: images and labels in memory, the classes
    photo          a photo from anywhere (any mode, any size up to a limit) as the models see images
    folders        image folders and archives of them, read and checked
    data           finding CIFAR-10/100, splits, statistics
    tensor_loader  the tensor input path: batched shifts, flips (random or alternating) and normalisation
    loaders        the torchvision pipeline and make_loaders for either path
    models         the course's models (airbench's and its whitening layer too), torchvision's, the registry
    checkpoints    what a saved model holds: written whole, read back checked, the strongest found
    metrics        accuracy: top-k, evaluation (with test-time views), confusion matrices, mistakes, probes
    precision      the precision and memory layout a model computes in, applied to the model
    train          fit(), the one training loop, its events and callback protocol, the one step
    callbacks      schedules, mixed batches, checkpointing, early stopping, freezing, Lookahead, monitors
    losses         label smoothing and knowledge distillation, as callbacks that set the loss
    cost           parameters, FLOPs, latency, size, training throughput against the ceiling, the fastest format
    lr_finder      the learning-rate range test
    explain        what a network looks at: filters, feature maps, Grad-CAM (through hooks)
    export         ONNX export, checked and timed in ONNX Runtime
    recipe         the one training recipe, its hyperparameters (Hyper) and the Run it returns
    transfer       pretrained starting weights: ImageNet's, or the course's own on the first five classes
    challenge      notebook 09's time budget, its data in a graded run, and what it hands in
    results        the results JSON of every notebook
    plots          the figures
    regimes        where a method pays: arms against their controls in regimes, over paired seeds
    findings       the notebooks' takeaways in words, made from the numbers their runs measured
    speedrun       notebook 10: airbench's ideas on the course's loop, the record, the build-up idea by idea

The tooling around the course (runner, report, grader, leaderboard, benchmark, site, demo) is
a package of its own, `cifar_course`, which nothing here imports: `course --help`.
"""

from . import (
    callbacks,
    checkpoints,
    cost,
    data,
    explain,
    export,
    findings,
    loaders,
    losses,
    lr_finder,
    metrics,
    models,
    photo,
    plots,
    precision,
    recipe,
    regimes,
    results,
    settings,
    speedrun,
    train,
    transfer,
)
from .data import CifarData, DataError, ImageSet, Splits
from .recipe import Hyper, Run
from .settings import Config, resolve
from .train import Callback, fit

__all__ = ["callbacks", "checkpoints", "cost", "data", "explain", "export", "findings", "loaders", "losses", "lr_finder",
           "metrics", "models", "photo", "plots", "precision", "recipe", "regimes", "results", "settings", "speedrun", "train",
           "transfer", "CifarData",
           "DataError", "ImageSet", "Splits", "Hyper", "Run", "Config", "resolve", "Callback", "fit"]
__version__ = "0.1.0"
