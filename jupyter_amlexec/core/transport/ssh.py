"""SSH connections to remote hosts (paramiko): connect, verify the host key, authenticate, run commands.

One `SshConnection` per (user, host, port) is shared by every run of a process through a
`ConnectionPool`, with keepalives; a command is one channel on it. paramiko is imported inside
functions so `import jupyter_amlexec` stays fast. Failures of the link itself raise TransportError
(worth a retry, see retry.py); refusals (host key, authentication) raise errors that are not.
"""

from __future__ import annotations

import logging
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import TransportError
from .auth import authenticate
from .hostkeys import KnownHosts
from .sshconfig import Endpoint

log = logging.getLogger(__name__)

Command = Sequence[str] | str  # an argv (quoted for the remote shell) or a shell command line
Sink = Callable[[bytes], object] | BinaryIO
# stdin: bytes, a readable file, or a producer called (on the stdin thread) with a write function
Stdin = bytes | BinaryIO | Callable[[Callable[[bytes], None]], None]
CONNECT_TIMEOUT = 10.0
KEEPALIVE_SECONDS = 15
# Commands at once on one connection. sshd refuses channels beyond its MaxSessions (10 by
# default) with "administratively prohibited": more runs than this wait for a free one instead.
MAX_SESSIONS = 8
# commands that last as long as a run (a streamed log) take a slot first: at most this many at once,
# so short commands (a push, a cancel, another run's start) always find a free session
MAX_LONG_COMMANDS = MAX_SESSIONS // 2
_CHUNK = 256 * 1024
_RSA_ALGORITHMS = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]


