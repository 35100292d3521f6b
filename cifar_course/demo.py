"""A web demo of a trained model: a photo in (a file of any format the course reads, the webcam,
the clipboard, or one of the course's), its three most probable classes, or "not sure", and
where the model looked (Grad-CAM) out.

    course demo                          # the strongest checkpoint of the latest `course run`
    course demo --results results        # ... or of a results folder (notebooks run by hand)
    course demo results/checkpoints/cifar10_resnet18_cifar.pt
    course demo results/onnx/cifar10_deployable.onnx   # ONNX Runtime, no Grad-CAM

Gradio serves it on this machine only (127.0.0.1) unless --host says otherwise; it needs the
`demo` extra (pip install -e ".[demo]"). An uploaded file reaches the course's own reader
unchanged (cifar_utils.photo, as in notebook 08: Gradio re-encodes none of it), and a file that
reader refuses is named on the page with its reason. Below notebook 08's THRESHOLD of top
probability the page answers "not sure".
"""

from __future__ import annotations

import argparse
import ast
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cifar_utils import checkpoints, data, explain, export, loaders, photo, settings

PHOTOS = Path(data.__file__).parent / "photos"
RUNS = Path("runs")  # where `course run` writes: runs/<time>-<profile>/checkpoints, or .../seed-N/checkpoints
DEPLOY_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08_deploy.ipynb"  # its THRESHOLD


class DemoError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


class Predictor:
    """The top three classes of a photo, and a Grad-CAM overlay when the model is PyTorch's."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.suffix == ".onnx":
            self.session = export.session(self.path)
            about = export.described(self.session)
            if "classes" not in about:
                raise DemoError(f"{self.path} is not a deployable model of the course (no class names in its "
                                "metadata): export it with export.to_onnx_deployable, as notebook 08 does.")
            self.classes, self.model = about["classes"], None
        else:
            saved = checkpoints.load(self.path)
            self.classes, self.model = saved.info.classes, saved.model.eval()
            self.mean, self.std = saved.info.mean, saved.info.std

    def predict(self, photo_path: str | None) -> tuple[dict[str, float], np.ndarray | None]:
        """({class: probability} of the top three, the overlay or None) for a photo's file, read
        by the course's reader (a DataError names a file it cannot read)."""
        if not photo_path:
            return {}, None
        return self.predict_photo(photo.load_photo(photo_path))

    def predict_photo(self, picture: Image.Image) -> tuple[dict[str, float], np.ndarray | None]:
        """As predict, for a PIL image already read (upright, RGB)."""
        image = photo.to_cifar_size(picture)  # (32, 32, 3) uint8
        if self.model is None:
            probs = export.probabilities(self.session, image[None])[0]
            cam = None
        else:
            x = loaders.normalise(image, self.mean, self.std)
            with torch.no_grad():
                probs = self.model(x).softmax(dim=1)[0].numpy()
            heat = explain.grad_cam(self.model, explain.cam_layer(self.model), x)[0]  # (32, 32) in [0, 1]
            cam = explain.overlay(photo.to_cifar_size(picture, 256), heat)  # over the square the model saw, sharp
        top = np.argsort(-probs)[:3]
        return {self.classes[i]: float(probs[i]) for i in top}, cam


def verdict(top3: dict[str, float], threshold: float) -> str:
    """The page's answer in Markdown: the top class as a heading, or "Not sure" and the guesses."""
    if not top3:
        return ""
    best, p = next(iter(top3.items()))
    guesses = ", ".join(f"{name} {q:.0%}" for name, q in top3.items())
    if p >= threshold:
        return f"## {best}\n{p:.0%} sure (it answers from {threshold:.0%}); its top three: {guesses}."
    return f"## Not sure\nNo class reaches {threshold:.0%}. Its best guesses: {guesses}."


def deploy_threshold(notebook: Path = DEPLOY_NOTEBOOK) -> float:
    """THRESHOLD as notebook 08's parameters cell sets it (read as papermill and `course run` read
    parameters cells): the one place the value lives."""
    import papermill

    if not notebook.is_file():
        raise DemoError(f"Notebook 08 is not at {notebook}, to read its THRESHOLD: pass --threshold (e.g. 0.5).")
    declared = papermill.inspect_notebook(str(notebook))
    if "THRESHOLD" not in declared:
        raise DemoError(f"{notebook}'s parameters cell sets no THRESHOLD: pass --threshold (e.g. 0.5).")
    return float(ast.literal_eval(declared["THRESHOLD"]["default"]))


def strongest(results_dir: Path, dataset: str) -> Path:
    """The checkpoint with the best validation accuracy in results_dir/checkpoints, for all of
    `dataset`'s classes (the course's pretraining on half of them is passed over)."""
    found = sorted((results_dir / "checkpoints").glob(f"{dataset}_*.pt"))
    best, _ = checkpoints.strongest(found, {"dataset": dataset, "classes": data.class_names(dataset)})
    if best is None:
        raise DemoError(f"No checkpoint of the course for {dataset} in {results_dir / 'checkpoints'}: run a notebook "
                        "that trains one (02, 03), or name a checkpoint (.pt) or an ONNX file.")
    return best.path


