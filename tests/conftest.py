"""Shared fixtures: a project folder and a private run history for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """AMLEXEC_HOME in the test's temp dir: no test touches the user's history."""
    path = tmp_path / "amlexec-home"
    monkeypatch.setenv("AMLEXEC_HOME", str(path))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    return root


def require(condition: bool, what: str) -> None:
    """Infrastructure the test command sets up: missing it fails under CI, skips elsewhere."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing; scripts/test.sh should have set it up")
    pytest.skip(f"{what} is missing (run the tests through scripts/test.sh)")
