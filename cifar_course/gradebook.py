"""The gradebook: one owner for what grading writes (a CSV row per student, a JSON record per
exercise) and prints. Student-written text is escaped (tables.py); each file is replaced whole
after every submission, so a crash loses nothing already graded."""

from __future__ import annotations

import json
from pathlib import Path

from . import tables


def rows(records: list[dict]) -> list[dict]:
    """One row per student: points per exercise, the total and the maximum of the autograded
    ones, and the points of the written answers still to grade by hand."""
    rows: dict[str, dict] = {}
    for r in records:
        row = rows.setdefault(r["student"], {"student": r["student"], "total": 0.0, "max": 0.0,
                                             "by_hand": 0.0})
        if r["points"] is None:  # a written answer
            row[r["exercise"]] = "by hand" if r["answer"] else 0.0
            row["by_hand"] += r["max_points"]
            continue
        row[r["exercise"]] = r["points"]
        row["total"] += r["points"]
        row["max"] += r["max_points"]
    return list(rows.values())


def write(records: list[dict], csv_path: Path | None, json_path: Path | None) -> None:
    """The gradebook (a row per student, CSV) and the records (JSON), each replaced whole, so a
    crash leaves the last complete version: called after every submission."""
    if csv_path:
        columns = ["student", *dict.fromkeys(r["exercise"] for r in records), "total", "max", "by_hand"]
        with tables.replaced(csv_path) as f:
            tables.write_csv(f, columns, rows(records))
    if json_path:
        with tables.replaced(json_path) as f:
            f.write(json.dumps(records, indent=2) + "\n")


def print_table(records: list[dict]) -> None:
    width = max([len(f"{r['student']!r} {r['notebook']}") for r in records] + [8])
    for r in records:
        mark = {True: "PASS", False: "FAIL", None: "HAND"}[r["passed"]]
        print(f"{repr(r['student']) + ' ' + r['notebook']:<{width}}  {r['exercise']:<28} {mark}  "
              f"{tables.one_line(r['message'])[:90]}")
    for row in rows(records):
        by_hand = f", plus {row['by_hand']:g} for written answers to grade by hand" if row["by_hand"] else ""
        print(f"{row['student']!r}: {row['total']:g}/{row['max']:g}{by_hand}")
