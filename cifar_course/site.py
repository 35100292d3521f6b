"""The course site: the README as its home page, every notebook in course order with its
outputs (the executed reference of a profile where there is one), the docs pages (running,
teaching, the package, measurements), and search; built by Jupyter Book into a folder that
works offline, opened from the folder itself.

    course site --out site     # then open site/index.html
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cifar_utils.results import REFERENCE_DIR

ROOT = Path(__file__).resolve().parent.parent  # a clone of the repository
CONFIG = """\
title: "CIFAR-10 with PyTorch: a notebook course"
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_repository_button: false
  home_page_in_navbar: true
sphinx:
  extra_extensions: [sphinx-mathjax-offline]
  config:
    html_show_copyright: false
    myst_heading_anchors: 3
    suppress_warnings: ["myst.header", "myst.xref_missing", "misc.highlighting_failure"]
"""
# the README table's links to the executed runs, " ([run](docs/reference/laptop/NN_x.ipynb))":
# on the site every notebook page is its executed run already
DOCS = ("running", "teaching", "package", "measurements")  # docs/<page>.md, after the notebooks
EXECUTED_LINK = re.compile(r" \(\[run\]\(docs/reference/[^)]+\)\)")
# what a page may not load from elsewhere: the site must work from its folder, offline
REMOTE = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""", re.IGNORECASE)


class SiteError(RuntimeError):
    """The site could not be built, or would not work offline; the message says why."""


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    """The `site` command's arguments."""
    parser.add_argument("--out", type=Path, default=Path("site"), help="where the site goes (default: ./site)")
    parser.add_argument("--profile", default="laptop", help="whose executed references to show (default: laptop)")


def site_command(args: argparse.Namespace) -> int:
    """`site`: build the course site."""
    index = build(args.out, args.profile)
    print(f"The course site is in {args.out}: open {index}")
    return 0


def build(out: Path, profile: str = "laptop", root: Path = ROOT, references: Path = REFERENCE_DIR) -> Path:
    """Build the site into `out` (replacing what a previous build left there); return its index page."""
    if not all(importlib.util.find_spec(name) for name in ("jupyter_book", "sphinx-mathjax-offline")):
        raise SiteError("The site needs Jupyter Book 1 and sphinx-mathjax-offline: "
                        "pip install -e '.[site]' (or: pip install 'jupyter-book<2' sphinx-mathjax-offline).")
    with tempfile.TemporaryDirectory(prefix="course-site-") as tmp:
        book = Path(tmp) / "book"
        chapters = _sources(book, root, references / profile)
        (book / "_config.yml").write_text(CONFIG)
        (book / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n"
                                       + "".join(f"  - file: {chapter}\n" for chapter in chapters))
        result = subprocess.run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
                                 str(book), "--path-output", tmp], capture_output=True, text=True)
        html = Path(tmp) / "_build" / "html"
        if result.returncode != 0 or not (html / "index.html").is_file():
            raise SiteError(f"Jupyter Book could not build the site:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        remote = [str(page.relative_to(html)) for page in html.rglob("*.html") if REMOTE.search(page.read_text())]
        if remote:
            raise SiteError(f"These pages load something from the network, so the site would not work offline: "
                            f"{', '.join(remote)}")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(html, out)
    return out / "index.html"


def _sources(book: Path, root: Path, references: Path) -> list[str]:
    """Lay out the book's sources: the README, the notebooks (executed references where there
    are), the docs pages; return the chapters in course order."""
    (book / "notebooks").mkdir(parents=True)
    (book / "docs").mkdir()
    readme = EXECUTED_LINK.sub("", (root / "README.md").read_text())
    (book / "index.md").write_text(readme)
    chapters = []
    for notebook in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = references / notebook.name
        shutil.copy(executed if executed.is_file() else notebook, book / "notebooks" / notebook.name)
        chapters.append(f"notebooks/{notebook.stem}")
    for page in DOCS:
        shutil.copy(root / "docs" / f"{page}.md", book / "docs" / f"{page}.md")
    return [*chapters, *(f"docs/{page}" for page in DOCS)]
