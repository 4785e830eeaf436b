"""Docker targets' mounts, users and images on the real engine: volumes, sharedVolumes,
nativeSharedDirectory, keepContainer, images with a non-root USER or without a shell, and settings
the engine refuses (named by key and file)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_amlexec.core.models import RunStatus
from tests.conftest import require

from .conftest import BASE_IMAGE, run_containers
from .test_docker import docker_project


@contextmanager
def derived_image(
    engine: Any, repository: str, command: Sequence[str] = ("true",), changes: Sequence[str] = ()
) -> Iterator[Any]:
    """An image made from the test image by running `command` in it (as root) and committing it
    with `changes`; removed afterwards."""
    maker = engine.containers.create(BASE_IMAGE, list(command), user="0")
    try:
        maker.start()
        maker.wait()
        image = maker.commit(repository=repository, tag=str(os.getpid()), changes=list(changes))
    finally:
        maker.remove(force=True)
    try:
        yield image
    finally:
        engine.images.remove(image.id, force=True)


def test_gpu_request_without_gpu_runtime_is_a_clear_error(engine: Any, project: Path, home: Path) -> None:
    # Given a target asking for GPUs on an engine without the NVIDIA runtime (this test engine)
    require("nvidia" not in str(engine.info().get("Runtimes", {})), "an engine without GPU runtime")
    session = docker_project(project, nvidia_docker=True)
    # When a run is submitted
    run = session.submit(cell="print(1)", run_configuration="box").wait(timeout=120, raise_on_failure=False)
    # Then it fails with what to do, and no container is left
    assert run.status is RunStatus.FAILED
    assert "nvidiaDocker" in (run.record.error or "") and "NVIDIA Container Toolkit" in (
        run.record.error or ""
    )
    assert run_containers(engine, run.id) == []


def test_native_shared_directory_persists_across_runs(
    engine: Any, project: Path, home: Path, tmp_path: Path
) -> None:
    # Given a target with a native shared directory
    share = tmp_path / "share"
    session = docker_project(project, native_shared_directory=str(share))
    cell = (
        "import os\nd = os.environ['AZUREML_NATIVE_SHARE_DIRECTORY']\n"
        "p = os.path.join(d, 'count.txt')\n"
        "n = int(open(p).read()) + 1 if os.path.exists(p) else 1\n"
        "open(p, 'w').write(str(n))\nprint('count', n, d)\n"
    )
    # When two runs each count up in it
    first = session.submit(cell=cell, run_configuration="box").wait()
    second = session.submit(cell=cell, run_configuration="box").wait()
    # Then the second saw what the first wrote, in the host folder for this project
    assert "count 1 /azureml-share/" in first.logs() and "count 2 /azureml-share/" in second.logs()
    assert (share / session.project.name / "count.txt").read_text() == "2"


def test_shared_volumes_mount_the_project_and_keep_container_keeps_it(
    engine: Any, project: Path, home: Path
) -> None:
    # Given a target that bind-mounts the project and keeps containers for debugging
    session = docker_project(project, shared_volumes=True, keep_container=True)
    (project / "live.txt").write_text("from the project folder\n")
    # When a run reads a project file and writes an output
    run = session.submit(
        cell="import os\nprint(open('live.txt').read().strip())\n"
        "os.makedirs('outputs', exist_ok=True)\nopen('outputs/o.txt', 'w').write('x')\n",
        run_configuration="box",
    ).wait()
    # Then it saw the live project, the output landed in the project and was collected
    assert "from the project folder" in run.logs()
    assert (project / "outputs" / "o.txt").read_text() == "x" and run.outputs == ["o.txt"]
    # And our own files (the cell script, the in-run library) did not land in the project
    assert not (project / ".amlexec").exists()
    # And the container is still there (keepContainer), until we remove it
    kept = run_containers(engine, run.id)
    assert len(kept) == 1
    kept[0].remove(force=True)


def test_shared_volumes_runs_at_once_each_run_their_own_cell_and_leave_the_project_owned_by_its_user(
    engine: Any, project: Path, home: Path
) -> None:
    # Given an image whose USER is nobody, and a target that mounts the project
    with derived_image(engine, "amlexec-test/non-root-shared", changes=["USER nobody"]) as image:
        session = docker_project(project, image=image.id, shared_volumes=True)
        (project / "data.txt").write_text("shared data\n")
        owners_before = {
            p.relative_to(project): (p.stat().st_uid, p.stat().st_mode) for p in project.rglob("*")
        }
        # When three different cells are submitted at once
        runs = [
            session.submit(
                cell=f"print('cell number {i}', open('data.txt').read().strip())", run_configuration="box"
            )
            for i in range(3)
        ]
        for run in runs:
            run.wait()
        # Then each ran its own code, and no project file changed owner or mode
        for i, run in enumerate(runs):
            assert f"cell number {i} shared data" in run.logs()
        owners_after = {
            p.relative_to(project): (p.stat().st_uid, p.stat().st_mode) for p in project.rglob("*")
        }
        assert owners_after == owners_before


def test_image_without_a_shell_gets_the_snapshot_by_put_archive(
    engine: Any, project: Path, home: Path
) -> None:
    # Given an image with python3 but no /bin/sh (like distroless images)
    with derived_image(
        engine, "amlexec-test/no-shell", ["rm", "-f", "/usr/bin/sh", "/usr/bin/dash"]
    ) as image:
        session = docker_project(project, image=image.id)
        (project / "hi.py").write_text("import sys\nprint('no shell, still ran', sys.argv[1])\n")
        # When a script runs there
        run = session.submit(script="hi.py", arguments=["ok"], run_configuration="box").wait()
        # Then it ran from the copied snapshot
        assert "no shell, still ran ok" in run.logs()
        assert run_containers(engine, run.id) == []


def test_image_with_a_non_root_user_runs_as_that_user(engine: Any, project: Path, home: Path) -> None:
    # Given an image whose USER is nobody
    with derived_image(engine, "amlexec-test/non-root", changes=["USER nobody"]) as image:
        session = docker_project(project, image=image.id)
        cell = (
            "import os\nprint('uid', os.getuid(), 'home', os.environ['HOME'])\n"
            "os.makedirs('outputs', exist_ok=True)\nopen('outputs/mine.txt', 'w').write('ok')\n"
        )
        # When a cell writes an output there
        run = session.submit(cell=cell, run_configuration="box").wait()
        # Then it ran as nobody, in a working folder it owns, and its output came back
        assert "uid 65534 home /nonexistent" in run.logs()
        assert run.outputs == ["mine.txt"]


def test_bad_target_settings_name_the_key_and_leave_no_container(
    engine: Any, project: Path, home: Path
) -> None:
    # Given a network that does not exist
    session = docker_project(project, network_mode="no-such-network")
    run = session.submit(cell="print('x')", run_configuration="box").wait(raise_on_failure=False)
    # Then the run failed with an error naming the key and the file, and no container is left
    assert run.status is RunStatus.FAILED
    assert "networkMode: no-such-network" in (run.record.error or "") and "box.compute" in (
        run.record.error or ""
    )
    assert run_containers(engine, run.id) == []


def test_volumes_relative_to_the_project_and_a_missing_host_path_is_an_error(
    engine: Any, project: Path, home: Path
) -> None:
    (project / "data").mkdir()
    (project / "data" / "in.txt").write_text("mounted input\n")
    # Given a volume relative to the project folder, it is mounted
    session = docker_project(project, volumes=("./data:/data:ro",))
    run = session.submit(cell="print(open('/data/in.txt').read())", run_configuration="box").wait()
    assert "mounted input" in run.logs()
    # And a host path that does not exist is refused before any container is made
    missing = docker_project(project, volumes=("/no/such/dir:/data",))
    failed = missing.submit(cell="print('x')", run_configuration="box").wait(raise_on_failure=False)
    assert failed.status is RunStatus.FAILED
    assert "/no/such/dir" in (failed.record.error or "") and "volumes" in (failed.record.error or "")
    assert not Path("/no/such/dir").exists() and run_containers(engine, failed.id) == []
