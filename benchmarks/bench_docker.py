"""Docker target versus bare `docker run --rm IMG python3 script.py`, and prepare with a cached environment.

The physical limit of a container run is what `docker run --rm` does: create, attach, start, wait,
remove. On top of that the executor copies the snapshot in, follows the log, collects outputs/;
a full submit also takes the snapshot and records the run in the history. Rounds are interleaved
so drift on the machine hits both sides alike; medians of ROUNDS. Needs the engine and image of
scripts/test.sh (AMLEXEC_TEST_BASE_IMAGE, AMLEXEC_TEST_NETWORK_MODE).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
NETWORK = os.environ.get("AMLEXEC_TEST_NETWORK_MODE", "host")
ROUNDS = 9
SCRIPT = "import sys\nprint('hello from', sys.argv[1])\n"


def _docker_cli() -> str:
    for candidate in ("/usr/local/bin/docker", "/usr/bin/docker"):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("docker") or "docker"


def _executor_run(executor, spec, snapshot) -> float:  # type: ignore[no-untyped-def]
    """One run through the executor alone: start -> wait -> logs -> collect -> cleanup."""
    from jupyter_amlexec.core.models import RunStatus

    start = time.perf_counter()
    handle = executor.start(spec, snapshot, lambda _text: None)
    state = handle.wait(0.2)
    while not state.status.terminal:
        state = handle.wait(0.2)
    data = handle.logs("").data
    handle.collect_outputs(spec.run_dir / "outputs", spec.max_output_file_bytes, lambda _text: None)
    handle.cleanup()
    elapsed = time.perf_counter() - start
    assert state.status is RunStatus.COMPLETED and b"hello from" in data, data
    return elapsed


def run() -> list[dict[str, object]]:
    from dataclasses import replace

    from jupyter_amlexec.core.api import Session
    from jupyter_amlexec.core.environment import load_environment
    from jupyter_amlexec.core.executors.base import RunSpec
    from jupyter_amlexec.core.executors.commands import Framework
    from jupyter_amlexec.core.executors.docker import DockerExecutor
    from jupyter_amlexec.core.project import Project
    from jupyter_amlexec.core.snapshot import SnapshotStore

    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "proj", Path(tmp) / "home"
        root.mkdir()
        (root / "hello.py").write_text(SCRIPT)
        project = Project(root)
        project.initialize()
        project.attach_target("box", "docker", base_docker_image=IMAGE, network_mode=NETWORK)
        (root / "aml_config" / "conda_dependencies.yml").write_text(
            "name: e\ndependencies:\n  - python=3.11\n"
        )
        session = Session.open(root, home)
        target, rc = project.target("box"), project.run_configuration("box")
        executor = DockerExecutor(target, home)
        environment = load_environment(project, rc)
        prepared = executor.prepare(environment, lambda _text: None)
        snapshot = SnapshotStore(home).take(root, entry_script="hello.py")
        spec = RunSpec(
            run_id="bench",
            experiment="bench",
            project_name=project.name,
            project_root=root,
            entry_script="hello.py",
            arguments=("executor",),
            environment_variables={},
            python_path=(),
            framework=Framework.PYTHON,
            target=target,
            run_configuration=rc,
            run_dir=Path(tmp) / "runs" / "bench",
            prepared=prepared,
        )
        bare_argv = [
            _docker_cli(),
            "run",
            "--rm",
            f"--network={NETWORK}",
            "-v",
            f"{root}:/w:ro",
            "-w",
            "/w",
            IMAGE,
            "python3",
            "hello.py",
            "bare",
        ]
        # warm-up: image layers in the page cache, connections open, python bytecode compiled
        subprocess.run(bare_argv, check=True, capture_output=True)
        _executor_run(executor, spec, snapshot)
        session.submit(script="hello.py", arguments=["warm-up"], run_configuration="box").wait()
        bare, ours, submits, prepares = [], [], [], []
        for i in range(ROUNDS):
            start = time.perf_counter()
            subprocess.run(bare_argv, check=True, capture_output=True)
            bare.append(time.perf_counter() - start)
            ours.append(_executor_run(executor, replace(spec, run_id=f"bench-{i}"), snapshot))
            start = time.perf_counter()
            session.submit(script="hello.py", arguments=[str(i)], run_configuration="box").wait()
            submits.append(time.perf_counter() - start)
            start = time.perf_counter()
            again = session.prepare("box")
            prepares.append(time.perf_counter() - start)
            assert not again.built
    bare_s = statistics.median(bare)
    ours_s, submit_s = statistics.median(ours), statistics.median(submits)
    return [
        {
            "name": "docker warm run, executor (start..cleanup) vs docker run --rm",
            "ours_s": ours_s,
            "baseline_s": bare_s,
            "ratio": ours_s / bare_s,
            "target": "<= 1.10",
        },
        {
            "name": "docker warm run, full submit (snapshot + history) vs docker run --rm",
            "ours_s": submit_s,
            "baseline_s": bare_s,
            "ratio": submit_s / bare_s,
            "target": "<= 1.10",
        },
        {
            "name": "docker prepare, environment unchanged (no build)",
            "ours_s": statistics.median(prepares),
            "baseline_s": None,
            "ratio": None,
            "target": "<= 0.5 s",
        },
    ]


def main() -> int:
    for row in run():
        base = f"  bare {row['baseline_s']:.3f}s" if row["baseline_s"] is not None else ""
        ratio = f"  ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        print(f"{row['name']}: ours {row['ours_s']:.3f}s{base}{ratio}  (target {row['target']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
