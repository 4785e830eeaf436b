"""Side-by-side comparison of 2-5 runs: parameters, environment, metrics, and changed files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .history import History
from .models import Metric
from .snapshot import SnapshotStore

MAX_COMPARED = 5


@dataclass(frozen=True)
class ComparisonRow:
    """One field across the compared runs; `differs` when not every run has the same value."""

    section: str  # "run" | "argument" | "environment" | "metric"
    name: str
    values: tuple[object, ...]

    @property
    def differs(self) -> bool:
        return len({repr(v) for v in self.values}) > 1


@dataclass(frozen=True)
class RunComparison:
    run_ids: tuple[str, ...]
    rows: tuple[ComparisonRow, ...]
    files: tuple[tuple[str, str], ...]  # (path, how) vs the first run
    series: dict[str, dict[str, list[Metric]]] = field(default_factory=dict)  # metric -> run id -> series

    def differences_only(self) -> tuple[ComparisonRow, ...]:
        return tuple(r for r in self.rows if r.differs)

    def to_json(self, *, only_differences: bool = False) -> dict[str, Any]:
        rows = self.differences_only() if only_differences else self.rows
        return {
            "runs": list(self.run_ids),
            "rows": [
                {"section": r.section, "name": r.name, "values": list(r.values), "differs": r.differs}
                for r in rows
            ],
            "changed_files": [{"path": p, "change": how} for p, how in self.files],
        }


def compare_runs(history: History, snapshots: SnapshotStore, run_ids: Sequence[str]) -> RunComparison:
    if not 2 <= len(run_ids) <= MAX_COMPARED:
        raise ConfigError(f"Compare takes 2 to {MAX_COMPARED} run ids, not {len(run_ids)}.")
    records = [history.get(r) for r in run_ids]
    rows: list[ComparisonRow] = []

    def add(section: str, name: str, values: Sequence[object]) -> None:
        rows.append(ComparisonRow(section, name, tuple(values)))

    add("run", "status", [r.status.value for r in records])
    add("run", "target", [r.target for r in records])
    add("run", "script", [r.script_name for r in records])
    add("run", "duration", [str(r.duration) if r.duration is not None else None for r in records])
    add("run", "exit code", [r.exit_code for r in records])
    add("run", "snapshot", [r.snapshot_id[:12] if r.snapshot_id else None for r in records])
    width = max(len(r.arguments) for r in records)
    for i in range(width):
        add("argument", f"argv[{i + 1}]", [r.arguments[i] if i < len(r.arguments) else None for r in records])
    for key in sorted({k for r in records for k in r.environment}):
        add("environment", key, [r.environment.get(key) for r in records])
    for key in sorted({k for r in records for k in r.metrics}):
        add("metric", key, [r.metrics.get(key) for r in records])
    files: list[tuple[str, str]] = []
    first = records[0].snapshot_id
    seen: set[str] = set()
    for other in records[1:]:
        if first and other.snapshot_id and other.snapshot_id != first:
            for path, how in snapshots.diff(first, other.snapshot_id):
                if path not in seen:
                    seen.add(path)
                    files.append((path, how))
    series: dict[str, dict[str, list[Metric]]] = {}
    for r in records:
        for name, points in history.metric_series(r.run_id).items():
            series.setdefault(name, {})[r.run_id] = points
    return RunComparison(tuple(run_ids), tuple(rows), tuple(sorted(files)), series)
