"""Widgets in a real kernel: a notebook executed by nbclient, its widget state saved as a browser would."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def run_notebook(cells: list[str], workdir: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    return nb


def widget_states(nb: nbformat.NotebookNode) -> list[dict[str, object]]:
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [m["state"] for m in state.values()]


def test_submitted_cell_widget_ends_completed_with_log_and_metrics(project: Path, home: Path) -> None:
    # Given a notebook that submits a cell which prints, logs metrics and sleeps a little
    cells = [
        "%load_ext jupyter_amlexec",
        "%%aml_submit -c local\nimport time, amlexec_run\nprint('hello from the widget test', flush=True)\n"
        "for i in range(3):\n    amlexec_run.log('loss', 1.0 / (i + 1))\n    time.sleep(0.3)\n",
        "run = _\nprint(run.status)",
    ]
    # When it runs in a real kernel with widget state stored
    nb = run_notebook(cells, project)
    # Then the submit cell shows a widget (not text), the saved state is the final one
    outputs = nb.cells[1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    values = " ".join(str(s.get("value", "")) for s in widget_states(nb))
    assert ">Completed<" in values
    assert "hello from the widget test" in values
    assert "<td style='text-align:left'>loss</td>" in values and "0.333333" in values
    assert "Completed" in "".join(o.get("text", "") for o in nb.cells[2].outputs)


def test_failed_run_widget_shows_failed_and_the_cell_raises(project: Path, home: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_amlexec"),
        nbformat.v4.new_code_cell("%%aml_submit\nprint('oops')\nraise SystemExit(2)"),
    ]
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        store_widget_state=True,
        allow_errors=True,
        resources={"metadata": {"path": str(project)}},
    )
    client.execute()
    errors = [o for o in nb.cells[1].outputs if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "RunFailedError"
    values = " ".join(str(s.get("value", "")) for s in widget_states(nb))
    assert ">Failed<" in values and "oops" in values


def test_dashboard_lists_runs_with_metric_columns(project: Path, home: Path) -> None:
    cells = [
        "%load_ext jupyter_amlexec",
        "%%aml_submit --no-widget\nimport amlexec_run\namlexec_run.log('accuracy', 0.7)",
        "%%aml_submit --no-widget\nimport amlexec_run\namlexec_run.log('accuracy', 0.9)",
        "dash = %aml_runs\ndash",
        "dash.selection.value = tuple(dash.selection.options[:2])\ndash.show_comparison()\nprint(json.dumps([dash.table.value, dash.comparison.value]))".replace(
            "json.", "__import__('json')."
        ),
    ]
    nb = run_notebook(cells, project)
    table, comparison = json.loads(nb.cells[4].outputs[0]["text"])
    assert "<th style='text-align:left'>accuracy</th>" in table and "runs 1–2 of 2" in table
    assert "metric: accuracy" in comparison and "0.7" in comparison and "0.9" in comparison


class _Kernel:
    """A real kernel driven the way a front end drives it: execute, read IOPub, click buttons."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))
        self.buttons: dict[str, str] = {}  # description -> comm id, from comm_open messages

    def execute(self, code: str) -> str:
        return self.client.execute(code)

    def read_until_idle(
        self, msg_id: str, timeout: float = 120, *, within: float | None = None
    ) -> list[dict[str, Any]]:
        """Every IOPub message of this request, until the kernel is idle after it (queue.Empty when
        `within` seconds pass first, whatever else arrives meanwhile)."""
        seen = []
        end = None if within is None else time.monotonic() + within
        while True:
            if end is not None and time.monotonic() > end:
                raise queue.Empty
            msg = self.client.get_iopub_msg(timeout=timeout)
            self._note_button(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return seen

    def wait_for_text(self, needle: str, timeout: float = 180) -> None:
        """Read IOPub until some widget update carries `needle` (the run's log reached the widget)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.client.get_iopub_msg(timeout=timeout)
            self._note_button(msg)
            if msg["msg_type"] in ("comm_msg", "comm_open") and needle in json.dumps(msg["content"]):
                return
        raise AssertionError(f"{needle!r} never reached the widget")

    def start_long_submit(self) -> str:
        """Load the extension and submit a cell that would run for a minute; return once its log
        reached the widget (the run is going, the cell still executing)."""
        self.read_until_idle(self.execute("%load_ext jupyter_amlexec"))
        cell = self.execute(
            "%%aml_submit\nimport time\nprint('long run started', flush=True)\ntime.sleep(60)\n"
        )
        self.wait_for_text("long run started")
        return cell

    def click(self, description: str) -> None:
        content = {
            "comm_id": self.buttons[description],
            "data": {"method": "custom", "content": {"event": "click"}},
        }
        self.client.shell_channel.send(self.client.session.msg("comm_msg", content))

    def _note_button(self, msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "comm_open":
            state = msg["content"].get("data", {}).get("state", {})
            if state.get("_model_name") == "ButtonModel":
                self.buttons[str(state.get("description"))] = msg["content"]["comm_id"]

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _errors(messages: list[dict[str, Any]]) -> list[str]:
    return [
        f"{m['content']['ename']}: {m['content']['evalue']}" for m in messages if m["msg_type"] == "error"
    ]


def test_cancel_button_stops_the_run_while_the_cell_is_still_waiting(project: Path, home: Path) -> None:
    kernel = _Kernel(project)
    try:
        # Given a blocking submit of a cell that would run for a minute
        cell = kernel.start_long_submit()
        # When the user clicks the widget's Cancel button while the cell is still executing
        kernel.click("Cancel")
        messages = kernel.read_until_idle(cell)
        # Then the click was handled during the cell: the run ended Canceled and the cell raised
        assert any("RunFailedError" in e and "Canceled" in e for e in _errors(messages)), _errors(messages)
        status = kernel.execute(
            "from jupyter_amlexec.core.api import Session\nprint(Session.open().runs()[0].status.value)"
        )
        printed = "".join(m["content"].get("text", "") for m in kernel.read_until_idle(status))
        assert printed.strip() == "Canceled"
    finally:
        kernel.stop()


def test_interrupting_the_kernel_cancels_the_run(project: Path, home: Path) -> None:
    kernel = _Kernel(project)
    try:
        cell = kernel.start_long_submit()
        # the front end's stop button
        kernel.manager.interrupt_kernel()
        messages = kernel.read_until_idle(cell, timeout=30, within=30)
        assert any("Canceled" in e for e in _errors(messages)), _errors(messages)
        text = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
        assert "canceling run" in text
    finally:
        kernel.stop()


def test_saved_notebook_html_fallback_shows_the_final_state(project: Path, home: Path) -> None:
    # Given a notebook viewed where no widget manager runs (nbconvert, a repository viewer)
    nb = run_notebook(["%load_ext jupyter_amlexec", "%%aml_submit\nprint('fallback text')"], project)
    html = " ".join(str(o.get("data", {}).get("text/html", "")) for o in nb.cells[1].outputs)
    # Then its HTML is the finished run, not the first frame
    assert "Completed" in html and "fallback text" in html and "no output yet" not in html
