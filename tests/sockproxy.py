"""A Unix-socket proxy for tests: put it in front of a real daemon's socket (the Docker engine) and
stop/restart it to make the daemon "go away" for a while, with every open connection cut at once.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType


class UnixSocketProxy:
    """Listens on `listen` and forwards each connection, byte for byte, to the socket at `target`."""

    def __init__(self, listen: Path, target: str) -> None:
        self.listen = listen
        self.target = target
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.accepted = 0  # connections forwarded so far

    @property
    def url(self) -> str:
        return f"unix://{self.listen}"

    def start(self) -> UnixSocketProxy:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listen.unlink(missing_ok=True)
        server.bind(str(self.listen))
        server.listen(64)
        server.settimeout(0.05)
        self._server = server
        self._spawn(self._accept, server)
        return self

    def stop(self) -> None:
        """Close the listening socket and cut every connection: the daemon is gone for clients."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            for sock in self._open:
                _cut(sock)
            self._open.clear()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]
        self.listen.unlink(missing_ok=True)

    def __enter__(self) -> UnixSocketProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                _cut(client)
                continue
            with self._lock:
                if self._server is not server:
                    _cut(client)
                    _cut(upstream)
                    return
                self._open.update((client, upstream))
                self.accepted += 1
            self._spawn(_pump, client, upstream)
            self._spawn(_pump, upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        _cut(sink)


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
