"""The course site, built by its one command and opened from its folder in headless Chromium with
the network shut, with JavaScript on and off: every page loads, every figure decodes, no page
shows an error or logs one, no page loads or names anything from another host, long lines wrap,
the maths is MathML (no raw LaTeX even without scripts), every link and anchor lands, search
finds a notebook, and a link from 02 lands on 03.

Marked `browser`: `.ci/run` runs it with the JupyterLab test, after installing Chromium, its
driver and Selenium (or it prints why it cannot). The tests of the built site that need no
browser (links, hosts) are marked too: they share the one build the browser tests open. The
unmarked tests check the source preparation and the offline check on small inputs, in a second.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from helpers import NOTEBOOK_DIR
from test_browser import CHROMEDRIVER, wait_for

from cifar_course import site as course_site
from cifar_utils.settings import DATA_ENV, PROFILE_ENV, RESULTS_ENV

BUILD_SECONDS = 180  # the README's promise on two cores
RAW_LATEX = re.compile(r"\\[(\[]")  # \( or \[: what MathJax would have typeset, shown as it is
# the text of a page outside code, which may hold a backslash and a bracket of its own
PROSE = """const body = document.body.cloneNode(true);
body.querySelectorAll("pre, code, script, style").forEach(e => e.remove());
return body.textContent;"""
# the code and printed outputs wider than their box: cut off at the right edge
OVERFLOWING = """return [...document.querySelectorAll("main pre")].filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => e.textContent.slice(0, 80));"""
# each formula's tag and its drawn size: a browser that draws MathML gives the <math> a box
FORMULAS = """return [...document.querySelectorAll("main .math")].map(e => [
    e.firstElementChild ? e.firstElementChild.tagName : "", e.getBoundingClientRect().width,
    e.getBoundingClientRect().height]);"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built by `course site` from two executed smoke notebooks."""
    if CHROMEDRIVER is None:
        pytest.skip("no chromedriver on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install selenium)")
    pytest.importorskip("jupyter_book", reason="Jupyter Book is not installed (pip install -e '.[site]')")
    pytest.importorskip("latex2mathml", reason="latex2mathml is not installed (pip install -e '.[site]')")
    tmp = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels draw their figures inline
    env.update({PROFILE_ENV: "smoke", DATA_ENV: str(tmp / "no-data"), RESULTS_ENV: str(tmp / "results")})
    course = [sys.executable, "-m", "cifar_course"]
    subprocess.run([*course, "run", "--profile", "smoke", "--only", "00", "01", "--out", str(tmp / "run"),
                    "--notebooks", str(NOTEBOOK_DIR)], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, str(NOTEBOOK_DIR.parent / "tools" / "make_reference.py"), str(tmp / "run"),
                    "--machine", "a test machine", "--data", "the bundled sample", "--into",
                    str(tmp / "reference" / "smoke")], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    built = subprocess.run([sys.executable, "-c", _BUILD, str(tmp / "site"), str(tmp / "reference")], env=env,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert time.perf_counter() - start < BUILD_SECONDS
    return tmp / "site"


# `course site` with the references of the test run instead of the committed ones
_BUILD = ("import sys; from pathlib import Path; from cifar_course import site; "
          "site.build(Path(sys.argv[1]), 'smoke', references=Path(sys.argv[2]))")


def _chromium(javascript: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files"):
        options.add_argument(argument)  # no name resolves: anything fetched from the network fails
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for driver.get_log
    if not javascript:  # the pages' scripts do not run; Selenium's own still do
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def offline_browser():
    driver = _chromium(javascript=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def scriptless_browser():
    driver = _chromium(javascript=False)
    yield driver
    driver.quit()


def built_pages(site: Path) -> list[Path]:
    """Every page of the site: the home page, the notebooks, the docs, search and the index."""
    return sorted(page for page in site.rglob("*.html") if not {"_static", "_sources"} & set(page.parts))


def open_page(driver, page: Path) -> None:
    driver.get(page.as_uri())
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 30, str(page))


@pytest.mark.browser
def test_every_page_loads_offline_with_its_figures_and_no_error(site, offline_browser):
    from selenium.webdriver.common.by import By

    notebooks = sorted(site.glob("notebooks/*.html"))
    assert [p.stem for p in notebooks] == [nb.stem for nb in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))]
    pages = built_pages(site)
    assert {site / "index.html", site / "search.html", *notebooks,
            *(site / "docs" / f"{page}.html" for page in course_site.DOCS)} <= set(pages)
    offline_browser.get_log("browser")  # what earlier tests left in the console
    figures, console_errors = 0, []
    for page in pages:
        open_page(offline_browser, page)
        assert offline_browser.find_elements(By.CSS_SELECTOR, "main h1"), page.name
        images = offline_browser.find_elements(By.CSS_SELECTOR, "main img")
        wait_for(lambda images=images: all(img.get_property("complete") for img in images), 30, f"{page.name}'s images")
        assert all(img.get_property("naturalWidth") > 0 for img in images), page.name
        figures += len(images)
        errors = offline_browser.find_elements(By.CSS_SELECTOR, ".output.traceback, .output.error")
        assert not errors, (page.name, errors[0].text[:300])
        loaded = offline_browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(url.startswith("file:") for url in loaded), (page.name, loaded)
        overflowing = offline_browser.execute_script(OVERFLOWING)
        assert not overflowing, (page.name, overflowing)
        # a script's error shows up when its page has loaded, or at the latest by the next page's
        console_errors += [entry["message"] for entry in offline_browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert figures >= 5  # 00 and 01 ran: their figures are on the site
    assert not console_errors


@pytest.mark.browser
def test_without_javascript_the_maths_is_mathml_and_no_page_shows_raw_latex(site, scriptless_browser):
    offline_formulas = {}
    for page in built_pages(site):
        open_page(scriptless_browser, page)
        assert scriptless_browser.execute_script("return typeof DOCUMENTATION_OPTIONS") == "undefined"  # no script ran
        prose = scriptless_browser.execute_script(PROSE)
        assert not RAW_LATEX.search(prose), (page.name, prose[RAW_LATEX.search(prose).start():][:120])
        overflowing = scriptless_browser.execute_script(OVERFLOWING)
        assert not overflowing, (page.name, overflowing)  # the wrapping is CSS alone
        offline_formulas[page.name] = scriptless_browser.execute_script(FORMULAS)
    # 01 as executed, 03 as committed: both put formulas in their text
    for name in ("01_logistic_regression.html", "03_resnet18.html"):
        assert offline_formulas[name], name
        assert all(tag.lower() == "math" and width > 0 and height > 0 for tag, width, height in offline_formulas[name]), \
            (name, offline_formulas[name])


@pytest.mark.browser
def test_maths_is_typeset_search_finds_a_notebook_and_a_link_from_02_lands_on_03(site, offline_browser):
    from selenium.webdriver.common.by import By

    open_page(offline_browser, site / "notebooks" / "03_resnet18.html")
    formulas = offline_browser.find_elements(By.CSS_SELECTOR, "main .math > math")
    assert formulas and all(formula.rect["width"] > 0 for formula in formulas)

    offline_browser.get((site / "search.html").as_uri() + "?q=distillation")
    found = wait_for(lambda: offline_browser.find_elements(By.CSS_SELECTOR, "#search-results li a"), 30,
                     "search results")
    assert any("06_distillation" in a.get_attribute("href") for a in found)

    offline_browser.get((site / "notebooks" / "02_simple_cnn.html").as_uri())
    link = offline_browser.find_element(By.CSS_SELECTOR, "main a[href*='03_resnet18']")
    link.click()
    wait_for(lambda: offline_browser.current_url.split("#")[0].endswith("notebooks/03_resnet18.html"), 30,
             "the link to land on 03")
    wait_for(lambda: offline_browser.execute_script("return document.readyState") == "complete", 30, "03 to load")
    title = offline_browser.find_element(By.CSS_SELECTOR, "main h1").get_attribute("textContent")
    assert "03" in title, title


class _Anchors(HTMLParser):
    """A page's ids (and <a name>s), and every href and src in it."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str] = set()
        self.references: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids |= {attrs[key] for key in ("id", "name") if attrs.get(key) and (key == "id" or tag == "a")}
        self.references += [attrs[key] for key in ("href", "src") if attrs.get(key)]


@pytest.mark.browser
def test_every_link_and_anchor_on_every_page_lands(site):
    parsed = {}

    def anchors(page: Path) -> _Anchors:
        if page not in parsed:
            parsed[page] = _Anchors(page.read_text())
        return parsed[page]

    dead = []
    for page in built_pages(site):
        for reference in anchors(page).references:
            url = urlsplit(reference)
            if url.scheme or url.netloc:  # the outside world (links to follow) or data: URIs
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            target = target / "index.html" if target.is_dir() else target
            if not target.is_file():
                dead.append(f"{page.relative_to(site)}: {reference} (no such file)")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in anchors(target).ids:
                dead.append(f"{page.relative_to(site)}: {reference} (no such anchor)")
    assert not dead, "\n".join(dead)


@pytest.mark.browser
def test_no_page_names_another_host_but_in_its_links(site):
    checked = [path for path in sorted(site.rglob("*")) if path.suffix in (".html", ".css")]
    assert len(checked) > len(built_pages(site))  # the stylesheets too
    assert {str(path.relative_to(site)): course_site.external_hosts(path) for path in checked
            if course_site.external_hosts(path)} == {}


def test_external_hosts_are_what_a_browser_would_load_not_the_links_and_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("""<html><head>
<script src="https://cdn.example.org/a.js"></script>
<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>
<link rel="stylesheet" href="//fonts.example.net/css">
<style>@import url("https://styles.example.com/x.css");</style>
</head><body>
<img src="../_images/ok.png" srcset="https://img.example.io/a.png 2x">
<div style="background: url(http://bg.example.co.uk/b.png)"></div>
<a href="https://github.com/owner/repo">a link to follow</a>
<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>x</mi></math>
<p>Download it from https://download.pytorch.org/models, or <code>www.cs.toronto.edu</code>.</p>
<script src="../_static/local.js?v=1"></script>
</body></html>""")
    assert course_site.external_hosts(page) == sorted(
        ["cdn.example.org", "unpkg.com", "fonts.example.net", "styles.example.com", "img.example.io",
         "bg.example.co.uk"])
    sheet = tmp_path / "theme.css"
    sheet.write_text("""/* see https://fontawesome.com */
.icon { background: url("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3C/svg%3E"); }
@font-face { src: url(../webfonts/fa.woff2), url('https://fonts.gstatic.com/s/x.woff2'); }
@import "//cdn.example.org/more.css";""")
    assert course_site.external_hosts(sheet) == ["cdn.example.org", "fonts.gstatic.com"]
    (tmp_path / "clean.html").write_text('<a href="https://example.org">out</a><script>let a = 1 // 2</script>')
    assert course_site.external_hosts(tmp_path / "clean.html") == []


def test_site_links_keep_the_pages_and_unlink_the_repository_paths():
    pages = {"README.md": "index.md", "notebooks/03_resnet18.ipynb": "notebooks/03_resnet18.ipynb",
             "docs/running.md": "docs/running.md"}
    readme = ("See [03](notebooks/03_resnet18.ipynb), [running](docs/running.md#set-up), [the web](https://x.org), "
              "[below](#the-code), [`student/`](student/) and ![a figure](docs/figure.png).\n"
              "```python\nx = table[0](docs/other.md)\n```\n[the refs](docs/reference/README.md)\n")
    assert course_site.site_links(readme, "README.md", pages) == (
        "See [03](notebooks/03_resnet18.ipynb), [running](docs/running.md#set-up), [the web](https://x.org), "
        "[below](#the-code), `student/` and ![a figure](docs/figure.png).\n"
        "```python\nx = table[0](docs/other.md)\n```\nthe refs\n")
    doc = "[home](../README.md#set-up), [the sample's README](../cifar_utils/sample/README.md), [x](running.md)"
    assert course_site.site_links(doc, "docs/teaching.md", pages) == (
        "[home](../index.md#set-up), the sample's README, [x](running.md)")


def test_the_sources_link_only_to_pages_and_the_readme_says_what_the_site_shows(tmp_path):
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    references = tmp_path / "reference" / "laptop"
    references.mkdir(parents=True)
    for notebook in notebooks:
        (references / notebook.name).write_text("{}")
    chapters = course_site._sources(tmp_path / "book", course_site.ROOT, references, "laptop")
    assert chapters == [f"notebooks/{nb.stem}" for nb in notebooks] + [f"docs/{page}" for page in course_site.DOCS]

    book = tmp_path / "book"
    index = (book / "index.md").read_text()
    assert "| notebook (its page shows the laptop reference run) |" in index
    assert "](docs/reference/" not in index  # the run links are gone with the claim that they are there
    pages = {"index.md", *(f"{chapter}.ipynb" for chapter in chapters[:len(notebooks)]),
             *(f"{chapter}.md" for chapter in chapters[len(notebooks):])}
    for source in sorted(book.rglob("*.md")):
        for link in course_site.LINK.finditer(course_site.FENCE.sub("", source.read_text())):
            path = link["target"].split("#")[0]
            if not path or course_site.OUTSIDE.match(link["target"]):
                continue
            target = (source.parent / unquote(path)).resolve()
            assert target.is_relative_to(book.resolve()), (source.name, link[0])
            assert str(target.relative_to(book.resolve())) in pages, (source.name, link[0])

    (references / notebooks[-1].name).unlink()  # a notebook without its run: its page is the notebook as committed
    course_site._sources(tmp_path / "book2", course_site.ROOT, references, "laptop")
    assert "| notebook |" in (tmp_path / "book2" / "index.md").read_text()
