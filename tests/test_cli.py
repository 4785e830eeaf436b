"""The `amlexec` command, run as a real subprocess the way a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def amlexec(project: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_amlexec", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def test_submit_streams_log_and_exits_with_the_script_exit_code(project: Path, home: Path) -> None:
    # Given a script that logs and exits with 3
    (project / "job.py").write_text(
        "import sys, amlexec_run\nprint('working on', sys.argv[1])\namlexec_run.log('score', 7)\nsys.exit(3)\n"
    )
    # When it is submitted from a terminal
    result = amlexec(project, "experiment", "submit", "-c", "local", "job.py", "data.csv")
    # Then the run id and the log are printed, and the command exits with the script's code
    assert result.returncode == 3
    assert result.stdout.startswith("RunId: proj_")
    assert "working on data.csv" in result.stdout
    assert "Status: Failed" in result.stdout


def test_history_json_carries_metrics_as_top_level_keys(project: Path, home: Path) -> None:
    (project / "m.py").write_text(
        "import amlexec_run\namlexec_run.log('Accuracy', 0.5)\namlexec_run.log('Accuracy', 0.75)\n"
    )
    amlexec(project, "experiment", "submit", "m.py", check=True)
    amlexec(project, "experiment", "submit", "m.py", check=True)
    listed = json.loads(amlexec(project, "history", "list", "-o", "json", check=True).stdout)
    last = json.loads(amlexec(project, "history", "last", "-o", "json", check=True).stdout)
    assert [r["Accuracy"] for r in listed] == [0.75, 0.75]
    assert last["run_id"] == listed[0]["run_id"] and last["status"] == "Completed"
    assert last["run_number"] == 2 and last["script_name"] == "m.py"


def test_download_compare_and_restore(project: Path, home: Path, tmp_path: Path) -> None:
    script = project / "w.py"
    script.write_text(
        "import os, sys\nos.makedirs('outputs/sub', exist_ok=True)\nopen('outputs/sub/a.txt','w').write(sys.argv[1])\nopen('outputs/b.png','wb').write(b'png')\n"
    )
    amlexec(project, "experiment", "submit", "w.py", "one", check=True)
    first = json.loads(amlexec(project, "history", "last", "-o", "json", check=True).stdout)["run_id"]
    script.write_text(script.read_text() + "# edited\n")
    amlexec(project, "experiment", "submit", "w.py", "two", check=True)
    second = json.loads(amlexec(project, "history", "last", "-o", "json", check=True).stdout)["run_id"]
    # Download only the .txt outputs of the first run
    amlexec(
        project,
        "history",
        "download",
        "-r",
        first,
        "-d",
        str(tmp_path / "dl"),
        "--artifact",
        "sub/*.txt",
        check=True,
    )
    assert (tmp_path / "dl" / "sub" / "a.txt").read_text() == "one"
    assert not (tmp_path / "dl" / "b.png").exists()
    # Compare: the argument differs and w.py changed between the snapshots
    compared = json.loads(
        amlexec(project, "history", "compare", first, second, "-o", "json", check=True).stdout
    )
    args = [r for r in compared["rows"] if r["name"] == "argv[1]"][0]
    assert args["values"] == ["one", "two"] and args["differs"]
    assert {"path": "w.py", "change": "changed"} in compared["changed_files"]
    # Restore the first snapshot: the script without the edit
    amlexec(project, "history", "restore", "-r", first, "-d", str(tmp_path / "restored"), check=True)
    assert "# edited" not in (tmp_path / "restored" / "w.py").read_text()


def test_bad_input_names_what_is_wrong(project: Path, home: Path) -> None:
    (project / "ok.py").write_text("print(1)\n")
    unknown = amlexec(project, "experiment", "submit", "-t", "gpu", "ok.py")
    assert (
        unknown.returncode == 2 and "No compute target 'gpu'" in unknown.stderr and "local" in unknown.stderr
    )
    missing = amlexec(project, "experiment", "submit", "nope.py")
    assert missing.returncode == 1 and "nope.py" in missing.stderr
    no_run = amlexec(project, "history", "info", "-r", "proj_1")
    assert no_run.returncode == 1 and "No run 'proj_1'" in no_run.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr + no_run.stderr


def test_attach_list_show_detach_round_trip(project: Path, home: Path) -> None:
    amlexec(project, "computetarget", "attach", "docker", "-n", "box", "--network-mode", "host", check=True)
    listed = json.loads(amlexec(project, "computetarget", "list", "-o", "json", check=True).stdout)
    assert listed == ["box", "docker", "local"]
    shown = amlexec(project, "computetarget", "show", "-n", "box", check=True).stdout
    assert "networkMode: host" in shown and "type: docker" in shown
    again = amlexec(project, "computetarget", "attach", "docker", "-n", "box")
    assert again.returncode == 2 and "already exists" in again.stderr
    amlexec(project, "computetarget", "detach", "-n", "box", check=True)
    assert not (project / "aml_config" / "box.compute").exists()
    assert not (project / "aml_config" / "box.runconfig").exists()
