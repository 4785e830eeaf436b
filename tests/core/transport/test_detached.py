"""Detached processes on a real sshd host: they outlive the connection, logs resume, kill is total."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_amlexec.core.errors import TransportError
from jupyter_amlexec.core.transport.detached import (
    DetachedProcess,
    ProcessState,
    follow,
    is_alive,
    kill_group,
    poll,
    start_detached,
)
from jupyter_amlexec.core.transport.ssh import ConnectionPool, SshConnection
from tests.core.transport.conftest import SshHosts, endpoint_for
from tests.core.transport.test_ssh import known_line
from tests.tcpproxy import TcpProxy

Connect = Callable[..., SshConnection]


def group_members(conn: SshConnection, pgid: int) -> list[str]:
    """Processes of the host in this process group, zombies excluded: what a user would see in ps."""
    script = (
        "for f in /proc/[0-9]*/stat; do s=$(cat $f 2>/dev/null) || continue; c=${s%%)*}; s=${s##*) }; "
        f'set -- $s; [ "$3" = {pgid} ] && [ "$1" != Z ] && echo "${{c#*(}}"; done; true'
    )
    return conn.run(["sh", "-c", script]).text().split()


def read_to_end(
    conn: SshConnection, proc: DetachedProcess, offset: int, timeout: float = 30
) -> tuple[bytes, ProcessState]:
    """Poll from `offset` until the exit code is written and the log is read to its end."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        state = poll(conn, proc, offset, limit=64)  # small pieces: the cursor is exercised
        data, offset = data + state.log, state.next_offset
        if state.finished:
            return data, state
        assert time.monotonic() < deadline, f"still running after {timeout} s: {state}"
        if not state.log:
            time.sleep(0.1)


def test_a_detached_process_survives_a_cut_connection_and_its_log_is_read_once(
    ssh_home: Path, ssh_hosts: SshHosts, remote_dir: str
) -> None:
    # Given a host reached through a proxy that can cut the line
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {known_line(ssh_hosts, 0).split(' ', 1)[1]}\n")
        endpoint = endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}")
        pool = ConnectionPool()
        conn = pool.get(endpoint)
        state_dir = conn.home + "/" + remote_dir.removeprefix("~/") + "/run1"
        # and a command printing 40 numbered lines over about 2 s, with a variable we pass
        script = 'i=1; while [ $i -le 40 ]; do echo "line $i of $WHO"; i=$((i+1)); sleep 0.05; done; exit 7'
        proc = start_detached(conn, ["sh", "-c", script], state_dir=state_dir, env={"WHO": "the test"})
        time.sleep(0.3)
        first = poll(conn, proc, 0)
        assert first.alive and first.exit_code is None
        # When the connection is cut mid-run, and stays cut for a while
        proxy.cut()
        time.sleep(2.5)
        proxy.restore()
        # Then a new connection finds the process finished with its exit code
        pool.discard(endpoint)
        again = pool.get(endpoint)
        rest, final = read_to_end(again, proc, first.next_offset)
        log = (first.log + rest).decode()
        # and the log, read from the cursor of before the cut, has every line exactly once, in order
        assert log.splitlines() == [f"line {i} of the test" for i in range(1, 41)]
        assert (final.exit_code, final.alive) == (7, False)
        assert final.ended_at is not None and final.ended_at >= proc.started_at
        pool.close_all()


def test_a_process_re_attached_from_its_dict_is_the_same_process(connect: Connect, remote_dir: str) -> None:
    conn = connect(0)
    proc = start_detached(conn, ["sleep", "30"], state_dir=f"{conn.home}/{remote_dir[2:]}/r")
    try:
        again = DetachedProcess.from_dict(proc.to_dict())
        assert again == proc and is_alive(conn, again)
        # a process with the same pid but another start time is not ours (a reused pid)
        assert not is_alive(conn, dataclasses.replace(proc, start_ticks=proc.start_ticks + 1))
    finally:
        kill_group(conn, proc)


