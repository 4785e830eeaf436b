"""The run history: real SQLite files, real processes and threads writing at once."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jupyter_amlexec.core import history as history_module
from jupyter_amlexec.core.errors import HistoryError, RunNotFoundError
from jupyter_amlexec.core.history import History, RunRecord
from jupyter_amlexec.core.history import queries as history_queries
from jupyter_amlexec.core.models import Metric, RunStatus

REPO = Path(__file__).resolve().parents[2]


def new_run(history: History, project: str = "proj", **overrides: object) -> RunRecord:
    fields: dict[str, object] = {
        "project": project,
        "project_path": f"/work/{project}",
        "experiment": "default",
        "target": "local",
        "target_type": "local",
        "run_configuration": "local",
        "script_name": "train.py",
        "arguments": ["--lr", "0.1"],
        "environment": {"SEED": "1"},
        "snapshot_id": "ab" * 32,
    }
    fields.update(overrides)
    return history.create_run(**fields)  # type: ignore[arg-type]


# --- creating runs --------------------------------------------------------------------------------


def test_a_new_run_is_queued_with_a_workbench_id_and_its_own_folder(home: Path) -> None:
    # Given an empty history
    history = History(home)
    before_ms = int(time.time() * 1000)
    # When a run is created
    record = new_run(history, arguments=["--lr", "0.1"], description="first try")
    # Then it is Queued, numbered 1, named <project>_<epoch ms>, with what was asked, and a folder
    match = re.fullmatch(r"proj_(\d{13})", record.run_id)
    assert match and before_ms <= int(match.group(1)) <= int(time.time() * 1000)
    assert (record.status, record.run_number) == (RunStatus.QUEUED, 1)
    assert record.arguments == ("--lr", "0.1") and record.environment == {"SEED": "1"}
    assert record.description == "first try" and record.start_time_utc is None
    assert history.run_dir(record.run_id).is_dir()
    assert history.get(record.run_id) == record
    # and the database file is in WAL mode
    mode = sqlite3.connect(home / "history.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_an_id_already_taken_gets_the_next_suffix(home: Path) -> None:
    # Given ids <project>_<ms> for every millisecond of the next 3 s are taken (by another process)
    history = History(home)
    first = new_run(history)
    time.sleep(0.002)  # so the taken ids start after the first run's own
    now = int(time.time() * 1000)
    db = sqlite3.connect(home / "history.sqlite")
    row = db.execute("SELECT * FROM runs WHERE run_id = ?", (first.run_id,)).fetchone()
    columns = [d[0] for d in db.execute("SELECT * FROM runs LIMIT 0").description]
    taken = []
    for i, ms in enumerate(range(now, now + 3000)):
        values = dict(zip(columns, row))
        values.update(run_id=f"proj_{ms}", run_number=2 + i, created_ms=ms)
        taken.append(tuple(values.values()))
    db.executemany(f"INSERT INTO runs VALUES ({','.join('?' * len(columns))})", taken)
    db.commit()
    db.close()
    # When a run is created within those 3 s
    record = new_run(history)
    # Then its id is one of them with the suffix -2, and it is numbered after all of them
    match = re.fullmatch(r"proj_(\d{13})-2", record.run_id)
    assert match and now <= int(match.group(1)) < now + 3000
    assert record.run_number == 3002


def test_run_numbers_are_consecutive_per_project(home: Path) -> None:
    # Given a history shared by two projects
    history = History(home)
    # When runs of both are created interleaved
    numbers = [(p, new_run(history, project=p).run_number) for p in ["a", "b", "a", "a", "b"]]
    # Then each project counts its own runs from 1
    assert numbers == [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)]


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from jupyter_amlexec.core.history import History
    from jupyter_amlexec.core.models import Metric, RunStatus

    home, start_at, worker = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    history = History(home)
    while time.time() < start_at:  # every worker starts writing at the same instant
        time.sleep(0.001)
    ids = []
    for i in range(50):
        record = history.create_run(
            project="proj", project_path="/p", experiment=worker, target="local", target_type="local",
            run_configuration="local", script_name="train.py", arguments=[worker, str(i)],
            environment={}, snapshot_id=None,
        )
        history.set_status(record.run_id, RunStatus.RUNNING)
        history.checkpoint(record.run_id, cursor="10", log_size=5,
                           metrics=[Metric("loss", 1.0 / (i + 1)), Metric("worker", worker)])
        history.checkpoint(record.run_id, cursor="20", log_size=9, metrics=[Metric("loss", 0.0)])
        history.set_status(record.run_id, RunStatus.COMPLETED, exit_code=0)
        ids.append(record.run_id)
    print(json.dumps(ids))
    """
)


