"""Runs finish in the history with nobody watching: the submitter gone (CLI -a, a SIGKILLed kernel),
cancel from another process or with no owner at all, and following a run from any process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.follow import follow
from jupyter_amlexec.core.history import History
from jupyter_amlexec.core.models import LogEvent, MetricEvent, StatusEvent

NUMBERED = (
    "import json, os, sys, time, amlexec_run\n"
    "n, pause = int(sys.argv[1]), float(sys.argv[2])\n"
    "start = time.time()\n"
    "for i in range(n):\n"
    "    print(f'line {i}', flush=True)\n"
    "    time.sleep(pause)\n"
    "amlexec_run.log('lines', n)\n"
    "os.makedirs('outputs', exist_ok=True)\n"
    "open('outputs/times.json', 'w').write(json.dumps([start, time.time()]))\n"
)


def _amlexec(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_amlexec", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _row(home: Path, run_id: str) -> sqlite3.Row:
    """The run's row, read the way any other tool would: sqlite, no jupyter_amlexec code."""
    db = sqlite3.connect(home / "history.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    finally:
        db.close()


def _wait_terminal_in_sqlite(home: Path, run_id: str, timeout: float = 60) -> sqlite3.Row:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _row(home, run_id)
        if row["status"] in ("Completed", "Failed", "Canceled"):
            return row
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {row['status']} after {timeout} s")


def _numbered_lines(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_cli_async_run_is_recorded_to_its_end_after_the_command_exits(project: Path, home: Path) -> None:
    # Given a 2-second job submitted with -a from a terminal
    (project / "job.py").write_text(NUMBERED)
    result = _amlexec(project, "experiment", "submit", "-a", "-c", "local", "job.py", "10", "0.2")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[1]
    # When nobody runs any other command: the history is only read, with plain sqlite
    row = _wait_terminal_in_sqlite(home, run_id)
    # Then the run is Completed with its whole log, its metric, its outputs and its true duration
    assert row["status"] == "Completed" and row["exit_code"] == 0
    log_text = (home / "runs" / run_id / "driver_log.txt").read_text()
    assert _numbered_lines(log_text) == list(range(10))
    db = sqlite3.connect(home / "history.sqlite")
    assert db.execute("SELECT value FROM metrics WHERE run_id = ?", (run_id,)).fetchall() == [("10",)]
    assert db.execute("SELECT path FROM attachments WHERE run_id = ?", (run_id,)).fetchall() == [
        ("outputs/times.json",)
    ]
    start, end = json.loads((home / "runs" / run_id / "outputs" / "times.json").read_text())
    assert abs(row["duration_ms"] / 1000 - (end - start)) < 0.5, (row["duration_ms"], end - start)
    # And the work's own folder is cleaned up then, not whenever someone looks
    assert not (home / "runs" / run_id / "executor" / "work").exists()


def test_a_sigkilled_kernel_loses_nothing(project: Path, home: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    (project / "job.py").write_text(NUMBERED)
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(project))
    try:
        # Given a kernel following a 3-second run in a blocking cell
        client.execute_interactive("%load_ext jupyter_amlexec", timeout=60)
        client.execute("%aml_submit -c local --no-widget job.py 15 0.2")
        history = History(home)
        deadline = time.monotonic() + 60
        while not history.query(project="proj") and time.monotonic() < deadline:
            time.sleep(0.05)
        run_id = history.query(project="proj")[0].run_id
        while "line 3" not in history.read_log(run_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        # When the kernel is killed the way Jupyter kills it (SIGKILL to its process group)
        manager.shutdown_kernel(now=True)
    finally:
        client.stop_channels()
        manager.cleanup_resources()
    # Then the history converges with nobody asking: Completed, every line once, outputs collected
    row = _wait_terminal_in_sqlite(home, run_id)
    assert row["status"] == "Completed", dict(row)
    assert _numbered_lines(History(home).read_log(run_id)) == list(range(15))
    assert (home / "runs" / run_id / "outputs" / "times.json").is_file()
    # And a new session and the CLI both see it finished
    assert Session.open(project, home).run(run_id).status.value == "Completed"
    info = json.loads(_amlexec(project, "history", "info", "-r", run_id, "-o", "json").stdout)
    assert info["status"] == "Completed" and info["lines"] == 15


def test_cancel_from_another_process_stops_the_run_its_follower_follows(project: Path, home: Path) -> None:
    # Given a long run followed (blocking) by one CLI process
    (project / "job.py").write_text(NUMBERED)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_amlexec",
            "experiment",
            "submit",
            "-c",
            "local",
            "job.py",
            "600",
            "0.1",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = _wait_for_line(home, "line 2")
        handle = json.loads(_row(home, run_id)["handle"])
        # When another process cancels it
        asked = time.monotonic()
        result = _amlexec(project, "experiment", "cancel", "-r", run_id)
        # Then the work stops on its target within about a second, and both processes say Canceled
        assert result.returncode == 0 and "Canceled" in result.stdout, result
        while _group_alive(handle["pgid"]) and time.monotonic() - asked < 10:
            time.sleep(0.02)
        assert not _group_alive(handle["pgid"])
        assert time.monotonic() - asked < 5
        out, _err = follower.communicate(timeout=60)
        assert "Status: Canceled" in out
    finally:
        follower.kill()
    assert _row(home, run_id)["status"] == "Canceled"


def test_cancel_with_no_live_owner_stops_the_work_through_its_target(project: Path, home: Path) -> None:
    # Given a run whose submitter and guardian were both killed (nobody follows it any more)
    (project / "job.py").write_text(NUMBERED)
    result = _amlexec(project, "experiment", "submit", "-a", "-c", "local", "job.py", "600", "0.1")
    run_id = result.stdout.split()[1]
    _wait_for_line(home, "line 2")
    row = _row(home, run_id)
    guardian, pgid = row["follower_pid"], json.loads(row["handle"])["pgid"]
    os.kill(guardian, signal.SIGKILL)
    while _alive(guardian):
        time.sleep(0.02)
    assert _group_alive(pgid)  # the work goes on without its follower
    # When the user cancels it
    result = _amlexec(project, "experiment", "cancel", "-r", run_id)
    # Then the canceller takes it over, the process group is gone, and the record says Canceled
    assert result.returncode == 0 and "Canceled" in result.stdout, result
    assert not _group_alive(pgid)
    assert _row(home, run_id)["status"] == "Canceled"


def test_any_process_follows_a_run_each_line_once_from_any_cursor(project: Path, home: Path) -> None:
    # Given a run that prints 40 numbered lines, submitted by another process
    (project / "job.py").write_text(NUMBERED)
    result = _amlexec(project, "experiment", "submit", "-a", "-c", "local", "job.py", "40", "0.05")
    run_id = result.stdout.split()[1]
    history = History(home)
    # When this process follows it from the start, and stops after the first ten lines
    text, cursor = "", None
    for event in follow(history, run_id):
        if isinstance(event, LogEvent) and event.source == "driver":
            text, cursor = text + event.text, event.cursor
            if len(_numbered_lines(text)) >= 10:
                break
    # And then resumes from its cursor until the run ends
    events = list(follow(history, run_id, cursor))
    rest = "".join(e.text for e in events if isinstance(e, LogEvent) and e.source == "driver")
    # Then it saw every line exactly once, in order, then the metric, then the terminal status
    assert _numbered_lines(text + rest) == list(range(40))
    assert [e.metric.value for e in events if isinstance(e, MetricEvent)] == [40]
    assert isinstance(events[-1], StatusEvent) and events[-1].status.value == "Completed"


def _wait_for_line(home: Path, needle: str, timeout: float = 60) -> str:
    """The id of the (only) run of the project once its log holds `needle`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list((home / "runs").glob("*/driver_log.txt")) if (home / "runs").is_dir() else []
        for path in runs:
            if needle in path.read_text():
                return path.parent.name
        time.sleep(0.05)
    raise AssertionError(f"no run printed {needle!r}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(_alive(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == pgid)


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def test_a_run_followed_by_another_process_still_reaches_listeners_here(project: Path, home: Path) -> None:
    # Given a run driven by another process (the CLI's guardian)
    (project / "job.py").write_text(NUMBERED)
    result = _amlexec(project, "experiment", "submit", "-a", "-c", "local", "job.py", "20", "0.1")
    run_id = result.stdout.split()[1]
    _wait_for_line(home, "line 1")
    # When this process subscribes to it (as the live widget does)
    events: list[object] = []
    Session.open(project, home).run(run_id).subscribe(events.append)
    _wait_terminal_in_sqlite(home, run_id)
    deadline = time.monotonic() + 10
    while (
        not any(isinstance(e, StatusEvent) and e.status.terminal for e in events)
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    # Then the lines that came after, the metric and the end arrived here too, each line once
    text = "".join(e.text for e in events if isinstance(e, LogEvent) and e.source == "driver")
    seen = _numbered_lines(text)
    assert seen and seen == list(range(seen[0], 20)) and seen[0] <= 3
    assert any(isinstance(e, MetricEvent) for e in events)
    assert isinstance(events[-1], StatusEvent) and events[-1].status.value == "Completed"