def test_kill_ends_the_whole_process_group_and_leaves_nothing(connect: Connect, remote_dir: str) -> None:
    # Given a detached command that started children of its own (one ignoring TERM)
    conn = connect(0)
    script = "sleep 300 & sh -c 'trap \"\" TERM; sleep 300' & echo started; wait"
    proc = start_detached(conn, ["sh", "-c", script], state_dir=f"{conn.home}/{remote_dir[2:]}/k")
    deadline = time.monotonic() + 10
    while len(group_members(conn, proc.pgid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(group_members(conn, proc.pgid)) >= 4  # wrapper, sh, sleep, sh + its sleep
    # When the group is killed
    started = time.monotonic()
    assert kill_group(conn, proc, grace=1.0) is True
    # Then nothing of it runs on the host any more (TERM, then KILL for the one that ignored it)
    assert group_members(conn, proc.pgid) == []
    assert not is_alive(conn, proc)
    assert time.monotonic() - started < 10
    # and killing again is harmless
    assert kill_group(conn, proc) is False


def test_a_canceled_process_records_its_exit_by_signal(connect: Connect, remote_dir: str) -> None:
    conn = connect(0)
    proc = start_detached(conn, ["sleep", "300"], state_dir=f"{conn.home}/{remote_dir[2:]}/c")
    kill_group(conn, proc, grace=5.0)
    state = poll(conn, proc)
    assert state.exit_code == 143 and not state.alive and state.finished  # 128 + SIGTERM


def test_a_state_dir_in_use_is_refused(connect: Connect, remote_dir: str) -> None:
    conn = connect(0)
    state_dir = f"{conn.home}/{remote_dir[2:]}/twice"
    start_detached(conn, ["true"], state_dir=state_dir)
    import pytest

    from jupyter_amlexec.core.errors import TargetUnavailableError

    with pytest.raises(TargetUnavailableError, match="state dir in use"):
        start_detached(conn, ["true"], state_dir=state_dir)


def test_a_detached_process_survives_the_sshd_serving_its_connection_being_killed(
    connect: Connect, remote_dir: str
) -> None:
    # Given a detached command started over a connection
    conn = connect(0)
    proc = start_detached(
        conn, ["sh", "-c", "sleep 1.5; echo finished"], state_dir=f"{conn.home}/{remote_dir[2:]}/s"
    )
    # When the sshd process serving that connection is killed (as when sshd dies or is restarted)
    session = conn.run('echo "$PPID"').text().strip()
    connect(0).run(["kill", "-9", session])
    deadline = time.monotonic() + 10
    while conn.is_active and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not conn.is_active
    # Then the command carries on to its end, seen from a new connection
    again = connect(0)
    log, state = read_to_end(again, proc, 0)
    assert (log, state.exit_code) == (b"finished\n", 0)


def test_following_streams_the_log_live_and_resumes_after_a_cut_without_gap_or_duplicate(
    ssh_home: Path, ssh_hosts: SshHosts, remote_dir: str
) -> None:
    # Given a command printing 60 lines over about 3 s, on a host behind a proxy
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {known_line(ssh_hosts, 0).split(' ', 1)[1]}\n")
        endpoint = endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}")
        pool = ConnectionPool()
        conn = pool.get(endpoint)
        script = 'i=1; while [ $i -le 60 ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done; exit 3'
        proc = start_detached(conn, ["sh", "-c", script], state_dir=f"{conn.home}/{remote_dir[2:]}/f")
        received = bytearray()
        # When the log is followed and the line is cut after a second
        threading.Timer(1.0, proxy.cut).start()
        with pytest.raises(TransportError):
            follow(conn, proc, 0, received.extend)
        live = len(received)
        # and followed again, over a new connection, from what had arrived
        proxy.restore()
        pool.discard(endpoint)
        state = follow(pool.get(endpoint), proc, len(received), received.extend)
        pool.close_all()
    # Then lines came while it ran, and the whole log arrived once, in order, with the exit code
    assert 0 < live < len(received)
    assert received.decode().splitlines() == [f"line {i}" for i in range(1, 61)]
    assert (state.exit_code, state.alive, state.finished) == (3, False, True)


def test_following_a_process_that_vanished_without_exit_code_ends(connect: Connect, remote_dir: str) -> None:
    # Given a detached process killed with SIGKILL (its wrapper could write no exit code)
    conn = connect(0)
    proc = start_detached(conn, ["sleep", "300"], state_dir=f"{conn.home}/{remote_dir[2:]}/v")
    conn.run(["kill", "-KILL", f"-{proc.pgid}"])
    # When followed, then the follow ends saying: not alive, no exit code
    state = follow(conn, proc, 0, lambda data: None, interval=0.01, timeout=30)
    assert (state.alive, state.exit_code) == (False, None)
