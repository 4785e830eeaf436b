"""The runs dashboard over a history of 100k runs: one page, its count and its metric columns.

The dashboard asks for 50 runs (newest first, or sorted by a metric) with the latest value of every
metric, the number of matching runs and the metric names. The limit side is the bare SQLite work
for the same page: 50 rows read along an index, with no decoding into records. Writes are measured
too: a submit (create_run) and a follower checkpoint into the full history.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RUNS = int(os.environ.get("AMLEXEC_BENCH_RUNS", "100000"))
PROJECT = "bench"
EXPERIMENTS = ("churn", "vision", "nlp", "tabular", "baseline")
STATUSES = ("Completed", "Completed", "Completed", "Failed", "Canceled")
METRICS = ("Accuracy", "loss", "lr", "Regularization Rate", "note")
PAGE = 50
ROUNDS = 15


def _fill(db_path: Path, runs: int) -> None:
    """Bulk insert straight into the schema History created (one transaction, executemany)."""
    rng = random.Random(7)
    t0 = 1_700_000_000_000
    run_rows, metric_rows, latest_rows, catalog = [], [], [], set()
    for i in range(runs):
        run_id = f"{PROJECT}_{t0 + i * 1000}"
        experiment = EXPERIMENTS[i % len(EXPERIMENTS)]
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + i * 1000) / 1000)) + "+00:00"
        run_rows.append(
            (
                run_id,
                i + 1,
                PROJECT,
                "/projects/bench",
                experiment,
                STATUSES[(i // len(EXPERIMENTS)) % len(STATUSES)],
                t0 + i * 1000,
                created,
                created,
                created,
                "docker" if i % 3 else "local",
                "docker" if i % 3 else "local",
                "docker" if i % 3 else "local",
                f"train_{i % 7}.py",
                f'["--lr", "0.0{i % 10}"]',
                f'{{"SEED": "{i}"}}',
                "a" * 64,
                "{}",
                rng.randrange(1000, 600_000),
            )
        )
        for j, name in enumerate(METRICS):
            if (i + j) % 11 == 0:
                continue  # some runs never log some metrics
            # JSON text written by hand: json.dumps would be most of the setup time
            num = None if name == "note" else rng.random()
            text = f'"tag {i % 13}"' if num is None else repr(num)
            steps = 1 if name in ("lr", "note") else 3
            for step in range(steps):
                metric_rows.append((run_id, name, step, "scalar", text, num, created))
            latest_rows.append((run_id, name, steps - 1, "scalar", text, num, created))
            catalog.add((PROJECT, experiment, name))
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO runs (run_id, run_number, project, project_path, experiment, status, created_ms,"
        " created_utc, start_time_utc, end_time_utc, target, target_type, run_configuration, script_name,"
        " arguments, environment, snapshot_id, properties, duration_ms)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        run_rows,
    )
    db.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)", metric_rows)
    db.executemany(
        "INSERT INTO latest_metrics (run_id, name, step, kind, value, num, logged_utc) VALUES (?,?,?,?,?,?,?)",
        latest_rows,
    )
    db.executemany("INSERT INTO metric_catalog VALUES (?,?,?)", sorted(catalog))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _median(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    fn()  # warm the page cache, as a dashboard that is already open would be
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[dict[str, object]]:
    from jupyter_amlexec.core.history import History
    from jupyter_amlexec.core.models import Metric, RunStatus

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        history = History(home)
        start = time.perf_counter()
        _fill(history.db_path, RUNS)
        fill_s = time.perf_counter() - start
        raw = sqlite3.connect(history.db_path)

        def page() -> None:
            history.query(project=PROJECT, limit=PAGE)
            history.count(project=PROJECT)
            history.metric_names(project=PROJECT)

        def page_by_metric() -> None:
            history.query(project=PROJECT, order_by="metric:Accuracy", limit=PAGE)
            history.count(project=PROJECT)
            history.metric_names(project=PROJECT)

        def filtered_by_metric() -> None:
            filters = {"project": PROJECT, "experiment": "vision", "status": "Completed"}
            history.query(**filters, order_by="metric:loss", descending=False, limit=PAGE)
            history.count(**filters)
            history.metric_names(**filters)

        def deep_page() -> None:
            history.query(project=PROJECT, limit=PAGE, offset=RUNS // 2)

        def last_page_by_metric() -> None:
            history.query(project=PROJECT, order_by="metric:Accuracy", limit=PAGE, offset=RUNS - PAGE)

        def middle_page_by_metric() -> None:  # the worst page: farthest from both ends
            history.query(project=PROJECT, order_by="metric:Accuracy", limit=PAGE, offset=RUNS // 2)

        def bare_page() -> None:
            ids = [
                r[0]
                for r in raw.execute(
                    "SELECT run_id FROM runs WHERE project = ? ORDER BY created_ms DESC LIMIT ?",
                    (PROJECT, PAGE),
                )
            ]
            raw.execute(
                f"SELECT run_id, name, value FROM latest_metrics WHERE run_id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()

        def submit_and_checkpoint() -> None:
            record = history.create_run(
                project=PROJECT,
                project_path="/projects/bench",
                experiment="churn",
                target="local",
                target_type="local",
                run_configuration="local",
                script_name="train.py",
                arguments=["--lr", "0.1"],
                environment={},
                snapshot_id=None,
            )
            history.checkpoint(
                record.run_id,
                cursor="100",
                log_size=80,
                metrics=[Metric("Accuracy", 0.9), Metric("loss", 0.1)],
            )
            history.set_status(record.run_id, RunStatus.COMPLETED, exit_code=0)

        bare_s = _median(bare_page)
        rows: list[dict[str, object]] = [
            {
                "name": f"history: bulk fill {RUNS} runs (setup)",
                "ours_s": fill_s,
                "baseline_s": None,
                "ratio": None,
                "target": "-",
            }
        ]
        for name, fn, target in (
            ("dashboard page (newest 50 + count + metric names)", page, "<= 0.05 s"),
            ("dashboard page sorted by a metric", page_by_metric, "<= 0.1 s"),
            ("dashboard page, 2 filters, sorted by a metric", filtered_by_metric, "<= 0.1 s"),
            (f"page at offset {RUNS // 2}", deep_page, "<= 0.1 s"),
            ("last page sorted by a metric", last_page_by_metric, "<= 0.1 s"),
            ("middle page sorted by a metric (worst case)", middle_page_by_metric, "<= 0.5 s"),
        ):
            ours = _median(fn)
            rows.append(
                {
                    "name": f"history {RUNS // 1000}k: {name}",
                    "ours_s": ours,
                    "baseline_s": bare_s,
                    "ratio": ours / bare_s,
                    "target": target,
                }
            )
        rows.append(
            {
                "name": f"history {RUNS // 1000}k: submit + checkpoint + complete",
                "ours_s": _median(submit_and_checkpoint, rounds=30),
                "baseline_s": None,
                "ratio": None,
                "target": "<= 0.05 s",
            }
        )
        raw.close()
        history.close()
        return rows


def main() -> None:
    for row in run():
        limit = (
            f", bare SQLite page {row['baseline_s']:.4f}s, ratio {row['ratio']:.1f}" if row["ratio"] else ""
        )
        print(f"{row['name']}: {row['ours_s']:.4f}s{limit} (target {row['target']})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
