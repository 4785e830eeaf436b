"""`%%aml_submit` and `%aml_submit SCRIPT ARGS`, each flag, in a real kernel: what reaches the run,
what the history records, what the cell shows."""

from __future__ import annotations

from pathlib import Path

from tests.test_magics_targets import run_cells

SECRET = "s3cr3t-value-42"


def test_cell_flags_reach_the_run_and_the_record(project: Path, home: Path) -> None:
    # Given a cell submitted with a run configuration, an experiment, an --env, arguments after --
    # and a trailing comment
    cells = [
        "%load_ext jupyter_amlexec",
        "%%aml_submit -c local --experiment exp1 --env GREETING=hi --no-widget -- one two  # a note\n"
        "import os, sys\nprint('args', sys.argv[1:])\nprint('greeting', os.environ['GREETING'])",
        "r = _\nprint(r.record.experiment, list(r.record.arguments), dict(r.record.environment), r.record.target)",
    ]
    # When it runs
    out = run_cells(cells, project)
    # Then the script saw the arguments (not the comment) and the variable; plain text, no widget
    assert "args ['one', 'two']" in out[1] and "greeting hi" in out[1]
    assert "[widget]" not in out[1] and "RunId: proj_" in out[1] and "Completed in" in out[1]
    # And the record says so
    assert out[2].strip() == "exp1 ['one', 'two'] {'GREETING': 'hi'} local"


def test_line_form_runs_a_project_script_with_its_arguments(project: Path, home: Path) -> None:
    (project / "job.py").write_text("import sys\nprint('job args', sys.argv[1:])\n")
    cells = [
        "%load_ext jupyter_amlexec",
        "%aml_submit job.py 0.5",
        "print(_.record.script_name, list(_.record.arguments))",
        "%aml_submit --no-widget job.py -- --lr 0.1",
        "%aml_target attach mine --type local",
        "%aml_submit -t mine --no-widget job.py",
        "print(_.record.target)",
    ]
    out = run_cells(cells, project)
    # the line alone in a cell shows the live widget and returns the run
    assert "[widget]" in out[1] and "Completed" in out[1]
    assert out[2].strip() == "job.py ['0.5']"
    # after --, flags are the script's own
    assert "job args ['--lr', '0.1']" in out[3]
    # -t runs on another target than the run configuration's
    assert "job args []" in out[5] and out[6].strip() == "mine"


def test_async_returns_at_once_and_the_run_goes_on(project: Path, home: Path) -> None:
    (project / "slow.py").write_text("import time, sys\ntime.sleep(1.5)\nprint('done', sys.argv[1])\n")
    cells = [
        "%load_ext jupyter_amlexec",
        "r = %aml_submit -a --no-widget slow.py 1\nprint('returned while', r.status.value)",
        "r.wait()\nprint(r.status.value, r.logs())",
        "%%aml_submit -a\nprint('async cell')",
        "_.wait()\nprint(_.status.value, _.logs())",
    ]
    out = run_cells(cells, project)
    assert "submitted; run.wait() to follow it, %aml_run cancel" in out[1]
    live = out[1].split("returned while ")[1].strip()
    assert live in ("Queued", "Preparing", "Starting", "Running")  # not ended yet: it sleeps 1.5 s
    assert "Completed done 1" in out[2]
    # in a kernel, -a still shows the live widget (the kernel is idle, so its buttons work)
    assert "[widget]" in out[3]
    assert "Completed async cell" in out[4]


def test_secret_env_reaches_the_run_and_is_never_stored(project: Path, home: Path) -> None:
    # Given a secret in the kernel's environment (not in the cell, not in aml_config/)
    cells = [
        "%load_ext jupyter_amlexec",
        f"import os\nos.environ['API_TOKEN'] = {SECRET!r}",
        "%%aml_submit --secret-env API_TOKEN --no-widget\nimport os\n"
        "print('reversed', os.environ['API_TOKEN'][::-1])\nprint('plain', os.environ['API_TOKEN'])",
        "print(dict(_.record.environment))",
        "%%aml_submit --secret-env NOT_SET_ANYWHERE\nprint(1)",
    ]
    # When a cell is submitted with --secret-env
    out = run_cells(cells, project)
    # Then the run had the value (printed reversed), the log shows it redacted, the record ***
    assert f"reversed {SECRET[::-1]}" in out[2] and "plain ***" in out[2] and SECRET not in out[2]
    assert out[3].strip() == "{'API_TOKEN': '***'}"
    # And neither the database (with its WAL) nor the run's logs hold it
    run_dir = next((home / "runs").iterdir())
    stored = [*home.glob("history.sqlite*"), run_dir / "driver_log.txt", run_dir / "control_log.txt"]
    assert all(path.is_file() for path in stored[-2:])
    assert [p.name for p in stored if SECRET.encode() in p.read_bytes()] == []
    # A variable that is not set is refused, named, before anything runs
    assert "--secret-env NOT_SET_ANYWHERE: not set" in out[4]


def test_submit_mistakes_name_the_fix(project: Path, home: Path) -> None:
    cells = [
        "%load_ext jupyter_amlexec",
        "%aml_submit",
        "%%aml_submit -c nope\nprint(1)",
        "%%aml_submit --env BAD\nprint(1)",
        "%aml_submit missing.py",
        "%%aml_submit --no-widget\nprint('about to fail')\nraise SystemExit(3)",
    ]
    out = run_cells(cells, project)
    assert "needs a script: %aml_submit [-c RC] SCRIPT ARGS" in out[1]
    assert "No run configuration 'nope'" in out[2] and "To fix: %aml_runconfig list" in out[2]
    assert "--env takes NAME=VALUE, got 'BAD'" in out[3]
    assert "No script 'missing.py'" in out[4]
    # a failed run raises, so nbclient/papermill stop there, with the log tail and the exit code
    assert "RunFailedError" in out[5] and "about to fail" in out[5] and "3" in out[5]
    assert all("Traceback" not in text for text in out)


def test_no_file_of_the_history_holds_a_secret_the_script_printed(project: Path, home: Path) -> None:
    cells = [
        "%load_ext jupyter_amlexec",
        f"import os\nos.environ['API_TOKEN'] = {SECRET!r}",
        "%%aml_submit --secret-env API_TOKEN --no-widget\nimport os\nprint('plain', os.environ['API_TOKEN'])",
    ]
    out = run_cells(cells, project)
    assert "plain ***" in out[2]
    assert _files_holding(home, SECRET) == []


def _files_holding(root: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]
