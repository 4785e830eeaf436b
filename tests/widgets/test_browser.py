"""The live widget in a real JupyterLab, driven in headless Chromium: what a user sees."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CELL = (
    "%%aml_submit -c local\n"
    "import time\n"
    "print('browser sees this line', flush=True)\n"
    "time.sleep(4)\n"
    "print('and then this one')\n"
)
LONG_CELL = "%%aml_submit -c local\nimport time\nprint('a long run started', flush=True)\ntime.sleep(120)\n"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path, home: Path):  # type: ignore[no-untyped-def]
    require(os.path.exists(CHROMIUM), "Chromium at /usr/bin/chromium")
    require(
        shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is not None,
        "jupyter-lab in the venv",
    )
    root = tmp_path / "lab"
    root.mkdir()
    for name, cell in (("live.ipynb", CELL), ("cancel.ipynb", LONG_CELL)):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("%load_ext jupyter_amlexec"), nbformat.v4.new_code_cell(cell)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / name)
    port, token = _free_port(), "amlexec-test-token"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=open(tmp_path / "lab.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config")},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                json.load(r)
            break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
    yield url, token
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def test_widget_goes_from_running_to_completed_in_jupyterlab(lab) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    url, token = lab
    with _chromium_page() as page:
        # When the user runs all cells from the Run menu
        _open_and_run_all(page, f"{url}/lab/tree/live.ipynb?token={token}")
        header = page.locator(".amlexec-header").first
        # Then the widget shows Running with the first log line, then Completed with both lines
        expect(header).to_contain_text("Running", timeout=60_000)
        expect(page.locator(".amlexec-log").first).to_contain_text("browser sees this line", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "widget-running.png"))
        expect(header).to_contain_text("Completed", timeout=60_000)
        expect(page.locator(".amlexec-log").first).to_contain_text("and then this one", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "widget-completed.png"))


def test_cancel_button_in_jupyterlab_stops_a_running_cell(lab) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    url, token = lab
    with _chromium_page() as page:
        # Given a cell whose run would take two minutes, running
        _open_and_run_all(page, f"{url}/lab/tree/cancel.ipynb?token={token}")
        header = page.locator(".amlexec-header").first
        expect(page.locator(".amlexec-log").first).to_contain_text("a long run started", timeout=60_000)
        # When the user clicks the widget's Cancel button while the cell is still executing
        page.locator(".jupyter-widgets button", has_text="Cancel").first.click()
        # Then the run ends Canceled and the cell reports it (the kernel is free again)
        expect(header).to_contain_text("Canceled", timeout=60_000)
        expect(page.locator(".jp-OutputArea-output").filter(has_text="RunFailedError").first).to_be_visible(
            timeout=60_000
        )
        page.screenshot(path=str(ARTIFACTS / "widget-canceled.png"))


@contextlib.contextmanager
def _chromium_page() -> Iterator[Any]:
    """A page in headless Debian Chromium driven by Playwright; the browser is closed afterwards."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def _open_and_run_all(page, address: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(address)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
