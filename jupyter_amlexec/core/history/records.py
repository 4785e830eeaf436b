"""`RunRecord`: one run as the history knows it, and how a `runs` row becomes one."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..models import RunStatus
from .schema import LOG_FILES


def utc_at(epoch: float) -> str:
    """An epoch time (seconds) as UTC ISO-8601, the form every time in the history takes."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def utc_now() -> str:
    """Now, as UTC ISO-8601."""
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class RunRecord:
    """One run as the history knows it (Workbench's run record, plus what re-attach needs)."""

    run_id: str
    run_number: int
    project: str
    project_path: str
    experiment: str
    status: RunStatus
    created_utc: str
    start_time_utc: str | None
    end_time_utc: str | None
    target: str
    target_type: str
    run_configuration: str
    script_name: str
    arguments: tuple[str, ...]
    environment: Mapping[str, str]
    snapshot_id: str | None
    exit_code: int | None
    error: str | None
    description: str | None
    properties: Mapping[str, object]
    metrics: Mapping[str, object] = field(default_factory=dict)
    attachments: tuple[str, ...] = ()
    handle: Mapping[str, object] | None = None
    detail: str | None = None  # what the last status change said ("building image ...")

    @property
    def duration(self) -> timedelta | None:
        """Start to end; a running run's duration grows until it ends. None before it started."""
        if self.start_time_utc is None:
            return None
        end = datetime.fromisoformat(self.end_time_utc) if self.end_time_utc else datetime.now(timezone.utc)
        return end - datetime.fromisoformat(self.start_time_utc)

    def to_json(self) -> dict[str, Any]:
        """Workbench's record shape (`az ml history info -o json`): every metric a top-level key.

        Record fields win over a metric of the same name, so tools that read `status` keep working.
        """
        duration = self.duration
        doc: dict[str, Any] = dict(self.metrics)
        doc.update(
            {
                "arguments": list(self.arguments),
                "attachments": ", ".join(self.attachments),
                "created_utc": self.created_utc,
                "description": self.description,
                "duration": duration_text(duration) if duration is not None else None,
                "end_time_utc": self.end_time_utc,
                "error": self.error,
                "exit_code": self.exit_code,
                "experiment": self.experiment,
                "project": self.project,
                "project_path": self.project_path,
                "properties": {"SnapshotId": self.snapshot_id, **self.properties},
                "run_configuration": self.run_configuration,
                "run_id": self.run_id,
                "run_number": self.run_number,
                "script_name": self.script_name,
                "start_time_utc": self.start_time_utc,
                "status": self.status.value,
                "target": self.target,
                "target_type": self.target_type,
            }
        )
        return doc


def duration_text(d: timedelta) -> str:
    """Workbench's duration text, H:MM:SS.ffffff (hours not wrapped at a day)."""
    micros = max(0, round(d.total_seconds() * 1_000_000))
    seconds, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}.{micro:06d}"


def record_of(row: sqlite3.Row, metrics: Mapping[str, object], extra: Sequence[str]) -> RunRecord:
    """The record of a `runs` row, with its latest metrics and extra attachments."""
    return RunRecord(
        run_id=row["run_id"],
        run_number=row["run_number"],
        project=row["project"],
        project_path=row["project_path"],
        experiment=row["experiment"],
        status=RunStatus(row["status"]),
        created_utc=row["created_utc"],
        start_time_utc=row["start_time_utc"],
        end_time_utc=row["end_time_utc"],
        target=row["target"],
        target_type=row["target_type"],
        run_configuration=row["run_configuration"],
        script_name=row["script_name"],
        arguments=tuple(json.loads(row["arguments"])),
        environment=json.loads(row["environment"]),
        snapshot_id=row["snapshot_id"],
        exit_code=row["exit_code"],
        error=row["error"],
        description=row["description"],
        properties=json.loads(row["properties"]),
        metrics=dict(metrics),
        attachments=(*LOG_FILES, *extra),
        handle=json.loads(row["handle"]) if row["handle"] else None,
        detail=row["status_detail"],
    )
