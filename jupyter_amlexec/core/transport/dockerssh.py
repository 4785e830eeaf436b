"""A Docker engine on an SSH host, through our own SSH connection (docker-py + `docker system dial-stdio`).

docker-py's `ssh://` mode makes a paramiko client of its own: no ProxyJump, no passphrase from
the keyring, no ssh-agent choice, its own host key handling and a second login per client. Here its
HTTP connections are `docker system dial-stdio` channels opened on an `SshConnection` of ours
instead, so everything the SSH layer does (config, host keys, secrets, reuse) applies. Measured on
a warm container run: the same speed as docker-py `ssh://` (tests/core/transport/
measure_docker_over_ssh.py). Give Docker an SshConnection of its own rather than the pool's
shared one: idle HTTP keep-alive channels count against sshd's MaxSessions. After a
TransportError, make a new client on a new connection.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import TargetUnavailableError
from .ssh import SshConnection

DOCKER_POOL_SIZE = 4  # HTTP connections (= SSH channels) kept per client
log = logging.getLogger(__name__)


def check_docker(conn: SshConnection, *, timeout: float = 30.0) -> str:
    """The engine's API version, asked through the host's docker CLI as docker-py will.

    Each way this fails on a real host has its own message and fix: no docker CLI on the PATH of
    a non-interactive SSH session, the user not allowed on the engine's socket, no engine.
    """
    return _engine(conn, timeout)[0]


def _engine(conn: SshConnection, timeout: float) -> tuple[str, str]:
    """(API version, the engine's address for the SSH user: `unix:///...` or another scheme)."""
    script = (
        "docker version --format '{{.Server.APIVersion}}' && "
        "{ docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || true; }"
    )
    result = conn.run(["sh", "-c", script], timeout=timeout)
    lines = result.text().split()
    err = result.stderr.decode("utf-8", "replace").strip()
    user, where = conn.endpoint.username, conn.endpoint.describe()
    if result.exit_code == 0 and lines:
        return lines[0], lines[1] if len(lines) > 1 else ""
    if result.exit_code == 127 or "not found" in err:
        raise TargetUnavailableError(
            f"No `docker` command on {where} for non-interactive SSH sessions (PATH of `ssh host "
            f"cmd`). Install the Docker CLI there (docker-ce-cli or docker.io), or put it in /usr/bin."
        )
    if "permission denied" in err.lower():
        raise TargetUnavailableError(
            f"The user {user} may not use Docker on {where} (permission denied on the engine's "
            f"socket). On the host: `sudo usermod -aG docker {user}`, then connect again (group "
            f"membership applies to new sessions)."
        )
    raise TargetUnavailableError(
        f"The Docker engine on {where} does not answer: {err[-500:] or 'no message'}. Start it there "
        f"(`sudo systemctl start docker`) or check DOCKER_HOST in the user's environment."
    )


SESSIONS_PER_CONNECTION = 8  # sshd allows 10 sessions per connection by default (MaxSessions)


class ChannelBudget:
    """SSH connections to one host for docker-py's channels, each kept under sshd's MaxSessions:
    a build streams its log while the follower waits, inspects and copies; one connection would run
    out of sessions ("no more sessions" on the host) on a stock sshd."""

    def __init__(self, first: SshConnection, per_connection: int = SESSIONS_PER_CONNECTION) -> None:
        self.connections = [first]
        self.per_connection = per_connection
        self._lock = threading.Lock()

    def transport(self) -> Any:
        """A live transport with a free session, on a new connection when all are busy."""
        with self._lock:
            for conn in self.connections:
                if conn.is_active and _open_channels(conn.transport) < self.per_connection:
                    return conn.transport
            fresh = SshConnection(self.connections[0].endpoint).connect()
            self.connections = [c for c in self.connections if c.is_active] + [fresh]
            return fresh.transport

    def close(self) -> None:
        with self._lock:
            for conn in self.connections[1:]:
                conn.close()
            self.connections = self.connections[:1]


def _open_channels(transport: Any) -> int:
    channels = getattr(transport, "_channels", None)
    try:
        return len(channels.values()) if channels is not None else 0
    except Exception:  # noqa: BLE001 - paramiko internals: assume busy rather than fail
        return SESSIONS_PER_CONNECTION


def docker_client(conn: SshConnection, *, timeout: int = 60) -> Any:
    """A docker-py DockerClient for the engine of `conn`'s host, its HTTP over our SSH transport.

    Checks the engine first (check_docker), so a user without Docker access gets that message
    rather than docker-py's bare "RemoteDisconnected".
    """
    import docker
    from docker.transport.sshconn import SSHHTTPAdapter

    version, address = _engine(conn, 30.0)
    budget = ChannelBudget(conn)
    socket_path = address[len("unix://") :] if address.startswith("unix:///") else None

    class _Sessions:  # what docker-py's SSHConnection asks of a transport: a new session channel
        def open_session(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal socket_path
            transport = budget.transport()
            if socket_path is not None:
                try:
                    return _Connected(open_streamlocal(transport, socket_path, timeout=timeout))
                except Exception as exc:  # noqa: BLE001 - sshd may forbid it: the CLI way still works
                    log.info(
                        "no stream-local forwarding to %s on %s (%s): using docker system dial-stdio",
                        socket_path,
                        conn.endpoint.describe(),
                        exc,
                    )
                    socket_path = None
            return transport.open_session(*args, **kwargs)

    sessions = _Sessions()

    class _OurTransport:  # all SSHConnectionPool asks of a paramiko.SSHClient
        def get_transport(self) -> Any:
            return sessions

        def close(self) -> None:
            """The connection is ours: docker-py does not close it."""

    adapter = SSHHTTPAdapter(f"ssh://{conn.endpoint.host}", timeout=timeout, shell_out=True)
    adapter.max_pool_size = DOCKER_POOL_SIZE
    adapter.ssh_client = _OurTransport()
    # a base_url that is never dialled: the adapter mounted below carries every request
    api = docker.APIClient(base_url="unix:///nonexistent-amlexec", version=version, timeout=timeout)
    api.mount("http+docker://ssh", adapter)
    api.base_url = "http+docker://ssh"
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client


def open_streamlocal(transport: Any, socket_path: str, *, timeout: float = 30.0) -> Any:
    """A channel to a Unix socket of the host (OpenSSH's direct-streamlocal, as `ssh -L x:/path`).

    sshd connects as the SSH user, so the socket's permissions apply as for the docker CLI; no
    process starts on the host (a `docker system dial-stdio` channel starts the CLI: ~10 ms of
    a host's CPU per HTTP connection). paramiko opens only tcpip/x11 forwards, so the open message
    is built here on its Transport's channel bookkeeping (the steps of Transport.open_channel).
    """
    import paramiko
    from paramiko.common import cMSG_CHANNEL_OPEN
    from paramiko.message import Message

    if not transport.is_active():
        raise paramiko.SSHException("SSH session not active")
    with transport.lock:
        window = transport._sanitize_window_size(None)
        packet = transport._sanitize_packet_size(None)
        chanid = transport._next_channel()
        message = Message()
        message.add_byte(cMSG_CHANNEL_OPEN)
        message.add_string("direct-streamlocal@openssh.com")
        message.add_int(chanid)
        message.add_int(window)
        message.add_int(packet)
        message.add_string(socket_path)
        message.add_string("")  # reserved
        message.add_int(0)  # reserved
        channel = paramiko.Channel(chanid)
        transport._channels.put(chanid, channel)
        transport.channel_events[chanid] = opened = threading.Event()
        transport.channels_seen[chanid] = True
        channel._set_transport(transport)
        channel._set_window(window, packet)
    transport._send_user_message(message)
    if not opened.wait(timeout) or not transport.is_active():
        raise transport.get_exception() or paramiko.SSHException(
            f"no channel to {socket_path} within {timeout} s"
        )
    got = transport._channels.get(chanid)
    if got is None:
        raise transport.get_exception() or paramiko.SSHException(
            f"the host refused a channel to {socket_path}"
        )
    return got


class _Connected:
    """A channel already connected to the engine, for docker-py's SSHConnection, which would run
    `docker system dial-stdio` on it: that exec is skipped, everything else is the channel's."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def exec_command(self, command: str) -> None:
        """Nothing to start: the channel is the engine's socket."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)
