"""cifar_utils: the small helper package of the CIFAR-10/100 PyTorch course.

Notebooks import its modules with a prefix: `from cifar_utils import data, models, train`.
The command-line tools are modules of their own: `python -m cifar_utils.course`,
`python -m cifar_utils.assignments`, `python -m cifar_utils.bench`.
"""

from . import callbacks, data, loaders, losses, metrics, models, plots, results, settings, train
from .data import CifarData, DataError, ImageSet
from .settings import Settings, resolve
from .train import Callback, fit

__all__ = ["callbacks", "data", "loaders", "losses", "metrics", "models", "plots", "results",
           "settings", "train", "CifarData", "DataError", "ImageSet", "Settings", "resolve", "Callback", "fit"]
__version__ = "0.1.0"
