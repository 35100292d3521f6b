"""The tables the tooling writes (the report's, the gradebook, the leaderboard): one Markdown
renderer, one CSV writer, student text escaped, files replaced whole.

Whatever a student names a folder or makes an exception say ends up in these tables, so every
such cell is escaped for its format: Markdown (a code span: no row, link, HTML or emphasis of
its own) and CSV (no formula a spreadsheet would run).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def one_line(text: object) -> str:
    """Text on one line: every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def markdown_cell(value: object) -> str:
    """What a student wrote, as a Markdown table cell: one line, in a code span, where Markdown
    makes no link, emphasis or HTML of anything (a bare address included), and only the table's
    own `|` needs its escape."""
    text = one_line(value).replace("`", "'").replace("|", "\\|")
    return f"`` {text} ``" if text else ""


def markdown(header: list[str], rows: list[list[object]], align: str = "") -> str:
    """A Markdown table of the cells as given (pass what a student wrote through markdown_cell);
    `align` holds one character per column, "r" for right-aligned."""
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines) + "\n"


def csv_cell(value: object) -> object:
    """A value for a CSV cell: text a spreadsheet would run as a formula is quoted with a '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(f, columns: list[str], rows: list[dict]) -> None:
    writer = csv.DictWriter(f, fieldnames=[csv_cell(c) for c in columns], extrasaction="ignore")
    writer.writeheader()
    writer.writerows({csv_cell(k): csv_cell(v) for k, v in row.items()} for row in rows)


@contextlib.contextmanager
def replaced(path: Path):
    """Write `path` through a file beside it that replaces it whole at the end: a reader (or a
    crash) never sees half a table."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            yield f
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
