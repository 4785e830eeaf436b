"""A real jupyter server (a subprocess, token auth on, our extension loaded) and a checked client.

One server per test module: each test works in its own project folder under the server's root,
and every response goes through openapi_check before the test sees it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from . import openapi_check

TOKEN = "amlexec-server-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str  # base url, ending in /
    root: Path
    home: Path
    routes: list[dict[str, Any]]
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Api:
    """Calls to /jupyter-amlexec/api/ with the token; every answer checked against openapi.yaml."""

    server: Server
    token: str | None = TOKEN

    def url(self, path: str) -> str:
        return f"{self.server.url}jupyter-amlexec/api/{path}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token is not None else {}

    def call(self, method: str, path: str, *, check: bool = True, **kwargs: Any) -> requests.Response:
        resp = requests.request(method, self.url(path), headers=self.headers(), timeout=60, **kwargs)
        if check:
            openapi_check.check_response(
                method,
                resp.request.path_url.split("?")[0],
                resp.status_code,
                resp.headers.get("Content-Type", ""),
                resp.content,
            )
        return resp

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def events(
        self, method: str, path: str, *, prepare: bool = False, **kwargs: Any
    ) -> Iterator[tuple[str, Any]]:
        """Server-sent events of a streaming route, each checked against the spec, as they arrive."""
        with requests.request(
            method, self.url(path), headers=self.headers(), stream=True, timeout=120, **kwargs
        ) as resp:
            openapi_check.check_response(
                method,
                resp.request.path_url.split("?")[0],
                resp.status_code,
                resp.headers.get("Content-Type", ""),
                b"" if resp.ok else resp.content,
            )
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            name, data = None, []
            for line in resp.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and name is not None:
                    doc = json.loads("\n".join(data))
                    openapi_check.check_event(name, doc, prepare=prepare)
                    yield name, doc
                    name, data = None, []


def start_server(tmp: Path, *extra_args: str) -> Server:
    root, home = tmp / "root", tmp / "home"
    root.mkdir()
    port = free_port()
    routes_file = tmp / "routes.json"
    log_path = tmp / "server.log"
    env = {
        **os.environ,
        "AMLEXEC_HOME": str(home),
        "AMLEXEC_ROUTES_FILE": str(routes_file),
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.server.launch",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--no-browser",
            "--allow-root",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            '--ServerApp.jpserver_extensions={"jupyter_amlexec": True}',
            *extra_args,
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=open(log_path, "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter server exited: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(url + "api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"jupyter server did not answer: {log_path.read_text()[-3000:]}")
    routes = json.loads(routes_file.read_text())
    return Server(url, root, home, routes, process, log_path)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("jupyter-server"))
    yield srv
    stop_server(srv)


@pytest.fixture
def api(server: Server) -> Api:
    return Api(server)


@pytest.fixture
def project_dir(server: Server, request: pytest.FixtureRequest) -> Path:
    """A fresh project folder under the server's root, named after the test."""
    path = server.root / request.node.name.replace("[", "_").replace("]", "")
    path.mkdir()
    return path
