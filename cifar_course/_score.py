"""The challenge grader's scorer: run a handed-in network on images, inside a fresh sandbox.

    python _score.py NETWORK IMAGES OUT_FOLDER

NETWORK: what the run saved (cifar_utils.challenge.export_graded: uint8 images in, scores out),
checked and rewritten by the grader first (leaderboard.checked_network: plain tensors only, the
grader's own sample inputs), so that loading it runs none of the run's code. IMAGES: uint8
(N, 32, 32, 3), no labels. Writes OUT_FOLDER/predictions.npy, one class per image, as the run's
own `classes_of` gives them. The run's code is not in this sandbox: only its exported network.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from cifar_utils.challenge import classes_of


def main(network: str, images: str, out: str) -> None:
    program = torch.export.load(network)
    predicted = classes_of(program.module(), np.load(images, allow_pickle=False))
    np.save(Path(out) / "predictions.npy", predicted)


if __name__ == "__main__":
    main(*sys.argv[1:4])
