"""Runs in real containers on the Docker engine that scripts/test.sh starts (never mocked)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import EnvironmentBuildError, RunFailedError
from jupyter_amlexec.core.models import RunStatus
from jupyter_amlexec.core.project import Project
from tests.conftest import require

BASE_IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
PYSPARK_IMAGE = os.environ.get("AMLEXEC_TEST_PYSPARK_IMAGE", "amlexec-test/pyspark:3.11")
NETWORK = os.environ.get("AMLEXEC_TEST_NETWORK_MODE", "host")


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no engine
        require(False, f"a Docker engine ({exc})")
    require(_has_image(client, BASE_IMAGE), f"the test image {BASE_IMAGE}")
    yield client
    leaked = client.containers.list(all=True, filters={"label": "amlexec.build"})
    assert not leaked, f"build containers left behind: {[c.name for c in leaked]}"


def _has_image(client, tag: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        client.images.get(tag)
        return True
    except Exception:  # noqa: BLE001
        return False


def _containers_of(client, run_id: str) -> list:  # type: ignore[no-untyped-def]
    return client.containers.list(all=True, filters={"label": f"amlexec.run_id={run_id}"})


def docker_project(
    root: Path, *, image: str = BASE_IMAGE, conda: str | None = None, framework: str = "Python"
) -> Session:
    project = Project(root)
    project.initialize()
    project.attach_target("box", "docker", base_docker_image=image, network_mode=NETWORK, force=True)
    rc = project.run_configuration("box")
    from dataclasses import replace

    project.write_run_configuration(replace(rc, framework=framework))
    conda_file = root / "aml_config" / "conda_dependencies.yml"
    conda_file.write_text(conda if conda is not None else "name: env\ndependencies:\n  - python=3.11\n")
    return Session.open(root, Path(os.environ["AMLEXEC_HOME"]))


def test_cell_runs_in_a_container_with_args_env_metrics_outputs(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    # Given a docker target and a cell that reads its arguments and environment
    session = docker_project(project)
    cell = (
        "import os, sys, amlexec_run\n"
        "print('in container', os.path.exists('/.dockerenv'), sys.argv[1:], os.environ['COLOUR'])\n"
        "amlexec_run.log('accuracy', 0.91)\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.bin', 'wb').write(b'\\x00' * 1000)\n"
    )
    # When it is submitted to the docker target
    run = session.submit(
        cell=cell, run_configuration="box", arguments=["--lr", "0.1"], env={"COLOUR": "blue green"}
    ).wait()
    # Then it ran inside a container, with everything intact, and the container is gone
    assert "in container True ['--lr', '0.1'] blue green" in run.logs()
    assert run.metrics == {"accuracy": 0.91}
    assert run.outputs == ["model.bin"] and (run.outputs_dir / "model.bin").stat().st_size == 1000
    assert _containers_of(engine, run.id) == []


def test_failing_script_reports_exit_code_and_log(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    session = docker_project(project)
    (project / "bad.py").write_text("import sys\nprint('going down')\nsys.exit(7)\n")
    run = session.submit(script="bad.py", run_configuration="box")
    with pytest.raises(RunFailedError) as failure:
        run.wait()
    assert failure.value.exit_code == 7 and "going down" in str(failure.value)
    assert _containers_of(engine, run.id) == []


def test_cancel_stops_and_removes_the_container(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    session = docker_project(project)
    run = session.submit(
        cell="import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n", run_configuration="box"
    )
    deadline = time.monotonic() + 60
    while "sleeping" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _containers_of(engine, run.id), "the run should have a container while it runs"
    run.cancel()
    run.wait(timeout=60, raise_on_failure=False)
    assert run.status is RunStatus.CANCELED
    assert _containers_of(engine, run.id) == []


def test_environment_is_built_once_then_reused(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    # Given a conda file with a real package from the package index
    conda = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"
    session = docker_project(project, conda=conda)
    # When the environment is prepared twice
    built: list[str] = []
    first = session.prepare("box", log=built.append, force=True)
    images_after_first = {i.id for i in engine.images.list()}
    second = session.prepare("box")
    # Then the first built an image and the second built nothing
    assert first.built and not second.built and first.image == second.image
    assert {i.id for i in engine.images.list()} == images_after_first
    assert any("Building environment image" in line for line in built)
    # And a run uses the package, without building again
    run = session.submit(cell="import six\nprint('six', six.__version__)\n", run_configuration="box").wait()
    assert "six 1.16.0" in run.logs()
    assert "ready (cached)" in run.logs("control")


def test_conda_only_package_without_conda_is_a_clear_error(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    conda = "name: env\ndependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n"
    session = docker_project(project, conda=conda)
    with pytest.raises(EnvironmentBuildError, match="cudatoolkit"):
        session.prepare("box")
    # And a submit ends Failed (never stuck in Preparing) with the reason
    run = session.submit(cell="print(1)", run_configuration="box").wait(raise_on_failure=False)
    assert run.status is RunStatus.FAILED and "cudatoolkit" in (run.record.error or "")


def test_missing_base_image_is_a_clear_error(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    session = docker_project(project, image="amlexec-test/no-such-image:0")
    run = session.submit(cell="print(1)", run_configuration="box").wait(timeout=120, raise_on_failure=False)
    assert run.status is RunStatus.FAILED
    assert "amlexec-test/no-such-image:0" in (run.record.error or "") and "baseDockerImage" in (
        run.record.error or ""
    )


def test_pyspark_framework_runs_through_spark_submit(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    require(_has_image(engine, PYSPARK_IMAGE), f"the test image {PYSPARK_IMAGE}")
    session = docker_project(
        project, image=PYSPARK_IMAGE, conda="name: env\ndependencies: []\n", framework="PySpark"
    )
    (project / "aml_config" / "spark_dependencies.yml").write_text(
        'configuration:\n  "spark.app.name": "amlexec-test"\n  "spark.sql.shuffle.partitions": 3\n'
    )
    cell = (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('partitions', spark.conf.get('spark.sql.shuffle.partitions'))\n"
        "print('sum', spark.range(101).groupBy().sum('id').collect()[0][0])\n"
        "spark.stop()\n"
    )
    run = session.submit(cell=cell, run_configuration="box").wait(timeout=300)
    assert "sum 5050" in run.logs() and "partitions 3" in run.logs()


def test_new_process_reattaches_to_a_running_container(engine, project: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    docker_project(project)
    kernel = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom jupyter_amlexec.core.api import Session\n"
            "s = Session.open(sys.argv[1], sys.argv[2])\n"
            "run = s.submit(cell=\"import time\\nprint('first', flush=True)\\ntime.sleep(3)\\nprint('last')\", run_configuration='box')\n"
            "print(run.id, flush=True)\ntime.sleep(600)\n",
            str(project),
            os.environ["AMLEXEC_HOME"],
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert kernel.stdout is not None
    run_id = kernel.stdout.readline().strip()
    session = Session.open(project, Path(os.environ["AMLEXEC_HOME"]))
    deadline = time.monotonic() + 60
    while "first" not in session.history.read_log(run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    run = session.run(run_id).wait(timeout=60)
    assert run.status is RunStatus.COMPLETED
    assert run.logs().count("first") == 1 and "last" in run.logs()
    assert _containers_of(engine, run_id) == []
