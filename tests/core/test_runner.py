"""End-to-end runs through Session + runner + local executor + history: what a user checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import RunFailedError, SnapshotError, TargetNotFoundError
from jupyter_amlexec.core.models import LogEvent, MetricEvent, RunStatus, StatusEvent


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_script_run_records_log_metrics_outputs_and_arguments(project: Path, home: Path) -> None:
    # Given a script that logs metrics, writes an output file and echoes its arguments
    write(
        project,
        "train.py",
        """
        import os, sys
        import amlexec_run
        print("args:", sys.argv[1:])
        for step, loss in enumerate([0.9, 0.5, 0.2]):
            amlexec_run.log("loss", loss)
        amlexec_run.log("lr", float(sys.argv[1]))
        os.makedirs("outputs", exist_ok=True)
        open("outputs/model.txt", "w").write("weights")
        print("run id", os.environ["AMLEXEC_RUN_ID"])
        """,
    )
    session = Session.open(project, home)
    # When it runs on the local target with arguments
    run = session.submit(script="train.py", arguments=["0.1", "two words"]).wait()
    # Then the history has it Completed, with exit code 0, its log without metric tags,
    # every metric (latest value, and the whole series), its outputs and its arguments
    record = run.record
    assert (record.status, record.exit_code) == (RunStatus.COMPLETED, 0)
    log = run.logs()
    assert "args: ['0.1', 'two words']" in log
    assert f"run id {run.id}" in log
    assert "@@amlexec@@" not in log
    assert record.metrics == {"loss": 0.2, "lr": 0.1}
    assert [m.value for m in run.metric_series["loss"]] == [0.9, 0.5, 0.2]
    assert run.outputs == ["model.txt"]
    assert (run.outputs_dir / "model.txt").read_text() == "weights"
    assert record.arguments == ("0.1", "two words")
    assert record.script_name == "train.py"
    assert "outputs/model.txt" in record.attachments
    # And the project folder itself was not written to (the run worked on a copy)
    assert not (project / "outputs").exists()


def test_cell_run_can_import_project_modules_and_sees_env(project: Path, home: Path) -> None:
    # Given a project module and a cell that imports it
    write(project, "helpers.py", "def double(x):\n    return 2 * x\n")
    session = Session.open(project, home)
    cell = "import os, helpers\nprint('double', helpers.double(21), os.environ['GREETING'])\n"
    # When the cell is submitted with an extra environment variable
    run = session.submit(cell=cell, env={"GREETING": "hi there"}).wait()
    # Then it ran with the project on its path and the variable intact
    assert "double 42 hi there" in run.logs()
    assert run.record.script_name == "<cell>"


def test_failed_run_raises_with_log_tail_and_keeps_record(project: Path, home: Path) -> None:
    # Given a script that prints, then exits with 3
    write(project, "fail.py", "print('about to fail')\nraise SystemExit(3)\n")
    session = Session.open(project, home)
    run = session.submit(script="fail.py")
    # When the user waits for it
    with pytest.raises(RunFailedError) as failure:
        run.wait()
    # Then the error carries the exit code and the log tail, and the record says Failed
    assert failure.value.exit_code == 3
    assert "about to fail" in str(failure.value)
    record = session.history.get(run.id)
    assert (record.status, record.exit_code) == (RunStatus.FAILED, 3)


def test_events_arrive_in_order_while_the_run_streams(project: Path, home: Path) -> None:
    # Given a listener on a run that prints, logs a metric, and prints again
    write(
        project,
        "stream.py",
        "import time, amlexec_run\nprint('first', flush=True)\ntime.sleep(0.6)\n"
        "amlexec_run.log('acc', 0.75)\nprint('second')\n",
    )
    session = Session.open(project, home)
    events: list[object] = []
    run = session.submit(script="stream.py")
    run.subscribe(events.append)
    run.wait()
    # Then it saw Running, the log lines, the metric, and Completed last
    statuses = [e.status for e in events if isinstance(e, StatusEvent)]
    assert statuses[-1] is RunStatus.COMPLETED
    assert RunStatus.RUNNING in statuses or statuses[0] is RunStatus.RUNNING
    text = "".join(e.text for e in events if isinstance(e, LogEvent) and e.source == "driver")
    assert text.index("first") < text.index("second")
    assert [(e.metric.name, e.metric.value) for e in events if isinstance(e, MetricEvent)] == [("acc", 0.75)]


def test_cancel_stops_a_long_run(project: Path, home: Path) -> None:
    # Given a run that would take a minute
    write(project, "long.py", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    session = Session.open(project, home)
    run = session.submit(script="long.py")
    deadline = time.monotonic() + 20
    while "started" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(run.record.handle["pid"])  # type: ignore[index]
    # When the user cancels it
    run.cancel()
    run.wait(timeout=20, raise_on_failure=False)
    # Then it is Canceled and its process is gone
    assert run.status is RunStatus.CANCELED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_bad_input_raises_before_anything_is_recorded(project: Path, home: Path) -> None:
    session = Session.open(project, home)
    # An unknown target lists the known ones
    with pytest.raises(TargetNotFoundError) as unknown:
        session.submit(script="x.py", target="gpu")
    assert "local" in str(unknown.value) and "docker" in str(unknown.value)
    # A missing script names it
    with pytest.raises(SnapshotError, match="nope.py"):
        session.submit(script="nope.py")
    # And neither left a run behind
    assert session.runs() == []


def test_run_survives_its_kernel_and_a_new_process_reattaches(project: Path, home: Path) -> None:
    # Given a "kernel" process that submits a run and is then killed while the run goes on
    write(
        project,
        "slow.py",
        "import time, amlexec_run\nprint('tick', flush=True)\ntime.sleep(2)\namlexec_run.log('done', 1)\nprint('tock')\n",
    )
    kernel = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom jupyter_amlexec.core.api import Session\n"
            "run = Session.open(sys.argv[1], sys.argv[2]).submit(script='slow.py')\n"
            "print(run.id, flush=True)\ntime.sleep(600)\n",
            str(project),
            str(home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert kernel.stdout is not None
    run_id = kernel.stdout.readline().strip()
    session = Session.open(project, home)
    deadline = time.monotonic() + 20
    while "tick" not in session.history.read_log(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    # When a new process asks for the run
    run = session.run(run_id).wait(timeout=30)
    # Then the run completed on its own, with its whole log once, and its metric
    assert run.status is RunStatus.COMPLETED
    log = run.logs()
    assert log.count("tick") == 1 and log.count("tock") == 1
    assert run.metrics == {"done": 1}


def test_rerun_uses_the_recorded_snapshot(project: Path, home: Path) -> None:
    # Given a run of version 1 of a script, then the script edited
    script = write(project, "v.py", "print('version 1')\n")
    session = Session.open(project, home)
    first = session.submit(script="v.py").wait()
    script.write_text("print('version 2')\n")
    # When the first run is rerun
    again = first.rerun().wait()
    # Then it ran the snapshot of version 1, and both are in the history
    assert "version 1" in again.logs()
    assert again.record.snapshot_id == first.record.snapshot_id
    assert {r.run_id for r in session.runs()} == {first.id, again.id}


def test_history_json_has_every_metric_as_a_top_level_key(project: Path, home: Path) -> None:
    write(
        project,
        "m.py",
        "from azureml.logging import get_azureml_logger\nl = get_azureml_logger()\nl.log('Accuracy', 0.9).wait()\nl.log('Regularization Rate', 0.01)\n",
    )
    session = Session.open(project, home)
    run = session.submit(script="m.py").wait()
    doc = json.loads(json.dumps(run.record.to_json()))
    assert doc["Accuracy"] == 0.9 and doc["Regularization Rate"] == 0.01
    assert doc["status"] == "Completed" and doc["run_id"] == run.id
