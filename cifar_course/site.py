"""The course site: the README as its home page, every notebook in course order with its
outputs (the executed reference of a profile where there is one), the docs pages (running,
teaching, the package, measurements), and search; built by Jupyter Book into a folder that
works offline, opened from the folder itself, with or without JavaScript.

    course site --out site     # then open site/index.html

This module is also the Sphinx extension the build loads: it typesets maths as MathML.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent  # a clone of the repository
# build() adds the extensions: Jupyter Book's but sphinx_thebe (live cells on Binder, so online; it
# also wrote its inline script twice, a SyntaxError on every page), and this module for the maths
CONFIG = """\
title: "CIFAR-10 with PyTorch: a notebook course"
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_repository_button: false
  home_page_in_navbar: true
sphinx:
  config:
    html_show_copyright: false
    html_context: {default_mode: auto}  # the theme's script logs an error on a first visit where it is unset
    html_math_renderer: mathml
    myst_heading_anchors: 3
    suppress_warnings: ["myst.header", "myst.xref_missing", "misc.highlighting_failure"]
"""
CSS = """\
/* long printed lines (a takeaway sentence) and long code lines wrap instead of running off the right edge */
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
/* the theme lays out div.math for MathJax's element: a displayed formula takes the width, centred */
div.math { margin: 1em 0; }
div.math > math { flex-grow: 1; overflow: auto hidden; padding: .2rem 0; }
"""
DOCS = ("running", "teaching", "package", "measurements")  # docs/<page>.md, after the notebooks
# the README table's links to the executed runs, " ([run](docs/reference/laptop/NN_x.ipynb))":
# on the site every notebook page is its executed run already, which its header then says
EXECUTED_LINK = re.compile(r" \(\[run\]\(docs/reference/[^)]+\)\)")
NOTEBOOK_HEADER = re.compile(r"^(\|\s*#\s*\|\s*notebook)[^|]*", re.MULTILINE)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)")  # [text](target), not ![image](...)
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.MULTILINE | re.DOTALL)  # a fenced code block
OUTSIDE = re.compile(r"[a-z][a-z0-9+.-]*:|#", re.IGNORECASE)  # a scheme (https:, mailto:) or this page's anchor
# a URL's host: what a page may not name outside its <a href>, since the site must work from its folder
EXTERNAL = re.compile(r"(?:\b[a-z][a-z0-9+.-]*:)?//(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)", re.IGNORECASE)
CSS_LOAD = re.compile(r"""url\(\s*["']?(?!data:)(?P<url>[^"')]+)|@import\s+["'](?P<import>[^"']+)""", re.IGNORECASE)


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


def build(out: Path, profile: str = "laptop", root: Path = ROOT, references: Path | None = None) -> Path:
    """Build the site into `out` (replacing what a previous build left there); return its index page.

    `references`: the folder of the profiles' executed references (default: the committed ones).
    """
    if not all(importlib.util.find_spec(name) for name in ("jupyter_book", "latex2mathml")):
        raise SiteError("The site needs Jupyter Book 1 and latex2mathml: "
                        "pip install -e '.[site]' (or: pip install 'jupyter-book<2' latex2mathml).")
    from jupyter_book.config import get_default_sphinx_config

    from cifar_utils.results import REFERENCE_DIR  # not at the top: Sphinx loads this module, and need not load torch

    references = REFERENCE_DIR if references is None else references
    with tempfile.TemporaryDirectory(prefix="course-site-") as tmp:
        book = Path(tmp) / "book"
        chapters = _sources(book, root, references / profile, profile)
        extensions = [name for name in get_default_sphinx_config()["extensions"] if name != "sphinx_thebe"]
        (book / "_config.yml").write_text(CONFIG + f"    extensions: {json.dumps([*extensions, __name__])}\n")
        (book / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n"
                                       + "".join(f"  - file: {chapter}\n" for chapter in chapters))
        (book / "_static").mkdir()
        (book / "_static" / "course.css").write_text(CSS)  # Jupyter Book links every _static/*.css
        result = subprocess.run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
                                 str(book), "--path-output", tmp], capture_output=True, text=True)
        html = Path(tmp) / "_build" / "html"
        if result.returncode != 0 or not (html / "index.html").is_file():
            raise SiteError(f"Jupyter Book could not build the site:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        remote = {str(path.relative_to(html)): hosts for path in sorted(html.rglob("*"))
                  if path.suffix in (".html", ".css") and (hosts := external_hosts(path))}
        if remote:
            raise SiteError("These pages name another host (outside a link to follow), so the site would not work "
                            "offline: " + "; ".join(f"{page}: {', '.join(hosts)}" for page, hosts in remote.items()))
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(html, out)
    return out / "index.html"


def external_hosts(path: Path) -> list[str]:
    """The hosts a built page (.html) or stylesheet (.css) names where a browser would load from.

    A page: every attribute but an <a href> (a link the reader follows) and an xmlns (a
    namespace's name, never fetched), and its inline scripts and styles. A stylesheet: its
    url()s and @imports. Prose, code and printed outputs are text to read, not to load.
    """
    text = path.read_text(errors="replace")
    if path.suffix == ".css":
        return sorted({host for match in CSS_LOAD.finditer(text)
                       for host in _hosts(match["url"] or match["import"])})
    page = _PageHosts()
    page.feed(text)
    page.close()
    return sorted(page.hosts)


