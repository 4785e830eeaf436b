"""Measure a warm container run on a Docker engine reached over SSH, four ways, side by side.

Not a test (pytest does not collect it): it decides the remote-docker design. Needs the sshd hosts
of scripts/infra/sshd.sh (their AMLEXEC_TEST_SSH_* variables), the docker-group test user and the
test image on the engine. Run: `.venv/bin/python -m tests.core.transport.measure_docker_over_ssh`.

1. docker-py `ssh://` (its own paramiko client; one `docker system dial-stdio` channel per HTTP
   connection), client made once;
2. docker-py over OUR pooled SshConnection (the same dial-stdio channels, opened on our transport);
3. `docker run --rm` through our connection (`ssh host docker run ...`: the physical limit);
4. docker-py on the local socket (no SSH at all).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
LABELS = {"amlexec.measure": "docker-over-ssh"}
ARGV = ["python3", "-c", "print(1)"]


def over_our_connection(conn: Any) -> Any:
    """A DockerClient whose HTTP connections are dial-stdio channels of our SshConnection."""
    import docker
    from docker.transport.sshconn import SSHHTTPAdapter

    class _Shim:  # what SSHConnectionPool asks of a paramiko.SSHClient
        def get_transport(self) -> Any:
            return conn._transports[-1]

        def close(self) -> None:
            pass

    adapter = SSHHTTPAdapter(f"ssh://{conn.endpoint.host}", shell_out=True)
    adapter.ssh_client = _Shim()
    api = docker.APIClient(base_url="unix:///var/run/docker.sock", version="1.41")
    api.mount("http+docker://ssh", adapter)
    api.base_url = "http+docker://ssh"
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client


def timed(label: str, action: Callable[[], object], n: int) -> tuple[str, float, float]:
    action()  # warm: image layers cached, first HTTP connection open
    times = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return label, statistics.median(times), min(times)


def main(n: int = 10) -> None:
    import docker

    from jupyter_amlexec.core.transport.ssh import SshConnection
    from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint

    host, port = os.environ["AMLEXEC_TEST_SSH_HOSTS"].split()[0].rsplit(":", 1)
    user, key = os.environ["AMLEXEC_TEST_SSH_USER"], os.environ["AMLEXEC_TEST_SSH_KEY"]
    with tempfile.TemporaryDirectory() as home:
        os.environ["HOME"] = home
        (Path(home) / ".ssh").mkdir()
        (Path(home) / ".ssh" / "known_hosts").write_text(
            Path(os.environ["AMLEXEC_TEST_SSH_KNOWN_HOSTS"]).read_text()
        )
        (Path(home) / ".ssh" / "config").write_text(f"Host {host}\n  IdentityFile {key}\n")
        started = time.perf_counter()
        conn = SshConnection(
            resolve_endpoint(SshSettings(f"{host}:{port}", username=user, key_file=key))
        ).connect()
        ours_connect = time.perf_counter() - started
        started = time.perf_counter()
        sshpy = docker.DockerClient(base_url=f"ssh://{user}@{host}:{port}", version="1.41")
        sshpy_connect = time.perf_counter() - started
        ours, local = over_our_connection(conn), docker.DockerClient(base_url="unix:///var/run/docker.sock")

        def run_with(client: Any) -> Callable[[], object]:
            return lambda: client.containers.run(IMAGE, ARGV, remove=True, network_mode="none", labels=LABELS)

        cli = [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--label",
            "amlexec.measure=docker-over-ssh",
            IMAGE,
            *ARGV,
        ]
        rows = [
            timed("docker-py ssh:// (own paramiko client)", run_with(sshpy), n),
            timed("docker-py over our pooled SshConnection", run_with(ours), n),
            timed("ssh host docker run --rm (our connection)", lambda: conn.run(cli), n),
            timed("docker-py, local socket (no SSH)", run_with(local), n),
        ]
        ping = [timed(f"ping: {name}", c.ping, n) for name, c in (("ssh://", sshpy), ("ours", ours))]
        conn.close()
        sshpy.close()
    print(f"connect: ours {ours_connect * 1000:.0f} ms, docker-py ssh:// {sshpy_connect * 1000:.0f} ms")
    limit = rows[2][1]
    for label, median, best in rows + ping:
        print(
            f"{label:48s} median {median * 1000:7.1f} ms  best {best * 1000:7.1f} ms  {median / limit:5.2f}x"
        )


if __name__ == "__main__":
    main()
