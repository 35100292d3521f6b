"""Run everything pytest collects (unit tests and nbval's notebooks) small, offline and quiet."""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
_scratch = tempfile.mkdtemp(prefix="cifar-course-tests-")
os.environ["CIFAR_COURSE_PROFILE"] = "smoke"  # PROFILE="auto" in the notebooks becomes smoke
os.environ["CIFAR_COURSE_PLAIN_PROGRESS"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("CIFAR_RESULTS_DIR", os.path.join(_scratch, "results"))
os.environ.setdefault("CIFAR_DATA_DIR", os.path.join(_scratch, "no-data-here"))
os.environ["TORCH_HOME"] = os.path.join(_scratch, "torch")  # an empty weights cache
