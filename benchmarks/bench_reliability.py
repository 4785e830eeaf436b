"""Many CLI submits at once: 8 workers x 50 `amlexec experiment submit -c local` each, concurrently.

Counts what a user would check afterwards: runs recorded, runs lost (a submit that exited 0 without
its run Completed in the history), duplicate run numbers, "database is locked" in any output, and
runs per second over the whole burst. PRAGMA integrity_check must say ok.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORKERS = int(os.environ.get("AMLEXEC_BENCH_WORKERS", "8"))
PER_WORKER = int(os.environ.get("AMLEXEC_BENCH_SUBMITS", "50"))
SCRIPT = "import amlexec_run, sys\nprint('run', sys.argv[1])\namlexec_run.log('n', int(sys.argv[1]))\n"


def _worker(index: int, project: Path, env: dict[str, str]) -> tuple[int, int, int]:
    """(submits that exited 0, failures, 'database is locked' mentions) of one worker."""
    ok = failed = locked = 0
    for i in range(PER_WORKER):
        done = subprocess.run(
            [sys.executable, "-m", "jupyter_amlexec", "experiment", "submit", "-c", "local", "s.py", str(i)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        mentions = (done.stdout + done.stderr).count("database is locked")
        locked += mentions
        ok, failed = (ok + 1, failed) if done.returncode == 0 else (ok, failed + 1)
        if mentions or done.returncode != 0:  # what the user saw, to find the cause
            sys.stderr.write(
                f"--- worker {index} submit {i} exited {done.returncode}:\n{done.stderr[-4000:]}\n"
            )
    return ok, failed, locked


def run() -> list[dict[str, object]]:
    # guardians of the finished CLI processes may still be writing their logs when the burst ends
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        project = Path(tmp) / "proj"
        project.mkdir()
        (project / "s.py").write_text(SCRIPT)
        home = Path(tmp) / "home"
        env = {**os.environ, "AMLEXEC_HOME": str(home)}
        start = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda i: _worker(i, project, env), range(WORKERS)))
        elapsed = time.perf_counter() - start
        db = sqlite3.connect(home / "history.sqlite")
        completed = db.execute("SELECT COUNT(*) FROM runs WHERE status = 'Completed'").fetchone()[0]
        numbers = db.execute("SELECT COUNT(DISTINCT run_number), COUNT(*) FROM runs").fetchone()
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    ok = sum(r[0] for r in results)
    lost = ok - completed
    total = WORKERS * PER_WORKER
    return [
        {
            "name": f"{WORKERS}x{PER_WORKER} CLI submits at once: {completed}/{total} Completed, {lost} lost, "
            f"{numbers[1] - numbers[0]} duplicate numbers, {sum(r[2] for r in results)} 'locked', "
            f"integrity {integrity}",
            "ours_s": elapsed,
            "baseline_s": None,
            "ratio": None,
            "target": f"{total / elapsed:.1f} runs/s (>= 8 runs/s, 0 lost)",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
