"""Fixtures for executor tests: the real Docker engine that scripts/test.sh starts, and leak checks.

Under CI a missing engine or test image fails the test (tests.conftest.require); elsewhere it skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.executors.docker.build import BUILD_NAME_PREFIX
from jupyter_amlexec.core.executors.docker.container import HOME_LABEL, home_label
from tests.conftest import require

BASE_IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
PYSPARK_IMAGE = os.environ.get("AMLEXEC_TEST_PYSPARK_IMAGE", "amlexec-test/pyspark:3.11")
NETWORK = os.environ.get("AMLEXEC_TEST_NETWORK_MODE", "host")


def has_image(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:  # noqa: BLE001 - not found, or any engine error: not usable
        return False


def run_containers(client: Any, run_id: str | None = None, home: Path | None = None) -> list[Any]:
    """Containers of our runs (all, one run's, or one amlexec home's), found by their labels."""
    labels = [f"amlexec.run_id={run_id}" if run_id else "amlexec.run_id"]
    if home is not None:
        labels.append(f"{HOME_LABEL}={home_label(home)[HOME_LABEL]}")
    return list(client.containers.list(all=True, filters={"label": labels}))


def build_containers(client: Any, home: Path | None = None) -> list[Any]:
    """Environment-build containers (all, or those of one amlexec home)."""
    filters: dict[str, object] = {"name": BUILD_NAME_PREFIX}
    if home is not None:
        filters["label"] = f"{HOME_LABEL}={home_label(home)[HOME_LABEL]}"
    return list(client.containers.list(all=True, filters=filters))


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A docker-py client on the engine; fails under CI when there is none."""
    client = None
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no engine
        require(False, f"a Docker engine ({exc})")
    require(has_image(client, BASE_IMAGE), f"the test image {BASE_IMAGE}")
    return client


@pytest.fixture
def engine(docker_client: Any, home: Path) -> Iterator[Any]:
    """The engine, checked after the test: no run or build container of the test's amlexec home is
    left behind. Only that home's: the engine is shared with other test runs, whose containers
    are none of this test's business (removing them would break those runs)."""
    yield docker_client
    leaked = run_containers(docker_client, home=home) + build_containers(docker_client, home=home)
    for container in leaked:
        container.remove(force=True)
    assert not leaked, f"containers left behind: {[(c.name, c.labels) for c in leaked]}"


# The real sshd hosts of scripts/infra/sshd.sh, for the remote executors' tests.
from tests.core.transport.conftest import ssh_home, ssh_hosts  # noqa: E402, F401
