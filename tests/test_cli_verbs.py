"""Every `amlexec` verb as a user types it (real subprocesses): what it prints, writes, exits with."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import amlexec

TRAIN = (
    "import sys, os, amlexec_run\nos.makedirs('outputs', exist_ok=True)\n"
    "open('outputs/a.txt', 'w').write(sys.argv[1])\namlexec_run.log('acc', float(sys.argv[1]))\n"
    "print('trained with', sys.argv[1])\n"
)


def _submit(project: Path, *args: str) -> str:
    result = amlexec(project, "experiment", "submit", *args, check=True)
    return result.stdout.split("RunId: ", 1)[1].split()[0]


def test_computetarget_verbs(project: Path, home: Path) -> None:
    listed = amlexec(project, "computetarget", "list", check=True).stdout
    assert listed.splitlines()[0].split() == [
        "name",
        "type",
        "address",
        "image",
        "/",
        "python",
        "run",
        "configurations",
    ]
    assert any(line.startswith("local") and "(this Python)" in line for line in listed.splitlines())
    attached = amlexec(
        project, "computetarget", "attach", "--type", "local", "-n", "mine", "--python", "python3"
    )
    assert (
        attached.returncode == 0
        and "wrote aml_config/mine.compute and aml_config/mine.runconfig" in attached.stdout
    )
    shown = json.loads(
        amlexec(project, "computetarget", "show", "-n", "mine", "-o", "json", check=True).stdout
    )
    assert shown == {"name": "mine", "type": "local", "pythonLocation": "python3"}
    no_type = amlexec(project, "computetarget", "attach", "-n", "x")
    assert no_type.returncode == 2 and "needs a type: local|docker" in no_type.stderr
    unknown = amlexec(project, "computetarget", "show", "-n", "nope")
    assert unknown.returncode == 2 and "To fix: amlexec computetarget attach TYPE -n nope" in unknown.stderr
    detached = amlexec(project, "computetarget", "detach", "-n", "mine", check=True)
    assert "removed aml_config/mine.compute" in detached.stdout


def test_runconfiguration_verbs(project: Path, home: Path) -> None:
    created = amlexec(
        project, "runconfiguration", "create", "-n", "fast", "-t", "local", "--env", "A=1", check=True
    )
    assert created.stdout.strip() == "wrote aml_config/fast.runconfig (target local)"
    listed = json.loads(amlexec(project, "runconfiguration", "list", "-o", "json", check=True).stdout)
    assert listed == ["docker.runconfig", "fast.runconfig", "local.runconfig"]
    table = amlexec(project, "runconfiguration", "list", check=True).stdout
    assert any(line.split() == ["fast", "local", "Python"] for line in table.splitlines())
    shown = amlexec(project, "runconfiguration", "show", "-n", "fast", check=True).stdout
    assert "A: '1'" in shown and "Target: local" in shown
    bad = amlexec(project, "runconfiguration", "create", "-n", "x", "-t", "nope")
    assert bad.returncode == 2 and "No compute target 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_experiment_prepare_on_local(project: Path, home: Path) -> None:
    prepared = amlexec(project, "experiment", "prepare", "-c", "local", check=True)
    assert "Environment ready: user-managed" in prepared.stdout
    unknown = amlexec(project, "experiment", "prepare", "-c", "nope")
    assert unknown.returncode == 2 and "To fix: amlexec runconfiguration list" in unknown.stderr


def test_history_verbs(project: Path, home: Path, tmp_path: Path) -> None:
    # Given two runs of train.py in two experiments and a failed one
    (project / "train.py").write_text(TRAIN)
    first = _submit(project, "--experiment", "a", "train.py", "0.5")
    second = _submit(project, "--experiment", "b", "train.py", "0.9")
    (project / "fail.py").write_text("raise SystemExit(5)\n")
    failed = amlexec(project, "experiment", "submit", "fail.py")
    assert failed.returncode == 5 and "Status: Failed" in failed.stdout
    # list, with each filter
    rows = amlexec(project, "history", "list", check=True).stdout.splitlines()[2:]
    assert len(rows) == 3 and rows[1].startswith(second) and "0.9" in rows[1]
    by_experiment = json.loads(amlexec(project, "history", "list", "--experiment", "a", "-o", "json").stdout)
    assert [r["run_id"] for r in by_experiment] == [first]
    by_status = json.loads(amlexec(project, "history", "list", "--status", "Failed", "-o", "json").stdout)
    assert [r["script_name"] for r in by_status] == ["fail.py"]
    assert len(json.loads(amlexec(project, "history", "list", "-n", "2", "-o", "json").stdout)) == 2
    assert json.loads(amlexec(project, "history", "list", "-t", "docker", "-o", "json").stdout) == []
    # info: a table, the log, an output; last: the newest run
    info = amlexec(project, "history", "info", "-r", second, check=True).stdout
    assert any(line.split() == ["status", "Completed"] for line in info.splitlines()) and "acc" in info
    log = amlexec(project, "history", "info", "-r", second, "-a", "driver_log", check=True).stdout
    assert log.strip() == "trained with 0.9"
    assert amlexec(project, "history", "info", "-r", first, "-a", "outputs/a.txt", check=True).stdout == "0.5"
    assert (
        json.loads(amlexec(project, "history", "last", "-o", "json", check=True).stdout)["script_name"]
        == "fail.py"
    )
    # download refuses to overwrite without --overwrite, and says how
    dest = tmp_path / "dl"
    amlexec(project, "history", "download", "-r", first, "-d", str(dest), check=True)
    assert (dest / "a.txt").read_text() == "0.5"
    clash = amlexec(project, "history", "download", "-r", second, "-d", str(dest))
    assert clash.returncode == 1 and "pass --overwrite" in clash.stderr
    amlexec(project, "history", "download", "-r", second, "-d", str(dest), "--overwrite", check=True)
    assert (dest / "a.txt").read_text() == "0.9"
    # compare --differences shows only what differs
    compared = amlexec(project, "history", "compare", first, second, "--differences", check=True).stdout
    assert "argument: argv[1]" in compared and "metric: acc" in compared and "script" not in compared
    # restore writes the snapshot
    restored = amlexec(project, "history", "restore", "-r", first, "-d", str(tmp_path / "r"), check=True)
    assert "Restored" in restored.stdout and (tmp_path / "r" / "train.py").read_text() == TRAIN


def test_info_reads_only_the_runs_own_files(project: Path, home: Path) -> None:
    # Given a run with an output
    (project / "train.py").write_text(TRAIN)
    run_id = _submit(project, "train.py", "0.5")
    # When an artifact outside its outputs/ is asked for
    for name in ("/etc/hostname", "../../../../../../etc/hostname", "outputs/../driver_log.txt"):
        result = amlexec(project, "history", "info", "-r", run_id, "-a", name)
        # Then it is refused with a message, and nothing is printed
        assert result.returncode == 1, name
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert f"has no artifact '{name}'" in result.stderr or "is not a file of run" in result.stderr


def test_submit_flags_target_and_env_reach_the_run(project: Path, home: Path) -> None:
    # Given a second local target and a script that prints what it was given
    amlexec(project, "computetarget", "attach", "local", "-n", "mine", check=True)
    (project / "show.py").write_text("import os, sys\nprint('got', os.environ['MODE'], sys.argv[1:])\n")
    # When it is submitted with -t, --env and arguments that look like flags
    result = amlexec(
        project, "experiment", "submit", "-t", "mine", "--env", "MODE=fast", "show.py", "--lr", "0.1"
    )
    # Then the script saw them and the record says where it ran
    assert result.returncode == 0 and "got fast ['--lr', '0.1']" in result.stdout
    record = json.loads(amlexec(project, "history", "last", "-o", "json", check=True).stdout)
    assert (record["target"], record["arguments"]) == ("mine", ["--lr", "0.1"])
    bad = amlexec(project, "experiment", "submit", "--env", "NOEQUALS", "show.py")
    assert bad.returncode == 2 and "--env takes NAME=VALUE" in bad.stderr
