"""The run history: records, metrics, concurrency across processes, and what it refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_amlexec.core.errors import HistoryError, RunNotFoundError
from jupyter_amlexec.core.history import History
from jupyter_amlexec.core.models import Metric, RunStatus


def new_run(history: History, project: str = "proj", **overrides: object):  # type: ignore[no-untyped-def]
    fields = dict(
        project=project,
        project_path="/p",
        experiment="exp",
        target="local",
        target_type="local",
        run_configuration="local",
        script_name="train.py",
        arguments=["1"],
        environment={},
        snapshot_id="s",
    )
    fields.update(overrides)
    return history.create_run(**fields)  # type: ignore[arg-type]


def test_terminal_status_is_final_and_times_are_set(tmp_path: Path) -> None:
    history = History(tmp_path)
    run = new_run(history)
    assert run.status is RunStatus.QUEUED and run.start_time_utc is None
    running = history.set_status(run.run_id, RunStatus.RUNNING)
    assert running.start_time_utc is not None and running.end_time_utc is None
    done = history.set_status(run.run_id, RunStatus.COMPLETED, exit_code=0)
    late = history.set_status(run.run_id, RunStatus.FAILED, exit_code=9, error="late")
    assert (
        late.status is RunStatus.COMPLETED and late.exit_code == 0 and late.end_time_utc == done.end_time_utc
    )


def test_metrics_form_series_and_checkpoint_moves_offsets(tmp_path: Path) -> None:
    history = History(tmp_path)
    run = new_run(history)
    history.checkpoint(
        run.run_id,
        raw_offset=10,
        log_size=8,
        metrics=[Metric("loss", 0.5), Metric("loss", 0.25), Metric("tag", "a")],
    )
    assert [m.step for m in history.metric_series(run.run_id)["loss"]] == [0, 1]
    assert history.get(run.run_id).metrics == {"loss": 0.25, "tag": "a"}
    assert history.progress(run.run_id) == (10, 8)


def test_query_filters_sorts_by_metric_and_pages_in_sql(tmp_path: Path) -> None:
    history = History(tmp_path)
    ids = []
    for i, acc in enumerate([0.5, 0.9, None, 0.7]):
        run = new_run(history, experiment="a" if i % 2 else "b")
        if acc is not None:
            history.checkpoint(run.run_id, raw_offset=0, log_size=0, metrics=[Metric("acc", acc)])
        ids.append(run.run_id)
    best = history.query(order_by="metric:acc", descending=True, limit=2)
    assert [r.metrics.get("acc") for r in best] == [0.9, 0.7]
    assert history.query(order_by="metric:acc", descending=False)[-1].run_id == ids[2]  # no metric: last
    assert history.count(experiment="a") == 2 and history.metric_names() == ["acc"]
    assert [r.run_id for r in history.query(limit=2, offset=2, descending=False)] == ids[2:]
    with pytest.raises(ValueError, match="metric:<name>"):
        history.query(order_by="colour")


def test_many_processes_write_at_once_and_lose_nothing(tmp_path: Path) -> None:
    # Given 4 processes each creating 40 runs with metrics in the same history
    code = (
        "import sys\nfrom pathlib import Path\nfrom jupyter_amlexec.core.history import History\n"
        "from jupyter_amlexec.core.models import Metric, RunStatus\nh = History(Path(sys.argv[1]))\n"
        "for i in range(40):\n"
        "    r = h.create_run(project='p', project_path='/p', experiment='e', target='local', target_type='local',"
        " run_configuration='local', script_name='s.py', arguments=[], environment={}, snapshot_id=None)\n"
        "    h.checkpoint(r.run_id, raw_offset=i, log_size=i, metrics=[Metric('m', i)])\n"
        "    h.set_status(r.run_id, RunStatus.COMPLETED, exit_code=0)\n"
    )
    workers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(4)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    # Then every run is there once, with unique ids and consecutive run numbers
    history = History(tmp_path)
    runs = history.query(limit=None)
    assert len(runs) == 160 and len({r.run_id for r in runs}) == 160
    assert sorted(r.run_number for r in runs) == list(range(1, 161))
    assert all(r.status is RunStatus.COMPLETED and "m" in r.metrics for r in runs)


def test_unwritable_home_and_unknown_run(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(HistoryError) as error:
        History(afile / "home")
    assert str(afile / "home") in str(error.value) and "AMLEXEC_HOME" in str(error.value)
    with pytest.raises(RunNotFoundError, match="nope"):
        History(tmp_path / "h").get("nope")


def test_follower_claim_is_exclusive_while_the_follower_lives(tmp_path: Path) -> None:
    history = History(tmp_path)
    run = new_run(history)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert history.claim_follower(run.run_id, sleeper.pid)
        assert not history.claim_follower(run.run_id, 1_000_000 + sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert history.claim_follower(run.run_id, 12345678)  # the old follower is dead: claimable