def test_four_processes_writing_at_once_lose_nothing(home: Path) -> None:
    # Given a history, and 4 processes that each create, run and checkpoint 50 runs
    History(home)
    start_at = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), str(start_at), f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(4)
    ]
    # When they all write at the same time
    outputs = [w.communicate(timeout=240) for w in workers]
    # Then every process succeeded and every run is there once, with a unique id
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [err for _, err in outputs]
    reported = [run_id for out, _ in outputs for run_id in json.loads(out)]
    assert len(reported) == len(set(reported)) == 200
    history = History(home)
    records = history.query(project="proj", limit=None)
    assert {r.run_id for r in records} == set(reported)
    # and run numbers are 1..200, in the order of submission
    by_number = sorted(records, key=lambda r: r.run_number)
    assert [r.run_number for r in by_number] == list(range(1, 201))
    created = [int(r.run_id.split("_")[1].split("-")[0]) for r in by_number]
    assert created == sorted(created)
    # and every run has both checkpoints: steps in order, offsets of the last one, final status
    for record in records:
        assert record.status is RunStatus.COMPLETED
        assert record.metrics == {"loss": 0.0, "worker": record.experiment}
        assert [m.step for m in history.metric_series(record.run_id)["loss"]] == [0, 1]
        assert history.progress(record.run_id) == ("20", 9)


def test_the_follower_thread_and_the_main_thread_share_one_history(home: Path) -> None:
    # Given one History, as a kernel holds it, and a run
    history = History(home)
    run_id = new_run(history).run_id
    errors: list[BaseException] = []

    def follower() -> None:
        try:
            for i in range(300):
                history.checkpoint(run_id, cursor=str(i + 1), log_size=i, metrics=[Metric("step", i)])
        except BaseException as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)

    # When a follower thread checkpoints while the main thread reads and writes the same run
    thread = threading.Thread(target=follower)
    thread.start()
    while thread.is_alive():
        history.set_handle(run_id, {"pid": os.getpid()})
        history.query(order_by="metric:step")
        history.get(run_id)
    thread.join()
    # Then nothing failed and every checkpoint is stored
    assert errors == []
    assert [m.value for m in history.metric_series(run_id)["step"]] == list(range(300))
    assert history.progress(run_id) == ("300", 299)
    assert history.get(run_id).handle == {"pid": os.getpid()}


# --- status ---------------------------------------------------------------------------------------


def test_running_stamps_the_start_and_a_terminal_status_is_final(home: Path) -> None:
    # Given a queued run
    history = History(home)
    run_id = new_run(history).run_id
    # When it prepares, then runs (twice reported), then completes
    preparing = history.set_status(run_id, RunStatus.PREPARING, detail="building image")
    running = history.set_status(run_id, RunStatus.RUNNING)
    time.sleep(0.02)
    again = history.set_status(run_id, RunStatus.RUNNING)
    done = history.set_status(run_id, RunStatus.COMPLETED, exit_code=0)
    # Then the start is stamped once, on entering Running, and the end on completion
    assert preparing.start_time_utc is None and preparing.detail == "building image"
    assert running.start_time_utc is not None and again.start_time_utc == running.start_time_utc
    assert done.end_time_utc is not None and done.exit_code == 0
    assert done.duration is not None and done.duration.total_seconds() >= 0.02
    # When a late cancel or a stale "Running" arrives
    after_cancel = history.set_status(run_id, RunStatus.CANCELED, error="canceled by the user")
    after_running = history.set_status(run_id, RunStatus.RUNNING)
    # Then the record is unchanged
    assert after_cancel == done and after_running == done
    assert history.get(run_id).status is RunStatus.COMPLETED


