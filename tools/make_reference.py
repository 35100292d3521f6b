"""Copy a course run's results JSON into docs/reference/<profile>/, saying where they came from.

    python tools/make_reference.py runs/laptop-jpeg --machine "2 cores of an AMD EPYC, no GPU" \
        --data "JPEG CIFAR-10 (all 60,000 images)"

Each notebook's closing table then shows a learner's run beside these (results.beside_reference).
Only a run of the whole course in one profile on one data set makes a reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from cifar_utils.results import REFERENCE_DIR, read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a folder written by `python -m cifar_utils.course run`")
    parser.add_argument("--machine", required=True, help="the hardware, in words")
    parser.add_argument("--data", required=True, help="the data, in words (original CIFAR files, or which copy)")
    parser.add_argument("--date", default=date.today().isoformat())
    args = parser.parse_args(argv)
    records = [read(p) for p in sorted(args.run.glob("[0-9][0-9]_*.json"))]  # checked as results
    if not records:
        parser.error(f"no results JSON in {args.run}")
    profiles = {(r["profile"], r["dataset"]) for r in records}
    if len(profiles) != 1:
        parser.error(f"{args.run} mixes profiles or data sets: {sorted(profiles)}")
    target = REFERENCE_DIR / records[0]["profile"]
    target.mkdir(parents=True, exist_ok=True)
    for record in records:
        record["measured"] = {"machine": args.machine, "data": args.data, "date": args.date}
        for run in record["runs"]:
            run.pop("history", None)  # the curves stay in the run folder; the reference keeps the numbers
        (target / f"{record['notebook']}.json").write_text(json.dumps(record, indent=2) + "\n")
        print("wrote", target / f"{record['notebook']}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
