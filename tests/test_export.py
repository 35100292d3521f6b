"""ONNX export checked in ONNX Runtime against PyTorch, the deployable file's description of
itself and the README's recipe for using it without the course, and the message when it cannot
run."""

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_course.demo import PHOTOS, Predictor
from cifar_utils import cost, data, export, loaders, models, precision, recipe, settings

README = Path(__file__).parent.parent / "README.md"

pytestmark = pytest.mark.skipif(export.missing() is not None, reason=str(export.missing()))


def test_a_prepared_model_exports_as_fp32_and_agrees_with_pytorch(tmp_path):
    model = models.build("resnet18_cifar", 10, seed=0)
    prepared = precision.prepare(model, precision.ComputeFormat(torch.bfloat16, True), torch.device("cpu"))
    path = export.to_onnx(prepared, tmp_path / "deep" / "resnet.onnx")
    session = export.session(path)
    images = torch.randn(5, 3, 32, 32)  # a batch size the export never saw
    assert export.run(session, images).shape == (5, 10)
    difference = export.largest_difference(prepared, session, images)
    assert difference < 1e-3
    with torch.no_grad():  # the check compares with fp32, not with the bf16 the model trains in
        bf16 = prepared.eval()(images).float().numpy()
    assert np.abs(export.run(session, images) - bf16).max() > difference


@pytest.mark.slow  # seconds: an export at 64 px, then timed
def test_an_upsampling_model_exports_and_times(tmp_path):
    model = models.Upsampled(models.build("mobilenet_v3_small", 10, seed=0), 64).eval()
    session = export.session(export.to_onnx(model, tmp_path / "m.onnx"))
    assert export.largest_difference(model, session, torch.randn(3, 3, 32, 32)) < 1e-3
    assert 0 < export.latency_ms(session, runs=3, warmup=1) < 1000


def test_missing_packages_are_named_with_the_command_that_installs_them(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    message = export.missing()
    assert "onnxruntime not installed" in message and "pip install onnxruntime" in message


def test_an_export_is_checked_against_pytorch_timed_and_weighed(tmp_path):
    model = models.build("simple_cnn", 10, seed=0).eval()
    measured = export.to_onnx_checked(model, tmp_path / "cnn.onnx", torch.randn(4, 3, 32, 32), runs=3)
    assert measured["onnx_max_abs_diff"] < 1e-4 and measured["onnx_latency_ms"] > 0
    assert measured["onnx_mb"] == pytest.approx((tmp_path / "cnn.onnx").stat().st_size / 1e6, abs=0.01)
    assert measured["onnx_mb"] == pytest.approx(cost.count_parameters(model) * 4 / 1e6, rel=0.05)  # fp32 weights


def test_the_deployable_file_says_what_it_takes_how_a_photo_gets_there_and_what_it_gives(tmp_path):
    import onnx

    path = export.to_onnx_deployable(models.build("simple_cnn", 10, seed=0), tmp_path / "m.onnx",
                                     data.class_names("cifar10"), [0.5, 0.4, 0.3], [0.25, 0.2, 0.1], trained_as="x")
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(meta) == {"input", "preprocessing", "normalisation", "output", "classes", "mean", "std", "trained_as"}
    (given,), (returned,) = model.graph.input, model.graph.output
    shape = [d.dim_value or d.dim_param for d in given.type.tensor_type.shape.dim]
    assert given.name == "images" and given.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert shape[1:] == [32, 32, 3] and isinstance(shape[0], str)  # NHWC, any batch, only 32x32
    assert returned.name == "probabilities"
    assert meta["input"].startswith("images: uint8 RGB") and "(batch, 32, 32, 3)" in meta["input"]
    for step in ("exif_transpose", "on white", "centre square", "Image.Resampling.BICUBIC", "reducing_gap=3.0",
                 "32x32", "squashed"):
        assert step in meta["preprocessing"], step
    assert meta["normalisation"].startswith("inside the graph") and "raw 0-255" in meta["normalisation"]
    assert meta["output"].startswith("probabilities:") and "order of this file's classes" in meta["output"]
    described = export.described(export.session(path))
    assert described["classes"] == data.class_names("cifar10") and described["std"] == [0.25, 0.2, 0.1]
    for doc in (model.doc_string, model.graph.doc_string):  # the same, for a person reading the file in Netron
        assert doc.splitlines() == [f"{k}: {v}" for k, v in meta.items()]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A SimpleCNN trained for two epochs on the bundled sample: its checkpoint, as the recipe writes it."""
    cfg = settings.resolve(profile="smoke", device="cpu", progress="off")
    cifar = data.load("cifar10", "sample")
    sample = data.split(cifar, 0.1, seed=0, train_size=600, test_size=100)
    splits = data.Splits(sample.train, sample.val, sample.test, data.fingerprint(cifar, cfg))
    path = tmp_path_factory.mktemp("export") / "cifar10_simple_cnn.pt"
    recipe.train("simple_cnn", models.build("simple_cnn", 10, seed=0), loaders.make_loaders(splits, 64, cfg.device),
                 recipe.Hyper(2, lr=0.05), cfg, checkpoint=path)
    return path


@pytest.fixture(scope="module")
def deployed(checkpoint):
    """The course's own way to a photo's classes (the demo's Predictor: load_photo, to_cifar_size, the
    PyTorch model), and the same model exported as a deployable ONNX file."""
    course = Predictor(checkpoint)
    path = export.to_onnx_deployable(course.model, checkpoint.with_suffix(".onnx"), course.classes, course.mean,
                                     course.std)
    return course, path


def readme_snippet() -> str:
    """The README's Python block that runs the ONNX file without the course."""
    section = README.read_text().split("## The ONNX file, without the course", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)


@pytest.mark.slow  # seconds: a model trained and exported, then a fresh interpreter per photo
@pytest.mark.parametrize("name", ["cat.jpg", "cat_transparent.png"])  # not square; transparent
def test_the_readmes_snippet_runs_the_onnx_file_without_the_course_and_answers_as_the_course(
        name, deployed, tmp_path):
    snippet = readme_snippet()
    assert snippet.count('"photo.jpg"') == 1 and "cifar_utils" not in snippet
    course, onnx_file = deployed
    model = tmp_path / "results" / "onnx" / "cifar10_deployable.onnx"  # where the snippet looks, from tmp_path
    model.parent.mkdir(parents=True)
    shutil.copy(onnx_file, model)
    program = snippet.replace('"photo.jpg"', repr(str(PHOTOS / name))) + (
        "import sys\nprint(probabilities.tolist())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cifar_utils', 'cifar_course', 'torch'}))\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer, probabilities, imported = done.stdout.strip().splitlines()
    assert imported == "[]"  # onnxruntime, PIL and numpy only
    top3, _ = course.predict(str(PHOTOS / name))
    assert answer.rsplit(" ", 1)[0] == next(iter(top3))  # the same top class
    probabilities = dict(zip(course.classes, ast.literal_eval(probabilities)))
    assert {c: probabilities[c] for c in top3} == pytest.approx(top3, abs=1e-5)
    # the check can fail: the photo squashed whole to 32x32, the obvious way, changes the answer beyond it
    squashed = np.array(data.load_photo(PHOTOS / name).resize((32, 32), Image.Resampling.BICUBIC))[None]
    answers = dict(zip(course.classes, export.probabilities(export.session(model), squashed)[0]))
    assert max(abs(answers[c] - p) for c, p in top3.items()) > 1e-4
