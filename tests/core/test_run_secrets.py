"""Secrets in real runs: the redaction rule, --secret-env, our target passwords kept out of runs,
and reruns that read secrets again or refuse (issue: secrets in records, logs and events)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import ConfigError
from jupyter_amlexec.core.models import LogEvent
from jupyter_amlexec.core.secrets import looks_secret

SHOW = "import os, sys\nfor name in sys.argv[1:]:\n    print(name, '=', os.environ.get(name, '<unset>'), flush=True)\n"


@pytest.mark.parametrize(
    "name", ["DB_PASS", "PW", "MY_PW", "PW_FILE", "API_PWD", "GH_TOKEN", "AWS_SECRET", "SSH_KEY"]
)
def test_the_redaction_rule_covers_short_password_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["LR", "POWER", "PATH", "EPOCHS", "PWM_MODE"])
def test_the_redaction_rule_leaves_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


def _stored(home: Path) -> str:
    """Everything the history holds, as text: the database and every run file."""
    db = sqlite3.connect(home / "history.sqlite")
    dump = "\n".join(db.iterdump())
    files = "\n".join(p.read_text(errors="replace") for p in (home / "runs").rglob("*.txt"))
    return dump + files


def test_secret_env_reaches_the_run_and_never_the_history(
    project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret in the submitting environment and one passed with --env under a secret name
    monkeypatch.setenv("SERVICE_CREDS_VALUE", "s3cr3t-from-env")
    (project / "show.py").write_text(SHOW)
    session = Session.open(project, home)
    seen: list[str] = []
    run = session.submit(
        script="show.py",
        arguments=["SERVICE_CREDS_VALUE", "DB_PASS"],
        env={"DB_PASS": "hunter2-db"},
        secret_env=["SERVICE_CREDS_VALUE"],
    )
    run.subscribe(lambda e: seen.append(e.text) if isinstance(e, LogEvent) else None)
    run.wait()
    # Then the script got both values, but the log, the events and the records show only ***
    log = run.logs()
    assert "SERVICE_CREDS_VALUE = ***" in log and "DB_PASS = ***" in log
    stored = _stored(home)
    assert "s3cr3t-from-env" not in stored and "hunter2-db" not in stored
    assert not any("hunter2-db" in t or "s3cr3t-from-env" in t for t in seen)
    assert run.record.environment["SERVICE_CREDS_VALUE"] == "***"


def test_a_missing_secret_env_is_refused_before_anything_is_recorded(project: Path, home: Path) -> None:
    (project / "show.py").write_text(SHOW)
    session = Session.open(project, home)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        session.submit(script="show.py", secret_env=["NOT_SET_ANYWHERE"])
    assert session.runs() == []


def test_a_target_password_variable_does_not_leak_into_local_runs(
    project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a remote target whose password lives in an environment variable of the kernel
    session = Session.open(project, home)
    session.project.attach_target(
        "gpuvm", "remotedocker", address="gpu.lab", username="ana", password_env="GPUVM_PASSWORD"
    )
    monkeypatch.setenv("GPUVM_PASSWORD", "target-password-1")
    (project / "show.py").write_text(SHOW)
    # When a local run looks for it
    run = session.submit(script="show.py", arguments=["GPUVM_PASSWORD"], run_configuration="local").wait()
    # Then the run does not have it
    assert "GPUVM_PASSWORD = <unset>" in run.logs()


def test_rerun_reads_secrets_again_or_refuses_naming_them(
    project: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "show.py").write_text(SHOW)
    session = Session.open(project, home)
    monkeypatch.setenv("API_TOKEN", "tok-first-1234")
    first = session.submit(
        script="show.py",
        arguments=["API_TOKEN", "DB_PASS"],
        env={"DB_PASS": "pw-db-5678"},
        secret_env=["API_TOKEN"],
    ).wait()
    # A rerun without DB_PASS in the environment is refused, naming it
    with pytest.raises(ConfigError, match="DB_PASS"):
        first.rerun()
    assert len(session.runs()) == 1
    # With both available again, the rerun gets the current values (redacted in its log too)
    monkeypatch.setenv("DB_PASS", "pw-db-again")
    monkeypatch.setenv("API_TOKEN", "tok-second-999")
    again = first.rerun().wait()
    assert "API_TOKEN = ***" in again.logs() and "DB_PASS = ***" in again.logs()
    assert "tok-second-999" not in _stored(home) and "pw-db-again" not in _stored(home)


def test_an_argument_too_large_for_exec_is_refused_before_recording(project: Path, home: Path) -> None:
    (project / "show.py").write_text(SHOW)
    session = Session.open(project, home)
    with pytest.raises(ConfigError, match="file of the project"):
        session.submit(script="show.py", arguments=["x" * (1024 * 1024)])
    assert session.runs() == []
