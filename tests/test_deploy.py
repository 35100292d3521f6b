"""Deployment: photos of any format classified as in training, the self-contained uint8 ONNX model
against PyTorch, int8, and the web demo (its browser test is marked `browser`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_course import demo
from cifar_utils import checkpoints, data, export, loaders, models, recipe, settings

PHOTOS = sorted(p for p in demo.PHOTOS.iterdir() if p.suffix.lower() in data.IMAGE_SUFFIXES)


@pytest.fixture(scope="module")
def sample():
    return data.split(data.load("cifar10", "sample"), 0.1, seed=0, train_size=600, test_size=200)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, sample):
    """A SimpleCNN trained for a few epochs on the sample, its checkpoint written by the recipe."""
    path = tmp_path_factory.mktemp("deploy") / "cifar10_simple_cnn.pt"
    cfg = settings.resolve(profile="smoke", device="cpu", progress="off")
    fingerprinted = data.Splits(sample.train, sample.val, sample.test, data.fingerprint(data.load("cifar10", "sample"), cfg))
    recipe.train("simple_cnn", models.build("simple_cnn", 10, seed=0), loaders.make_loaders(fingerprinted, 64, cfg.device),
                 recipe.Hyper(4, lr=0.05), cfg, checkpoint=path)
    return path


def test_the_uint8_onnx_model_gives_pytorchs_class_with_the_courses_preprocessing(checkpoint, sample, tmp_path):
    pytest.importorskip("onnxruntime")
    saved = checkpoints.load(checkpoint)
    path = export.to_onnx_deployable(saved.model, tmp_path / "model.onnx", saved.info["data"]["classes"],
                                     saved.info["mean"], saved.info["std"])
    session = export.session(path)
    assert export.described(session)["classes"] == data.class_names("cifar10")
    images = sample.test.images[:64]  # raw uint8 (64, 32, 32, 3): no normalisation outside the file
    onnx_probs = export.probabilities(session, images)
    x = torch.cat([loaders.normalise(img, saved.info["mean"], saved.info["std"]) for img in images])
    with torch.no_grad():
        torch_probs = saved.model(x).softmax(1).numpy()
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    assert (onnx_probs.argmax(1) == torch_probs.argmax(1)).all()
    assert np.allclose(onnx_probs.sum(1), 1, atol=1e-5)


def test_int8_is_smaller_and_keeps_the_description(checkpoint, sample, tmp_path):
    pytest.importorskip("onnxruntime")
    saved = checkpoints.load(checkpoint)
    fp32 = export.to_onnx_deployable(saved.model, tmp_path / "fp32.onnx", data.class_names("cifar10"),
                                     saved.info["mean"], saved.info["std"])
    int8 = export.quantize_int8(fp32, tmp_path / "int8.onnx", sample.train.images[:128])
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size
    session = export.session(int8)
    assert export.described(session)["classes"] == data.class_names("cifar10")
    agree = (export.probabilities(session, sample.test.images).argmax(1) ==
             export.probabilities(export.session(fp32), sample.test.images).argmax(1)).mean()
    assert agree > 0.8  # int8 rounds; most answers stay


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_the_demo_classifies_a_grey_and_a_transparent_photo_and_names_a_broken_one(checkpoint, tmp_path, kind):
    path = checkpoint
    if kind == "onnx":
        pytest.importorskip("onnxruntime")
        saved = checkpoints.load(checkpoint)
        path = export.to_onnx_deployable(saved.model, tmp_path / "model.onnx", saved.info["data"]["classes"],
                                         saved.info["mean"], saved.info["std"])
    predictor = demo.Predictor(path)
    for name in ("camera_grey.png", "cat_transparent.png", "cat.jpg"):
        top3, cam = predictor.predict(str(demo.PHOTOS / name))
        assert len(top3) == 3 and set(top3) <= set(data.class_names("cifar10"))
        assert 0 < sum(top3.values()) <= 1 + 1e-6
        assert (cam is None) == (kind == "onnx") and (cam is None or cam.shape == (256, 256, 3))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(data.DataError, match=f"{empty} is empty"):
        predictor.predict(str(empty))


def test_the_demo_agrees_with_the_notebooks_preprocessing(checkpoint):
    predictor = demo.Predictor(checkpoint)
    saved = checkpoints.load(checkpoint)
    image = data.load_image(demo.PHOTOS / "rocket.jpg")
    with torch.no_grad():
        probs = saved.model(loaders.normalise(image, saved.info["mean"], saved.info["std"])).softmax(1)[0]
    top3, _ = predictor.predict(str(demo.PHOTOS / "rocket.jpg"))
    assert list(top3) == [data.class_names("cifar10")[i] for i in probs.argsort(descending=True)[:3]]


def test_without_gradio_the_demo_says_what_to_install(monkeypatch, capsys):
    import builtins

    from cifar_course.__main__ import main as course_main

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio":
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert course_main(["demo"]) == 2
    assert "The demo needs Gradio: pip install -e '.[demo]'" in capsys.readouterr().err


@pytest.mark.browser
def test_the_web_demo_classifies_an_uploaded_photo_in_a_browser(checkpoint, tmp_path):
    from test_browser import CHROMEDRIVER, wait_for

    if CHROMEDRIVER is None:
        pytest.skip("no chromedriver on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install selenium)")
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[demo]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cifar_course", "demo", str(checkpoint), "--port", str(port)],
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "demo.log", "wb"))
    url = f"http://127.0.0.1:{port}"

    def answers():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return server.poll() is not None

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = None
    try:
        wait_for(answers, 120, "the demo to serve")
        assert server.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.get(url)
        upload = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), 60, "the upload")
        photo = tmp_path / "test_image.png"
        Image.fromarray(data.load("cifar10", "sample").test.images[7]).resize((128, 128)).save(photo)
        upload[0].send_keys(str(photo))
        shown = wait_for(lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#top3 h2, #top3 .output-class")
                                  if e.text.strip()], 60, "the top class on the page")
        expected, _ = demo.Predictor(checkpoint).predict(str(photo))
        assert shown[0].strip() == next(iter(expected))  # the page names the class PyTorch gives first
        cam = wait_for(lambda: [i for i in driver.find_elements(By.CSS_SELECTOR, "#cam img")
                                if i.get_property("naturalWidth") > 0], 60, "the Grad-CAM overlay")
        assert cam
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(30)
        time.sleep(0.5)
