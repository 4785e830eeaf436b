"""The real Docker engine reached through a real sshd host, as the docker-group and a plain user."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from jupyter_amlexec.core.errors import TargetUnavailableError
from jupyter_amlexec.core.transport.dockerssh import check_docker, docker_client
from jupyter_amlexec.core.transport.ssh import SshConnection
from tests.conftest import require

Connect = Callable[..., SshConnection]
IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
LABEL = {"amlexec.test": "transport-dockerssh"}


@pytest.fixture
def engine_conn(connect: Connect) -> SshConnection:
    conn = connect(0)
    answer = conn.run(["docker", "image", "inspect", "--format", "ok", IMAGE])
    require(answer.exit_code == 0 and answer.text().strip() == "ok", f"the engine with {IMAGE}, via sshd")
    return conn


def test_a_container_runs_on_the_engine_of_the_ssh_host(engine_conn: SshConnection) -> None:
    # Given a docker-py client whose HTTP goes over our SSH connection
    client = docker_client(engine_conn)
    try:
        assert client.ping()
        # When a container runs there, then its output comes back and nothing of it is left
        output = client.containers.run(
            IMAGE, ["python3", "-c", "print(6 * 7)"], remove=True, network_mode="none", labels=LABEL
        )
        assert output == b"42\n"
        assert client.containers.list(all=True, filters={"label": "amlexec.test=transport-dockerssh"}) == []
    finally:
        client.close()


def test_a_user_without_docker_access_is_told_the_fix(connect: Connect) -> None:
    user = os.environ.get("AMLEXEC_TEST_SSH_NODOCKER_USER")
    require(bool(user), "the test user without Docker access (AMLEXEC_TEST_SSH_NODOCKER_USER)")
    conn = connect(0, username=user)
    with pytest.raises(TargetUnavailableError) as error:
        check_docker(conn)
    message = str(error.value)
    assert f"The user {user} may not use Docker" in message and f"usermod -aG docker {user}" in message
    with pytest.raises(TargetUnavailableError, match="may not use Docker"):
        docker_client(conn)
