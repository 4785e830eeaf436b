"""Fixtures for the core config tests: an isolated AMLEXEC_HOME and base-image setting."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No core test touches the user's history, and the default base image is the documented one."""
    monkeypatch.setenv("AMLEXEC_HOME", str(tmp_path / "amlexec-home"))
    monkeypatch.delenv("AMLEXEC_DEFAULT_BASE_IMAGE", raising=False)


def write_config(root: Path, name: str, text: str | bytes) -> Path:
    """Put a file into root/aml_config/ as a user (or Workbench) would have."""
    path = root / "aml_config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
