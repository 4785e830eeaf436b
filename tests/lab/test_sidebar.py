"""The AML compute sidebar in a real JupyterLab, driven in headless Chromium: what a user sees."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jupyter_amlexec.core.history import History

from .conftest import ARTIFACTS, Lab, chromium_page, open_sidebar, show_left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_sidebar_shows_targets_and_attach_writes_files_without_a_secret(lab: Lab) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        # When the user opens the sidebar on the project folder
        sidebar = open_sidebar(page, lab)
        # Then the built-in targets show with their type, and local is reachable
        local = sidebar.locator('.jp-AmlExec-target[data-target="local"]')
        expect(local).to_contain_text("local")
        expect(local.locator("[data-reach]")).to_have_attribute("data-reach", "reachable", timeout=30_000)
        expect(sidebar.locator('.jp-AmlExec-target[data-target="docker"]')).to_contain_text("docker")
        page.screenshot(path=str(ARTIFACTS / "lab-sidebar-targets.png"))
        # When they attach a remote docker target whose password lives in an environment variable
        sidebar.get_by_text("Attach target…").click()
        dialog = page.locator(".jp-Dialog")
        assert dialog.locator("input[type=password]").count() == 0  # no field for a password value
        dialog.locator("input[name=name]").fill("gpuvm")
        dialog.locator("select[name=type]").select_option("remotedocker")
        dialog.locator("input[name=address]").fill("gpu.lab:2222")
        dialog.locator("input[name=username]").fill("ana")
        dialog.locator("select[name=secret_kind]").select_option("password_env")
        dialog.locator("input[name=secret_ref]").fill("GPUVM_PASSWORD")
        page.screenshot(path=str(ARTIFACTS / "lab-attach-form.png"))
        dialog.locator("button", has_text="Attach").click()
        # Then the target is listed, and its files name the variable, never a value
        gpuvm = sidebar.locator('.jp-AmlExec-target[data-target="gpuvm"]')
        expect(gpuvm).to_contain_text("remotedocker")
        # (gpu.lab does not exist here: the sidebar says it is unreachable, and why, in words)
        expect(gpuvm.locator("[data-reach]")).to_have_attribute("data-reach", "unreachable", timeout=60_000)
        expect(gpuvm.locator(".jp-AmlExec-why")).not_to_be_empty()
        compute = lab.root / "proj" / "aml_config" / "gpuvm.compute"
        assert (lab.root / "proj" / "aml_config" / "gpuvm.runconfig").is_file()
        text = compute.read_text()
        assert "passwordEnv: GPUVM_PASSWORD" in text and "password:" not in text
        assert page.console_errors == []  # type: ignore[attr-defined]


def test_submit_from_the_file_browser_reaches_completed_and_the_panel_shows_log_and_plot(lab: Lab) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        sidebar = open_sidebar(page, lab)
        # When the user right-clicks train.py in the file browser and submits it to the local target
        show_left(page, "filebrowser")
        page.locator('.jp-DirListing-item[title*="train.py"]').first.click(button="right")
        page.locator(".lm-Menu-itemLabel", has_text="Submit to compute target…").click()
        dialog = page.locator(".jp-Dialog")
        dialog.locator("select[name=run_configuration]").select_option("local")
        dialog.locator("button", has_text="Submit").click()
        show_left(page, "jupyter-amlexec-sidebar")
        # Then the run shows in the sidebar and reaches Completed without a reload
        run = sidebar.locator(".jp-AmlExec-run", has_text="train.py").first
        expect(run.locator("[data-status]")).to_have_attribute("data-status", "Completed", timeout=60_000)
        # And its panel shows the log and a plot of the metric
        panel = page.locator(".jp-AmlExec-runPanel").first
        expect(panel.locator(".jp-AmlExec-log").first).to_contain_text("lab run done", timeout=30_000)
        expect(panel.locator(".jp-AmlExec-runHeader [data-status]")).to_have_attribute(
            "data-status", "Completed"
        )
        plot = panel.locator('.jp-AmlExec-metric[data-metric="loss"] polyline')
        expect(plot).to_have_count(1, timeout=30_000)
        assert len(plot.get_attribute("points").split()) == 4
        # And its outputs are listed, and the download link gives the file
        link = panel.locator(".jp-AmlExec-outputs a", has_text="result.txt").first
        expect(link).to_be_visible(timeout=30_000)
        href = link.get_attribute("href")
        assert href is not None
        assert (
            page.request.get(f"{lab.url}{href}" if href.startswith("/") else href).text() == "final loss 0.25"
        )
        page.screenshot(path=str(ARTIFACTS / "lab-run-completed.png"))
        # When the user clicks Rerun, a new run of the same snapshot opens and completes too
        panel.locator("button", has_text="Rerun").click()
        expect(page.locator(".lm-TabBar-tab", has_text="Run 2: train.py")).to_be_visible(timeout=30_000)
        expect(sidebar.locator(".jp-AmlExec-run", has_text="train.py")).to_have_count(2, timeout=30_000)
        expect(sidebar.locator(".jp-AmlExec-run [data-status]").first).to_have_attribute(
            "data-status", "Completed", timeout=60_000
        )
        assert page.console_errors == []  # type: ignore[attr-defined]


def test_cancel_a_long_run_from_its_panel_ends_the_process(lab: Lab) -> None:
    from playwright.sync_api import expect

    # Given a long run submitted over REST (as a script or another client would)
    run = lab.api("POST", "runs", json={"script": "proj/long.py"}).json()
    with chromium_page() as page:
        sidebar = open_sidebar(page, lab)
        # When the user opens it from the runs list and clicks Cancel once it has started
        sidebar.locator(f'.jp-AmlExec-run[data-run="{run["id"]}"]').click()
        panel = page.locator(f"#jp-amlexec-run-{run['id']}")
        expect(panel.locator(".jp-AmlExec-log").first).to_contain_text("long lab run started", timeout=60_000)
        pid = int(History(lab.home).get(run["id"]).handle["pid"])  # type: ignore[index]
        assert _alive(pid)
        panel.locator("button", has_text="Cancel").click()
        # Then the panel and the list say Canceled, and the process is gone
        expect(panel.locator(".jp-AmlExec-runHeader [data-status]")).to_have_attribute(
            "data-status", "Canceled", timeout=30_000
        )
        expect(sidebar.locator(f'.jp-AmlExec-run[data-run="{run["id"]}"] [data-status]')).to_have_attribute(
            "data-status", "Canceled", timeout=30_000
        )
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
        page.screenshot(path=str(ARTIFACTS / "lab-run-canceled.png"))


def test_a_run_submitted_from_a_notebook_kernel_appears_live(lab: Lab) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        sidebar = open_sidebar(page, lab)
        before = sidebar.locator(".jp-AmlExec-run").count()
        # When the user runs a %%aml_submit cell in a notebook of the project
        show_left(page, "filebrowser")
        page.locator('.jp-DirListing-item[title*="kernel.ipynb"]').first.dblclick()
        show_left(page, "jupyter-amlexec-sidebar")  # the sidebar stays in view while the cell runs
        expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # Then a new run appears in the sidebar (no reload) and goes on to Completed
        runs = sidebar.locator(".jp-AmlExec-run")
        expect(runs).to_have_count(before + 1, timeout=60_000)
        newest = runs.first
        expect(newest).to_contain_text("<cell>")
        expect(newest.locator("[data-status]")).to_have_attribute("data-status", "Completed", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "lab-kernel-run.png"))


def test_prepare_from_the_sidebar_shows_its_log_and_result(lab: Lab) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        sidebar = open_sidebar(page, lab)
        # When the user clicks Prepare on the local target
        sidebar.locator('.jp-AmlExec-target[data-target="local"] button', has_text="Prepare").click()
        # Then a panel shows the environment is ready (local: the user's own Python, nothing built)
        status = page.locator(".jp-AmlExec-prepareStatus").first
        expect(status).to_have_attribute("data-ok", "true", timeout=60_000)
        expect(status).to_contain_text("Ready")
        page.screenshot(path=str(ARTIFACTS / "lab-prepare.png"))