@dataclass(frozen=True)
class CommandResult:
    """A finished remote command: exit code, the output not sent to a sink, bytes sent on stdin."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    bytes_sent: int = 0

    def text(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", errors="replace")


def as_command_line(command: Command) -> str:
    """An argv quoted for the remote POSIX shell; a string is taken as a command line as is."""
    return command if isinstance(command, str) else shlex.join(command)


class SshConnection:
    """An authenticated SSH transport to one endpoint (and its jump hosts); thread-safe."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = CONNECT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._transports: list[Any] = []  # jump hosts first, the endpoint's own transport last
        self._home: str | None = None
        self._lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self.long_commands = threading.BoundedSemaphore(MAX_LONG_COMMANDS)  # see MAX_LONG_COMMANDS

    # --- connecting -------------------------------------------------------------------------

    def connect(self) -> SshConnection:
        """Open the transport (through each ProxyJump hop), verify host keys, authenticate."""
        with self._lock:
            if self.is_active:
                return self
            self._close_transports()
            sock: Any = None
            try:
                for hop in (*self.endpoint.jumps, self.endpoint):
                    if sock is None:
                        sock = self._open_socket(hop)
                    transport = self._handshake(hop, sock)
                    self._transports.append(transport)
                    self._authenticate(transport, hop)
                    sock = None
                    if hop is not self.endpoint:
                        sock = self._open_forward(transport, self._next_hop(hop))
            except BaseException:
                if sock is not None:
                    sock.close()
                self._close_transports()
                raise
            self._transports[-1].set_keepalive(KEEPALIVE_SECONDS)
            log.debug("ssh: connected to %s", self.endpoint.describe())
            return self

    def _authenticate(self, transport: Any, hop: Endpoint) -> None:
        import paramiko

        try:
            authenticate(transport, hop)
        except (paramiko.SSHException, EOFError, OSError) as exc:  # refusals are raised as ours
            raise TransportError(
                f"The SSH connection to {hop.host}:{hop.port} dropped while authenticating ({exc})."
            ) from exc

    def _next_hop(self, hop: Endpoint) -> Endpoint:
        chain = (*self.endpoint.jumps, self.endpoint)
        return chain[chain.index(hop) + 1]

    def _open_socket(self, hop: Endpoint) -> socket.socket:
        try:
            sock = socket.create_connection((hop.host, hop.port), timeout=self.timeout)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TransportError(
                f"Cannot reach the SSH host {hop.host} port {hop.port} ({reason}). Check that the host "
                f"is up, the address and port in the target (or ~/.ssh/config) are right, and sshd listens."
            ) from exc
        # SSH's small request/reply packets (a channel open, an exec) would otherwise wait for the
        # peer's delayed ACK: ~40 ms per command, more than the command itself often takes
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open_forward(self, transport: Any, nxt: Endpoint) -> Any:
        import paramiko

        try:
            return transport.open_channel(
                "direct-tcpip", (nxt.host, nxt.port), ("127.0.0.1", 0), timeout=self.timeout
            )
        except (paramiko.SSHException, OSError) as exc:
            raise TransportError(
                f"The jump host {transport.getpeername()[0]} could not open a connection to "
                f"{nxt.host}:{nxt.port} ({exc}). Check the ProxyJump line and that the jump host may "
                f"forward (AllowTcpForwarding)."
            ) from exc

    def _handshake(self, hop: Endpoint, sock: Any) -> Any:
        import paramiko

        known = KnownHosts(hop.known_hosts)
        transport = paramiko.Transport(sock)
        preferred = [a for t in known.preferred_types(hop.host, hop.port) for a in _algorithms(t)]
        if preferred:
            options = transport.get_security_options()
            offered = list(options.key_types)
            options.key_types = [a for a in preferred if a in offered] + [
                a for a in offered if a not in preferred
            ]
        try:
            transport.start_client(timeout=self.timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            transport.close()
            raise TransportError(
                f"SSH handshake with {hop.host}:{hop.port} failed ({exc or type(exc).__name__}): is "
                f"that port an SSH server?"
            ) from exc
        key = transport.get_remote_server_key()
        try:
            known.verify(hop.host, hop.port, key.get_name(), key.asbytes())
        except BaseException:
            transport.close()
            raise
        return transport

    @property
    def transport(self) -> Any:
        """The endpoint's paramiko Transport, for clients that open channels themselves (docker-py)."""
        if not self._transports:
            self.connect()
        return self._transports[-1]

    @property
    def is_active(self) -> bool:
        """True while the transport to the endpoint is up (False before connect and after a drop)."""
        return bool(self._transports) and bool(self._transports[-1].is_active())

    def close(self) -> None:
        """Close the transport and its jump hosts' (commands running over there go on)."""
        with self._lock:
            self._close_transports()

    def _close_transports(self) -> None:
        for transport in reversed(self._transports):
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - a link already cut (a jump host's channel) has nothing to close
                log.debug("closing the SSH transport to %s", self.endpoint.describe(), exc_info=True)
        self._transports = []

    # --- commands ---------------------------------------------------------------------------

    @property
    def home(self) -> str:
        """The remote user's home folder (asked once per connection)."""
        if self._home is None:
            result = self.run('printf %s "$HOME"', timeout=self.timeout)
            self._home = result.text()
        return self._home

    def run(
        self,
        command: Command,
        *,
        stdin: Stdin | None = None,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
        timeout: float | None = 60.0,
    ) -> CommandResult:
        """Run a command on the host and wait for it: exit code and output.

        `stdin` (bytes, a file, or a producer given a write function) is sent and then closed;
        `stdout`/`stderr` sinks (callables or writable files) get
        the output as it arrives (a streaming exec) instead of it being kept in the result. A
        command that outlives `timeout` seconds is abandoned (its channel closed): TransportError.
        """
        if not self._sessions.acquire(timeout=timeout if timeout is not None else -1):
            raise TransportError(
                f"No free SSH session on {self.endpoint.describe()} within {timeout:.0f} s "
                f"({MAX_SESSIONS} commands at once are running on it)."
            )
        try:
            channel = self._open_channel()
        except BaseException:
            self._sessions.release()
            raise
        try:
            channel.exec_command(as_command_line(command))
            feeder = _Feeder(channel, stdin)
            out, err = _Collector(stdout), _Collector(stderr)
            self._pump(channel, out, err, timeout, command)
            _await_close(channel)
            sent = feeder.finish()
            return CommandResult(channel.recv_exit_status(), out.value(), err.value(), sent)
        except TransportError:
            raise
        except (OSError, EOFError) as exc:
            raise self._lost(exc) from exc
        finally:
            channel.close()
            self._sessions.release()

    def _open_channel(self) -> Any:
        import paramiko

        if not self._transports:
            self.connect()
        elif not self.is_active:
            raise self._lost(None)  # reconnecting is the pool's (and retry's) decision
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                return self._transports[-1].open_session(timeout=self.timeout)
            except paramiko.SSHException as exc:
                # a refusal (ChannelException; paramiko may report a concurrent one as a bare
                # "Unable to open channel") while the link stays up: sshd frees a finished
                # session a moment after its close (MaxSessions), so wait a bit
                if not self.is_active:
                    raise self._lost(exc) from exc
                if time.monotonic() + delay > deadline:
                    raise TransportError(
                        f"{self.endpoint.describe()} refused a new SSH session for {self.timeout:.0f} s "
                        f"({exc}); its sshd may allow fewer than {MAX_SESSIONS} at once (MaxSessions)."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except (OSError, EOFError) as exc:
                raise self._lost(exc) from exc

    def _pump(
        self, channel: Any, out: _Collector, err: _Collector, timeout: float | None, cmd: Command
    ) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            busy = False
            if channel.recv_ready():
                out.add(channel.recv(_CHUNK))
                busy = True
            if channel.recv_stderr_ready():
                err.add(channel.recv_stderr(_CHUNK))
                busy = True
            if busy:
                continue
            if channel.exit_status_ready() and (channel.eof_received or channel.closed):
                if channel.exit_status == -1 and not self.is_active:
                    raise self._lost(None)  # paramiko wakes waiters with -1 when the link dies
                return
            if not self.is_active or channel.closed:
                raise self._lost(None)
            if deadline is not None and time.monotonic() > deadline:
                raise TransportError(
                    f"The command `{as_command_line(cmd)[:200]}` on {self.endpoint.describe()} did not "
                    f"finish within {timeout:.0f} s; its channel was closed."
                )
            select.select([channel], [], [], 0.25)

    def _lost(self, exc: BaseException | None) -> TransportError:
        why = f" ({exc})" if exc is not None and str(exc) else ""
        return TransportError(f"The SSH connection to {self.endpoint.describe()} was lost{why}.")


def _await_close(channel: Any, grace: float = 2.0) -> None:
    """Wait briefly for the host's own close of a finished channel: sshd counts the session
    (MaxSessions) until then, so a new one opened at once could be refused."""
    deadline = time.monotonic() + grace
    while not channel.closed and time.monotonic() < deadline:
        select.select([channel], [], [], 0.05)


def _algorithms(key_type: str) -> list[str]:
    return _RSA_ALGORITHMS if key_type == "ssh-rsa" else [key_type]


class _Collector:
    """Output of one stream: kept, or handed to a sink as it arrives."""

    def __init__(self, sink: Sink | None) -> None:
        self._parts: list[bytes] = []
        write = getattr(sink, "write", None)
        self._sink: Callable[[bytes], object] | None = write if write is not None else sink  # type: ignore[assignment]

    def add(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink(data)
        else:
            self._parts.append(data)

    def value(self) -> bytes:
        return b"".join(self._parts)


class _Feeder:
    """Writes stdin on its own thread, so a command's output never waits for its input (no deadlock)."""

    def __init__(self, channel: Any, stdin: Stdin | None) -> None:
        self._channel = channel
        self._stdin = stdin
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._feed, name="amlexec-ssh-stdin", daemon=True)
        self._thread.start()

    def _send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)  # in chunks: paramiko's sendall re-slices what is left each time
        for start in range(0, len(view), _CHUNK):
            self._channel.sendall(view[start : start + _CHUNK])
        self.sent += len(view)

    def _feed(self) -> None:
        try:
            if isinstance(self._stdin, bytes | bytearray):
                self._send(self._stdin)
            elif callable(self._stdin):
                self._stdin(self._send)
            elif self._stdin is not None:
                while chunk := self._stdin.read(_CHUNK):
                    self._send(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread by finish()
            self.error = exc
        try:
            self._channel.shutdown_write()  # also after a failed producer: the command sees the end
        except (OSError, EOFError):
            pass

    def finish(self) -> int:
        self._thread.join()
        if self.error is not None and not isinstance(self.error, OSError | EOFError):
            raise self.error
        return self.sent


class ConnectionPool:
    """One connection per (user, host, port), reused across runs; reconnects when a link dropped."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str, int], SshConnection] = {}
        self._lock = threading.Lock()

    def get(self, endpoint: Endpoint) -> SshConnection:
        """The live connection for this endpoint, made (or remade) if needed."""
        with self._lock:
            conn = self._connections.get(endpoint.key)
            # an authenticated link is reused even if the endpoint was resolved differently
            if conn is None or (conn.endpoint != endpoint and not conn.is_active):
                if conn is not None:
                    conn.close()
                conn = self._connections[endpoint.key] = SshConnection(endpoint)
        return conn.connect()

    def discard(self, endpoint: Endpoint) -> None:
        """Drop (and close) the connection of an endpoint: the next get() connects afresh."""
        with self._lock:
            conn = self._connections.pop(endpoint.key, None)
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        """Close every connection of the pool (at exit, or in tests)."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            conn.close()


_SHARED: list[ConnectionPool] = []
_SHARED_LOCK = threading.Lock()


def shared_pool() -> ConnectionPool:
    """The process's pool: every target naming the same host shares its one connection."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(ConnectionPool())
        return _SHARED[0]