def test_a_run_that_fails_before_running_has_no_start(home: Path) -> None:
    history = History(home)
    run_id = new_run(history).run_id
    failed = history.set_status(run_id, RunStatus.FAILED, error="image build failed")
    assert (failed.status, failed.error, failed.start_time_utc) == (
        RunStatus.FAILED,
        "image build failed",
        None,
    )
    assert failed.end_time_utc is not None and failed.duration is None


def test_unknown_runs_raise_run_not_found_naming_the_id(home: Path) -> None:
    history = History(home)
    for call in (
        lambda: history.get("nope_1"),
        lambda: history.set_status("nope_1", RunStatus.RUNNING),
        lambda: history.set_handle("nope_1", {}),
        lambda: history.set_attachments("nope_1", ["outputs/a"]),
        lambda: history.checkpoint("nope_1", cursor="1", log_size=1, metrics=[]),
        lambda: history.progress("nope_1"),
        lambda: history.read_log("nope_1"),
        lambda: history.claim_follower("nope_1", os.getpid()),
        lambda: history.last(),
    ):
        with pytest.raises(RunNotFoundError) as info:
            call()
        assert "nope_1" in str(info.value) or "last" in str(info.value)


# --- checkpoints and metrics ----------------------------------------------------------------------


def test_checkpoints_number_steps_per_metric_and_keep_the_latest_value(home: Path) -> None:
    # Given a run
    history = History(home)
    run_id = new_run(history).run_id
    # When metrics arrive over two checkpoints
    history.checkpoint(
        run_id,
        cursor="100",
        log_size=60,
        metrics=[Metric("loss", 0.9), Metric("Accuracy", 0.5), Metric("loss", 0.7)],
    )
    history.checkpoint(
        run_id,
        cursor="180",
        log_size=90,
        metrics=[Metric("loss", 0.4), Metric("curve", [1, 2, 3], kind="list"), Metric("note", "ok")],
    )
    # Then each name's steps count on, the record holds the latest values in first-logged order,
    # and the offsets are those of the last checkpoint
    series = history.metric_series(run_id)
    assert [(m.step, m.value) for m in series["loss"]] == [(0, 0.9), (1, 0.7), (2, 0.4)]
    assert series["curve"][0].kind == "list" and series["curve"][0].value == [1, 2, 3]
    assert series["loss"][0].logged_utc  # stamped when the follower did not
    record = history.get(run_id)
    assert list(record.metrics.items()) == [
        ("loss", 0.4),
        ("Accuracy", 0.5),
        ("curve", [1, 2, 3]),
        ("note", "ok"),
    ]
    assert history.progress(run_id) == ("180", 90)


def test_a_failed_checkpoint_stores_neither_metrics_nor_offsets(home: Path) -> None:
    # Given a run with one checkpoint
    history = History(home)
    run_id = new_run(history).run_id
    history.checkpoint(run_id, cursor="10", log_size=5, metrics=[Metric("loss", 1.0)])
    # When a checkpoint fails on its second metric (a value that cannot be stored)
    with pytest.raises(TypeError):
        history.checkpoint(
            run_id, cursor="99", log_size=50, metrics=[Metric("loss", 0.5), Metric("bad", object())]
        )
    # Then nothing of it is stored: a new follower resumes from the last good checkpoint
    assert history.progress(run_id) == ("10", 5)
    assert [m.value for m in history.metric_series(run_id)["loss"]] == [1.0]
    assert history.get(run_id).metrics == {"loss": 1.0}


