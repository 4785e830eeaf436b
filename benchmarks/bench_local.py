"""Local submit -> Completed versus bare `python script.py` on the same script, side by side.

The physical limit of a local run is starting the interpreter on the script; everything else we
do (snapshot, history writes, copying the snapshot, following the log) is overhead. Both sides use
sys.executable (a pyenv shim alone would add ~70 ms to the baseline).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = "import sys\nprint('hello from', sys.argv[1])\n"
ROUNDS = 15


def _bare(script: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), "bare"], cwd=script.parent, check=True, capture_output=True)
    return time.perf_counter() - start


def run() -> list[dict[str, object]]:
    from jupyter_amlexec.core.api import Session

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "proj"
        project.mkdir()
        (project / "hello.py").write_text(SCRIPT)
        for i in range(20):  # a small realistic project around the script
            (project / f"module_{i}.py").write_text(f"VALUE = {i}\n" * 50)
        session = Session.open(project, Path(tmp) / "home")
        session.submit(script="hello.py", arguments=["warm-up"]).wait()
        _bare(project / "hello.py")
        ours, bare = [], []
        for i in range(ROUNDS):  # interleaved so both sides see the same machine load
            bare.append(_bare(project / "hello.py"))
            start = time.perf_counter()
            session.submit(script="hello.py", arguments=[str(i)]).wait()
            ours.append(time.perf_counter() - start)
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    return [
        {
            "name": "local submit -> Completed vs bare python",
            "ours_s": ours_s,
            "baseline_s": bare_s,
            "ratio": ours_s / bare_s,
            "overhead_ms": (ours_s - bare_s) * 1000,
            "target": "overhead <= 50 ms",
        }
    ]


def main() -> None:
    for row in run():
        print(
            f"{row['name']}: ours {row['ours_s']:.3f}s, bare {row['baseline_s']:.3f}s, "
            f"ratio {row['ratio']:.2f}, overhead {row['overhead_ms']:.0f} ms (target {row['target']})"
        )


if __name__ == "__main__":
    os.environ.setdefault("AMLEXEC_HOME", tempfile.mkdtemp(prefix="amlexec-bench-"))
    main()
