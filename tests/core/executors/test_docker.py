"""The Docker target on the real engine that scripts/test.sh starts: real images, real containers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.environment import load_environment
from jupyter_amlexec.core.errors import EnvironmentBuildError, RunFailedError, TargetUnavailableError
from jupyter_amlexec.core.executors.docker import DockerExecutor
from jupyter_amlexec.core.models import RunStatus
from jupyter_amlexec.core.project import Project
from tests.conftest import require
from tests.sockproxy import UnixSocketProxy

from .conftest import BASE_IMAGE, NETWORK, PYSPARK_IMAGE, build_containers, has_image, run_containers


def docker_project(
    root: Path,
    *,
    image: str = BASE_IMAGE,
    conda: str | None = None,
    framework: str = "Python",
    **settings: Any,
) -> Session:
    """A project with a docker target 'box' (the test network mode) and a session on it."""
    project = Project(root)
    project.initialize()
    settings.setdefault("network_mode", NETWORK)
    project.attach_target("box", "docker", base_docker_image=image, force=True, **settings)
    project.write_run_configuration(replace(project.run_configuration("box"), framework=framework))
    conda_file = root / "aml_config" / "conda_dependencies.yml"
    conda_file.write_text(conda if conda is not None else "name: env\ndependencies:\n  - python=3.11\n")
    return Session.open(root, Path(os.environ["AMLEXEC_HOME"]))


def test_cell_runs_in_a_container_with_args_env_metrics_outputs(
    engine: Any, project: Path, home: Path
) -> None:
    # Given a docker target and a cell that reads its arguments and environment
    session = docker_project(project)
    cell = (
        "import os, sys, amlexec_run\n"
        "print('in container', os.path.exists('/.dockerenv'), sys.argv[1:], os.environ['COLOUR'])\n"
        "print('run id', os.environ['AMLEXEC_RUN_ID'], 'cwd', os.getcwd())\n"
        "amlexec_run.log('accuracy', 0.91)\n"
        "os.makedirs('outputs/sub', exist_ok=True)\n"
        "open('outputs/model.bin', 'wb').write(b'\\x00' * 1000)\n"
        "open('outputs/sub/notes.txt', 'w').write('hi')\n"
    )
    # When it is submitted to the docker target
    run = session.submit(
        cell=cell, run_configuration="box", arguments=["--lr", "0.1"], env={"COLOUR": "blue green"}
    ).wait()
    # Then it ran inside a container, with arguments, variables, metrics and outputs intact
    assert "in container True ['--lr', '0.1'] blue green" in run.logs()
    assert f"run id {run.id} cwd /azureml-run" in run.logs()
    assert run.metrics == {"accuracy": 0.91}
    assert run.outputs == ["model.bin", "sub/notes.txt"]
    assert (run.outputs_dir / "model.bin").stat().st_size == 1000
    # And the container is gone
    assert run_containers(engine, run.id) == []


def test_script_file_with_arguments_sees_the_project_files(engine: Any, project: Path, home: Path) -> None:
    # Given a script that reads a data file of the project and its own arguments
    session = docker_project(project)
    (project / "data").mkdir()
    (project / "data" / "numbers.csv").write_text("1\n2\n3\n")
    (project / "train.py").write_text(
        "import sys\nnums = [int(x) for x in open('data/numbers.csv')]\n"
        "print('total', sum(nums) * float(sys.argv[1]), sys.argv[2])\n"
    )
    # When it runs with arguments
    run = session.submit(script="train.py", arguments=["0.5", "it's quoted"], run_configuration="box").wait()
    # Then the snapshot was there and the arguments arrived as given
    assert "total 3.0 it's quoted" in run.logs()
    assert run.record.exit_code == 0


def test_failing_script_reports_exit_code_and_log(engine: Any, project: Path, home: Path) -> None:
    # Given a script that exits with 7
    session = docker_project(project)
    (project / "bad.py").write_text("import sys\nprint('going down')\nsys.exit(7)\n")
    # When it runs
    run = session.submit(script="bad.py", run_configuration="box")
    # Then the run fails with the exit code and the log, and leaves no container
    with pytest.raises(RunFailedError) as failure:
        run.wait()
    assert failure.value.exit_code == 7 and "going down" in str(failure.value)
    assert run_containers(engine, run.id) == []


def test_cancel_stops_a_long_run_at_once_and_removes_the_container(
    engine: Any, project: Path, home: Path
) -> None:
    # Given a run that would sleep for two minutes
    session = docker_project(project)
    run = session.submit(
        cell="import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n", run_configuration="box"
    )
    deadline = time.monotonic() + 60
    while "sleeping" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run_containers(engine, run.id), "the run should have a container while it runs"
    # When it is canceled
    started = time.monotonic()
    run.cancel()
    run.wait(timeout=60, raise_on_failure=False)
    # Then it ends Canceled well before the stop timeout would kill it, and its container is gone
    assert run.status is RunStatus.CANCELED
    assert time.monotonic() - started < 4, "SIGTERM should reach the script"
    assert run_containers(engine, run.id) == []


def test_environment_is_built_once_then_reused(engine: Any, project: Path, home: Path) -> None:
    # Given a conda file with a real package from the package index
    conda = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"
    session = docker_project(project, conda=conda)
    dangling_before = {i.id for i in engine.images.list(filters={"dangling": True})}
    # When the environment is prepared (forced: a fresh build) and then prepared again
    build_log: list[str] = []
    first = session.prepare("box", log=build_log.append, force=True)
    images_after_first = {i.id for i in engine.images.list(all=True)}
    second = session.prepare("box")
    # Then the first built an image, streaming the pip log, and the second built nothing
    assert first.built and not second.built and first.image == second.image
    assert {i.id for i in engine.images.list(all=True)} == images_after_first
    assert any("Successfully installed six-1.16.0" in line for line in build_log)
    # And a forced rebuild leaves no untagged image behind
    assert {i.id for i in engine.images.list(filters={"dangling": True})} <= dangling_before
    # And neither the host's pip settings nor the build parameters are in the image
    image = engine.images.get(first.image)
    assert not [e for e in image.attrs["Config"]["Env"] if e.startswith(("AMLEXEC", "PIP_"))]
    probe = engine.containers.run(
        first.image, ["sh", "-c", "ls /tmp/amlexec-build 2>&1; true"], remove=True, network_mode="none"
    )
    assert b"No such file" in probe
    # And a run uses the package without building again
    run = session.submit(cell="import six\nprint('six', six.__version__)\n", run_configuration="box").wait()
    assert "six 1.16.0" in run.logs()
    assert "ready (cached)" in run.logs("control")


def test_conda_only_package_without_conda_is_a_clear_error(engine: Any, project: Path, home: Path) -> None:
    # Given a conda file with a package only conda can install, over an image without conda
    conda = "name: env\ndependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - pip:\n    - six\n"
    session = docker_project(project, conda=conda)
    # When the environment is prepared, then the error names the package
    with pytest.raises(EnvironmentBuildError, match="cudatoolkit=11.8"):
        session.prepare("box")
    # And a submit ends Failed (never stuck in Preparing) with the reason
    run = session.submit(cell="print(1)", run_configuration="box").wait(raise_on_failure=False)
    assert run.status is RunStatus.FAILED and "cudatoolkit" in (run.record.error or "")


def test_python_version_mismatch_names_both_versions(engine: Any, project: Path, home: Path) -> None:
    # Given a conda file that asks for Python 3.9 over an image with Python 3.11
    conda = "name: env\ndependencies:\n  - python=3.9\n  - pip:\n    - six\n"
    session = docker_project(project, conda=conda)
    # When the environment is prepared, then the error says both versions
    with pytest.raises(EnvironmentBuildError) as failure:
        session.prepare("box")
    assert "python 3.9" in str(failure.value) and "python 3.11" in str(failure.value)


def test_missing_base_image_is_a_clear_error(engine: Any, project: Path, home: Path) -> None:
    # Given a target whose base image is nowhere
    session = docker_project(project, image="amlexec-test/no-such-image:0")
    # When a run is submitted
    run = session.submit(cell="print(1)", run_configuration="box").wait(timeout=120, raise_on_failure=False)
    # Then it fails, naming the image and the setting to change
    assert run.status is RunStatus.FAILED
    assert "amlexec-test/no-such-image:0" in (run.record.error or "")
    assert "baseDockerImage" in (run.record.error or "")


def test_cancel_while_the_environment_builds_stops_the_build_and_never_starts_the_run(
    engine: Any, project: Path, home: Path
) -> None:
    # Given an environment that needs a build (a package from the index)
    conda = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"
    session = docker_project(project, conda=conda)
    images_before = {i.id for i in engine.images.list(all=True)}
    run = session.submit(cell="print('must not run')", run_configuration="box", force_prepare=True)
    # When the user cancels once the build log is streaming
    deadline = time.monotonic() + 60
    while "Building environment image" not in run.logs("control") and time.monotonic() < deadline:
        time.sleep(0.05)
    run.cancel()
    run.wait(timeout=120, raise_on_failure=False)
    # Then the run is Canceled, its script never ran, and the build left no container or image
    assert run.status is RunStatus.CANCELED
    assert "must not run" not in run.logs()
    assert run_containers(engine, run.id) == [] and build_containers(engine, home) == []
    assert {i.id for i in engine.images.list(all=True)} <= images_before


def test_engine_that_does_not_answer_is_a_clear_error(
    project: Path, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given DOCKER_HOST pointing at a socket where no engine listens
    session = docker_project(project)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    executor = DockerExecutor(session.project.target("box"), home)
    # When the target is checked, then the error names the address and what to do
    with pytest.raises(TargetUnavailableError, match="nothing.sock.*DOCKER_HOST"):
        executor.check()


def test_missing_docker_py_says_how_to_install_it(project: Path, home: Path) -> None:
    # Given a Python where docker-py cannot be imported
    docker_project(project)
    code = (
        "import sys\nsys.modules['docker'] = None\n"
        "from pathlib import Path\nfrom jupyter_amlexec.core.project import Project\n"
        "from jupyter_amlexec.core.executors.docker import DockerExecutor\n"
        "DockerExecutor(Project(Path(sys.argv[1])).target('box'), Path(sys.argv[2])).check()\n"
    )
    # When the docker target is checked there
    done = subprocess.run(
        [sys.executable, "-c", code, str(project), str(home)], capture_output=True, text=True, timeout=60
    )
    # Then it fails with the install command
    assert done.returncode != 0
    assert "TargetUnavailableError" in done.stderr and "pip install 'jupyter_amlexec[docker]'" in done.stderr


def test_pyspark_framework_runs_through_spark_submit(engine: Any, project: Path, home: Path) -> None:
    # Given an image with Java + pyspark and a PySpark run configuration with spark settings
    require(has_image(engine, PYSPARK_IMAGE), f"the test image {PYSPARK_IMAGE}")
    session = docker_project(
        project, image=PYSPARK_IMAGE, conda="name: env\ndependencies: []\n", framework="PySpark"
    )
    (project / "aml_config" / "spark_dependencies.yml").write_text(
        'configuration:\n  "spark.app.name": "amlexec-test"\n  "spark.sql.shuffle.partitions": 3\n'
    )
    cell = (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('app', spark.sparkContext.appName, 'partitions', spark.conf.get('spark.sql.shuffle.partitions'))\n"
        "print('sum', spark.range(101).groupBy().sum('id').collect()[0][0])\n"
        "spark.stop()\n"
    )
    # When the cell runs
    run = session.submit(cell=cell, run_configuration="box").wait(timeout=300)
    # Then a real SparkSession computed the result, configured from spark_dependencies.yml
    assert "sum 5050" in run.logs()
    assert "app amlexec-test partitions 3" in run.logs()


def test_new_process_reattaches_to_a_running_container(engine: Any, project: Path, home: Path) -> None:
    # Given a kernel process that started a run and then died while the run went on
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
    assert run_containers(engine, run_id), "the container outlives the kernel"
    # When a new session re-attaches to it
    run = session.run(run_id).wait(timeout=60)
    # Then it follows the run to the end: every line once, container removed
    assert run.status is RunStatus.COMPLETED
    assert run.logs().count("first") == 1 and "last" in run.logs()
    assert run_containers(engine, run_id) == []


def test_executor_handle_round_trips_through_to_dict(engine: Any, project: Path, home: Path) -> None:
    # Given a finished run's handle description, as stored in the history
    session = docker_project(project, keep_container=True)
    run = session.submit(cell="print('kept output')", run_configuration="box").wait()
    handle = dict(run.record.handle or {})
    assert handle["type"] == "docker" and handle["workdir"] == "/azureml-run" and handle["image"]
    # When another executor re-attaches from it
    executor = DockerExecutor(session.project.target("box"), home)
    again = executor.attach(handle)
    # Then it sees the same container: its status, exit code and log
    state = again.wait(5)
    assert state.status is RunStatus.COMPLETED and state.exit_code == 0
    assert b"kept output" in again.logs("").data
    again_keep = executor.attach({**handle, "keep_container": False})
    again_keep.cleanup()
    assert run_containers(engine, run.id) == []


def test_a_conda_file_that_only_pins_another_python_is_not_ignored(
    engine: Any, project: Path, home: Path
) -> None:
    # Given a conda file that asks for python 3.9 and nothing else, over a 3.11 image without conda
    session = docker_project(project, conda="name: env\ndependencies:\n  - python=3.9\n")
    # When a run is submitted, then it fails naming both versions instead of running on 3.11
    run = session.submit(cell="import sys\nprint(sys.version)", run_configuration="box").wait(
        raise_on_failure=False
    )
    assert run.status is RunStatus.FAILED
    assert "3.9" in (run.record.error or "") and "3.11" in (run.record.error or "")
    assert run_containers(engine, run.id) == []


def test_prepare_environment_false_runs_only_a_prepared_environment(
    engine: Any, project: Path, home: Path
) -> None:
    # Given a run configuration with PrepareEnvironment: false and an environment never built here
    conda = "name: env\ndependencies:\n  - python=3.11\n  - pip:\n    - six==1.16.0\n"
    session = docker_project(project, conda=conda)
    rc = session.project.run_configuration("box")
    session.project.write_run_configuration(replace(rc, prepare_environment=False))
    executor = DockerExecutor(session.project.target("box"), home)
    tag = executor.image_tag(executor.environment_key(load_environment(session.project, rc)))
    if has_image(engine, tag):  # make sure it really is not built on this engine yet
        engine.images.remove(tag, force=True)
    # When a run is submitted, it fails saying how to prepare, and builds nothing
    run = session.submit(cell="import six", run_configuration="box").wait(raise_on_failure=False)
    error = run.record.error or ""
    assert run.status is RunStatus.FAILED and "not prepared" in error and "Prepare it once" in error
    # And once prepared, the same run configuration runs
    session.prepare("box")
    again = session.submit(cell="import six\nprint('six', six.__version__)", run_configuration="box").wait()
    assert "six 1.16.0" in again.logs()


def test_engine_lost_mid_run_reads_retrying_and_the_run_still_completes_with_its_whole_log(
    engine: Any, project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a docker target whose engine is reached through a proxy (dockerHost in its .compute)
    with UnixSocketProxy(tmp_path / "engine.sock", "/var/run/docker.sock") as proxy:
        docker_project(project)
        compute = project / "aml_config" / "box.compute"
        compute.write_text(compute.read_text() + f"dockerHost: {proxy.url}\n")
        session = Session.open(project, home)
        cell = (
            "import os, time\nfor i in range(80):\n    print('line', i, flush=True)\n    time.sleep(0.05)\n"
            "os.makedirs('outputs', exist_ok=True)\nopen('outputs/done.txt', 'w').write('done')\n"
        )
        run = session.submit(cell=cell, run_configuration="box")
        deadline = time.monotonic() + 60
        while "line 5\n" not in run.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        # When the engine stops answering for a few seconds mid-run
        proxy.stop()
        while "connection lost" not in (session.history.get(run.id).detail or ""):
            assert time.monotonic() < deadline, "the run should say the connection is lost"
            time.sleep(0.05)
        # Then meanwhile the history says Running, connection lost, retrying
        record = session.history.get(run.id)
        assert record.status is RunStatus.RUNNING and "retrying" in (record.detail or "")
        time.sleep(2)
        proxy.start()
        # And when it answers again the run is followed to its end: every line once, outputs back
        run.wait(timeout=60)
        assert run.status is RunStatus.COMPLETED
        assert [line for line in run.logs().splitlines() if line.startswith("line ")] == [
            f"line {i}" for i in range(80)
        ]
        assert run.outputs == ["done.txt"]
        assert "connection lost to the Docker engine" in run.logs("control")
        assert run_containers(engine, run.id) == []
