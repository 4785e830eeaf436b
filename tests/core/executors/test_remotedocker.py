"""The `remotedocker` target: the real Docker engine reached as a remote host's engine through a real
sshd (scripts/infra/sshd.sh: user amlexec-ssh is in group docker, amlexec-nodocker is not)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import TargetUnavailableError
from jupyter_amlexec.core.project import Project
from jupyter_amlexec.core.transport.ssh import shared_pool
from tests.core.transport.conftest import SshHosts

from .conftest import BASE_IMAGE, NETWORK

SIX = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"


@pytest.fixture(autouse=True)
def _fresh_pool() -> Iterator[None]:
    yield
    shared_pool().close_all()


def _project(root: Path, hosts: SshHosts, *, user: str | None = None, **settings: Any) -> Session:
    host, port = hosts.hosts[0]
    project = Project(root)
    project.initialize()
    project.attach_target(
        "gpuvm",
        "remotedocker",
        address=f"{host}:{port}",
        username=user or hosts.user,
        key_file=str(hosts.key),
        base_docker_image=BASE_IMAGE,
        network_mode=NETWORK,
        force=True,
        **settings,
    )
    project.write_run_configuration(replace(project.run_configuration("gpuvm"), framework="Python"))
    (root / "aml_config" / "conda_dependencies.yml").write_text(SIX)
    return Session.open(root, Path(os.environ["AMLEXEC_HOME"]))


def test_a_run_on_a_remote_engine_with_its_environment_built_there(
    engine: Any, project: Path, home: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = _project(project, ssh_hosts, native_shared_directory="~/.azureml/share")
    cell = (
        "import os, six, amlexec_run\n"
        "print('six', six.__version__, 'in', os.getcwd(), flush=True)\n"
        "amlexec_run.log('ok', 1)\n"
        "open(os.environ['AZUREML_NATIVE_SHARE_DIRECTORY'] + 'shared.txt', 'w').write('kept')\n"
        "os.makedirs('outputs', exist_ok=True)\nopen('outputs/r.txt', 'w').write('from the remote engine')\n"
    )
    run = session.submit(cell=cell, run_configuration="gpuvm").wait(timeout=300)
    assert "six 1.16.0 in /azureml-run" in run.logs()
    assert run.metrics == {"ok": 1}
    assert (run.outputs_dir / "r.txt").read_text() == "from the remote engine"
    # nativeSharedDirectory is a folder of the remote host, under the SSH user's home there
    assert Path(f"/home/{ssh_hosts.user}/.azureml/share/proj/shared.txt").read_text() == "kept"
    # a second run reuses the environment image built on that engine
    again = session.submit(
        cell="import six\nprint('again', six.__version__)\n", run_configuration="gpuvm"
    ).wait(timeout=300)
    assert "again 1.16.0" in again.logs() and "ready (cached)" in again.logs("control")


def test_a_user_without_docker_access_gets_the_fix(
    engine: Any, project: Path, home: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = _project(project, ssh_hosts, user=os.environ["AMLEXEC_TEST_SSH_NODOCKER_USER"])
    with pytest.raises(TargetUnavailableError, match="usermod -aG docker"):
        session.check("gpuvm")


def test_cancel_removes_the_container_on_the_remote_engine(
    engine: Any, project: Path, home: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = _project(project, ssh_hosts)
    run = session.submit(
        cell="import time\nprint('started', flush=True)\ntime.sleep(300)\n", run_configuration="gpuvm"
    )
    deadline = time.monotonic() + 300
    while "started" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    container = str(run.record.handle["container_id"])  # type: ignore[index]
    run.cancel()
    run.wait(raise_on_failure=False)
    assert run.status.value == "Canceled"
    assert not [c for c in engine.containers.list(all=True) if c.id == container]
