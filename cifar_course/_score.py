"""The challenge grader's scorer: run a handed-in network on images, inside a fresh sandbox.

    python _score.py NETWORK IMAGES OUT_FOLDER

NETWORK: what the run saved (cifar_utils.challenge.export_graded: uint8 images in, scores out).
IMAGES: uint8 (N, 32, 32, 3), no labels. Writes OUT_FOLDER/predictions.npy (one class per image,
as the run's own `classes_of` gives them) and OUT_FOLDER/params.json (the network's parameter
count: every floating-point number it holds, parameters, buffers and constants alike, so that
weights kept as buffers are counted too). The run's code is not in this sandbox: only its
exported network.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from cifar_utils.challenge import classes_of


def main(network: str, images: str, out: str) -> None:
    program = torch.export.load(network)
    predicted = classes_of(program.module(), np.load(images, allow_pickle=False))
    np.save(Path(out) / "predictions.npy", predicted)
    held = [*program.state_dict.values(), *program.constants.values()]  # parameters, buffers, constants alike
    params = sum(t.numel() for t in held if isinstance(t, torch.Tensor) and t.is_floating_point())
    (Path(out) / "params.json").write_text(json.dumps({"params": int(params)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
