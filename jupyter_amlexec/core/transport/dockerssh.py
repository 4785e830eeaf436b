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

from typing import Any

from ..errors import TargetUnavailableError
from .ssh import SshConnection

DOCKER_POOL_SIZE = 4  # HTTP connections (= SSH channels) kept per client


def check_docker(conn: SshConnection, *, timeout: float = 30.0) -> str:
    """The engine's API version, asked through the host's docker CLI as docker-py will.

    Each way this fails on a real host has its own message and fix: no docker CLI on the PATH of
    a non-interactive SSH session, the user not allowed on the engine's socket, no engine.
    """
    result = conn.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], timeout=timeout)
    out = result.text().strip()
    err = result.stderr.decode("utf-8", "replace").strip()
    user, where = conn.endpoint.username, conn.endpoint.describe()
    if result.exit_code == 0 and out:
        return out
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


def docker_client(conn: SshConnection, *, timeout: int = 60) -> Any:
    """A docker-py DockerClient for the engine of `conn`'s host, its HTTP over our SSH transport.

    Checks the engine first (check_docker), so a user without Docker access gets that message
    rather than docker-py's bare "RemoteDisconnected".
    """
    import docker
    from docker.transport.sshconn import SSHHTTPAdapter

    version = check_docker(conn)

    class _OurTransport:  # all SSHConnectionPool asks of a paramiko.SSHClient
        def get_transport(self) -> Any:
            return conn.transport

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
