"""Pages sorted by a metric, at every kind of offset, against a brute-force sort in Python.

A few thousand runs written through the real history API (submits, checkpoints, status changes after
the metrics), read through both plans: sorting every matching run, and walking the metric's order
indexes (which hold copies of the runs' filter columns that status changes must keep in step).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from jupyter_amlexec.core.history import History
from jupyter_amlexec.core.history import queries as history_queries
from jupyter_amlexec.core.models import Metric, RunStatus

RUNS = 2400
EXPERIMENTS = ("churn", "vision", "nlp")
TARGETS = ("local", "docker")
SCRIPTS = ("train.py", "eval.py", "train_big.py")
TERMINAL = (RunStatus.COMPLETED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)
TEXTS = ("high", "n/a", "low")


@dataclass
class Made:
    """What the test wrote, so it can sort the runs itself: per run, its fields and per metric
    the last value and when the run first logged that metric (a global counter)."""

    history: History
    runs: list[dict[str, object]] = field(default_factory=list)
    first_logged: dict[tuple[str, str], int] = field(default_factory=dict)
    latest: dict[tuple[str, str], object] = field(default_factory=dict)


def _log(made: Made, run_id: str, metrics: list[Metric]) -> None:
    made.history.checkpoint(run_id, cursor="1", log_size=1, metrics=metrics)
    for metric in metrics:
        made.first_logged.setdefault((run_id, metric.name), len(made.first_logged))
        made.latest[(run_id, metric.name)] = metric.value


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    """2400 runs: tied and text values, runs that never log the metric, some that log it only in a
    second pass (so first-logged order is not submit order), statuses set after the metrics."""
    rng = random.Random(5)
    history = History(tmp_path_factory.mktemp("paging") / "home")
    result = Made(history)
    late: list[str] = []
    for i in range(RUNS):
        fields = {
            "experiment": EXPERIMENTS[i % 3],
            "target": TARGETS[rng.randrange(2)],
            "script_name": SCRIPTS[rng.randrange(3)],
        }
        record = history.create_run(
            project="P" if i % 5 else "Q",
            project_path="/p",
            run_configuration="local",
            target_type="local",
            arguments=[],
            environment={},
            snapshot_id=None,
            **fields,
        )
        roll = rng.random()
        if roll < 0.6:  # a number from few values: many ties
            _log(
                result, record.run_id, [Metric("score", rng.randrange(20) / 10), Metric("loss", rng.random())]
            )
        elif roll < 0.7:
            _log(result, record.run_id, [Metric("score", rng.choice(TEXTS))])
        elif roll < 0.8:
            late.append(record.run_id)
        if rng.random() < 0.05:  # a number, later replaced by text (and the other way round)
            _log(result, record.run_id, [Metric("score", rng.choice([*TEXTS, 0.5]))])
        status = RunStatus.QUEUED if rng.random() < 0.1 else rng.choice(TERMINAL)
        if status is not RunStatus.QUEUED:
            history.set_status(record.run_id, RunStatus.RUNNING)
            history.set_status(record.run_id, status)
        result.runs.append(
            {"run_id": record.run_id, "project": record.project, "status": status.value, **fields}
        )
    for run_id in late:
        _log(result, run_id, [Metric("score", rng.randrange(20) / 10)])
    yield result
    history.close()


def _matches(run: dict[str, object], filters: dict[str, object]) -> bool:
    for key, wanted in filters.items():
        value = str(run["script_name" if key == "script" else key])
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif not fnmatchcase(value, str(wanted)):
            return False
    return True


def brute_force(made: Made, name: str, filters: dict[str, object], descending: bool) -> list[str]:
    """The documented order, in Python: numbers, then text, then runs without the metric; ties go to
    the run that first logged it earlier (later when descending), the missing ones by submit order."""
    sign = -1 if descending else 1
    keyed = []
    for submitted, run in enumerate(made.runs):
        if not _matches(run, filters):
            continue
        run_id = str(run["run_id"])
        value = made.latest.get((run_id, name), None)
        first = made.first_logged.get((run_id, name), 0)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            key: tuple[object, ...] = (0, sign * value, sign * first)
        elif (run_id, name) in made.latest:
            text = value if isinstance(value, str) else json.dumps(value)
            key = (1, _Desc(text) if descending else text, sign * first)
        else:
            key = (2, sign * submitted)
        keyed.append((key, run_id))
    return [run_id for _, run_id in sorted(keyed)]


class _Desc(str):
    """A string that sorts in reverse."""

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]


FILTERS: list[dict[str, object]] = [
    {},
    {"project": "P"},
    {"experiment": "vision", "status": "Completed"},
    {"status": ["Failed", "Canceled", "Queued"], "target": "docker"},
    {"script": "train*", "experiment": "nlp"},
]


@pytest.mark.parametrize("few_runs", [0, 10**9], ids=["walk-index", "sort-all"])
@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "no-filter")
def test_every_page_matches_a_brute_force_sort(
    made: Made, monkeypatch: pytest.MonkeyPatch, few_runs: int, descending: bool, filters: dict[str, object]
) -> None:
    # Given the runs sorted by a metric in Python
    monkeypatch.setattr(history_queries, "FEW_RUNS", few_runs)
    history = made.history
    expected = brute_force(made, "score", filters, descending)
    total = len(expected)
    assert total == history.count(**filters) and total > 200
    # When pages are read at the start, around the middle, in each segment and at the end
    half = total // 2
    offsets = sorted(
        {0, 1, 49, half - 25, half - 1, half, half + 1, half + 7, total - 50, total - 3, total - 1}
    )
    offsets += random.Random(total).sample(range(total), 12)
    for size in (50, 7):
        for offset in offsets:
            page = history.query(
                **filters, order_by="metric:score", descending=descending, limit=size, offset=offset
            )
            # Then each page is exactly that slice of the brute-force order
            assert [r.run_id for r in page] == expected[offset : offset + size], (offset, size)
    assert (
        history.query(**filters, order_by="metric:score", descending=descending, limit=10, offset=total) == []
    )
    assert [
        r.run_id for r in history.query(**filters, order_by="metric:score", descending=descending, limit=None)
    ] == expected


@pytest.mark.parametrize("few_runs", [0, 10**9], ids=["walk-index", "sort-all"])
def test_pages_tile_the_whole_order_at_a_page_size_that_straddles_segments(
    made: Made, monkeypatch: pytest.MonkeyPatch, few_runs: int
) -> None:
    monkeypatch.setattr(history_queries, "FEW_RUNS", few_runs)
    filters: dict[str, object] = {"experiment": ["churn", "nlp"], "status": "Completed"}
    expected = brute_force(made, "score", filters, True)
    paged = []
    for offset in range(0, len(expected), 97):
        paged += [
            r.run_id for r in made.history.query(**filters, order_by="metric:score", limit=97, offset=offset)
        ]
    assert paged == expected


def test_a_status_change_moves_the_run_between_filtered_metric_pages(
    made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queued run that logged the best score of all
    monkeypatch.setattr(history_queries, "FEW_RUNS", 0)
    history = made.history
    queued = next(r for r in made.runs if r["status"] == "Queued" and (r["run_id"], "score") in made.latest)
    run_id = str(queued["run_id"])
    _log(made, run_id, [Metric("score", 99.0)])
    assert history.query(status="Queued", order_by="metric:score", limit=1)[0].run_id == run_id
    # When it runs and completes
    history.set_status(run_id, RunStatus.RUNNING)
    history.set_status(run_id, RunStatus.COMPLETED)
    queued["status"] = "Completed"
    # Then the Completed pages sorted by the metric list it first, and the Queued ones no longer do
    assert history.query(status="Completed", order_by="metric:score", limit=1)[0].run_id == run_id
    assert run_id not in {
        r.run_id for r in history.query(status="Queued", order_by="metric:score", limit=None)
    }
    assert history.metric_names(status="Running") == []
    expected = brute_force(made, "score", {"status": "Completed"}, True)
    middle = len(expected) // 2
    page = history.query(status="Completed", order_by="metric:score", limit=50, offset=middle)
    assert [r.run_id for r in page] == expected[middle : middle + 50]


def test_a_version_4_history_is_upgraded_and_pages_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a history written before latest_metrics carried the runs' filter columns (schema 4)
    monkeypatch.setattr(history_queries, "FEW_RUNS", 0)
    home = tmp_path / "home"
    made = Made(History(home))
    for i in range(60):
        record = made.history.create_run(
            project="P",
            project_path="/p",
            experiment=EXPERIMENTS[i % 3],
            target="local",
            target_type="local",
            run_configuration="local",
            script_name="train.py",
            arguments=[],
            environment={},
            snapshot_id=None,
        )
        if i % 4:
            _log(made, record.run_id, [Metric("score", (i * 7) % 5)])
        made.runs.append(
            {
                "run_id": record.run_id,
                "project": "P",
                "experiment": EXPERIMENTS[i % 3],
                "status": "Queued",
                "target": "local",
                "script_name": "train.py",
            }
        )
    made.history.close()
    _downgrade_to_version_4(home / "history.sqlite")
    # When the current release opens it
    history = made.history = History(home)
    # Then a middle page with a filter is the brute-force slice, and new metrics and statuses follow
    for run in made.runs[::3]:
        history.set_status(str(run["run_id"]), RunStatus.RUNNING)
        run["status"] = "Running"
    _log(made, str(made.runs[0]["run_id"]), [Metric("score", 9)])
    _log(made, str(made.runs[4]["run_id"]), [Metric("score", 1)])  # its first value
    for filters in ({}, {"status": "Running"}, {"experiment": "vision"}):
        expected = brute_force(made, "score", filters, True)
        middle = len(expected) // 2 - 3
        page = history.query(**filters, order_by="metric:score", limit=6, offset=middle)
        assert [r.run_id for r in page] == expected[middle : middle + 6], filters


def _downgrade_to_version_4(db_path: Path) -> None:
    """The file as schema 4 left it: latest_metrics without the copies, its one index on the name,
    no metric_counts."""
    db = sqlite3.connect(db_path)
    for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("DROP TABLE metric_counts")
    db.execute("DROP INDEX latest_num_order")
    db.execute("DROP INDEX latest_txt_order")
    for column in ("seq", "project", "experiment", "status", "target", "script_name"):
        db.execute(f"ALTER TABLE latest_metrics DROP COLUMN {column}")
    db.execute("CREATE INDEX latest_by_name ON latest_metrics(name, num, txt)")
    db.execute("PRAGMA user_version=4")
    db.commit()
    db.close()
