"""Connecting to real sshd hosts: keys, ~/.ssh/config, ProxyJump, secrets, host keys, reuse."""

from __future__ import annotations

import importlib.util
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.errors import HostKeyError, SecretError, TargetUnavailableError, TransportError
from jupyter_amlexec.core.transport.retry import RetryPolicy, call_with_retry
from jupyter_amlexec.core.transport.ssh import ConnectionPool, SshConnection
from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint
from tests.conftest import require
from tests.core.transport.conftest import SshHosts, endpoint_for
from tests.tcpproxy import TcpProxy

Connect = Callable[..., SshConnection]


def server_address(conn: SshConnection) -> str:
    """The address the host saw the connection arrive on ($SSH_CONNECTION's third field)."""
    return conn.run('echo "$SSH_CONNECTION"').text().split()[2]


def keygen_fingerprint(known_hosts_line: str, tmp_path: Path) -> str:
    """The fingerprint OpenSSH itself prints for a known_hosts line."""
    path = tmp_path / "one_key"
    path.write_text(known_hosts_line + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def known_line(ssh_hosts: SshHosts, index: int) -> str:
    host, port = ssh_hosts.hosts[index]
    token = f"[{host}]:{port}"
    return next(
        line for line in ssh_hosts.known_hosts.read_text().splitlines() if line.startswith(token + " ")
    )


# --- keys, config, jumps ---------------------------------------------------------------------------


def test_a_key_file_connects_and_runs_a_command(connect: Connect, ssh_hosts: SshHosts) -> None:
    # Given a target with an address, a username and a key file
    conn = connect(0)
    # When a command runs there
    result = conn.run(["sh", "-c", 'id -un; echo "to stderr" >&2; exit 3'])
    # Then its output, error output and exit code come back separately
    assert result.exit_code == 3
    assert result.stdout.decode().strip() == ssh_hosts.user
    assert result.stderr.decode().strip() == "to stderr"
    assert server_address(conn) == ssh_hosts.hosts[0][0]


def test_stdin_is_streamed_and_output_goes_to_a_sink(connect: Connect) -> None:
    conn = connect(0)
    data = bytes(range(256)) * 40_000  # 10 MB, not text
    chunks: list[bytes] = []
    result = conn.run("sha256sum; head -c 3000000 /dev/zero", stdin=data, stdout=chunks.append)
    import hashlib

    streamed = b"".join(chunks)
    assert result.exit_code == 0 and result.stdout == b"" and result.bytes_sent == len(data)
    assert streamed.startswith(hashlib.sha256(data).hexdigest().encode())
    assert streamed.endswith(b"\0" * 3_000_000)


def test_an_alias_of_ssh_config_works_as_the_address(ssh_home: Path, ssh_hosts: SshHosts) -> None:
    # Given ~/.ssh/config naming the second host "lab", with its port, user and key
    host, port = ssh_hosts.hosts[1]
    (ssh_home / ".ssh" / "config").write_text(
        f"Host lab\n  HostName {host}\n  Port {port}\n  User {ssh_hosts.user}\n  IdentityFile {ssh_hosts.key}\n"
    )
    # When the target's address is just the alias
    endpoint = resolve_endpoint(SshSettings(address="lab"))
    conn = SshConnection(endpoint).connect()
    try:
        # Then the connection reached that host as that user
        assert (endpoint.host, endpoint.port, endpoint.username) == (host, port, ssh_hosts.user)
        assert server_address(conn) == host
        assert conn.run("id -un").text().strip() == ssh_hosts.user
    finally:
        conn.close()


def test_proxyjump_goes_through_the_jump_host(ssh_home: Path, ssh_hosts: SshHosts) -> None:
    # Given the first host reachable only through a proxy we watch, and ~/.ssh/config saying
    # "reach the second host by jumping through the first"
    (jump_host, jump_port), (inner_host, inner_port) = ssh_hosts.hosts
    with TcpProxy((jump_host, jump_port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        jump_key = known_line(ssh_hosts, 0).split(" ", 1)[1]
        known.write_text(known.read_text() + f"[127.0.0.1]:{proxy.port} {jump_key}\n")
        (ssh_home / ".ssh" / "config").write_text(
            f"Host jump\n  HostName 127.0.0.1\n  Port {proxy.port}\n  User {ssh_hosts.user}\n"
            f"  IdentityFile {ssh_hosts.key}\n"
            f"Host inner\n  HostName {inner_host}\n  Port {inner_port}\n  User {ssh_hosts.user}\n"
            f"  IdentityFile {ssh_hosts.key}\n  ProxyJump jump\n"
        )
        # When the target names the inner host
        conn = SshConnection(resolve_endpoint(SshSettings(address="inner"))).connect()
        try:
            # Then the command ran on the inner host, and the link went through the jump host
            assert server_address(conn) == inner_host
            assert proxy.connections == 1 and proxy.bytes_up > 0
            # and cutting the jump host's link cuts the inner connection too
            proxy.cut()
            with pytest.raises(TransportError, match="lost"):
                conn.run("echo hi")
        finally:
            conn.close()


def test_an_agent_key_is_used_without_a_key_file(
    ssh_home: Path, ssh_hosts: SshHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a real ssh-agent holding the key, and a target naming no key file
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        for _ in range(100):  # the socket file appears before the agent listens: ask it
            if subprocess.run(["ssh-add", "-l"], capture_output=True).returncode != 2:
                break
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", str(ssh_hosts.key)], check=True, capture_output=True)
        endpoint = endpoint_for(ssh_hosts, 0, key_file=None)
        assert endpoint.key_files == ()  # HOME has no ~/.ssh/id_* either
        # When it connects, then the agent's key authenticated it
        conn = SshConnection(endpoint).connect()
        assert conn.run("id -un").text().strip() == ssh_hosts.user
        conn.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


# --- secrets --------------------------------------------------------------------------------------


def test_key_passphrase_from_an_environment_variable(
    connect: Connect, ssh_hosts: SshHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an encrypted key whose passphrase is in an environment variable the target names
    monkeypatch.setenv("LAB_KEY_PASSPHRASE", ssh_hosts.passphrase)
    conn = connect(0, key_file=str(ssh_hosts.pass_key), password_env="LAB_KEY_PASSPHRASE")
    assert conn.run("id -un").text().strip() == ssh_hosts.user
    # When the variable is unset, the error names it
    monkeypatch.delenv("LAB_KEY_PASSPHRASE")
    with pytest.raises(SecretError, match="LAB_KEY_PASSPHRASE.*not set"):
        connect(0, key_file=str(ssh_hosts.pass_key), password_env="LAB_KEY_PASSPHRASE")


def test_an_encrypted_key_without_passphrase_says_how_to_give_one(
    connect: Connect, ssh_hosts: SshHosts
) -> None:
    with pytest.raises(TargetUnavailableError) as error:
        connect(0, key_file=str(ssh_hosts.pass_key))
    message = str(error.value)
    assert str(ssh_hosts.pass_key) in message and "encrypted" in message
    assert "passwordEnv" in message and "passwordKeyring" in message


def test_a_wrong_passphrase_is_refused_without_showing_it(
    connect: Connect, ssh_hosts: SshHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_KEY_PASSPHRASE", "not-the-passphrase")
    with pytest.raises(TargetUnavailableError) as error:
        connect(0, key_file=str(ssh_hosts.pass_key), password_env="LAB_KEY_PASSPHRASE")
    assert "does not decrypt" in str(error.value) and "not-the-passphrase" not in str(error.value)


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[Any]:
    """A real keyring backend (keyrings.alt's plain-text file) in the test's folder."""
    require(
        importlib.util.find_spec("keyring") is not None
        and importlib.util.find_spec("keyrings.alt") is not None,
        "keyring and keyrings.alt (test extra)",
    )
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring_pass.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield keyring
    finally:
        keyring.set_keyring(previous)


def test_key_passphrase_from_the_keyring(connect: Connect, ssh_hosts: SshHosts, file_keyring: Any) -> None:
    # Given the passphrase stored in the keyring under service amlexec-lab, user = the SSH user
    file_keyring.set_password("amlexec-lab", ssh_hosts.user, ssh_hosts.passphrase)
    # When the target names that keyring entry, then the encrypted key opens and connects
    conn = connect(0, key_file=str(ssh_hosts.pass_key), password_keyring="amlexec-lab")
    assert conn.run("id -un").text().strip() == ssh_hosts.user
    # and a missing entry says how to store it
    with pytest.raises(SecretError, match=f"keyring set amlexec-other {ssh_hosts.user}"):
        connect(0, key_file=str(ssh_hosts.pass_key), password_keyring="amlexec-other")


def test_a_key_the_host_does_not_accept_is_refused_clearly(
    connect: Connect, ssh_hosts: SshHosts, tmp_path: Path
) -> None:
    # Given a key that is not in the host's authorized keys
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    # When it is used, then authentication fails naming the user, host, key and the fix
    with pytest.raises(TargetUnavailableError) as error:
        connect(0, key_file=str(stranger))
    message = str(error.value)
    assert not isinstance(error.value, TransportError)  # not worth retrying
    assert f"as {ssh_hosts.user} to {ssh_hosts.hosts[0][0]}" in message
    assert f"{stranger} (refused by the host)" in message and "authorized_keys" in message


# --- host keys ------------------------------------------------------------------------------------


def test_an_unknown_host_is_refused_with_its_fingerprint_and_the_command_to_trust_it(
    connect: Connect, ssh_home: Path, ssh_hosts: SshHosts, tmp_path: Path
) -> None:
    # Given a known_hosts that does not know the first host
    known = ssh_home / ".ssh" / "known_hosts"
    known.write_text(known_line(ssh_hosts, 1) + "\n")
    host, port = ssh_hosts.hosts[0]
    # When connecting to it
    with pytest.raises(HostKeyError) as error:
        connect(0)
    # Then the message gives the fingerprint OpenSSH shows and the exact command that trusts it
    message = str(error.value)
    assert keygen_fingerprint(known_line(ssh_hosts, 0), tmp_path) in message
    command = f"ssh-keyscan -p {port} {host} >> {known}"
    assert command in message and "ssh-keygen -lf" in message
    # and running that command makes the next connection succeed
    subprocess.run(["sh", "-c", command], check=True, capture_output=True)
    assert connect(0).run("true").exit_code == 0


def test_a_changed_host_key_is_refused_loudly(
    connect: Connect, ssh_home: Path, ssh_hosts: SshHosts, tmp_path: Path
) -> None:
    # Given known_hosts recording another key for the first host (as after a man-in-the-middle)
    host, port = ssh_hosts.hosts[0]
    impostor_key = known_line(ssh_hosts, 1).split(" ", 1)[1]
    known = ssh_home / ".ssh" / "known_hosts"
    known.write_text(f"# header\n[{host}]:{port} {impostor_key}\n")
    # When connecting
    with pytest.raises(HostKeyError) as error:
        connect(0)
    # Then both fingerprints, the line at fault and the command that removes it are named
    message = str(error.value)
    assert "CHANGED" in message and "man-in-the-middle" in message
    assert keygen_fingerprint(known_line(ssh_hosts, 1), tmp_path) in message  # on record
    assert keygen_fingerprint(known_line(ssh_hosts, 0), tmp_path) in message  # offered now
    assert f"{known}, line 2" in message
    assert f"ssh-keygen -R '[{host}]:{port}' -f {known}" in message


def test_hashed_known_hosts_and_a_project_known_hosts_are_honoured(
    ssh_home: Path, ssh_hosts: SshHosts, tmp_path: Path
) -> None:
    # Given the user's known_hosts hashed by ssh-keygen -H, knowing only the first host
    known = ssh_home / ".ssh" / "known_hosts"
    known.write_text(known_line(ssh_hosts, 0) + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "|1|" in known.read_text() and ssh_hosts.hosts[0][0] not in known.read_text()
    # and a project whose aml_config/known_hosts knows the second
    project = tmp_path / "proj"
    (project / "aml_config").mkdir(parents=True)
    (project / "aml_config" / "known_hosts").write_text(known_line(ssh_hosts, 1) + "\n")
    for index in (0, 1):
        host, port = ssh_hosts.hosts[index]
        settings = SshSettings(address=f"{host}:{port}", username=ssh_hosts.user, key_file=str(ssh_hosts.key))
        conn = SshConnection(resolve_endpoint(settings, project=project)).connect()
        assert server_address(conn) == host
        conn.close()


# --- reuse, two hosts, reconnecting ----------------------------------------------------------------


def test_two_hosts_at_once(ssh_home: Path, ssh_hosts: SshHosts, pool: ConnectionPool) -> None:
    # Given both hosts, used from two threads at the same time
    seen: dict[int, str] = {}

    def work(index: int) -> None:
        conn = pool.get(endpoint_for(ssh_hosts, index))
        seen[index] = conn.run('sleep 0.5; echo "$SSH_CONNECTION"').text().split()[2]

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then each command ran on its own host, side by side
    assert seen == {0: ssh_hosts.hosts[0][0], 1: ssh_hosts.hosts[1][0]}
    assert time.monotonic() - started < 2.5


def test_one_connection_per_host_is_reused(ssh_home: Path, ssh_hosts: SshHosts, pool: ConnectionPool) -> None:
    # Given the host behind a proxy that counts connections
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {known_line(ssh_hosts, 0).split(' ', 1)[1]}\n")
        endpoint = endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}")
        # When ten commands run, asked for through the pool each time (as ten runs would)
        for i in range(10):
            assert pool.get(endpoint).run(f"echo {i}").text().strip() == str(i)
        # Then one TCP connection carried them all
        assert proxy.connections == 1
        assert pool.get(endpoint) is pool.get(endpoint)


def test_a_dropped_connection_is_retried_with_backoff(
    ssh_home: Path, ssh_hosts: SshHosts, pool: ConnectionPool
) -> None:
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {known_line(ssh_hosts, 0).split(' ', 1)[1]}\n")
        endpoint = endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}")
        assert pool.get(endpoint).run("true").exit_code == 0
        # Given the link cut, and back 1.5 s later
        proxy.cut()
        threading.Timer(1.5, proxy.restore).start()
        reports: list[str] = []
        # When a command is asked for through the retrying call
        result = call_with_retry(
            endpoint,
            lambda c: c.run("echo back"),
            on_retry=reports.append,
            pool=pool,
            policy=RetryPolicy(0.2),
        )
        # Then it ran after reconnecting, and each wait was reported as "connection lost, retrying"
        assert result.text().strip() == "back"
        assert reports and all(r.startswith("connection lost") and "retrying in" in r for r in reports)
        assert proxy.connections == 2


def test_a_host_that_stays_away_is_given_up_on_with_a_clear_error(
    ssh_home: Path, ssh_hosts: SshHosts, pool: ConnectionPool
) -> None:
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        proxy.cut()
        endpoint = endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}")
        started = time.monotonic()
        with pytest.raises(TransportError) as error:
            call_with_retry(
                endpoint, lambda c: c.run("true"), pool=pool, policy=RetryPolicy(0.2, give_up_after=2)
            )
        assert time.monotonic() - started < 5
        assert "stayed unreachable" in str(error.value) and "Gave up after 2 s" in str(error.value)


def test_nothing_listening_is_a_transport_error_naming_host_and_port(connect: Connect) -> None:
    with pytest.raises(TransportError, match=r"127\.0\.0\.2 port 2299 \(Connection refused\)"):
        connect(0, address="127.0.0.2:2299")


def test_a_command_past_its_timeout_is_abandoned_with_a_clear_error(connect: Connect) -> None:
    conn = connect(0)
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"`sleep 30` .* did not finish within 1 s"):
        conn.run("sleep 30", timeout=1)
    assert time.monotonic() - started < 5
    assert conn.run("echo still usable").text() == "still usable\n"  # the connection itself is fine


def test_more_commands_at_once_than_sshd_allows_sessions_all_run(connect: Connect) -> None:
    # Given one connection and 16 commands at once (sshd's default MaxSessions is 10 per connection)
    conn = connect(0)
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = conn.run(f"sleep 0.3; echo {i}").text().strip()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every one of them ran (waiting for a free session rather than being refused)
    assert results == {i: str(i) for i in range(16)}


def test_a_cut_while_a_command_runs_is_a_lost_connection_not_an_exit_code(
    ssh_home: Path, ssh_hosts: SshHosts, pool: ConnectionPool
) -> None:
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {known_line(ssh_hosts, 0).split(' ', 1)[1]}\n")
        conn = pool.get(endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}"))
        threading.Timer(0.5, proxy.cut).start()
        with pytest.raises(TransportError, match="was lost"):
            conn.run("sleep 5; echo done", timeout=30)
