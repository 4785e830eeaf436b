"""Environment builds on the real engine: what the built image sees, one build for many asking at
once, nothing left behind by an interrupted build; and the host pip settings a build receives."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.executors import pip_forwarding
from jupyter_amlexec.core.executors.docker_build import BUILD_LABEL, BUILD_NAME_PREFIX
from tests.conftest import require

from .conftest import PYSPARK_IMAGE, has_image
from .test_docker import docker_project

SIX = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"


def test_pip_packages_over_a_pyspark_image_keep_pyspark_usable(
    engine: Any, project: Path, home: Path
) -> None:
    # Given the PySpark image (pyspark in its own venv) and a conda file with a pip package
    require(has_image(engine, PYSPARK_IMAGE), f"the test image {PYSPARK_IMAGE}")
    session = docker_project(project, image=PYSPARK_IMAGE, conda=SIX, framework="PySpark")
    cell = (
        "import six\nfrom pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('six', six.__version__, 'sum', spark.range(11).groupBy().sum('id').collect()[0][0])\n"
        "spark.stop()\n"
    )
    # When a PySpark cell runs in the built environment
    run = session.submit(cell=cell, run_configuration="box").wait(timeout=300)
    # Then both the new package and the image's own pyspark are there
    assert "six 1.16.0 sum 55" in run.logs()


def test_three_prepares_at_once_build_the_environment_once(engine: Any, project: Path, home: Path) -> None:
    # Given an environment no one has built on this engine yet (a forced build first removes any)
    session = docker_project(project, conda=SIX.replace("1.16.0", "1.15.0"))
    first = session.prepare("box", force=True)
    engine.images.remove(first.image, force=True)
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
    assert engine.images.list(filters={"dangling": True, "label": "amlexec.recipe"}) == []


def test_a_build_container_left_by_a_dead_process_is_removed_by_the_next_build(
    engine: Any, project: Path, home: Path
) -> None:
    # Given an ended build container of an environment (its process died before removing it)
    session = docker_project(project, conda=SIX)
    prepared = session.prepare("box")
    tag = engine.images.get(prepared.image).tags[0]
    leftover = engine.containers.create(
        prepared.image, ["true"], name=f"{BUILD_NAME_PREFIX}leftover-{id(tag)}", labels={BUILD_LABEL: tag}
    )
    leftover.start()
    leftover.wait()
    # When that environment is built again
    session.prepare("box", force=True)
    # Then the leftover is gone
    assert [c for c in engine.containers.list(all=True) if c.id == leftover.id] == []


def test_a_cert_line_in_the_pip_config_is_the_bundle_a_build_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\ncert = {bundle}\nindex-url = https://index.example.invalid/simple\n")
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pip_forwarding, "_config_files", lambda: [config])
    files = pip_forwarding.host_pip_files()
    assert files["ca.crt"] == bundle.read_bytes()
    assert "index-url = https://index.example.invalid/simple" in files["pip.conf"].decode()
