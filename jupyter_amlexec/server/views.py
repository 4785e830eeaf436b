"""JSON shapes of the REST API (the schemas in openapi.yaml), built from core values.

Kept apart from the handlers so the shapes are in one place and the handlers stay one call each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.history import RunRecord
from ..core.models import LogEvent, Metric, MetricEvent, RunEvent, StatusEvent
from ..core.project import ComputeTarget, RunConfiguration

# What a target shows in the sidebar: never a secret value, only where a secret comes from.
TARGET_FIELDS = (
    "address",
    "port",
    "username",
    "password_env",
    "password_keyring",
    "key_file",
    "base_docker_image",
    "python_location",
    "shared_volumes",
    "network_mode",
)


def run_json(record: RunRecord) -> dict[str, Any]:
    """Workbench's record (`to_json`) plus `id`, the status detail, and metrics as one object."""
    doc = record.to_json()
    doc["id"] = record.run_id
    doc["detail"] = record.detail
    doc["metrics"] = dict(record.metrics)
    doc["attachments"] = list(record.attachments)
    doc["done"] = record.status.terminal
    return doc


def metric_json(metric: Metric) -> dict[str, Any]:
    return {
        "name": metric.name,
        "value": metric.value,
        "kind": metric.kind,
        "step": metric.step,
        "logged_utc": metric.logged_utc,
    }


def series_json(series: Mapping[str, Sequence[Metric]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [metric_json(m) for m in values] for name, values in series.items()}


def target_json(target: ComputeTarget, run_configurations: Sequence[RunConfiguration]) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": target.name, "name": target.name, "type": target.type.value}
    for name in TARGET_FIELDS:
        doc[name] = getattr(target, name)
    doc["run_configurations"] = [rc.name for rc in run_configurations if rc.target == target.name]
    return doc


def artifact_json(outputs: Path, path: Path) -> dict[str, Any]:
    rel = path.relative_to(outputs).as_posix()
    return {"id": rel, "path": rel, "size": path.stat().st_size}


def list_artifacts(outputs: Path) -> list[dict[str, Any]]:
    """Regular files under a run's outputs/, never through a symlink (one could point anywhere)."""
    found: list[dict[str, Any]] = []
    if not outputs.is_dir() or outputs.is_symlink():
        return found
    for folder, dirs, files in os.walk(outputs):  # os.walk does not descend into symlinked folders
        base = Path(folder)
        dirs.sort()
        for name in sorted(files):
            path = base / name
            if not path.is_symlink() and path.is_file():
                found.append(artifact_json(outputs, path))
    return found


def event_json(event: RunEvent) -> tuple[str, dict[str, Any]]:
    """An SSE event name and its data for a follow event."""
    if isinstance(event, LogEvent):
        return "log", {"text": event.text, "source": event.source, "cursor": event.cursor or None}
    if isinstance(event, MetricEvent):
        return "metric", metric_json(event.metric)
    if isinstance(event, StatusEvent):
        return "status", {
            "status": event.status.value,
            "detail": event.detail,
            "exit_code": event.exit_code,
            "done": event.status.terminal,
        }
    return "other", {"kind": type(event).__name__}
