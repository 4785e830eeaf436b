"""A small TCP proxy for tests: put it in front of sshd (or a Docker socket) and cut the line.

`TcpProxy(target)` listens on a loopback port and forwards each connection to `target`, a
(host, port) pair or the path of a Unix socket. `cut()` drops every open connection and refuses
new ones (they are accepted and closed at once, as a host that went away mid-handshake);
`restore()` forwards again. `bytes_up` counts what clients sent through it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from pathlib import Path
from types import TracebackType


class TcpProxy:
    """Forward 127.0.0.1:<port> to a TCP address or a Unix socket; cut() and restore() the link."""

    def __init__(self, target: tuple[str, int] | str | Path, listen_host: str = "127.0.0.1") -> None:
        self.target = target
        self._server = socket.create_server((listen_host, 0))
        self._server.settimeout(0.2)  # so close() is noticed by the accept loop
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = False
        self._closed = False
        self.bytes_up = 0
        self.connections = 0
        self._thread = threading.Thread(target=self._accept_loop, name="tcpproxy-accept", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.address[1]

    def _connect_target(self) -> socket.socket:
        if isinstance(self.target, tuple):
            return socket.create_connection(self.target, timeout=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.target))
        return sock

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self._cut or self._closed:
                client.close()
                continue
            try:
                upstream = self._connect_target()
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is client:
                        self.bytes_up += len(data)
                    key.data.sendall(data)
                if self._cut or self._closed:
                    return
        except OSError:
            return
        finally:
            sel.close()
            self._drop(client, upstream)

    def _drop(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            if (client, upstream) in self._pairs:
                self._pairs.remove((client, upstream))
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        """Drop every open connection now and refuse new ones until restore()."""
        self._cut = True
        with self._lock:
            pairs = list(self._pairs)
        for client, upstream in pairs:
            self._drop(client, upstream)

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
