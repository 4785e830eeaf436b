"""The run widget's Rerun button, clicked in a real kernel the way a front end clicks it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from jupyter_amlexec.core.history import History
from tests.widgets.test_widgets_kernel import _Kernel


def _runs(home: Path) -> list[tuple[str, str | None, str]]:
    """(status, description, id) of every run, oldest first."""
    history = History(home)
    try:
        return [(r.status.value, r.description, r.run_id) for r in history.query(descending=False)]
    finally:
        history.close()


def _message_with(kernel: _Kernel, needle: str, timeout: float = 60) -> str:
    """The first IOPub message (as JSON text) carrying `needle`: what reached the front end."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = json.dumps(kernel.client.get_iopub_msg(timeout=timeout)["content"])
        if needle in text:
            return text
    raise AssertionError(f"{needle!r} never reached the front end")


def test_rerun_button_runs_the_snapshot_again(project: Path, home: Path) -> None:
    kernel = _Kernel(project)
    try:
        # Given a finished submit cell with its widget
        kernel.read_until_idle(kernel.execute("%load_ext jupyter_amlexec"))
        kernel.read_until_idle(kernel.execute("%%aml_submit\nprint('first and again')"))
        # When the user clicks Rerun
        kernel.click("Rerun")
        # Then a second run of the same snapshot is recorded and completes, its widget below
        end = time.monotonic() + 60
        while time.monotonic() < end and [s for s, _, _ in _runs(home)] != ["Completed", "Completed"]:
            time.sleep(0.2)
        runs = _runs(home)
        assert [s for s, _, _ in runs] == ["Completed", "Completed"]
        assert runs[1][1] == f"rerun of {runs[0][2]}"
        assert "amlexec-header" in _message_with(kernel, runs[1][2])  # its own widget below
        kernel.wait_for_text("first and again")  # showing the rerun's log
    finally:
        kernel.stop()


def test_a_refused_rerun_says_why_in_the_widget(project: Path, home: Path) -> None:
    kernel = _Kernel(project)
    try:
        # Given a run that had a secret from the kernel's environment, since removed from it
        kernel.read_until_idle(
            kernel.execute("%load_ext jupyter_amlexec\nimport os\nos.environ['TOKEN'] = 'x1'")
        )
        kernel.read_until_idle(kernel.execute("%%aml_submit --secret-env TOKEN\nprint('with a token')"))
        kernel.read_until_idle(kernel.execute("del os.environ['TOKEN']"))
        # When the user clicks Rerun
        kernel.click("Rerun")
        # Then the widget says the rerun was refused, naming the variable, and nothing ran
        said = _message_with(kernel, "Rerun refused")
        assert "TOKEN" in said and "not stored" in said
        assert [s for s, _, _ in _runs(home)] == ["Completed"]
    finally:
        kernel.stop()
