"""Widgets in a real kernel: a notebook executed by nbclient, its widget state saved as a browser would."""

from __future__ import annotations

import json
from pathlib import Path

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
