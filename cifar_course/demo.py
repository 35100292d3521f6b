"""A web demo of a trained model: a photo in (uploaded, taken with the webcam, or one of the
course's), its three most probable classes and where the model looked (Grad-CAM) out.

    course demo                          # the strongest checkpoint in ./results
    course demo results/checkpoints/cifar10_resnet18_cifar.pt
    course demo results/onnx/cifar10_deployable.onnx   # ONNX Runtime, no Grad-CAM

Gradio serves it on this machine only (127.0.0.1) unless --host says otherwise; it needs the
`demo` extra (pip install -e ".[demo]"). A photo goes through the course's own preprocessing
(data.load_photo, then the centre square at 32x32), as in notebook 08.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from cifar_utils import checkpoints, data, explain, export, loaders, settings

PHOTOS = Path(data.__file__).parent / "photos"


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
            self.classes, self.model = saved.info["data"]["classes"], saved.model.eval()
            self.mean, self.std = saved.info["mean"], saved.info["std"]

    def predict(self, photo_path: str | None) -> tuple[dict[str, float], np.ndarray | None]:
        """({class: probability} of the top three, the overlay or None) for a photo's file."""
        if not photo_path:
            return {}, None
        image = data.to_cifar_size(data.load_photo(photo_path))  # (32, 32, 3) uint8
        if self.model is None:
            probs = export.probabilities(self.session, image[None])[0]
            cam = None
        else:
            x = loaders.normalise(image, self.mean, self.std)
            with torch.no_grad():
                probs = self.model(x).softmax(dim=1)[0].numpy()
            cam = explain.overlay(image, explain.grad_cam(self.model, explain.cam_layer(self.model), x)[0])
        top = np.argsort(-probs)[:3]
        return {self.classes[i]: float(probs[i]) for i in top}, cam


def strongest(results_dir: Path, dataset: str) -> Path:
    """The checkpoint with the best validation accuracy in results_dir/checkpoints, for all of
    `dataset`'s classes (the course's pretraining on half of them is passed over)."""
    found = sorted((results_dir / "checkpoints").glob(f"{dataset}_*.pt"))
    best, _ = checkpoints.strongest(found, {"dataset": dataset, "classes": data.class_names(dataset)})
    if best is None:
        raise DemoError(f"No checkpoint of the course for {dataset} in {results_dir / 'checkpoints'}: run a notebook "
                        "that trains one (02, 03), or name a checkpoint or an ONNX file.")
    return best.path


def app(predictor: Predictor, examples: list[Path]):
    """The Gradio app: a photo in, the top three and the overlay out."""
    import gradio as gr

    source = "ONNX Runtime" if predictor.model is None else "PyTorch"
    with gr.Blocks(title="What does the model see?") as demo:
        gr.Markdown(f"### What does the model see?\n`{predictor.path.name}` ({source}): a photo in, its three "
                    f"most probable classes of {len(predictor.classes)} out" +
                    (", and where the model found the evidence (Grad-CAM)." if predictor.model is not None else "."))
        with gr.Row():
            photo = gr.Image(type="filepath", sources=["upload", "webcam"], label="Your photo", elem_id="photo")
            with gr.Column():
                top3 = gr.Label(num_top_classes=3, label="Top 3", elem_id="top3")
                cam = gr.Image(label="Grad-CAM of the top class, on the 32x32 image the model saw",
                               interactive=False, elem_id="cam", visible=predictor.model is not None)
        gr.Examples([[str(p)] for p in examples], inputs=photo, label="The course's photos")
        photo.change(predictor.predict, photo, [top3, cam])
    return demo


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The `demo` command's arguments."""
    parser.add_argument("model", nargs="?", type=Path,
                        help="a checkpoint (.pt) or a deployable ONNX file (.onnx); default: the strongest "
                             "checkpoint in the results folder")
    parser.add_argument("--results", type=Path, default=None, help="results folder (default: $CIFAR_RESULTS_DIR or ./results)")
    parser.add_argument("--dataset", default="cifar10", help="cifar10 | cifar100, for the default model")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)


def demo_command(args: argparse.Namespace) -> int:
    """`demo`: serve the web demo until interrupted."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a classroom
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise DemoError("The demo needs Gradio: pip install -e '.[demo]' (or: pip install gradio).") from None
    path = args.model or strongest(args.results or settings.resolve(progress="off").results_dir, args.dataset)
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}: name a checkpoint (.pt) or an ONNX file (.onnx).")
    predictor = Predictor(path)
    print(f"Serving {path} on http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    app(predictor, sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in data.IMAGE_SUFFIXES)).launch(
        server_name=args.host, server_port=args.port, share=False, inbrowser=False)
    return 0
