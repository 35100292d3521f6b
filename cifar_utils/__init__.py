"""cifar_utils: the small helper package of the CIFAR-10/100 PyTorch course.

Notebooks import its modules with a prefix: `from cifar_utils import data, models, train`.
"""

from . import callbacks, data, loaders, metrics, models, plots, results, settings, train
from .data import CifarData, DataError, ImageSet
from .settings import Settings, resolve
from .train import Callback, fit

__all__ = ["callbacks", "data", "loaders", "metrics", "models", "plots", "results", "settings",
           "train", "CifarData", "DataError", "ImageSet", "Settings", "resolve", "Callback", "fit"]
__version__ = "0.1.0"
