"""Runs driven from the CLI as real processes: -a, --follow, cancel (with the script's children),
--secret-env, the output-size cap (also after the submitting process is killed), and a pipe that
closes early."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import amlexec

SECRET = "cli-s3cr3t-value-77"


def _run_id(stdout: str) -> str:
    return stdout.split("RunId: ", 1)[1].split()[0]


def _status(project: Path, run_id: str) -> str:
    return str(json.loads(amlexec(project, "history", "info", "-r", run_id, "-o", "json").stdout)["status"])


def _until(condition: object, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_async_submit_then_follow_prints_every_line_once_to_the_end(project: Path, home: Path) -> None:
    # Given a script that prints a numbered line every 0.3 s, submitted with -a
    (project / "count.py").write_text(
        "import time\nfor i in range(8):\n    print('n', i, flush=True)\n    time.sleep(0.3)\n"
    )
    submitted = amlexec(project, "experiment", "submit", "-a", "count.py")
    # Then the command returns at once, saying how to follow and stop the run
    assert (
        submitted.returncode == 0 and "history info -r" in submitted.stdout and "--follow" in submitted.stdout
    )
    run_id = _run_id(submitted.stdout)
    # When another process follows it
    followed = amlexec(project, "history", "info", "-r", run_id, "--follow")
    # Then it prints every line once, in order, and the final status, and exits 0
    lines = [line for line in followed.stdout.splitlines() if line.startswith("n ")]
    assert lines == [f"n {i}" for i in range(8)]
    assert followed.returncode == 0 and "Status: Completed" in followed.stdout


def test_cancel_ends_the_script_and_its_children(project: Path, home: Path, tmp_path: Path) -> None:
    # Given a script that starts `sleep 600` as a child, then waits for it
    pids = tmp_path / "pids.json"
    (project / "spawn.py").write_text(
        "import json, os, subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '600'])\n"
        "json.dump({'pgid': os.getpgid(0), 'child': child.pid}, open(sys.argv[1], 'w'))\n"
        "print('spawned', flush=True)\nchild.wait()\n"
    )
    run_id = _run_id(amlexec(project, "experiment", "submit", "-a", "spawn.py", str(pids), check=True).stdout)
    _until(lambda: pids.exists() and pids.read_text().endswith("}"))
    started = json.loads(pids.read_text())
    # When it is canceled from the CLI
    canceled = amlexec(project, "experiment", "cancel", "-r", run_id)
    # Then the run is Canceled and no live process of the script's group is left (the child included)
    assert canceled.returncode == 0 and canceled.stdout.strip() == f"{run_id}: Canceled"
    _until(lambda: not _live_members(started["pgid"]), timeout=10)
    assert not _alive(started["child"])
    assert _status(project, run_id) == "Canceled"
    # And canceling it again says there is nothing to cancel
    again = amlexec(project, "experiment", "cancel", "-r", run_id)
    assert again.returncode == 0 and again.stdout.strip() == f"{run_id}: already Canceled; nothing to cancel."


def test_secret_env_from_the_cli_reaches_the_run_and_is_never_stored(project: Path, home: Path) -> None:
    (project / "use.py").write_text("import os\nprint('reversed', os.environ['DB_TOKEN'][::-1])\n")
    env = {**os.environ, "DB_TOKEN": SECRET}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_amlexec",
            "experiment",
            "submit",
            "--secret-env",
            "DB_TOKEN",
            "use.py",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"reversed {SECRET[::-1]}" in result.stdout
    run_id = _run_id(result.stdout)
    record = json.loads(amlexec(project, "history", "info", "-r", run_id, "-o", "json").stdout)
    assert record["properties"]["SecretEnv"] == ["DB_TOKEN"]
    stored = [*home.glob("history.sqlite*"), *(home / "runs" / run_id).glob("*_log.txt")]
    assert len(stored) >= 3 and [p.name for p in stored if SECRET.encode() in p.read_bytes()] == []
    missing = amlexec(project, "experiment", "submit", "--secret-env", "NOT_SET_ANYWHERE", "use.py")
    assert missing.returncode == 2 and "NOT_SET_ANYWHERE: not set" in missing.stderr
    help_text = amlexec(project, "experiment", "submit", "--help").stdout
    assert "--secret-env NAME" in help_text and "never stored" in help_text


BIG_AND_SMALL = (
    "import os, sys, time\ntime.sleep(float(sys.argv[1]))\nos.makedirs('outputs', exist_ok=True)\n"
    "open('outputs/big.bin', 'wb').write(b'x' * 2 * 1024 * 1024)\nopen('outputs/small.txt', 'w').write('ok')\n"
)
CAP_RC = "Target: local\nFramework: Python\nMaxOutputFileSizeMB: 1\n"


def test_output_size_cap_is_honoured(project: Path, home: Path) -> None:
    # Given a run configuration that caps output files at 1 MB, and a script writing 2 MB and 2 bytes
    (project / "aml_config").mkdir()
    (project / "aml_config" / "cap.runconfig").write_text(CAP_RC)
    (project / "out.py").write_text(BIG_AND_SMALL)
    # When it runs
    result = amlexec(project, "experiment", "submit", "-c", "cap", "out.py", "0")
    # Then only the small file is collected, and the control log says why the big one is not
    assert result.returncode == 0, result.stderr
    run_id = _run_id(result.stdout)
    outputs = home / "runs" / run_id / "outputs"
    assert sorted(p.name for p in outputs.iterdir()) == ["small.txt"]
    assert "big.bin" in (home / "runs" / run_id / "control_log.txt").read_text()


@pytest.mark.parametrize("guardian", ["alive", "killed too"])
def test_output_size_cap_holds_after_the_submitting_process_is_killed(
    project: Path, home: Path, guardian: str
) -> None:
    # Given a run submitted from a Python process that follows it
    (project / "aml_config").mkdir()
    (project / "aml_config" / "cap.runconfig").write_text(CAP_RC)
    (project / "out.py").write_text(BIG_AND_SMALL)
    submitter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from jupyter_amlexec.core.api import Session\n"
            "run = Session.open()\nrun = run.submit(script='out.py', arguments=['3'], run_configuration='cap')\n"
            "print(run.id, flush=True)\nrun.wait()\n",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert submitter.stdout is not None
    run_id = submitter.stdout.readline().strip()
    _until(lambda: _status(project, run_id) == "Running")
    # When that process is killed with SIGKILL mid-run (with its guardian, so that nothing of it is
    # left to take the run over), and a new process re-attaches and waits
    if guardian == "killed too":
        os.kill(_guardian_of(submitter.pid), signal.SIGKILL)
    submitter.send_signal(signal.SIGKILL)
    submitter.wait(timeout=10)
    waited = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom jupyter_amlexec.core.api import Session\n"
            "run = Session.open().run(sys.argv[1]).wait()\nprint(run.status.value, run.outputs)",
            run_id,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then the run completed with the cap of its run configuration still applied
    assert waited.stdout.strip() == "Completed ['small.txt']", waited.stderr


def test_output_cut_short_by_a_closed_pipe_ends_quietly(project: Path, home: Path) -> None:
    # Given a run whose log is much larger than a pipe's buffer
    (project / "loud.py").write_text("for i in range(200000):\n    print('line', i)\n")
    run_id = _run_id(amlexec(project, "experiment", "submit", "-a", "loud.py", check=True).stdout)
    _until(lambda: _status(project, run_id) == "Completed", timeout=60)
    for args in (
        ["history", "info", "-r", run_id, "-a", "driver_log"],
        ["history", "info", "-r", run_id, "--follow"],
    ):
        # When its output goes into `head -1`, which exits after the first line
        cli = subprocess.Popen(
            [sys.executable, "-m", "jupyter_amlexec", *args],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        head = subprocess.run(["head", "-1"], stdin=cli.stdout, capture_output=True, timeout=60)
        assert cli.stdout is not None and cli.stderr is not None
        cli.stdout.close()
        errors = cli.stderr.read().decode()
        code = cli.wait(timeout=60)
        # Then the first line arrived, and the command ended without a traceback, exit 0
        assert head.stdout.decode().strip() in ("line 0", "Executing user inputs .....")
        assert errors == "" and code == 0, (args, code, errors)


def _guardian_of(pid: int) -> int:
    """The guardian process a submitting process started (its child running core.guardian)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if ppid == pid and b"jupyter_amlexec.core.guardian" in cmdline:
            return int(stat.parent.name)
    raise AssertionError(f"process {pid} started no guardian")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's reaping is left


