"""Docker target versus bare `docker run --rm IMG python3 script.py`, and prepare with a cached environment.

The physical limit of a container run is creating, starting and removing one container; we add
putting the snapshot in, following the log, collecting outputs and recording the run.
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
ROUNDS = 7
SCRIPT = "import sys\nprint('hello from', sys.argv[1])\n"


def _docker_cli() -> str:
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")


def run() -> list[dict[str, object]]:
    from jupyter_amlexec.core.api import Session
    from jupyter_amlexec.core.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        (root / "hello.py").write_text(SCRIPT)
        project = Project(root)
        project.initialize()
        project.attach_target("box", "docker", base_docker_image=IMAGE, network_mode=NETWORK)
        (root / "aml_config" / "conda_dependencies.yml").write_text(
            "name: e\ndependencies:\n  - python=3.11\n"
        )
        session = Session.open(root, Path(tmp) / "home")
        session.submit(script="hello.py", arguments=["warm-up"], run_configuration="box").wait()
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
        subprocess.run(bare_argv, check=True, capture_output=True)
        ours, bare, prepares = [], [], []
        for i in range(ROUNDS):
            start = time.perf_counter()
            subprocess.run(bare_argv, check=True, capture_output=True)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            session.submit(script="hello.py", arguments=[str(i)], run_configuration="box").wait()
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            prepared = session.prepare("box")
            prepares.append(time.perf_counter() - start)
            assert not prepared.built
    ours_s, bare_s, prep_s = statistics.median(ours), statistics.median(bare), statistics.median(prepares)
    return [
        {
            "name": "docker warm run vs bare docker run --rm",
            "ours_s": ours_s,
            "baseline_s": bare_s,
            "ratio": ours_s / bare_s,
            "target": "<= 1.10",
        },
        {
            "name": "docker prepare, environment unchanged (no build)",
            "ours_s": prep_s,
            "baseline_s": None,
            "ratio": None,
            "target": "<= 0.5 s",
        },
    ]


if __name__ == "__main__":
    for row in run():
        ratio = f", ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        base = f", bare {row['baseline_s']:.3f}s" if row["baseline_s"] is not None else ""
        print(f"{row['name']}: ours {row['ours_s']:.3f}s{base}{ratio} (target {row['target']})")
