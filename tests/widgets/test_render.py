"""The pure render functions: the HTML a user sees, without a kernel."""

from __future__ import annotations

from pathlib import Path

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.models import Metric, RunStatus
from jupyter_amlexec.widgets.render import log_html, metrics_html, runs_html, status_html


def test_status_shows_state_target_and_error() -> None:
    html = status_html(
        RunStatus.FAILED,
        run_id="p_1",
        target="docker",
        script="train.py 0.1",
        elapsed=75,
        exit_code=3,
        error="the script exited with code 3",
    )
    assert ">Failed<" in html and "p_1" in html and "docker" in html and "1:15" in html
    assert "exit code 3" in html and "the script exited with code 3" in html


def test_log_is_escaped() -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in log_html("<script>alert(1)</script>")
    assert "no output yet" in log_html("")


def test_metrics_table_has_latest_count_min_max() -> None:
    series = {
        "loss": [Metric("loss", v, step=i) for i, v in enumerate([0.9, 0.4, 0.6])],
        "note": [Metric("note", "ok")],
    }
    html = metrics_html(series)
    assert (
        "<td style='text-align:left'>loss</td><td style='text-align:left'>0.6</td><td style='text-align:left'>3</td><td style='text-align:left'>0.4</td><td style='text-align:left'>0.9</td>"
        in html
    )
    assert ">note<" in html and ">ok<" in html


def test_runs_table_has_one_column_per_metric(project: Path, home: Path) -> None:
    session = Session.open(project, home)
    a = session.submit(cell="import amlexec_run\namlexec_run.log('acc', 0.5)").wait()
    b = session.submit(cell="import amlexec_run\namlexec_run.log('f1', 0.25)").wait()
    html = runs_html(session.runs(), total=2)
    assert "<th style='text-align:left'>acc</th>" in html and "<th style='text-align:left'>f1</th>" in html
    assert a.id in html and b.id in html and "runs 1–2 of 2" in html