def test_a_reader_never_sees_offsets_without_their_metrics(home: Path) -> None:
    # Given a run, and a reader in its own connection taking snapshots while a follower checkpoints
    history = History(home)
    run_id = new_run(history).run_id
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def reader() -> None:
        db = sqlite3.connect(home / "history.sqlite", isolation_level=None)
        while not stop.is_set():
            db.execute("BEGIN")
            offset = int(
                db.execute("SELECT raw_cursor FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0] or 0
            )
            count = db.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
            db.execute("COMMIT")
            seen.append((offset, count))
        db.close()

    thread = threading.Thread(target=reader)
    thread.start()
    # When 200 checkpoints of 3 metrics each are written
    for i in range(1, 201):
        history.checkpoint(
            run_id, cursor=str(i * 100), log_size=i, metrics=[Metric("a", i), Metric("b", i), Metric("a", -i)]
        )
    stop.set()
    thread.join()
    # Then every snapshot the reader took had exactly the metrics of the offsets it saw
    assert len(seen) > 10
    assert all(count == 3 * offset // 100 for offset, count in seen), [
        s for s in seen if s[1] != 3 * s[0] // 100
    ]


# --- queries --------------------------------------------------------------------------------------


@pytest.fixture
def runs(home: Path) -> tuple[History, dict[str, RunRecord]]:
    """Twelve runs over two projects, experiments, targets, statuses and scripts, with metrics."""
    history = History(home)
    made: dict[str, RunRecord] = {}
    plan = [
        # key, project, experiment, target, script, status, Accuracy
        ("a1", "A", "churn", "local", "train.py", RunStatus.COMPLETED, 0.7),
        ("a2", "A", "churn", "docker", "train.py", RunStatus.FAILED, 0.9),
        ("a3", "A", "vision", "docker", "eval.py", RunStatus.COMPLETED, None),
        ("a4", "A", "vision", "local", "train.py", RunStatus.RUNNING, 0.8),
        ("a5", "A", "churn", "docker", "eval.py", RunStatus.COMPLETED, "n/a"),
        ("a6", "A", "churn", "local", "train.py", RunStatus.CANCELED, 0.9),
        ("b1", "B", "churn", "local", "train.py", RunStatus.COMPLETED, 0.1),
        ("b2", "B", "nlp", "docker", "train.py", RunStatus.COMPLETED, None),
        ("b3", "B", "nlp", "local", "eval.py", RunStatus.FAILED, 0.95),
        ("b4", "B", "churn", "docker", "train.py", RunStatus.COMPLETED, "high"),
        ("b5", "B", "nlp", "local", "train.py", RunStatus.QUEUED, 0.3),
        ("b6", "B", "churn", "local", "eval.py", RunStatus.COMPLETED, 0.5),
    ]
    for key, project, experiment, target, script, status, accuracy in plan:
        record = new_run(history, project=project, experiment=experiment, target=target, script_name=script)
        metrics = [Metric("loss", len(made))]
        if accuracy is not None:
            metrics.append(Metric("Accuracy", accuracy))
        if key == "b3":
            metrics.append(Metric("f1", 0.2))
        history.checkpoint(record.run_id, cursor="1", log_size=1, metrics=metrics)
        if status is not RunStatus.QUEUED:
            history.set_status(record.run_id, RunStatus.RUNNING)
            history.set_status(record.run_id, status)
        made[key] = record
        time.sleep(0.002)  # distinct submit milliseconds, so "newest first" is well defined
    return history, made


def keys(records: list[RunRecord], made: dict[str, RunRecord]) -> list[str]:
    by_id = {r.run_id: k for k, r in made.items()}
    return [by_id[r.run_id] for r in records]


def test_query_filters_by_each_field_and_combines_them(runs: tuple[History, dict[str, RunRecord]]) -> None:
    history, made = runs
    q = history.query
    assert keys(q(project="A"), made) == ["a6", "a5", "a4", "a3", "a2", "a1"]
    assert keys(q(experiment="nlp"), made) == ["b5", "b3", "b2"]
    assert keys(q(target="docker", project="B"), made) == ["b4", "b2"]
    assert keys(q(status=RunStatus.FAILED), made) == ["b3", "a2"]
    assert keys(q(status=["Running", "Queued"]), made) == ["b5", "a4"]
    assert keys(q(script="eval.py", experiment="churn"), made) == ["b6", "a5"]
    assert keys(q(project="C"), made) == []
    assert history.count() == 12 and history.count(project="A", status="Completed") == 3
    assert history.count(status=["Failed", "Canceled"]) == 3
    assert history.last().run_id == made["b6"].run_id
    assert history.last("A").run_id == made["a6"].run_id
    with pytest.raises(ValueError, match="owner"):
        history.count(owner="me")


def test_query_sorts_and_pages_in_sql(runs: tuple[History, dict[str, RunRecord]]) -> None:
    history, made = runs
    # oldest first, by run number within a project, and pages that tile the whole list
    assert keys(history.query(project="B", descending=False), made) == ["b1", "b2", "b3", "b4", "b5", "b6"]
    assert [r.run_number for r in history.query(project="A", order_by="run_number")] == [6, 5, 4, 3, 2, 1]
    everything = keys(history.query(limit=None), made)
    pages = [keys(history.query(limit=5, offset=o), made) for o in (0, 5, 10, 15)]
    assert pages[0] + pages[1] + pages[2] == everything and len(pages[2]) == 2 and pages[3] == []
    by_status = [r.status.value for r in history.query(order_by="status", descending=False, limit=None)]
    assert by_status == sorted(by_status)
    with pytest.raises(ValueError, match="metric:<name>"):
        history.query(order_by="colour")


def test_query_sorts_by_a_metric_numbers_then_text_then_missing(
    runs: tuple[History, dict[str, RunRecord]],
) -> None:
    history, made = runs
    # Highest Accuracy first (of two equal values, the later run first), then text values, then none
    best = keys(history.query(order_by="metric:Accuracy", limit=None), made)
    assert best == ["b3", "a6", "a2", "a4", "a1", "b6", "b5", "b1", "a5", "b4", "b2", "a3"]
    # Lowest first: numbers ascending, then text ascending, then the runs without it
    worst = keys(history.query(order_by="metric:Accuracy", descending=False, limit=None), made)
    assert worst == ["b1", "b5", "b6", "a1", "a4", "a2", "a6", "b3", "b4", "a5", "a3", "b2"]
    # Filtered to a project
    assert keys(history.query(project="A", order_by="metric:Accuracy"), made) == [
        "a6",
        "a2",
        "a4",
        "a1",
        "a5",
        "a3",
    ]


@pytest.mark.parametrize("few_runs", [0, 2000])
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("filters", [{}, {"project": "A"}, {"status": "Completed"}, {"experiment": "churn"}])
def test_metric_sorted_pages_tile_the_whole_sorted_list(
    runs: tuple[History, dict[str, RunRecord]],
    monkeypatch: pytest.MonkeyPatch,
    descending: bool,
    filters: dict[str, str],
    few_runs: int,
) -> None:
    # (both plans: walking the metric's order indexes, and sorting the few matching runs)
    monkeypatch.setattr(history_queries, "FEW_RUNS", few_runs)
    # Given the whole list sorted by a metric in one query
    history, _ = runs
    whole = [
        r.run_id
        for r in history.query(**filters, order_by="metric:Accuracy", descending=descending, limit=None)
    ]
    # When it is read page by page, of every size (pages in the first half are walked from the start,
    # pages past the middle from the nearer end of their segment)
    for size in (1, 2, 3, 5):
        paged = []
        for offset in range(0, len(whole) + size, size):
            page = history.query(
                **filters, order_by="metric:Accuracy", descending=descending, limit=size, offset=offset
            )
            assert len(page) <= size
            paged.extend(r.run_id for r in page)
        # Then the pages are the whole list, in order, with nothing repeated or missing
        assert paged == whole, size


@pytest.mark.parametrize("few_runs", [0, 2000])
def test_metric_names_follow_the_filters(
    runs: tuple[History, dict[str, RunRecord]], monkeypatch: pytest.MonkeyPatch, few_runs: int
) -> None:
    # (both plans: probing each name in the metric index, and reading the few matching runs)
    monkeypatch.setattr(history_queries, "FEW_RUNS", few_runs)
    history, _ = runs
    assert history.metric_names() == ["Accuracy", "f1", "loss"]
    assert history.metric_names(project="A") == ["Accuracy", "loss"]
    assert history.metric_names(project="B", experiment="nlp") == ["Accuracy", "f1", "loss"]
    assert history.metric_names(project="B", status="Completed") == ["Accuracy", "loss"]
    assert history.metric_names(status="Failed") == ["Accuracy", "f1", "loss"]
    assert history.metric_names(project="C") == []


def test_query_sorts_by_duration(home: Path) -> None:
    history = History(home)
    quick, slow = new_run(history), new_run(history)
    for record, seconds in ((slow, 0.05), (quick, 0.0)):
        history.set_status(record.run_id, RunStatus.RUNNING)
        time.sleep(seconds)
        history.set_status(record.run_id, RunStatus.COMPLETED)
    longest = history.query(order_by="duration")
    assert [r.run_id for r in longest] == [slow.run_id, quick.run_id]


# --- logs, attachments, JSON ---------------------------------------------------------------------


def test_logs_append_and_read_whole_from_an_offset_or_the_tail(home: Path) -> None:
    history = History(home)
    run_id = new_run(history).run_id
    assert history.read_log(run_id) == ""
    size = history.append_log(run_id, "héllo\n")
    size = history.append_log(run_id, "wörld\n")
    history.append_log(run_id, "building image\n", source="control")
    assert size == len("héllo\nwörld\n".encode())
    assert history.read_log(run_id) == "héllo\nwörld\n"
    assert history.read_log(run_id, offset=len("héllo\n".encode())) == "wörld\n"
    # a tail that starts inside "ö" drops the broken character rather than showing garbage
    assert history.read_log(run_id, tail_bytes=5) == "rld\n"
    assert history.read_log(run_id, "control") == "building image\n"
    assert (history.run_dir(run_id) / "driver_log.txt").read_text() == "héllo\nwörld\n"


def test_to_json_has_workbench_record_shape(home: Path) -> None:
    # Given a completed run with metrics and an output file
    history = History(home)
    record = new_run(history, properties={"git": "abc"})
    history.checkpoint(
        record.run_id,
        cursor="1",
        log_size=1,
        metrics=[Metric("Accuracy", 0.68), Metric("Regularization Rate", 0.078125)],
    )
    history.set_status(record.run_id, RunStatus.RUNNING)
    history.set_attachments(record.run_id, ["outputs/model.pkl", "outputs/cm.png", "outputs/model.pkl"])
    history.set_status(record.run_id, RunStatus.FAILED, exit_code=3, error="exit code 3")
    # When it is rendered as `history info -o json` would
    doc = json.loads(json.dumps(history.get(record.run_id).to_json()))
    # Then metrics are top-level keys, attachments one string, duration H:MM:SS.ffffff, etc.
    assert doc["Accuracy"] == 0.68 and doc["Regularization Rate"] == 0.078125
    assert doc["attachments"] == "driver_log.txt, control_log.txt, outputs/model.pkl, outputs/cm.png"
    assert re.fullmatch(r"\d+:\d{2}:\d{2}\.\d{6}", doc["duration"])
    assert doc["properties"] == {"SnapshotId": "ab" * 32, "git": "abc"}
    assert (doc["run_id"], doc["run_number"], doc["status"]) == (record.run_id, 1, "Failed")
    assert (doc["script_name"], doc["target"], doc["experiment"], doc["project"]) == (
        "train.py",
        "local",
        "default",
        "proj",
    )
    assert (doc["arguments"], doc["exit_code"], doc["error"]) == (["--lr", "0.1"], 3, "exit code 3")
    assert doc["created_utc"] <= doc["start_time_utc"] <= doc["end_time_utc"]


def test_duration_text_matches_workbench() -> None:
    from datetime import timedelta

    assert history_module.duration_text(timedelta(seconds=4.892389)) == "0:00:04.892389"
    assert history_module.duration_text(timedelta(hours=26, minutes=3, seconds=7)) == "26:03:07.000000"


# --- followers ------------------------------------------------------------------------------------


def test_only_one_live_process_follows_a_run(home: Path) -> None:
    # Given a run followed by this process
    history = History(home)
    run_id = new_run(history).run_id
    assert history.claim_follower(run_id, os.getpid())
    assert history.claim_follower(run_id, os.getpid())  # claiming again is harmless
    # When another live process asks to follow it, it is refused
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not history.claim_follower(run_id, other.pid)
        # and once this process lets go, the other may follow it; then this one may not
        history.release_follower(run_id, os.getpid())
        assert history.claim_follower(run_id, other.pid)
        assert not history.claim_follower(run_id, os.getpid())
    finally:
        other.kill()
        other.wait()
    # When the follower dies without letting go, the run is claimable again
    assert history.claim_follower(run_id, os.getpid())


# --- opening --------------------------------------------------------------------------------------


def test_an_unwritable_home_names_the_path_and_amlexec_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a home below a regular file (cannot be created, even by root)
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    home = blocker / "home"
    monkeypatch.setenv("AMLEXEC_HOME", str(home))
    # When the history is opened there
    with pytest.raises(HistoryError) as info:
        History(home)
    # Then the error names the folder and says how to choose another
    assert str(home) in str(info.value) and "AMLEXEC_HOME" in str(info.value)


V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, run_number INTEGER NOT NULL, project TEXT NOT NULL,
    project_path TEXT NOT NULL, experiment TEXT NOT NULL, status TEXT NOT NULL, created_ms INTEGER NOT NULL,
    created_utc TEXT NOT NULL, start_time_utc TEXT, end_time_utc TEXT, target TEXT NOT NULL,
    target_type TEXT NOT NULL, run_configuration TEXT NOT NULL, script_name TEXT NOT NULL,
    arguments TEXT NOT NULL, environment TEXT NOT NULL, snapshot_id TEXT, exit_code INTEGER, error TEXT,
    description TEXT, properties TEXT NOT NULL, attachments TEXT NOT NULL DEFAULT '[]', handle TEXT,
    follower_pid INTEGER, raw_offset INTEGER NOT NULL DEFAULT 0, log_size INTEGER NOT NULL DEFAULT 0);
