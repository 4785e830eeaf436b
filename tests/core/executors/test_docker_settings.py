"""The Docker settings an executor reads from its .compute file: the engine address (dockerHost,
a remotedocker address, DOCKER_HOST), validation naming file and key, and the engine's timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_amlexec.core.errors import ConfigError, TargetUnavailableError
from jupyter_amlexec.core.executors.docker import DockerExecutor, DockerSettings
from jupyter_amlexec.core.executors.docker.engine import engine_time
from jupyter_amlexec.core.project import ComputeTarget, Project


def target(text: str, tmp_path: Path, name: str = "box") -> ComputeTarget:
    """A target loaded from a real .compute file."""
    path = tmp_path / "aml_config" / f"{name}.compute"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return ComputeTarget.load(path)


def test_docker_host_from_the_compute_file_wins_over_docker_host_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///from/env.sock")
    executor = DockerExecutor(target("type: docker\ndockerHost: tcp://127.0.0.1:2375\n", tmp_path), tmp_path)
    assert executor.docker_host == "tcp://127.0.0.1:2375"
    # and the key survives a round trip of the file untouched
    assert "dockerHost: tcp://127.0.0.1:2375" in executor.target.to_yaml()


def test_without_docker_host_the_environment_then_the_local_socket_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///from/env.sock")
    assert (
        DockerSettings.from_target(target("type: docker\n", tmp_path)).docker_host == "unix:///from/env.sock"
    )
    monkeypatch.delenv("DOCKER_HOST")
    settings = DockerSettings.from_target(target("type: docker\n", tmp_path))
    assert settings.docker_host == "unix:///var/run/docker.sock" and settings.engine_is_local


def test_a_remotedocker_target_is_an_engine_over_ssh_on_its_address(tmp_path: Path) -> None:
    text = "type: remotedocker\naddress: gpu.lab:2222\nusername: ana\nbaseDockerImage: img\n"
    settings = DockerSettings.from_target(target(text, tmp_path, "gpuvm"))
    assert settings.docker_host == "ssh://ana@gpu.lab:2222" and not settings.engine_is_local


@pytest.mark.parametrize("value", ["docker.sock", "tcp://", "'127.0.0.1:2375'", "[unix:///x]", "ftp://h"])
def test_a_bad_docker_host_names_the_file_the_key_and_the_allowed_forms(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as failure:
        DockerExecutor(target(f"type: docker\ndockerHost: {value}\n", tmp_path), tmp_path)
    message = str(failure.value)
    assert "box.compute" in message and "'dockerHost'" in message and "unix://" in message


def test_user_managed_environment_means_no_managed_environment(tmp_path: Path) -> None:
    assert DockerExecutor(target("type: docker\n", tmp_path), tmp_path).needs_managed_environment
    managed = target("type: docker\nuserManagedEnvironment: true\n", tmp_path)
    assert not DockerExecutor(managed, tmp_path).needs_managed_environment


def test_an_engine_that_does_not_answer_at_docker_host_names_the_address_and_the_key(
    tmp_path: Path,
) -> None:
    Project(tmp_path).initialize()
    executor = DockerExecutor(
        target(f"type: docker\ndockerHost: unix://{tmp_path}/none.sock\n", tmp_path), tmp_path
    )
    with pytest.raises(TargetUnavailableError) as failure:
        executor.check()
    assert "none.sock" in str(failure.value) and "dockerHost" in str(failure.value)


def test_engine_timestamps_become_epoch_seconds_and_the_zero_time_none() -> None:
    assert engine_time("2026-12-01T08:00:00.123456789Z") == pytest.approx(1796112000.123456789)
    assert engine_time("2026-12-01T09:00:00+01:00") == 1796112000.0
    assert engine_time("0001-01-01T00:00:00Z") is None
    assert engine_time("") is None and engine_time(None) is None