def _live_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_a_reader_that_closed_its_end_gets_no_traceback(project: Path, home: Path) -> None:
    # Given a recorded run
    (project / "hi.py").write_text("print('hi')\n")
    amlexec(project, "experiment", "submit", "hi.py", check=True)
    for args in (["history", "list"], ["history", "last", "-o", "json"], ["computetarget", "list"]):
        # When the command's stdout is a pipe whose reader has already closed it
        cli = subprocess.Popen(
            [sys.executable, "-m", "jupyter_amlexec", *args],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert cli.stdout is not None and cli.stderr is not None
        cli.stdout.close()
        errors = cli.stderr.read().decode()
        # Then it ends quietly, exit 0
        assert (cli.wait(timeout=60), errors) == (0, ""), args


def test_following_an_ended_run_prints_its_phases_in_order(project: Path, home: Path) -> None:
    # Given a run that has ended
    (project / "hi.py").write_text("print('the script speaks')\n")
    run_id = _run_id(amlexec(project, "experiment", "submit", "hi.py", check=True).stdout)
    # When it is followed from the start
    out = amlexec(project, "history", "info", "-r", run_id, "--follow", check=True).stdout
    # Then the Preparing phase comes before the script's output, as it happened
    assert out.index("Preparing: preparing the environment") < out.index("the script speaks")


def test_the_guardian_of_a_submit_that_waited_exits_without_taking_anything_over(
    project: Path, home: Path
) -> None:
    # Given a CLI submit that waits for its run to end
    (project / "quick.py").write_text("print('quick')\n")
    cli = subprocess.Popen(
        [sys.executable, "-m", "jupyter_amlexec", "experiment", "submit", "-c", "local", "quick.py"],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = cli.communicate(timeout=60)
    assert cli.returncode == 0 and "Status: Completed" in out
    # When the command has exited
    # Then its guardian goes away by itself, with nothing to say (no run left to take over): its
    # empty log is removed too, so a thousand submits leave no thousand files
    _until(lambda: not _guardians_started_by(cli.pid), timeout=30)
    assert not (home / "guardians" / f"{cli.pid}.log").exists()


def _guardians_started_by(pid: int) -> list[int]:
    """Live guardian processes whose parent (maybe gone by now) was `pid` (their first argument after -c)."""
    found = []
    for cmdline_file in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline_file.read_bytes().rstrip(b"\0").split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        guardian = any(b"jupyter_amlexec.core.guardian" in a for a in argv)
        if guardian and str(pid).encode() in argv[-2:] and _alive(int(cmdline_file.parent.name)):
            found.append(int(cmdline_file.parent.name))
    return found