def _hosts(text: str) -> set[str]:
    return {match["host"].lower() for match in EXTERNAL.finditer(text)}


class _PageHosts(HTMLParser):
    """Collects the hosts a page names in its attributes (but <a href> and xmlns) and inline scripts and styles."""

    def __init__(self):
        super().__init__()
        self.hosts: set[str] = set()
        self._raw = False  # inside <script> or <style>

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and not (tag == "a" and name == "href") and not name.startswith("xmlns"):
                self.hosts |= _hosts(value)
        self._raw = tag in ("script", "style")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self._raw = False

    def handle_endtag(self, tag):
        self._raw = False

    def handle_data(self, data):
        if self._raw:
            self.hosts |= _hosts(data)


def _sources(book: Path, root: Path, references: Path, profile: str) -> list[str]:
    """Lay out the book's sources: the README, the notebooks (executed references where there
    are), the docs pages; return the chapters in course order."""
    (book / "notebooks").mkdir(parents=True)
    (book / "docs").mkdir()
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    chapters = [*(f"notebooks/{nb.name}" for nb in notebooks), *(f"docs/{page}.md" for page in DOCS)]
    pages = {"README.md": "index.md", **{chapter: chapter for chapter in chapters}}  # repository path: book path
    executed = [references / notebook.name for notebook in notebooks]
    header = rf"\1 (its page shows the {profile} reference run) " if all(p.is_file() for p in executed) else r"\1 "
    readme = NOTEBOOK_HEADER.sub(header, EXECUTED_LINK.sub("", (root / "README.md").read_text()), count=1)
    (book / "index.md").write_text(site_links(readme, "README.md", pages))
    for notebook, run in zip(notebooks, executed):
        shutil.copy(run if run.is_file() else notebook, book / "notebooks" / notebook.name)
    for page in DOCS:
        text = (root / "docs" / f"{page}.md").read_text()
        (book / "docs" / f"{page}.md").write_text(site_links(text, f"docs/{page}.md", pages))
    return [chapter.rsplit(".", 1)[0] for chapter in chapters]


def site_links(markdown: str, source: str, pages: dict[str, str]) -> str:
    """Point `source`'s links to repository paths at the site: a page's link at its page (the
    README's at the home page), a link to what is no page (`student/`, `docs/reference/README.md`)
    becomes its text: GitHub opens those, the site has nothing there. `pages` maps repository
    paths to the book's, both from the root; code blocks are left as they are."""
    here = posixpath.dirname(pages.get(source, source))

    def repoint(link: re.Match) -> str:
        if OUTSIDE.match(link["target"]):
            return link[0]
        path, hash_, fragment = link["target"].partition("#")
        repository_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(path)))
        if repository_path not in pages:
            return link["text"]
        if pages[repository_path] == repository_path and here == posixpath.dirname(source):
            return link[0]  # the same place in the book as in the repository
        return f"[{link['text']}]({posixpath.relpath(pages[repository_path], here or '.')}{hash_}{fragment})"

    pieces, start = [], 0
    for block in FENCE.finditer(markdown):
        pieces += [LINK.sub(repoint, markdown[start:block.start()]), block[0]]
        start = block.end()
    return "".join([*pieces, LINK.sub(repoint, markdown[start:])])


def setup(app) -> dict:
    """Sphinx: the `mathml` maths renderer, so a page shows its formulas with no script to run."""
    app.add_html_math_renderer("mathml", (_html_math, None), (_html_math_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _mathml(latex: str, display: str, node) -> str:
    """`latex` as MathML, which browsers draw themselves (Chromium since 109, Firefox, Safari)."""
    from latex2mathml.converter import convert
    from sphinx.util import logging

    mathml = convert(latex, display=display)
    if "\\" in mathml:  # latex2mathml passes a command it does not know through as text
        logging.getLogger(__name__).warning(f"latex2mathml left a LaTeX command in {latex!r}", location=node)
    return mathml


def _html_math(self, node) -> None:
    """Inline maths, $...$, as sphinx.ext.mathjax writes it but in MathML."""
    from docutils.nodes import SkipNode

    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate nohighlight")
                     + _mathml(node.astext(), "inline", node) + "</span>")
    raise SkipNode


def _html_math_block(self, node) -> None:
    """Displayed maths, $$...$$, as sphinx.ext.mathjax writes it (equation number, one formula
    per paragraph) but in MathML."""
    from docutils.nodes import SkipNode
    from sphinx.util.math import get_node_equation_number

    self.body.append(self.starttag(node, "div", CLASS="math notranslate nohighlight"))
    if node.get("number"):
        self.body.append(f'<span class="eqno">({get_node_equation_number(self, node)})')
        self.add_permalink_ref(node, "Link to this equation")
        self.body.append("</span>")
    self.body += [_mathml(part, "block", node) for part in node.astext().split("\n\n") if part.strip()]
    self.body.append("</div>\n")
    raise SkipNode
