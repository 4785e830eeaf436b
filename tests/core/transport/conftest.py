"""Fixtures for the SSH layer: the real sshd hosts that scripts/infra/sshd.sh starts.

Each test gets its own HOME (with its own ~/.ssh/known_hosts copied from the test hosts' file), so
nothing reads or writes root's real SSH files, and its own connection pool. Under CI a missing
sshd fails the test (tests.conftest.require); elsewhere it skips.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_amlexec.core.transport.ssh import ConnectionPool, SshConnection
from jupyter_amlexec.core.transport.sshconfig import Endpoint, SshSettings, resolve_endpoint
from tests.conftest import require


@dataclass(frozen=True)
class SshHosts:
    """What sshd.sh exported: two hosts, a user, a plain and a passphrase key, a known_hosts."""

    hosts: tuple[tuple[str, int], ...]
    user: str
    key: Path
    pass_key: Path
    passphrase: str
    known_hosts: Path


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="session")
def ssh_hosts() -> SshHosts:
    env = os.environ
    names = ("AMLEXEC_TEST_SSH_HOSTS", "AMLEXEC_TEST_SSH_USER", "AMLEXEC_TEST_SSH_KEY")
    require(all(env.get(n) for n in names), "the test sshd hosts (AMLEXEC_TEST_SSH_*, scripts/infra/sshd.sh)")
    hosts = tuple(
        (h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in env["AMLEXEC_TEST_SSH_HOSTS"].split()
    )
    require(len(hosts) >= 2 and all(_answers(*h) for h in hosts), f"sshd answering on {hosts}")
    return SshHosts(
        hosts=hosts,
        user=env["AMLEXEC_TEST_SSH_USER"],
        key=Path(env["AMLEXEC_TEST_SSH_KEY"]),
        pass_key=Path(env["AMLEXEC_TEST_SSH_PASS_KEY"]),
        passphrase=env["AMLEXEC_TEST_SSH_KEY_PASSPHRASE"],
        known_hosts=Path(env["AMLEXEC_TEST_SSH_KNOWN_HOSTS"]),
    )


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_hosts: SshHosts) -> Path:
    """A HOME of the test's own, whose ~/.ssh/known_hosts knows the two test hosts."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(ssh_hosts.known_hosts.read_text())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    pool = ConnectionPool()
    yield pool
    pool.close_all()


def endpoint_for(ssh_hosts: SshHosts, index: int = 0, **settings: object) -> Endpoint:
    """The endpoint of test host `index` (0: 127.0.0.2, 1: 127.0.0.3), plain key unless overridden."""
    host, port = ssh_hosts.hosts[index]
    values: dict[str, object] = {
        "address": f"{host}:{port}",
        "username": ssh_hosts.user,
        "key_file": str(ssh_hosts.key),
    }
    values.update(settings)
    return resolve_endpoint(SshSettings(**values))  # type: ignore[arg-type]


@pytest.fixture
def connect(ssh_home: Path, ssh_hosts: SshHosts) -> Iterator[object]:
    """connect(index=0, **settings) -> an open SshConnection, closed after the test."""
    opened: list[SshConnection] = []

    def _connect(index: int = 0, **settings: object) -> SshConnection:
        conn = SshConnection(endpoint_for(ssh_hosts, index, **settings)).connect()
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def remote_dir(ssh_home: Path, ssh_hosts: SshHosts) -> Iterator[str]:
    """A fresh folder under the test user's home on the hosts (they share one file system), removed after."""
    name = f".amlexec-test-{uuid.uuid4().hex[:12]}"
    yield f"~/{name}"
    # the test may have rewritten ~/.ssh/known_hosts: clean up with the hosts' own file
    endpoint = dataclasses.replace(endpoint_for(ssh_hosts), known_hosts=(ssh_hosts.known_hosts,))
    conn = SshConnection(endpoint).connect()
    try:
        conn.run(["sh", "-c", f'rm -rf "$HOME"/{name}'])
    finally:
        conn.close()
