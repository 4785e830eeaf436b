"""The follower lease (a zombie is dead) and configurations that cannot run, refused before a run is
recorded (issue: reliability of the local and Docker targets, items 6 and 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import AmlExecError, ConfigError
from jupyter_amlexec.core.history import History


def _record(history: History) -> str:
    return history.create_run(
        project="p",
        project_path="/p",
        experiment="e",
        target="local",
        target_type="local",
        run_configuration="local",
        script_name="s.py",
        arguments=(),
        environment={},
        snapshot_id=None,
    ).run_id


def test_a_killed_but_unreaped_follower_loses_its_lease(home: Path) -> None:
    # Given a run whose follower is a child of ours that claimed it and then died, not yet reaped
    history = History(home)
    run_id = _record(history)
    code = (
        "import sys; from pathlib import Path; from jupyter_amlexec.core.history import History\n"
        f"assert History(Path({str(home)!r})).claim_follower({run_id!r}, __import__('os').getpid())\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for the zombie without reaping it
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.02)
    assert state == "Z"
    try:
        os.kill(child.pid, 0)  # the pid still "exists": the old check took it for a live follower
        # When another process asks to follow the run, then it gets the lease
        assert history.claim_follower(run_id, os.getpid())
    finally:
        child.wait()


def test_a_live_follower_keeps_its_lease(home: Path) -> None:
    history = History(home)
    run_id = _record(history)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert history.claim_follower(run_id, sleeper.pid)
        assert not history.claim_follower(run_id, os.getpid())
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize(
    ("compute", "fragment"),
    [
        ("type: local\npythonLocation: /nowhere/bin/python9\n", "pythonLocation"),
        ("type: quantum\n", "quantum"),
    ],
)
def test_a_target_that_cannot_run_is_refused_before_anything_is_recorded(
    project: Path, home: Path, compute: str, fragment: str
) -> None:
    (project / "aml_config").mkdir()
    (project / "aml_config" / "bad.compute").write_text(compute)
    (project / "aml_config" / "bad.runconfig").write_text("Target: bad\nFramework: Python\n")
    (project / "job.py").write_text("print('never')\n")
    session = Session.open(project, home)
    with pytest.raises((ConfigError, AmlExecError)) as caught:
        session.submit(script="job.py", run_configuration="bad")
    assert fragment in str(caught.value)
    assert session.runs() == []
