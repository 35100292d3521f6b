"""Notebook 02 in JupyterLab in headless Chromium, run as a learner runs it (smoke profile).

Marked `browser`: `.ci/run` runs it as a step of its own, after installing Chromium, its
driver and Selenium (or it prints why it cannot). Checks: every cell ran without an error,
the progress bars were widgets while they ran, the figures rendered, and the notebook saved
and reopened shows each finished bar as a text line, not "Error displaying widget".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from helpers import NOTEBOOK_DIR

from cifar_utils.settings import DATA_ENV, FORMAT_ENV, PLAIN_PROGRESS_ENV, PROFILE_ENV, RESULTS_ENV

pytestmark = pytest.mark.browser
NOTEBOOK = "02_simple_cnn.ipynb"
# GitHub's runners name the driver's folder in $CHROMEWEBDRIVER
CHROMEDRIVER = shutil.which("chromedriver") or shutil.which("chromedriver", path=os.environ.get("CHROMEWEBDRIVER"))
TOKEN = "course-browser-test"
TQDM_METER = r"\| *\d+/\d+ \["  # "train: 100%|█████| 3/3 [00:02<00:00, ...]"
RUN_SECONDS = 300  # the smoke notebook takes about 30 s; the first kernel start a few more

# Counts each widget progress bar that appears in the page, however briefly it lives.
WATCH_WIDGET_BARS = """
window.widgetBarsSeen = 0;
new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(node => {
  if (node.nodeType === 1 && (node.matches('.widget-hprogress') || node.querySelector('.widget-hprogress'))) {
    window.widgetBarsSeen += 1;
  }
}))).observe(document.body, {childList: true, subtree: true});
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on the loopback address serving a copy of notebook 02: (url, folder)."""
    if CHROMEDRIVER is None:
        pytest.skip("no chromedriver on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="Selenium is not installed (pip install selenium)")
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK_DIR / NOTEBOOK, root)
    env = {k: v for k, v in os.environ.items() if k not in (PLAIN_PROGRESS_ENV, FORMAT_ENV, "MPLBACKEND")}
    env.update({PROFILE_ENV: "smoke", DATA_ENV: str(tmp_path / "no-data"),
                RESULTS_ENV: str(tmp_path / "results"), "TORCH_HOME": str(tmp_path / "torch"),
                "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")})
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.poll() is not None or api(url, "status"), 60, "JupyterLab to start")
        assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
        yield url, root
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def api(url: str, path: str):
    """A JupyterLab REST call's JSON, or None while the server does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/api/{path}?token={TOKEN}", timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"waited {seconds:g} s for {what}")


def kernel_idle(url: str) -> bool:
    sessions = api(url, "sessions") or []
    return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)


def open_notebook(driver, url: str):
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/lab/tree/{NOTEBOOK}?token={TOKEN}")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 120, "the notebook to open")
    wait_for(lambda: kernel_idle(url), 120, "the kernel to start")


def run_command(driver, menu: str, command: str):
    """Click a main-menu entry, as a learner does: the menu, then the item."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{menu}']").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f"li[data-command='{command}']"), 10, menu)
    driver.find_element(By.CSS_SELECTOR, f"li[data-command='{command}']").click()


def prompts(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [p.text for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]


def page_text(driver) -> str:
    return driver.execute_script("return document.querySelector('.jp-Notebook').textContent")


def test_notebook_02_runs_in_jupyterlab_with_widget_bars_that_leave_text(lab, browser):
    from selenium.webdriver.common.by import By

    url, root = lab
    open_notebook(browser, url)
    browser.execute_script(WATCH_WIDGET_BARS)
    run_command(browser, "Run", "runmenu:run-all")
    wait_for(lambda: prompts(browser) and all(p.strip("[]: ").isdigit() for p in prompts(browser))
             and kernel_idle(url), RUN_SECONDS, "every cell to run")

    assert browser.execute_script("return window.widgetBarsSeen") >= 1, "no progress bar rendered as a widget"
    images = browser.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img")
    assert len(images) >= 3 and all(img.get_property("naturalWidth") > 0 for img in images)

    saved_at = (root / NOTEBOOK).stat().st_mtime
    run_command(browser, "File", "docmanager:save")
    wait_for(lambda: (root / NOTEBOOK).stat().st_mtime > saved_at, 30, "the notebook to save")
    cells = [c for c in nbformat.read(root / NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    outputs = [o for c in cells for o in c["outputs"]]
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
    assert all(c["execution_count"] for c in cells)
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    bars = [o["data"]["text/plain"] for o in outputs if re.search(TQDM_METER, o.get("data", {}).get("text/plain", ""))]
    assert bars and all("100%" in bar for bar in bars), bars
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(images)

    open_notebook(browser, url)  # reopened, as a learner finds it the next day
    wait_for(lambda: all(bar.splitlines()[0][:30] in page_text(browser) for bar in bars), 60,
             "each finished bar's text line in the reopened notebook")
    assert "Error displaying widget" not in page_text(browser)
