"""Environment builds on the real engine: what the built image sees, one build for many asking at
once, nothing left behind by an interrupted build; and the host pip settings a build receives."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jupyter_amlexec.core.errors import EnvironmentBuildError
from jupyter_amlexec.core.executors.docker import build as docker_build
from jupyter_amlexec.core.executors.docker import pip_forwarding
from jupyter_amlexec.core.executors.docker.build import BUILD_LABEL, BUILD_NAME_PREFIX, ENV_PREFIX
from tests.conftest import require

from .conftest import BASE_IMAGE, PYSPARK_IMAGE, has_image
from .test_docker import docker_project

SIX = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"
TEST_LABELS = {"amlexec.test": "docker_build"}  # on every container these tests make by hand


def _environment_images(client: Any) -> set[str]:
    return {i.id for i in client.images.list(filters={"label": "amlexec.environment"})}


def _dangling(client: Any) -> set[str]:
    return {i.id for i in client.images.list(filters={"dangling": True})}


@pytest.fixture
def built(engine: Any) -> Iterator[Any]:
    """The engine; afterwards the environment images (and their untagged leftovers) and the
    hand-made containers of the test are removed, so a run of these tests leaves the engine as it
    was."""
    images_before = _environment_images(engine)
    dangling_before = _dangling(engine)
    yield engine
    for container in engine.containers.list(all=True, filters={"label": "amlexec.test=docker_build"}):
        container.remove(force=True)
    for image_id in (_environment_images(engine) - images_before) | (_dangling(engine) - dangling_before):
        try:
            engine.images.remove(image_id, force=True)
        except Exception:  # noqa: BLE001 - already gone with its parent
            pass


def _leftover(client: Any, tag: str, state: str) -> Any:
    """A build container of `tag` as an interrupted build leaves it: created, exited or running."""
    command = ["sleep", "300"] if state == "running" else ["true"]
    container = client.containers.create(
        BASE_IMAGE,
        command,
        name=f"{BUILD_NAME_PREFIX}leftover-{state}-{secrets.token_hex(3)}",
        labels={BUILD_LABEL: tag, **TEST_LABELS},
        network_mode="none",
    )
    if state != "created":
        container.start()
    if state == "exited":
        container.wait()
    return container


def _exists(client: Any, container: Any) -> bool:
    return any(c.id == container.id for c in client.containers.list(all=True))


def test_pip_packages_over_a_pyspark_image_keep_pyspark_usable(built: Any, project: Path, home: Path) -> None:
    # Given the PySpark image (pyspark in its own venv) and a conda file with a pip package
    require(has_image(built, PYSPARK_IMAGE), f"the test image {PYSPARK_IMAGE}")
    session = docker_project(project, image=PYSPARK_IMAGE, conda=SIX, framework="PySpark")
    # When the environment is built
    prepared = session.prepare("box", force=True)
    # Then the environment's python imports both the new package and the image's own pyspark
    probe = built.containers.run(
        prepared.image,
        [
            f"{ENV_PREFIX}/bin/python",
            "-c",
            "import six, pyspark; print('six', six.__version__, 'pyspark ok')",
        ],
        entrypoint=[],
        remove=True,
        network_mode="none",
        labels=TEST_LABELS,
    )
    assert b"six 1.16.0 pyspark ok" in probe
    # And a PySpark cell (spark-submit) runs in it
    cell = (
        "import six\nfrom pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('six', six.__version__, 'sum', spark.range(11).groupBy().sum('id').collect()[0][0])\n"
        "spark.stop()\n"
    )
    run = session.submit(cell=cell, run_configuration="box").wait(timeout=300)
    assert "six 1.16.0 sum 55" in run.logs()


def test_three_prepares_at_once_build_the_environment_once(built: Any, project: Path, home: Path) -> None:
    # Given an environment no one has built on this engine yet (a forced build first removes any)
    session = docker_project(project, conda=SIX.replace("1.16.0", "1.15.0"))
    first = session.prepare("box", force=True)
    built.images.remove(first.image, force=True)
    dangling_before = _dangling(built)
    # When three threads (three cells) prepare it at the same moment
    results: list[Any] = []
    logs: list[str] = []
    start = threading.Barrier(3)

    def prepare() -> None:
        start.wait()
        results.append(session.prepare("box", log=logs.append))

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    # Then one of them built it and the other two got that image
    assert sorted(r.built for r in results) == [False, False, True]
    assert len({r.image for r in results}) == 1
    assert sum("Successfully installed six-1.15.0" in line for line in logs) == 1
    # And no untagged image is left from a second build
    assert _dangling(built) <= dangling_before


def test_build_containers_left_by_a_dead_process_are_removed_by_the_next_build(
    built: Any, project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an environment and build containers of it that a killed process left: one that ended,
    # one never started, and one still running (as another process's build would be)
    session = docker_project(project, conda=SIX)
    tag = built.images.get(session.prepare("box").image).tags[0]
    exited, created, running = (_leftover(built, tag, s) for s in ("exited", "created", "running"))
    # When that environment is built again
    session.prepare("box", force=True)
    # Then the ended one is gone; the one created a moment ago may be a build about to start: kept
    assert not _exists(built, exited)
    assert _exists(built, created) and _exists(built, running)
    # And once a created one is old enough to be a leftover, the next build removes it too
    monkeypatch.setattr(docker_build, "STALE_CREATED_SECONDS", -1.0)
    session.prepare("box", force=True)
    assert not _exists(built, created)
    # But never a running one
    assert _exists(built, running)


def test_a_cert_line_in_the_pip_config_is_the_bundle_a_build_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a host pip config with a `cert =` line and an index URL with an encoded password
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    other = tmp_path / "other-ca.pem"
    other.write_text("-----BEGIN CERTIFICATE-----\nOTHER\n-----END CERTIFICATE-----\n")
    config = tmp_path / "pip.conf"
    config.write_text(
        f"[global]\ncert = {bundle}\nindex-url = https://user:p%40ss@index.example.invalid/simple\n"
    )
    for name in ("PIP_CERT", "SSL_CERT_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        monkeypatch.delenv(name, raising=False)
    # (requests' variable is what pip uses only when it has no cert of its own)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setattr(pip_forwarding, "_config_files", lambda: [config])
    # When the build files are made, then the configured bundle and the index go in as written
    files = pip_forwarding.host_pip_files()
    assert files["ca.crt"] == bundle.read_bytes()
    assert "index-url = https://user:p%40ss@index.example.invalid/simple" in files["pip.conf"].decode()
    # And PIP_CERT, as in pip, wins over the config file
    monkeypatch.setenv("PIP_CERT", str(other))
    assert pip_forwarding.host_pip_files()["ca.crt"] == other.read_bytes()


def test_an_install_section_cert_wins_and_a_missing_file_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "install-ca.pem"
    bundle.write_text("install")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\ncert = {tmp_path / 'global-ca.pem'}\n[install]\ncert = {bundle}\n")
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pip_forwarding, "_config_files", lambda: [config])
    assert pip_forwarding.host_ca_bundle() == bundle
    # a cert line naming a file that is not there: the system bundle (or none), never a crash
    config.write_text(f"[global]\ncert = {tmp_path / 'missing.pem'}\n")
    assert pip_forwarding.host_ca_bundle() != tmp_path / "missing.pem"


def test_the_age_of_a_build_container_reads_both_timestamp_forms() -> None:
    """Inspect gives RFC 3339 with nanoseconds, the list API epoch seconds; garbage counts as new
    (a container of unknown age is never taken for a leftover)."""
    ten_minutes_ago = time.time() - 600
    iso = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(ten_minutes_ago))
    for created in (iso, int(ten_minutes_ago)):
        age = docker_build._age_seconds(SimpleNamespace(attrs={"Created": created}))
        assert 595 < age < 610
    assert docker_build._age_seconds(SimpleNamespace(attrs={"Created": "yesterday"})) == 0.0
    assert docker_build._age_seconds(SimpleNamespace(attrs={})) == 0.0


def test_a_failed_build_says_so_with_the_tail_of_the_build_log(built: Any, project: Path, home: Path) -> None:
    # Given a conda file whose pip section names a package no index has
    conda = (
        "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - amlexec-no-such-package-anywhere==0.0.1\n"
    )
    session = docker_project(project, conda=conda)
    # When the environment is prepared
    with pytest.raises(EnvironmentBuildError) as failure:
        session.prepare("box", force=True)
    # Then the error says the build failed, what to fix, and carries pip's own words from the log
    message = str(failure.value)
    assert "failed (exit code 1)" in message and "Fix aml_config/conda_dependencies.yml" in message
    assert "--- build log (tail) ---" in message
    assert "amlexec-no-such-package-anywhere" in failure.value.log_tail
    assert "No matching distribution found" in failure.value.log_tail


def test_a_workbench_conda_file_builds_with_pip_on_an_image_without_conda(
    built: Any, project: Path, home: Path
) -> None:
    # Given a Workbench-style conda file listing packages under dependencies: (one under a conda name)
    conda = "name: env\ndependencies:\n  - python=3.11\n  - six=1.16\n  - ruamel_yaml\n"
    session = docker_project(project, conda=conda)
    # When it runs on the base image, which has no conda
    cell = "import six, ruamel.yaml\nprint('six', six.__version__, 'ruamel ok')\n"
    run = session.submit(cell=cell, run_configuration="box").wait(timeout=300)
    # Then pip installed them, renamed where PyPI's name differs, and the build log says so
    assert "six 1.16.0 ruamel ok" in run.logs()
    control = run.logs("control")
    assert "installed with pip" in control and "ruamel.yaml" in control


def test_a_package_only_conda_has_is_named_before_anything_is_installed(
    built: Any, project: Path, home: Path
) -> None:
    conda = "name: env\ndependencies:\n  - python=3.11\n  - six\n  - cudatoolkit=11.8\n"
    session = docker_project(project, conda=conda)
    with pytest.raises(EnvironmentBuildError, match="cudatoolkit") as caught:
        session.prepare("box", force=True)
    assert "six" not in str(caught.value).split("(")[1].split(")")[0]  # only the conda-only one is named
