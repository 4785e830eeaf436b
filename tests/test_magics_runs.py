"""`%aml_runs` with its flags and `%aml_run show|logs|cancel|download|compare|restore`, in a real
kernel, over runs recorded on the local target; and `Run.rerun()` of a recorded run."""

from __future__ import annotations

from pathlib import Path

from tests.test_magics_targets import run_cells

TRAIN = (
    "import sys, os, amlexec_run\nos.makedirs('outputs', exist_ok=True)\n"
    "open('outputs/a.txt', 'w').write(sys.argv[1])\nopen('outputs/b.csv', 'w').write('x')\n"
    "amlexec_run.log('acc', float(sys.argv[1]))\n"
)
SUBMITS = [
    "%load_ext jupyter_amlexec",
    "%%aml_submit --no-widget --experiment a\nimport amlexec_run\namlexec_run.log('acc', 0.5)\nprint('cell run')",
    "first = _.id",
    "%aml_submit --no-widget --experiment b train.py 0.9",
    "second = _.id",
    "%%aml_submit --no-widget\nraise SystemExit(4)",
    "third = get_ipython().magics_manager.registry['AmlExecMagics'].session.runs()[0].run_id",
]


def _rows(html: str) -> int:
    return html.count("<tr>") - 1  # the header row


def test_runs_flags_filter_the_table(project: Path, home: Path) -> None:
    # Given three runs: a cell in experiment a, train.py in experiment b, a failed cell
    (project / "train.py").write_text(TRAIN)
    cells = [
        *SUBMITS,
        "%aml_runs --table",
        "%aml_runs --table --experiment b",
        "%aml_runs --table --status failed",
        "%aml_runs --table -n 1",
        "%aml_runs --table --script 'train*'",
        "%aml_runs --table -t docker",
        "%aml_runs --status bogus",
        "%aml_runs   # the history",
        "%aml_runs --experiment b --status completed",
        "print(first, second, third)",
    ]
    # When the history is listed with each flag
    out = run_cells(cells, project)
    first, second, third = out[-1].split()
    table, by_experiment, failed, one, scripts, docker, bogus, dashboard = out[7:15]
    # Then each table holds the runs the flag selects, with a column per metric
    assert _rows(table) == 3 and all(i in table for i in (first, second, third)) and ">acc<" in table
    assert _rows(by_experiment) == 1 and second in by_experiment
    assert _rows(failed) == 1 and third in failed and ">Failed<" in failed
    assert _rows(one) == 1 and third in one  # the newest first
    assert _rows(scripts) == 1 and ">train.py 0.9<" in scripts
    assert _rows(docker) == 0
    assert "Unknown run status 'bogus'" in bogus and "Completed" in bogus and "UsageError" in bogus
    # Without --table, in a kernel: the live dashboard (a trailing comment is no argument)
    assert "[widget]" in dashboard and "runs 1–3 of 3" in dashboard
    # The dashboard starts from the flags given
    assert "[widget]" in out[15] and "runs 1–1 of 1" in out[15] and second in out[15] and first not in out[15]


def test_run_verbs_on_recorded_runs(project: Path, home: Path, tmp_path: Path) -> None:
    (project / "train.py").write_text(TRAIN)
    dl, restored = tmp_path / "dl", tmp_path / "restored"
    cells = [
        *SUBMITS,
        "%aml_run show $second",
        "%aml_run logs $first",
        "%aml_run logs $first --control",
        f"%aml_run download $second -d {dl} --pattern '*.txt'",
        f"%aml_run download $second -d {dl} --pattern '*.png'",
        "%aml_run compare $first $second",
        f"%aml_run restore $second -d {restored}",
        "%aml_run restore $second",
        "%aml_run show nope",
        "%aml_run compare $first",
        "%aml_run show $first $second",
    ]
    out = run_cells(cells, project)
    show, logs, control, download, nothing, compare, restore, no_dest, unknown, one, two = out[7:18]
    assert "[Completed]" in show and "script=train.py acc=0.9" in show
    assert logs.strip() == "cell run"
    assert "Preparing" in control and "Completed (exit code 0)" in control and "cell run" not in control
    assert (dl / "a.txt").read_text() == "0.9" and not (dl / "b.csv").exists() and "a.txt" in download
    assert "No outputs of" in nothing and "'*.png'" in nothing and "a.txt, b.csv" in nothing
    assert "argument: argv[1]" in compare or "acc" in compare
    assert "metric: acc" in compare and "0.5" in compare and "0.9" in compare
    assert "Restored" in restore and (restored / "train.py").read_text() == TRAIN
    assert "-d DIR: say where to write the snapshot" in no_dest
    assert "No run 'nope'" in unknown
    assert "Compare takes 2 to 5 runs" in one
    assert "takes one run id" in two


