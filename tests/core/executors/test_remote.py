"""The `remote` target on real sshd hosts (scripts/infra/sshd.sh): the host's own Python over SSH,
the snapshot by delta, work detached from the connection, cancel, a cut connection, a dead submitter."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.transport.ssh import shared_pool
from tests.core.transport.conftest import SshHosts
from tests.tcpproxy import TcpProxy

COUNTING = (
    "import os, sys, time, amlexec_run\n"
    "n, pause = int(sys.argv[1]), float(sys.argv[2])\n"
    "for i in range(n):\n"
    "    print(f'line {i} on', os.uname().nodename, flush=True)\n"
    "    time.sleep(pause)\n"
    "amlexec_run.log('lines', n)\n"
    "os.makedirs('outputs', exist_ok=True)\n"
    "open('outputs/done.txt', 'w').write(f'{n} lines by {os.getuid()}')\n"
)


@pytest.fixture(autouse=True)
def _fresh_pool() -> Iterator[None]:
    yield
    shared_pool().close_all()  # each test's HOME (known_hosts) is its own


def _attach(project: Path, hosts: SshHosts, address: str | None = None, name: str = "vm") -> Session:
    host, port = hosts.hosts[0]
    session = Session.open(project, project.parent / "amlexec-home")
    session.project.attach_target(
        name,
        "remote",
        address=address or f"{host}:{port}",
        username=hosts.user,
        key_file=str(hosts.key),
        python_location="python3",
    )
    (project / "count.py").write_text(COUNTING)
    return session


def _lines(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_run_on_the_hosts_python_with_log_metrics_outputs(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = _attach(project, ssh_hosts)
    # When a script is submitted to the remote target
    run = session.submit(script="count.py", arguments=["5", "0.05"], run_configuration="vm").wait()
    # Then it ran on the host as the SSH user, with its log, metric and outputs brought back
    assert _lines(run.logs()) == list(range(5))
    assert run.metrics == {"lines": 5}
    uid = int(subprocess.check_output(["id", "-u", ssh_hosts.user]))
    assert (run.outputs_dir / "done.txt").read_text() == f"5 lines by {uid}"
    control = run.logs("control")
    assert "Sent the snapshot to" in control and "detached from SSH" in control
    # And its folder on the host is gone afterwards (the blob cache stays)
    assert not Path(f"/home/{ssh_hosts.user}/.amlexec/runs/{run.id}").exists()
    # And a second submit of the unchanged project sends no file again
    again = session.submit(script="count.py", arguments=["1", "0"], run_configuration="vm").wait()
    assert "Sent the snapshot to" in again.logs("control")
    assert ": 0 new file(s), 0 bytes" in again.logs("control")


def test_cancel_ends_the_process_group_on_the_host(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = _attach(project, ssh_hosts)
    run = session.submit(script="count.py", arguments=["600", "0.1"], run_configuration="vm")
    deadline = time.monotonic() + 60
    while "line 2" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    pgid = int(str(json.loads(json.dumps(run.record.handle))["process"]["pgid"]))
    assert _group_alive(pgid)
    run.cancel()
    run.wait(raise_on_failure=False)
    assert run.status.value == "Canceled"
    assert not _group_alive(pgid)


def test_a_cut_connection_is_retried_and_the_run_followed_to_its_end(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    host, port = ssh_hosts.hosts[0]
    proxy = TcpProxy((host, port))
    try:
        # Given a target reached through a proxy, trusted through the project's own known_hosts
        line = next(
            entry for entry in ssh_hosts.known_hosts.read_text().splitlines() if f"[{host}]:{port}" in entry
        )
        (project / "aml_config").mkdir()
        (project / "aml_config" / "known_hosts").write_text(
            line.replace(f"[{host}]:{port}", f"[127.0.0.1]:{proxy.port}") + "\n"
        )
        session = _attach(project, ssh_hosts, address=f"127.0.0.1:{proxy.port}")
        run = session.submit(script="count.py", arguments=["40", "0.1"], run_configuration="vm")
        deadline = time.monotonic() + 60
        while "line 5" not in run.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        # When the connection drops for three seconds
        proxy.cut()
        time.sleep(3)
        assert not run.done, (run.record.error, run.logs("control"))
        proxy.restore()
        run.wait()
    finally:
        proxy.close()
    # Then the run completed with every line exactly once, and the outage is in its control log
    assert _lines(run.logs()) == list(range(40))
    assert "connection lost" in run.logs("control")


def test_a_killed_submitter_loses_nothing(project: Path, ssh_hosts: SshHosts, ssh_home: Path) -> None:
    session = _attach(project, ssh_hosts)
    home = session.history.home
    env = {**os.environ, "AMLEXEC_HOME": str(home), "HOME": str(ssh_home)}
    # Given a CLI following a remote run
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_amlexec",
            "experiment",
            "submit",
            "-c",
            "vm",
            "count.py",
            "20",
            "0.1",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout is not None
    run_id = cli.stdout.readline().split()[1]
    deadline = time.monotonic() + 60
    while "line 3" not in session.history.read_log(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    # When it is killed outright
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    # Then the run is still recorded to its end, with nobody asking
    while time.monotonic() < deadline:
        row = (
            sqlite3.connect(home / "history.sqlite")
            .execute("SELECT status FROM runs WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        if row[0] in ("Completed", "Failed", "Canceled"):
            break
        time.sleep(0.1)
    assert row[0] == "Completed"
    assert _lines(session.history.read_log(run_id)) == list(range(20))


def test_outputs_that_link_to_a_host_folder_bring_nothing_back(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = _attach(project, ssh_hosts)
    (project / "link.py").write_text("import os\nos.symlink('/etc', 'outputs')\nprint('linked')\n")
    run = session.submit(script="link.py", run_configuration="vm").wait()
    assert run.outputs == []
    assert "outputs" in run.logs("control") and "link" in run.logs("control")


def test_a_secret_reaches_the_run_but_no_command_line_on_the_host(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret passed to a run on the host by name (its value only in this process's environment)
    secret = "s3cr3t-" + os.urandom(8).hex()
    monkeypatch.setenv("AMLEXEC_TEST_API_TOKEN", secret)
    session = _attach(project, ssh_hosts)
    (project / "uses.py").write_text(
        "import hashlib, os, time\n"
        "print('token digest', hashlib.sha256(os.environ['AMLEXEC_TEST_API_TOKEN'].encode()).hexdigest(), flush=True)\n"
        "time.sleep(3)\n"
    )
    run = session.submit(script="uses.py", run_configuration="vm", secret_env=("AMLEXEC_TEST_API_TOKEN",))
    deadline = time.monotonic() + 60
    while "token digest" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    # While it runs, no process of the host (the hosts are this machine) carries it on its command line
    exposed = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if secret.encode() in cmdline.read_bytes():
                exposed.append(cmdline.parent.name)
        except OSError:
            continue
    run.wait()
    assert exposed == []
    # and the run got the value itself
    assert hashlib.sha256(secret.encode()).hexdigest() in run.logs()
