"""The widgets' own behaviour on real runs (local target), without a front end: what a user would
see change — a new run appearing, a filter matching, a plot drawn before the run ends."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.widgets import dashboard as dashboard_module
from jupyter_amlexec.widgets import run_widget as run_widget_module
from jupyter_amlexec.widgets.dashboard import RunsDashboard
from jupyter_amlexec.widgets.run_widget import RunWidget
from tests.conftest import require


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_dashboard_shows_runs_submitted_after_it_was_opened(
    project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_module, "REFRESH_SECONDS", 0.1)
    session = Session.open(project, home)
    session.submit(cell="print('first')").wait()
    dash = RunsDashboard(session.history, project=session.project.name)
    try:
        assert "runs 1–1 of 1" in dash.table.value
        late = session.submit(cell="import amlexec_run\namlexec_run.log('late_metric', 3.5)").wait()
        # the open dashboard picks up the new run, and its metric becomes a sort option
        assert eventually(lambda: late.id in dash.table.value and "runs 1–2 of 2" in dash.table.value)
        assert eventually(lambda: "metric:late_metric" in [value for _label, value in dash.order.options])
    finally:
        dash.close()


def test_dashboard_filters_match_part_of_a_name_and_any_status_spelling(project: Path, home: Path) -> None:
    (project / "train_lr.py").write_text("print('lr')\n")
    (project / "evaluate.py").write_text("print('eval')\n")
    session = Session.open(project, home)
    trained = session.submit(script="train_lr.py").wait()
    session.submit(script="evaluate.py").wait()
    dash = RunsDashboard(session.history, project=session.project.name, script="lr", status="completed")
    try:
        assert trained.id in dash.table.value and "runs 1–1 of 1" in dash.table.value
        dash.script.value = "eval*"
        assert "evaluate.py" in dash.table.value and "train_lr.py" not in dash.table.value
        with pytest.raises(ValueError, match="Completed, Failed"):
            RunsDashboard(session.history, status="finished")
    finally:
        dash.close()


def test_dashboard_jumps_to_a_page(project: Path, home: Path) -> None:
    session = Session.open(project, home)
    ids = [session.submit(cell=f"print({i})").wait().id for i in range(5)]
    dash = RunsDashboard(session.history, project=session.project.name, page_size=2)
    try:
        assert dash.page_count.value == "of 3"
        dash.page_number.value = 3  # newest first: the last page holds the first run
        assert "runs 5–5 of 5" in dash.table.value and ids[0] in dash.table.value
        assert dash.next_button.disabled and not dash.previous_button.disabled
    finally:
        dash.close()


def test_live_plot_is_drawn_while_the_run_is_still_going(
    project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(importlib.util.find_spec("matplotlib") is not None, "matplotlib (widgets extra)")
    monkeypatch.setattr(run_widget_module, "PLOT_INTERVAL", 0.3)
    session = Session.open(project, home)
    # two points logged at once, then a long quiet stretch: the plot must not wait for more metrics
    run = session.submit(
        cell="import time, amlexec_run\namlexec_run.log('loss', 1.0)\namlexec_run.log('loss', 0.5)\n"
        "time.sleep(5)\n"
    )
    widget = RunWidget(run).start()
    try:
        assert eventually(
            lambda: widget.plot.layout.display is None and len(widget.plot.value) > 0, timeout=15
        )
        assert not run.done  # drawn during the quiet stretch, not at the end
    finally:
        run.cancel()
        run.wait(timeout=30, raise_on_failure=False)
        widget.finish()
        widget.close()


def test_more_log_shows_four_times_more_until_the_whole_log(project: Path, home: Path) -> None:
    session = Session.open(project, home)
    run = session.submit(cell="for i in range(3000):\n    print(f'line {i:05d} ' + 'x' * 40)\n").wait()
    widget = RunWidget(run)
    try:
        assert "line 02999" in widget.log_view.value and "line 00000" not in widget.log_view.value
        widget.show_more_log()  # 64 KB: still not all of ~150 KB
        assert "line 01800" in widget.log_view.value and "line 00000" not in widget.log_view.value
        widget.show_more_log()  # 256 KB: the whole log
        assert "line 00000" in widget.log_view.value and widget.more_log_button.disabled
    finally:
        widget.close()


def test_elapsed_time_counts_from_submission_before_the_run_starts(project: Path, home: Path) -> None:
    session = Session.open(project, home)
    record = session.history.create_run(
        project="p",
        project_path=str(project),
        experiment="e",
        target="docker",
        target_type="docker",
        run_configuration="docker",
        script_name="t.py",
        arguments=(),
        environment={},
        snapshot_id=None,
    )
    assert record.start_time_utc is None
    elapsed = run_widget_module._elapsed(record)
    assert elapsed is not None and 0 <= elapsed < 60


def test_a_line_printed_before_the_widget_follows_the_run_is_shown_while_it_runs(
    project: Path, home: Path
) -> None:
    session = Session.open(project, home)
    run = session.submit(cell="import time\nprint('early line', flush=True)\ntime.sleep(60)\n")
    try:
        # Given a widget made before the run printed its only line, and followed only afterwards
        widget = RunWidget(run)
        assert eventually(lambda: "early line" in run.logs())
        assert "early line" not in widget.log_view.value
        widget.start()
        # Then the widget shows the line while the run still goes (no further line would wake it)
        assert eventually(lambda: "early line" in widget.log_view.value, timeout=10)
        assert not run.done
    finally:
        run.cancel()
        run.wait(timeout=30, raise_on_failure=False)
        widget.close()
