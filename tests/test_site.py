"""The course site, built by its one command and opened from its folder in headless Chromium with
the network shut: every page loads, every figure decodes, no page shows an error, the maths is
typeset, search finds a notebook, and a link from 02 lands on 03.

Marked `browser`: `.ci/run` runs it with the JupyterLab test, after installing Chromium, its
driver and Selenium (or it prints why it cannot).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers import NOTEBOOK_DIR
from test_browser import CHROMEDRIVER, wait_for

from cifar_course import site as course_site
from cifar_utils.settings import DATA_ENV, PROFILE_ENV, RESULTS_ENV

pytestmark = pytest.mark.browser
BUILD_SECONDS = 180  # the README's promise on two cores


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built by `course site` from two executed smoke notebooks."""
    if CHROMEDRIVER is None:
        pytest.skip("no chromedriver on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install selenium)")
    pytest.importorskip("jupyter_book", reason="Jupyter Book is not installed (pip install -e '.[site]')")
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


@pytest.fixture(scope="module")
def offline_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files"):
        options.add_argument(argument)  # no name resolves: anything fetched from the network fails
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def test_every_page_loads_offline_with_its_figures_and_no_error(site, offline_browser):
    from selenium.webdriver.common.by import By

    notebooks = sorted(site.glob("notebooks/*.html"))
    assert [p.stem for p in notebooks] == [nb.stem for nb in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))]
    pages = notebooks + [site / "index.html", *(site / "docs" / f"{page}.html" for page in course_site.DOCS)]
    figures = 0
    for page in pages:
        offline_browser.get(page.as_uri())
        wait_for(lambda: offline_browser.execute_script("return document.readyState") == "complete", 30, str(page))
        assert offline_browser.find_elements(By.CSS_SELECTOR, "main h1"), page.name
        images = offline_browser.find_elements(By.CSS_SELECTOR, "main img")
        wait_for(lambda images=images: all(img.get_property("complete") for img in images), 30, f"{page.name}'s images")
        assert all(img.get_property("naturalWidth") > 0 for img in images), page.name
        figures += len(images)
        errors = offline_browser.find_elements(By.CSS_SELECTOR, ".output.traceback, .output.error")
        assert not errors, (page.name, errors[0].text[:300])
    assert figures >= 5  # 00 and 01 ran: their figures are on the site


def test_maths_is_typeset_search_finds_a_notebook_and_a_link_from_02_lands_on_03(site, offline_browser):
    from selenium.webdriver.common.by import By

    offline_browser.get((site / "notebooks" / "03_resnet18.html").as_uri())
    wait_for(lambda: offline_browser.find_elements(By.CSS_SELECTOR, "mjx-container"), 30, "MathJax to typeset")

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
