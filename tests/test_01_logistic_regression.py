"""01's step by hand does what its text says: the loss on the batch drops. The notebook's own cells
run, up to that step, on the bundled sample, as papermill would run them with its parameters."""

from __future__ import annotations

import nbformat
import pytest
from helpers import NOTEBOOK_DIR

NOTEBOOK = NOTEBOOK_DIR / "01_logistic_regression.ipynb"
STEP = "p -= STEP_LR * p.grad"  # the cell of the step by hand


def step_by_hand(results_dir, **parameters) -> dict:
    """Run 01's code cells from the first to the step by hand, in the smoke profile on the sample,
    with `parameters` injected after the parameters cell as papermill injects them; return the
    notebook's variables."""
    cells = [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    last = next(i for i, c in enumerate(cells) if STEP in c.source)
    namespace = {}
    for cell in cells[:last + 1]:
        exec(compile(cell.source, NOTEBOOK.name, "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            namespace.update(PROFILE="smoke", DATA_DIR="sample", RESULTS_DIR=str(results_dir), **parameters)
    return namespace


@pytest.mark.parametrize("batch_size", [None, 128])  # the smoke profile's batch, and the laptop profile's
def test_one_step_by_hand_lowers_the_loss_on_its_batch(tmp_path, capsys, batch_size):
    ran = step_by_hand(tmp_path, BATCH_SIZE=batch_size)
    assert ran["loss_after"] < ran["loss_before"]
    assert ran["STEP_LR"] * ran["squared_norm"] < ran["loss_before"]  # the promised drop is less than the loss
    assert f"{ran['loss_before']:.4f} before the step, {ran['loss_after']:.4f} after: down" in capsys.readouterr().out


def test_the_check_fails_with_the_rate_the_step_once_took(tmp_path, capsys):
    """At 0.1 the same step on the same batch overshoots: the test above can fail. Seeded, the
    batch and the starting weights are those of the run at STEP_LR, to the last digit."""
    overshot, kept = step_by_hand(tmp_path, STEP_LR=0.1), step_by_hand(tmp_path)
    assert overshot["loss_after"] > overshot["loss_before"] == kept["loss_before"]
    assert "after: up" in capsys.readouterr().out
