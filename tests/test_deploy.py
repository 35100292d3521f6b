"""Deployment: photos of any format classified as in training, the self-contained uint8 ONNX model
against PyTorch, int8, and the web demo: its answer, its threshold, the model it finds, and its
page in a browser (marked `browser`: `python -m pytest -m browser tests/test_deploy.py`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_course import demo
from cifar_utils import checkpoints, data, explain, export, loaders, models, photo, recipe, settings


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
    path = export.to_onnx_deployable(saved.model, tmp_path / "model.onnx", saved.info.classes,
                                     saved.info.mean, saved.info.std)
    session = export.session(path)
    assert export.described(session)["classes"] == data.class_names("cifar10")
    images = sample.test.images[:64]  # raw uint8 (64, 32, 32, 3): no normalisation outside the file
    onnx_probs = export.probabilities(session, images)
    x = torch.cat([loaders.normalise(img, saved.info.mean, saved.info.std) for img in images])
    with torch.no_grad():
        torch_probs = saved.model(x).softmax(1).numpy()
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    assert (onnx_probs.argmax(1) == torch_probs.argmax(1)).all()
    assert np.allclose(onnx_probs.sum(1), 1, atol=1e-5)


def test_int8_is_smaller_and_keeps_the_description(checkpoint, sample, tmp_path):
    pytest.importorskip("onnxruntime")
    saved = checkpoints.load(checkpoint)
    fp32 = export.to_onnx_deployable(saved.model, tmp_path / "fp32.onnx", data.class_names("cifar10"),
                                     saved.info.mean, saved.info.std)
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
        path = export.to_onnx_deployable(saved.model, tmp_path / "model.onnx", saved.info.classes,
                                         saved.info.mean, saved.info.std)
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
        probs = saved.model(loaders.normalise(image, saved.info.mean, saved.info.std)).softmax(1)[0]
    top3, _ = predictor.predict(str(demo.PHOTOS / "rocket.jpg"))
    assert list(top3) == [data.class_names("cifar10")[i] for i in probs.argsort(descending=True)[:3]]


def test_the_overlay_lays_the_map_over_the_photo_so_the_photo_shows_through(checkpoint, tmp_path):
    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[:, ::8] = stripes[:, 1::8] = stripes[:, 2::8] = stripes[:, 3::8] = 255  # 4 pixels white, 4 black
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    _, cam = demo.Predictor(checkpoint).predict(str(tmp_path / "stripes.png"))
    assert cam.shape == (256, 256, 3)
    across = np.abs(cam[:, 3::8].astype(int) - cam[:, 4::8]).mean()  # from a white stripe to the black beside it
    assert across > 0.4 * 255  # the photo's own 4-pixel stripes, through the map (the 32x32 image has none)
    saved = checkpoints.load(checkpoint)
    x = loaders.normalise(photo.load_image(tmp_path / "stripes.png"), saved.info.mean, saved.info.std)
    heat = explain.grad_cam(saved.model.eval(), explain.cam_layer(saved.model), x)[0]
    assert np.array_equal(cam, explain.overlay(stripes, heat))  # the course's blend of the map, over the photo


@pytest.mark.parametrize(("top3", "heading"), [({"cat": 0.71, "dog": 0.2, "frog": 0.05}, "## cat\n71% sure"),
                                               ({"cat": 0.31, "dog": 0.3, "frog": 0.2}, "## Not sure\n")])
def test_the_answer_is_the_class_from_the_threshold_on_and_not_sure_below_it_with_the_guesses(top3, heading):
    said = demo.verdict(top3, 0.5)
    assert said.startswith(heading)
    assert said.endswith("cat 71%, dog 20%, frog 5%." if top3["cat"] > 0.5 else "cat 31%, dog 30%, frog 20%.")
    assert demo.verdict({}, 0.5) == ""


def test_the_demos_threshold_is_notebook_08s_parameter(tmp_path):
    papermill = pytest.importorskip("papermill")
    declared = papermill.inspect_notebook(str(demo.DEPLOY_NOTEBOOK))["THRESHOLD"]["default"]
    assert demo.deploy_threshold() == float(declared)
    with pytest.raises(demo.DemoError, match="pass --threshold"):
        demo.deploy_threshold(tmp_path / "08_deploy.ipynb")


def test_the_demo_serves_the_latest_course_run_or_says_what_to_pass(checkpoint, tmp_path, monkeypatch, capsys):
    older, newer, seed = (tmp_path / "runs" / name / "checkpoints"
                          for name in ("20250101-090000-smoke", "20250102-090000-laptop", "20250103-090000-smoke/seed-1"))
    for i, folder in enumerate((older, newer, seed, tmp_path / "results" / "checkpoints")):
        folder.mkdir(parents=True)
        (folder / "cifar10_simple_cnn.pt").write_bytes(checkpoint.read_bytes())
        os.utime(folder / "cifar10_simple_cnn.pt", (1e9 + i, 1e9 + i))  # written in this order
    (tmp_path / "runs" / "20250104-090000-smoke" / "checkpoints").mkdir(parents=True)  # the last run trained nothing
    os.utime(seed / "cifar10_simple_cnn.pt", (2e9, 2e9))
    assert demo.latest_results("cifar10", tmp_path / "runs", tmp_path / "results") == seed.parent
    os.utime(seed / "cifar10_simple_cnn.pt", (1e9, 1e9))
    assert demo.latest_results("cifar10", tmp_path / "runs", tmp_path / "results") == tmp_path / "results"
    assert demo.latest_results("cifar10", tmp_path / "runs") == newer.parent  # results/ not asked: the newest run
    assert demo.strongest(newer.parent, "cifar10") == newer / "cifar10_simple_cnn.pt"
    with pytest.raises(demo.DemoError, match="No checkpoint for cifar100 .* pass --results DIR"):
        demo.latest_results("cifar100", tmp_path / "runs", tmp_path / "results")

    from cifar_course.__main__ import main as course_main

    monkeypatch.chdir(tmp_path / "runs" / "20250104-090000-smoke")  # no runs/ here, and no results/
    monkeypatch.delenv(settings.RESULTS_ENV, raising=False)
    assert course_main(["demo"]) == 2
    said = capsys.readouterr().err
    assert "No checkpoint for cifar10 in runs/*/checkpoints or results/checkpoints" in said and "--results" in said


def test_the_page_names_a_refused_upload_as_the_user_called_it_not_by_gradios_copy(tmp_path):
    gr = pytest.importorskip("gradio")
    copy = tmp_path / "gradio" / "3f2a" / "holiday.jpg"
    copy.parent.mkdir(parents=True)
    copy.write_text("a note, not an image")
    with pytest.raises(data.DataError) as refused:
        photo.load_photo(copy)
    shown = demo._page_error(refused.value, str(copy))
    assert isinstance(shown, gr.Error) and shown.message.startswith("holiday.jpg is not an image PIL can read")
    assert str(tmp_path) not in shown.message


def test_without_gradio_the_demo_says_what_to_install(checkpoint, monkeypatch, capsys):
    import builtins

    from cifar_course.__main__ import main as course_main

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio":
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert course_main(["demo", str(checkpoint)]) == 2  # a model to serve, and no Gradio
    assert "The demo needs Gradio: pip install -e '.[demo]'" in capsys.readouterr().err


def broken_and_awkward_photos(folder: Path) -> dict[str, Path]:
    """A 16-bit grey PNG and a half-transparent RGBA PNG made from a test image; a JPEG cut in
    half and a note renamed .jpg."""
    image = Image.fromarray(data.load("cifar10", "sample").test.images[7]).resize((128, 128))
    grey16 = np.asarray(image.convert("L")).astype(np.uint16) * 257  # 0..65535
    Image.fromarray(grey16).save(folder / "grey16.png")
    rgba = np.dstack([np.asarray(image), np.full((128, 128), 255, np.uint8)])
    rgba[:32, :, 3] = 0  # the top quarter transparent
    Image.fromarray(rgba).save(folder / "transparent.png")
    image.save(folder / "whole.jpg")
    (folder / "cut.jpg").write_bytes((folder / "whole.jpg").read_bytes()[:1500])
    (folder / "note.jpg").write_text("a note, not a photo\n")
    return {name: folder / name for name in ("grey16.png", "transparent.png", "cut.jpg", "note.jpg")}


@pytest.mark.browser
def test_the_web_demo_reads_each_upload_as_the_course_does_and_names_a_broken_one(checkpoint, tmp_path):
    from test_browser import CHROMEDRIVER, wait_for

    if CHROMEDRIVER is None:
        pytest.skip("no chromedriver on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install selenium)")
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[demo]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    uploads = broken_and_awkward_photos(tmp_path)
    predictor, threshold = demo.Predictor(checkpoint), demo.deploy_threshold()
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
        refused = []
        for name, path in uploads.items():
            driver.get(url)  # a fresh page for each file
            upload = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), 60, "the upload")
            about = driver.find_element(By.ID, "about").text
            assert all(c in about for c in data.class_names("cifar10")) and f"{threshold:.0%}" in about
            upload[0].send_keys(str(path))
            try:
                top3, _ = predictor.predict(str(path))
            except data.DataError as err:  # the course's own message, naming the file
                message = str(err).replace(str(path), name)
                shown = wait_for(lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-text]")
                                          if e.text.strip()], 60, f"the message on {name}")
                assert shown == [message], name
                assert not driver.find_element(By.ID, "verdict").text.strip()
                refused.append(name)
                continue
            said = wait_for(lambda: driver.find_element(By.ID, "verdict").text.strip(), 60, f"the answer to {name}")
            assert said == demo.verdict(top3, threshold).removeprefix("## "), name  # the heading, then the guesses
            listed = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#top3 dt")]
            assert listed == list(top3), name  # the page lists the classes the course's reader and PyTorch give
            cam = wait_for(lambda: [i for i in driver.find_elements(By.CSS_SELECTOR, "#cam img")
                                    if i.get_property("naturalWidth") == 256], 60, f"the Grad-CAM overlay of {name}")
            assert cam
        assert refused == ["cut.jpg", "note.jpg"]  # the course's reader refuses both, and the page says why
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(30)
        time.sleep(0.5)
