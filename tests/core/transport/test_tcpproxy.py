"""The tests' TCP proxy in front of a Unix socket (the Docker engine's): forwards, cuts, restores."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.conftest import require
from tests.tcpproxy import TcpProxy

DOCKER_SOCKET = Path(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://"))


def ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def test_the_proxy_forwards_to_a_unix_socket_and_can_cut_the_line() -> None:
    require(DOCKER_SOCKET.is_socket(), f"the Docker engine's socket {DOCKER_SOCKET}")
    with TcpProxy(DOCKER_SOCKET) as proxy:
        # Given the engine's API reached through the proxy
        assert ping(proxy.port).endswith(b"\r\n\r\nOK")
        # When the line is cut, then a request gets nothing back
        proxy.cut()
        try:
            reply = ping(proxy.port)
        except OSError:  # reset while sending: as good as no reply
            reply = b""
        assert reply == b""
        # and once restored, the API answers again
        proxy.restore()
        assert ping(proxy.port).endswith(b"\r\n\r\nOK")
        assert proxy.connections == 2
