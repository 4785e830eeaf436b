"""Widgets at scale: the dashboard's first render over 100k runs, and a 100 MB log with the live widget.

The dashboard pages in SQL, so its first render should not depend on the history's size. The live
widget reads a bounded tail, so following a run that prints 100 MB should cost little and keep the
process's memory flat.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

RUNS = 100_000
LOG_MB = 100


def fill_history(home: Path) -> None:
    """100k finished runs with two metrics each, bulk-inserted the way bench_history does it."""
    from bench_history import _fill

    from jupyter_amlexec.core.history import History

    history = History(home)
    if history.count() < RUNS:
        _fill(home / "history.sqlite", RUNS)


def _rss_mb() -> float:
    """Current resident memory of this process (not the peak: the 100k-run fill came before)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run() -> list[dict[str, object]]:
    from jupyter_amlexec.core.api import Session
    from jupyter_amlexec.core.history import History
    from jupyter_amlexec.widgets import RunsDashboard, RunWidget

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "big"
        fill_history(home)
        history = History(home)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            RunsDashboard(history).close()
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "name": f"dashboard first render, {RUNS:,} runs",
                "ours_s": statistics.median(times),
                "baseline_s": None,
                "ratio": None,
                "target": "<= 0.5 s",
            }
        )

        project = Path(tmp) / "proj"
        project.mkdir()
        (project / "loud.py").write_text(
            f"import sys\nline = 'x' * 99 + '\\n'\nfor _ in range({LOG_MB} * 10_000):\n    sys.stdout.write(line)\n"
        )
        session = Session.open(project, Path(tmp) / "home")
        without, with_widget = [], []
        for _ in range(3):
            start = time.perf_counter()
            session.submit(script="loud.py").wait()
            without.append(time.perf_counter() - start)
            start = time.perf_counter()
            run = session.submit(script="loud.py")
            widget = RunWidget(run).start()
            run.wait()
            widget.finish()
            with_widget.append(time.perf_counter() - start)
            widget.close()
        # memory, after the timed rounds: what plain runs add, then what runs with the widget add
        start_plain = _rss_mb()
        for _ in range(2):
            session.submit(script="loud.py").wait()
        start_widget = _rss_mb()
        for _ in range(2):
            run = session.submit(script="loud.py")
            widget = RunWidget(run).start()
            run.wait()
            widget.finish()
            widget.close()
        plain_growth, widget_growth = start_widget - start_plain, _rss_mb() - start_widget
    w, wo = statistics.median(with_widget), statistics.median(without)
    rows.append(
        {
            "name": f"{LOG_MB} MB log: with live widget vs without "
            f"(RSS after 2 more runs: {plain_growth:+.0f} MB plain, {widget_growth:+.0f} MB with widget)",
            "ours_s": w,
            "baseline_s": wo,
            "ratio": w / wo,
            "target": "<= 1.10, memory bounded",
        }
    )
    return rows


if __name__ == "__main__":
    for row in run():
        ratio = f", ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        base = f", without {row['baseline_s']:.3f}s" if row["baseline_s"] is not None else ""
        print(f"{row['name']}: {row['ours_s']:.3f}s{base}{ratio} (target {row['target']})")
