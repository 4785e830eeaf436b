"""Whole processes, as a user types them: `amlexec experiment submit` vs the bare command, and the
time a printed line takes to reach a follower in another process.

- local: `amlexec experiment submit -c local s.py` (interpreter start, imports, snapshot, history,
  the run, its log streamed back) vs bare `python s.py`, the same interpreter (sys.executable).
- docker (warm: environment cached): `amlexec experiment submit -c docker s.py` vs bare
  `docker run --rm IMG python3 s.py` of the same image.
- follow latency: a run prints a line with the wall time in it; a follower in another process
  (`follow()` over the history) notes when the line arrives.
Medians of interleaved rounds, so both sides see the same machine load.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 7
SCRIPT = "import sys\nprint('hello from', sys.argv[1])\n"
IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
NETWORK = os.environ.get("AMLEXEC_TEST_NETWORK_MODE", "host")
TICKER = "import time, sys\nfor i in range(int(sys.argv[1])):\n    print('tick', time.time(), flush=True)\n    time.sleep(0.25)\n"
FOLLOWER = """
import sys, time
from pathlib import Path
from jupyter_amlexec.core.follow import follow
from jupyter_amlexec.core.history import History
from jupyter_amlexec.core.models import LogEvent
delays = []
for event in follow(History(Path(sys.argv[1])), sys.argv[2]):
    if isinstance(event, LogEvent) and event.source == 'driver':
        now = time.time()
        delays += [now - float(line.split()[1]) for line in event.text.splitlines() if line.startswith('tick ')]
print(repr(delays))
"""


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _row(name: str, ours: list[float], bare: list[float], target: str) -> dict[str, object]:
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    return {"name": name, "ours_s": ours_s, "baseline_s": bare_s, "ratio": ours_s / bare_s, "target": target}


def _docker_cli() -> str | None:
    for candidate in ("/usr/local/bin/docker", "/usr/bin/docker"):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("docker")


def _project(tmp: Path) -> tuple[Path, dict[str, str]]:
    project = tmp / "proj"
    (project / "aml_config").mkdir(parents=True)
    (project / "s.py").write_text(SCRIPT)
    (project / "ticker.py").write_text(TICKER)
    for i in range(20):
        (project / f"module_{i}.py").write_text(f"VALUE = {i}\n" * 50)
    (project / "aml_config" / "docker.compute").write_text(
        f"type: docker\nbaseDockerImage: {IMAGE}\nnetworkMode: {NETWORK}\n"
    )
    env = {**os.environ, "AMLEXEC_HOME": str(tmp / "home")}
    return project, env


def _submit(target: str) -> list[str]:
    return [sys.executable, "-m", "jupyter_amlexec", "experiment", "submit", "-c", target]


def _local(project: Path, env: dict[str, str]) -> dict[str, object]:
    _timed([*_submit("local"), "s.py", "warm"], project, env)
    ours, bare = [], []
    for i in range(ROUNDS):
        bare.append(_timed([sys.executable, "s.py", str(i)], project, env))
        ours.append(_timed([*_submit("local"), "s.py", str(i)], project, env))
    row = _row("process: amlexec submit -c local vs bare python", ours, bare, "overhead <= 0.12 s")
    row["target"] = (
        f"overhead {(float(str(row['ours_s'])) - float(str(row['baseline_s']))):.3f} s (<= 0.12 s)"
    )
    return row


def _docker(project: Path, env: dict[str, str]) -> dict[str, object] | None:
    docker = _docker_cli()
    if docker is None or subprocess.run([docker, "version"], capture_output=True).returncode != 0:
        return None
    _timed([*_submit("docker"), "s.py", "warm"], project, env)  # builds/caches the environment
    bare_argv = [docker, "run", "--rm", f"--network={NETWORK}", "-v", f"{project}:/p", "-w", "/p", IMAGE]
    ours, bare = [], []
    for i in range(ROUNDS):
        bare.append(_timed([*bare_argv, "python3", "s.py", str(i)], project, env))
        ours.append(_timed([*_submit("docker"), "s.py", str(i)], project, env))
    return _row("process: amlexec submit -c docker (warm) vs docker run --rm", ours, bare, "<= 1.5x")


def _latency(project: Path, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [*_submit("local"), "-a", "ticker.py", "24"], cwd=project, env=env, capture_output=True, text=True
    )
    run_id = out.stdout.split()[1]
    follower = subprocess.run(
        [sys.executable, "-c", FOLLOWER, env["AMLEXEC_HOME"], run_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    delays = json.loads(follower.stdout.strip().replace("'", '"'))
    median = statistics.median(delays)
    return {
        "name": f"print -> follower in another process ({len(delays)} lines, p95 {sorted(delays)[int(len(delays) * 0.95) - 1]:.3f}s)",
        "ours_s": median,
        "baseline_s": None,
        "ratio": None,
        "target": "<= 0.2 s",
    }


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        project, env = _project(Path(tmp))
        rows = [_local(project, env), _latency(project, env)]
        docker = _docker(project, env)
        if docker is not None:
            rows.append(docker)
        return rows


if __name__ == "__main__":
    for r in run():
        print(r)
