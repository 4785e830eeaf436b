"""A real `jupyter lab` (token auth, our server + lab extension) with a project, and Chromium.

The lab extension must be installed in the venv (the test command builds it; see
scripts/infra/labext.sh); under CI a missing piece fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

from tests.conftest import require
from tests.server.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "amlexec-lab-test-token"
TRAIN = """\
import time, amlexec_run
print("lab run says hello", flush=True)
for step in range(4):
    amlexec_run.log("loss", 1.0 / (step + 1))
    time.sleep(0.4)
import os
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write("final loss 0.25")
print("lab run done")
"""
LONG = "import time\nprint('long lab run started', flush=True)\ntime.sleep(120)\n"
KERNEL_CELL = "%%aml_submit -c local\nimport time\nprint('from the kernel', flush=True)\ntime.sleep(2)\n"


@dataclass
class Lab:
    url: str
    root: Path
    home: Path
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/jupyter-amlexec/api/{path}",
            headers={"Authorization": f"token {TOKEN}"},
            timeout=60,
            **kwargs,
        )


def labextension_installed() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, check=False
    )
    return "jupyter-amlexec" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require(os.path.exists(CHROMIUM), "Chromium at /usr/bin/chromium")
    require(
        shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is not None,
        "jupyter-lab in the venv",
    )
    require(labextension_installed(), "the jupyter-amlexec lab extension (scripts/infra/labext.sh builds it)")
    tmp = tmp_path_factory.mktemp("lab")
    root, home = tmp / "root", tmp / "home"
    project = root / "proj"
    project.mkdir(parents=True)
    (project / "train.py").write_text(TRAIN)
    (project / "long.py").write_text(LONG)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_amlexec"),
        nbformat.v4.new_code_cell(KERNEL_CELL),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, project / "kernel.ipynb")
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            '--ServerApp.jpserver_extensions={"jupyter_amlexec": True}',
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=open(tmp / "lab.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        env={**os.environ, "AMLEXEC_HOME": str(home), "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config")},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("JupyterLab did not start: " + (tmp / "lab.log").read_text()[-2000:])
    yield Lab(url, root, home, process)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextlib.contextmanager
def chromium_page() -> Iterator[Any]:
    """A page in headless Debian Chromium; console errors are collected for the test to check."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.console_errors = []  # type: ignore[attr-defined]
            page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


def show_left(page: Any, data_id: str) -> None:
    """Switch the left area to a panel (the file browser or ours): one shows at a time."""
    tab = page.locator(f'.jp-SideBar.jp-mod-left li.lm-TabBar-tab[data-id="{data_id}"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()


def open_sidebar(page: Any, lab: Lab, folder: str = "proj") -> Any:
    """Open JupyterLab, go into `folder` in the file browser, then open the AML compute sidebar
    (it follows the file browser's folder); returns the sidebar locator."""
    from playwright.sync_api import expect

    page.goto(f"{lab.url}/lab?reset&token={TOKEN}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.locator(".jp-DirListing-item .jp-DirListing-itemText", has_text=folder).first.dblclick()
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text(folder, timeout=30_000)
    show_left(page, "jupyter-amlexec-sidebar")
    sidebar = page.locator("#jupyter-amlexec-sidebar")
    sidebar.wait_for(state="visible", timeout=30_000)
    expect(sidebar.locator(".jp-AmlExec-project")).to_contain_text(
        f"Project {Path(folder).name}", timeout=30_000
    )
    return sidebar
