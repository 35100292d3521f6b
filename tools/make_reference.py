"""Make a course run into the team's reference: docs/reference/<profile>/, each notebook's
results JSON and its executed notebook, saying where they came from.

    course run --profile laptop --out runs/laptop-jpeg \
        -p DATA_DIR data/cifar10-jpeg.tar.xz -p DOWNLOAD False
    python tools/make_reference.py runs/laptop-jpeg --machine "2 cores of an AMD EPYC (AVX-512 BF16)" \
        --data "JPEG CIFAR-10 (all 60,000 images)"

Each notebook's closing table then shows a learner's run beside these
(results.beside_reference), and the course site shows the executed notebooks. An executed
notebook's own closing table, drawn when it ran beside the reference before it, is drawn again
against the reference it has become (against_itself), so that a reference agrees with itself.
Only a run of the whole course in one profile on one data set makes a reference. An executed
notebook keeps its outputs, its figures shrunk to at most MAX_WIDTH pixels and at most MAX_BYTES
in all, and its first code cell's output names the profile, the machine, the data and the date.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from datetime import date
from pathlib import Path

import nbformat
from PIL import Image

from cifar_utils import results

MAX_WIDTH = 900  # pixels of a figure in a reference notebook
MAX_BYTES = 1_000_000  # of a reference notebook, figures included


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a folder written by `course run`")
    parser.add_argument("--machine", required=True, help="the hardware, in words")
    parser.add_argument("--data", required=True, help="the data, in words (original CIFAR files, or which copy)")
    parser.add_argument("--date", default=date.today().isoformat())
    parser.add_argument("--into", type=Path, help="where to write (default: docs/reference/<profile>)")
    args = parser.parse_args(argv)
    records = results.in_folder(args.run)  # checked as results
    if not records:
        parser.error(f"no results JSON in {args.run}")
    profiles = {(r["profile"], r["dataset"]) for r in records}
    if len(profiles) != 1:
        parser.error(f"{args.run} mixes profiles or data sets: {sorted(profiles)}")
    target = args.into or results.REFERENCE_DIR / records[0]["profile"]
    target.mkdir(parents=True, exist_ok=True)
    for record in records:
        stem = record["notebook"]
        record = results.as_reference(record, args.machine, args.data, args.date)
        measured = record[results.MEASURED]
        (target / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
        executed = args.run / f"{stem}.ipynb"
        if not executed.is_file():
            parser.error(f"{args.run} has {stem}.json but not its executed notebook {executed.name}")
        notebook = reference_notebook(executed, record["profile"], measured)
        against_itself(notebook, record)
        nbformat.write(notebook, target / f"{stem}.ipynb")
        print("wrote", target / f"{stem}.json", "and", target / f"{stem}.ipynb")
    return 0


def reference_notebook(path: Path, profile: str, measured: dict) -> nbformat.NotebookNode:
    """An executed notebook as a reference: where it ran said in its first code cell's output,
    its figures shrunk, at most MAX_BYTES."""
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    first.outputs.insert(0, nbformat.v4.new_output(
        "stream", name="stdout", text=f"Reference run of the {profile} profile: {measured['machine']}; "
                                      f"{measured['data']}; {measured['date']}.\n"))
    notebook.metadata.pop("widgets", None)  # widget state: the bars left their text lines
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output["data"]["image/png"] = shrink(output["data"]["image/png"])
    size = len(nbformat.writes(notebook).encode())
    if size > MAX_BYTES:
        raise ValueError(f"{path.name} is {size:,} bytes as a reference, over {MAX_BYTES:,}: draw fewer "
                         "or smaller figures")
    return notebook


def against_itself(notebook: nbformat.NotebookNode, record: dict) -> None:
    """Draw the closing table (the cell that calls results.beside_reference) again against the
    reference `record`, the notebook's own results as a reference, and the full profile's: the
    run is then shown as the reference of its profile, not beside the reference before it."""
    cell = next((c for c in notebook.cells if c.cell_type == "code" and "results.beside_reference(" in c.source), None)
    if cell is None:
        return
    references = {record["profile"]: record}
    if record["profile"] != "full":
        references["full"] = results.reference(record["notebook"], "full", record["dataset"])
    lines, table = results.reference_table(record["runs"], references, record["dataset"])
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n"),
                    nbformat.v4.new_output("execute_result", {"text/html": table.to_html(), "text/plain": repr(table)},
                                           execution_count=cell.execution_count)]


def shrink(png_base64: str) -> str:
    """A figure at most MAX_WIDTH pixels wide, saved as an optimised PNG (base64)."""
    image = Image.open(io.BytesIO(base64.b64decode(png_base64)))
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    smaller = base64.b64encode(out.getvalue()).decode()
    return smaller if len(smaller) < len(png_base64) else png_base64


if __name__ == "__main__":
    sys.exit(main())