def test_logs_of_a_live_run_follow_it_to_its_end_and_cancel_stops_one(project: Path, home: Path) -> None:
    # Given a run that prints a line every 0.4 s, and one that would sleep for a minute
    (project / "slowprint.py").write_text(
        "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.4)\nprint('last line')\n"
    )
    (project / "sleeper.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n")
    cells = [
        "%load_ext jupyter_amlexec",
        "live = %aml_submit -a --no-widget slowprint.py\nlive_id = live.id",
        "%aml_run logs $live_id",
        "print(live.status.value)",
        "import time\nsleeper = %aml_submit -a --no-widget sleeper.py\nsid = sleeper.id\n"
        "while 'sleeping' not in sleeper.logs(): time.sleep(0.1)",
        "t0 = time.monotonic()",
        "%aml_run cancel $sid",
        "print(round(time.monotonic() - t0), sleeper.status.value)",
        "%aml_run cancel $live_id",
        "again = %aml_submit -a --no-widget slowprint.py\nagain_id = again.id",
        "%aml_run logs $again_id --control",
    ]
    # When the user asks for the live run's logs
    out = run_cells(cells, project)
    # Then the cell prints every line once, in order, and ends with the run
    lines = [line for line in out[2].splitlines() if line.startswith(("line", "last"))]
    assert lines == [f"line {i}" for i in range(5)] + ["last line"]
    assert out[3].strip() == "Completed"
    # And cancel stops the other one within seconds, and says so
    assert "Canceled" in out[6]
    seconds, status = out[7].split()
    assert status == "Canceled" and int(seconds) < 10
    # An ended run is left alone
    assert "already Completed; nothing to cancel" in out[8]
    # And --control follows a live run's control log, every phase of it, without the script's output
    assert "Preparing" in out[10] and "Running" in out[10] and "Completed (exit code 0)" in out[10]
    assert "line 0" not in out[10] and " | " not in out[10]


def test_rerun_of_a_recorded_run_runs_the_same_snapshot_again(project: Path, home: Path) -> None:
    # Given a recorded run of train.py 0.9, and the script edited since
    (project / "train.py").write_text(TRAIN)
    cells = [
        *SUBMITS[:5],
        f"open('train.py', 'w').write({'raise SystemExit(9)'!r})",
        "old = %aml_run show $second\nnew = old.rerun()\nnew.wait()\n"
        "print(new.status.value, new.metrics, new.outputs, new.record.description)\n"
        "print(new.record.snapshot_id == old.record.snapshot_id, list(new.record.arguments))",
        "again = old.rerun(arguments=['0.25'])\nagain.wait()\nprint(again.metrics)",
    ]
    # When it is rerun (from a new Run handle on the record)
    out = run_cells(cells, project)
    # Then it ran the recorded snapshot (not the edited file) with the recorded arguments
    assert "Completed {'acc': 0.9} ['a.txt', 'b.csv'] rerun of proj_" in out[6]
    assert "True ['0.9']" in out[6]
    # And the arguments can be overridden
    assert out[7].strip() == "{'acc': 0.25}"