def latest_results(dataset: str, runs: Path = RUNS, results: Path | None = None) -> Path:
    """The results folder whose newest checkpoint for `dataset` is the newest: that of the latest
    `course run` (runs/<time>-<profile>, or its seed-N folders), or `results` (where notebooks
    run by hand write) if it was written since."""
    folders = [*runs.glob("*/checkpoints"), *runs.glob("*/seed-*/checkpoints")]
    if results is not None:
        folders.append(results / "checkpoints")
    newest = {folder.parent: max((p.stat().st_mtime for p in folder.glob(f"{dataset}_*.pt")), default=None)
              for folder in folders}
    newest = {folder: when for folder, when in newest.items() if when is not None}
    if not newest:
        looked = f"{runs}/*/checkpoints" + (f" or {results / 'checkpoints'}" if results is not None else "")
        raise DemoError(f"No checkpoint for {dataset} in {looked}: run the course (`course run`; notebooks 02 and 03 "
                        "train one), or pass --results DIR (a folder with checkpoints/ in it), or name a checkpoint "
                        "(.pt) or an ONNX file: course demo results/checkpoints/cifar10_simple_cnn.pt")
    return max(newest, key=newest.get)


def _page_error(err: data.DataError, path: str | None):
    """The course's message as Gradio shows it, naming the file as the user called it (not the
    temporary copy Gradio made)."""
    import gradio as gr

    message = str(err).replace(str(path), Path(path).name) if path else str(err)
    return gr.Error(message, duration=None, print_exception=False)  # stays until closed; no traceback in the log


def app(predictor: Predictor, examples: list[Path], threshold: float):
    """The Gradio app: a photo in, the answer, the top three and the overlay out."""
    import gradio as gr

    def from_file(path: str | None):
        try:
            top3, cam = predictor.predict(path)
        except data.DataError as err:
            raise _page_error(err, path) from err
        return verdict(top3, threshold), top3, cam

    def from_camera(picture: Image.Image | None):
        if picture is None:
            return "", {}, None
        try:
            top3, cam = predictor.predict_photo(photo.to_rgb(picture, "the picture"))
        except data.DataError as err:
            raise _page_error(err, None) from err
        return verdict(top3, threshold), top3, cam

    source = "ONNX Runtime" if predictor.model is None else "PyTorch"
    with gr.Blocks(title="What does the model see?") as demo:
        gr.Markdown(f"### What does the model see?\n`{predictor.path.name}` ({source}) knows {len(predictor.classes)} "
                    f"classes: **{', '.join(predictor.classes)}**. Shown anything else, it still picks one of them; "
                    f"when no class reaches {threshold:.0%} of probability, the page says *not sure*.",
                    elem_id="about")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label=f"Your photo ({' '.join(photo.PHOTO_SUFFIXES)})", elem_id="photo",
                                 file_types=list(photo.PHOTO_SUFFIXES))
                camera = gr.Image(type="pil", image_mode=None, sources=["webcam", "clipboard"], elem_id="camera",
                                  label="... or take one with the webcam, or paste one")
            with gr.Column():
                answer = gr.Markdown(elem_id="verdict")
                top3 = gr.Label(num_top_classes=3, show_heading=False, label="Top 3", elem_id="top3")
                cam = gr.Image(label="Where it found the evidence for its first guess (Grad-CAM over the square it saw)",
                               interactive=False, elem_id="cam", visible=predictor.model is not None)
        gr.Examples([[str(p)] for p in examples], inputs=upload, label="The course's photos")
        outputs = [answer, top3, cam]
        blank = ("", {}, None)  # a refused photo leaves no answer of the one before on the page
        upload.change(lambda: blank, None, outputs).then(from_file, upload, outputs, show_progress="hidden")
        camera.change(lambda: blank, None, outputs).then(from_camera, camera, outputs, show_progress="hidden")
    return demo


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The `demo` command's arguments."""
    parser.add_argument("model", nargs="?", type=Path,
                        help="a checkpoint (.pt) or a deployable ONNX file (.onnx); default: the strongest "
                             "checkpoint of the latest `course run` (runs/...) or of --results")
    parser.add_argument("--results", type=Path, default=None,
                        help="a results folder to take the strongest checkpoint from (default: the latest `course "
                             "run` under ./runs, or $CIFAR_RESULTS_DIR or ./results if written since)")
    parser.add_argument("--dataset", default="cifar10", help="cifar10 | cifar100, for the default model")
    parser.add_argument("--threshold", type=float, default=None,
                        help="top probability below which the page says 'not sure' (default: notebook 08's THRESHOLD)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)


def demo_command(args: argparse.Namespace) -> int:
    """`demo`: serve the web demo until interrupted."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a classroom
    path = args.model  # the model first: without one there is nothing to serve, Gradio or not
    if path is None:
        folder = args.results or latest_results(args.dataset, results=settings.resolve(progress="off").results_dir)
        path = strongest(folder, args.dataset)
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}: name a checkpoint (.pt) or an ONNX file (.onnx).")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise DemoError("The demo needs Gradio: pip install -e '.[demo]' (or: pip install gradio).") from None
    threshold = args.threshold if args.threshold is not None else deploy_threshold()
    predictor = Predictor(path)
    print(f"Serving {path} on http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    examples = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in photo.PHOTO_SUFFIXES)
    app(predictor, examples, threshold).launch(server_name=args.host, server_port=args.port, share=False,
                                               inbrowser=False)
    return 0
