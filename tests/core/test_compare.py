"""Comparing runs: real history, real snapshots of a project folder that changes between runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from jupyter_amlexec.core.compare import ComparisonRow, compare_runs
from jupyter_amlexec.core.errors import ConfigError, RunNotFoundError
from jupyter_amlexec.core.history import History, RunRecord
from jupyter_amlexec.core.models import Metric, RunStatus
from jupyter_amlexec.core.snapshot import SnapshotStore


def finished_run(
    history: History,
    snapshot_id: str | None,
    *,
    arguments: Sequence[str] = (),
    environment: dict[str, str] | None = None,
    metrics: Sequence[Metric] = (),
    status: RunStatus = RunStatus.COMPLETED,
    script: str = "train.py",
) -> RunRecord:
    record = history.create_run(
        project="proj",
        project_path="/work/proj",
        experiment="churn",
        target="local",
        target_type="local",
        run_configuration="local",
        script_name=script,
        arguments=arguments,
        environment=environment or {},
        snapshot_id=snapshot_id,
    )
    history.set_status(record.run_id, RunStatus.RUNNING)
    if metrics:
        history.checkpoint(record.run_id, cursor="1", log_size=1, metrics=list(metrics))
    return history.set_status(record.run_id, status, exit_code=0 if status is RunStatus.COMPLETED else 1)


@pytest.fixture
def stores(home: Path) -> tuple[History, SnapshotStore]:
    return History(home), SnapshotStore(home)


def test_two_runs_side_by_side_with_their_differences_and_changed_files(
    stores: tuple[History, SnapshotStore], project: Path
) -> None:
    history, snapshots = stores
    # Given a project run once, then edited (one file changed, one added, one removed) and run again
    (project / "train.py").write_text("print('v1')\n")
    (project / "util.py").write_text("X = 1\n")
    (project / "README.md").write_text("same\n")
    first_snapshot = snapshots.take(project, entry_script="train.py")
    first = finished_run(
        history,
        first_snapshot.id,
        arguments=["0.1", "data.csv"],
        environment={"SEED": "1", "MODE": "fast"},
        metrics=[Metric("loss", 0.9), Metric("loss", 0.5), Metric("Accuracy", 0.7)],
    )
    (project / "train.py").write_text("print('v2')\n")
    (project / "util.py").unlink()
    (project / "extra.py").write_text("Y = 2\n")
    second_snapshot = snapshots.take(project, entry_script="train.py")
    second = finished_run(
        history,
        second_snapshot.id,
        arguments=["0.2", "data.csv"],
        environment={"SEED": "1"},
        metrics=[Metric("loss", 0.4), Metric("Accuracy", 0.8), Metric("note", "tuned")],
        status=RunStatus.FAILED,
    )
    # When they are compared
    comparison = compare_runs(history, snapshots, [first.run_id, second.run_id])
    # Then each field is one row with both values, flagged when they differ
    assert comparison.run_ids == (first.run_id, second.run_id)
    assert comparison.row("argument", "argv[1]") == ComparisonRow("argument", "argv[1]", ("0.1", "0.2"))
    assert comparison.row("argument", "argv[1]").differs
    assert not comparison.row("argument", "argv[2]").differs
    assert comparison.row("environment", "MODE").values == ("fast", None)
    assert not comparison.row("environment", "SEED").differs
    assert comparison.row("run", "status").values == ("Completed", "Failed")
    assert not comparison.row("run", "target").differs and not comparison.row("run", "script").differs
    assert all(v is not None for v in comparison.row("run", "duration").values)
    # every metric with its latest value, including one only the second run logged
    assert comparison.row("metric", "loss").values == (0.5, 0.4)
    assert comparison.row("metric", "note").values == (None, "tuned")
    # and the differences-only view keeps exactly the rows that differ
    names = {(r.section, r.name) for r in comparison.differences_only()}
    assert {("argument", "argv[1]"), ("environment", "MODE"), ("run", "status"), ("metric", "loss")} <= names
    assert not names & {("argument", "argv[2]"), ("environment", "SEED"), ("run", "target")}
    # the snapshot files that differ, labelled against the first run
    assert comparison.files == (("extra.py", "added"), ("train.py", "changed"), ("util.py", "removed"))
    # and each run's metric series, for overlay plots
    assert [m.value for m in comparison.series["loss"][first.run_id]] == [0.9, 0.5]
    assert [m.value for m in comparison.series["loss"][second.run_id]] == [0.4]
    assert second.run_id not in comparison.series.get("missing", {})


def test_three_runs_list_a_file_changed_only_in_the_last(
    stores: tuple[History, SnapshotStore], project: Path
) -> None:
    history, snapshots = stores
    # Given three runs where only the third changed a file
    (project / "train.py").write_text("print('a')\n")
    same = snapshots.take(project).id
    runs = [finished_run(history, same), finished_run(history, same)]
    (project / "train.py").write_text("print('b')\n")
    runs.append(finished_run(history, snapshots.take(project).id))
    # When the three are compared
    comparison = compare_runs(history, snapshots, [r.run_id for r in runs])
    # Then the file is listed, and every row has three values
    assert comparison.files == (("train.py", "changed"),)
    assert all(len(r.values) == 3 for r in comparison.rows)


def test_runs_of_the_same_snapshot_have_no_changed_files(
    stores: tuple[History, SnapshotStore], project: Path
) -> None:
    history, snapshots = stores
    (project / "train.py").write_text("print('a')\n")
    snapshot = snapshots.take(project).id
    a, b = finished_run(history, snapshot), finished_run(history, snapshot)
    comparison = compare_runs(history, snapshots, [a.run_id, b.run_id])
    assert comparison.files == () and comparison.unavailable_snapshots == ()
    assert not comparison.row("run", "snapshot").differs


def test_options_are_compared_by_name_not_by_position(stores: tuple[History, SnapshotStore]) -> None:
    # Given a run with one more flag than the other, before the shared options
    history, snapshots = stores
    a = finished_run(history, None, arguments=["--lr", "0.1", "--epochs", "5", "data.csv"])
    b = finished_run(
        history, None, arguments=["--fast", "--lr=0.2", "--epochs", "5", "--shift", "-1", "data.csv"]
    )
    # When compared
    comparison = compare_runs(history, snapshots, [a.run_id, b.run_id])
    # Then each option is its own row: only the ones that really differ are flagged
    args = {r.name: r for r in comparison.rows if r.section == "argument"}
    assert args["--lr"].values == ("0.1", "0.2") and args["--lr"].differs
    assert args["--epochs"].values == ("5", "5") and not args["--epochs"].differs
    assert args["--fast"].values == (None, True)
    assert args["--shift"].values == (None, "-1")  # a negative number is a value, not an option
    assert not args["positional 1"].differs


def test_equal_numbers_do_not_differ_but_a_bool_is_not_a_number() -> None:
    assert not ComparisonRow("metric", "m", (1, 1.0)).differs
    assert ComparisonRow("metric", "m", (True, 1)).differs
    assert ComparisonRow("metric", "m", ([1, 2], [1, 3])).differs
    assert not ComparisonRow("metric", "m", ({"a": 1, "b": 2}, {"b": 2, "a": 1})).differs


def test_to_json_is_what_the_cli_prints(stores: tuple[History, SnapshotStore], project: Path) -> None:
    history, snapshots = stores
    (project / "train.py").write_text("print('a')\n")
    a = finished_run(
        history, snapshots.take(project).id, arguments=["1"], metrics=[Metric("curve", [1, 2], "list")]
    )
    (project / "train.py").write_text("print('b')\n")
    b = finished_run(
        history, snapshots.take(project).id, arguments=["1"], metrics=[Metric("curve", [1, 3], "list")]
    )
    comparison = compare_runs(history, snapshots, [a.run_id, b.run_id])
    doc = json.loads(json.dumps(comparison.to_json()))
    assert doc["runs"] == [a.run_id, b.run_id]
    assert {"section": "metric", "name": "curve", "values": [[1, 2], [1, 3]], "differs": True} in doc["rows"]
    assert doc["changed_files"] == [{"path": "train.py", "change": "changed"}]
    assert doc["series"]["curve"][a.run_id] == [[0, [1, 2]]]
    only = comparison.to_json(only_differences=True)
    assert all(r["differs"] for r in only["rows"]) and len(only["rows"]) < len(doc["rows"])
    assert not any(r["name"] == "argv[1]" for r in only["rows"])


def test_a_snapshot_gone_from_the_store_is_reported_not_fatal(
    stores: tuple[History, SnapshotStore], project: Path, home: Path
) -> None:
    history, snapshots = stores
    (project / "train.py").write_text("print('a')\n")
    a = finished_run(history, snapshots.take(project).id)
    (project / "train.py").write_text("print('b')\n")
    gone = snapshots.take(project).id
    b = finished_run(history, gone)
    (home / "snapshots" / f"{gone}.json").unlink()
    comparison = compare_runs(history, snapshots, [a.run_id, b.run_id])
    assert comparison.unavailable_snapshots == (gone,) and comparison.files == ()


def test_compare_refuses_too_few_too_many_repeated_and_unknown_runs(
    stores: tuple[History, SnapshotStore],
) -> None:
    history, snapshots = stores
    runs = [finished_run(history, None).run_id for _ in range(6)]
    for ids in ([runs[0]], runs, []):
        with pytest.raises(ConfigError, match="2 to 5 runs"):
            compare_runs(history, snapshots, ids)
    with pytest.raises(ConfigError, match="more than once"):
        compare_runs(history, snapshots, [runs[0], runs[0]])
    with pytest.raises(RunNotFoundError, match="proj_0"):
        compare_runs(history, snapshots, [runs[0], "proj_0"])
    assert len(compare_runs(history, snapshots, runs[:5]).run_ids) == 5