CREATE TABLE metrics (run_id TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL,
    value TEXT NOT NULL, logged_utc TEXT NOT NULL, PRIMARY KEY (run_id, name, step));
CREATE TABLE latest_metrics (run_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, num REAL,
    PRIMARY KEY (run_id, name));
CREATE INDEX latest_by_name ON latest_metrics(name, num);
"""


def test_a_history_from_the_first_release_is_upgraded_in_place(home: Path) -> None:
    # Given a history.sqlite written by the first release (attachments as JSON, no numeric column)
    home.mkdir(parents=True)
    db = sqlite3.connect(home / "history.sqlite")
    db.executescript(V1_SCHEMA)
    for n, (acc, note) in enumerate([(0.5, "x"), (0.9, "y")], start=1):
        run_id = f"old_{1700000000000 + n}"
        db.execute(
            "INSERT INTO runs (run_id, run_number, project, project_path, experiment, status, created_ms,"
            " created_utc, start_time_utc, end_time_utc, target, target_type, run_configuration, script_name,"
            " arguments, environment, properties, attachments) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                n,
                "old",
                "/p",
                "default",
                "Completed",
                1700000000000 + n,
                "2023-11-14T22:13:20+00:00",
                "2023-11-14T22:13:20+00:00",
                "2023-11-14T22:13:25.5+00:00",
                "local",
                "local",
                "local",
                "t.py",
                "[]",
                "{}",
                "{}",
                '["outputs/m.pkl"]',
            ),
        )
        for step, value in enumerate([0.1, acc]):
            db.execute(
                "INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                (run_id, "acc", step, "scalar", json.dumps(value), "t"),
            )
        db.execute(
            "INSERT INTO metrics VALUES (?,?,?,?,?,?)", (run_id, "note", 0, "scalar", json.dumps(note), "t")
        )
    db.commit()
    db.close()
    # When the current release opens it
    history = History(home)
    # Then the old runs read, sort and list as new ones do
    best = history.query(order_by="metric:acc")
    assert [r.run_id for r in best] == ["old_1700000000002", "old_1700000000001"]
    assert best[0].metrics == {"acc": 0.9, "note": "y"}
    assert best[0].attachments == ("driver_log.txt", "control_log.txt", "outputs/m.pkl")
    assert best[0].to_json()["duration"] == "0:00:05.500000"
    assert history.metric_names(project="old") == ["acc", "note"]
    assert [r.run_id for r in history.query(order_by="duration", limit=1)] == ["old_1700000000002"]
    # and new runs continue the numbering
    assert new_run(history, project="old").run_number == 3
