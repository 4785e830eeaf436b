"""Side-by-side comparison of 2-5 runs: what they ran with, what they measured, which files changed.

Workbench compared 2-3 runs; we allow up to 5 (the dashboard offers 3). Every row says whether its
values differ, so a view can show only the differences.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, SnapshotError
from .history import History, RunRecord, duration_text
from .models import Metric
from .snapshot import SnapshotStore

log = logging.getLogger(__name__)

MIN_COMPARED = 2
MAX_COMPARED = 5
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class ComparisonRow:
    """One field across the compared runs; `differs` when not every run has the same value."""

    section: str  # "run" | "argument" | "environment" | "metric"
    name: str
    values: tuple[object, ...]

    @property
    def differs(self) -> bool:
        return len({_same_key(v) for v in self.values}) > 1


@dataclass(frozen=True)
class RunComparison:
    """The compared runs, field by field, with the snapshot files that differ between them."""

    run_ids: tuple[str, ...]
    rows: tuple[ComparisonRow, ...]
    files: tuple[tuple[str, str], ...]  # (path, "added"|"removed"|"changed") against the first snapshot
    series: Mapping[str, Mapping[str, list[Metric]]] = field(default_factory=dict)  # metric -> run -> points
    records: tuple[RunRecord, ...] = field(default=(), compare=False)
    unavailable_snapshots: tuple[str, ...] = ()  # snapshot ids no longer in the store

    def differences_only(self) -> tuple[ComparisonRow, ...]:
        return tuple(r for r in self.rows if r.differs)

    def row(self, section: str, name: str) -> ComparisonRow:
        """The row for one field, e.g. row("metric", "Accuracy"); KeyError if no run has it."""
        for r in self.rows:
            if (r.section, r.name) == (section, name):
                return r
        raise KeyError(f"{section}: {name}")

    def to_json(self, *, only_differences: bool = False) -> dict[str, Any]:
        """What `amlexec history compare -o json` prints."""
        rows = self.differences_only() if only_differences else self.rows
        return {
            "runs": list(self.run_ids),
            "rows": [
                {"section": r.section, "name": r.name, "values": list(r.values), "differs": r.differs}
                for r in rows
            ],
            "changed_files": [{"path": p, "change": how} for p, how in self.files],
            "unavailable_snapshots": list(self.unavailable_snapshots),
            "series": {
                name: {run: [[m.step, m.value] for m in points] for run, points in runs.items()}
                for name, runs in self.series.items()
            },
        }


def compare_runs(history: History, snapshots: SnapshotStore, run_ids: Sequence[str]) -> RunComparison:
    """Compare runs from the history (RunNotFoundError for an unknown id)."""
    ids = list(run_ids)
    if not MIN_COMPARED <= len(ids) <= MAX_COMPARED:
        raise ConfigError(
            f"Compare takes {MIN_COMPARED} to {MAX_COMPARED} runs, got {len(ids)}"
            f"{': ' + ', '.join(ids) if ids else ''}. Pick between {MIN_COMPARED} and {MAX_COMPARED} run ids."
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"Run {', '.join(repeated)} is listed more than once; compare different runs.")
    records = [history.get(run_id) for run_id in ids]
    rows = [*_run_rows(records), *_argument_rows(records)]
    for key in sorted({k for r in records for k in r.environment}):
        rows.append(ComparisonRow("environment", key, tuple(r.environment.get(key) for r in records)))
    for key in _ordered_keys(r.metrics for r in records):
        rows.append(ComparisonRow("metric", key, tuple(r.metrics.get(key) for r in records)))
    files, unavailable = _changed_files(snapshots, records)
    series: dict[str, dict[str, list[Metric]]] = {}
    for record in records:
        for name, points in history.metric_series(record.run_id).items():
            series.setdefault(name, {})[record.run_id] = points
    return RunComparison(
        run_ids=tuple(ids),
        rows=tuple(rows),
        files=files,
        series=series,
        records=tuple(records),
        unavailable_snapshots=unavailable,
    )


def _run_rows(records: Sequence[RunRecord]) -> list[ComparisonRow]:
    def row(name: str, values: Sequence[object]) -> ComparisonRow:
        return ComparisonRow("run", name, tuple(values))

    durations = [r.duration for r in records]
    return [
        row("run number", [r.run_number for r in records]),
        row("experiment", [r.experiment for r in records]),
        row("status", [r.status.value for r in records]),
        row("target", [r.target for r in records]),
        row("run configuration", [r.run_configuration for r in records]),
        row("script", [r.script_name for r in records]),
        row("duration", [duration_text(d) if d is not None else None for d in durations]),
        row("exit code", [r.exit_code for r in records]),
        row("snapshot", [r.snapshot_id[:12] if r.snapshot_id else None for r in records]),
        row("created", [r.created_utc for r in records]),
    ]


def _argument_rows(records: Sequence[RunRecord]) -> list[ComparisonRow]:
    """Arguments by position (`argv[1]`, ...), or, when options appear, by option name, so one
    extra flag in one run does not shift (and mark as different) every argument after it."""
    if not any(_is_option(a) for r in records for a in r.arguments):
        width = max((len(r.arguments) for r in records), default=0)
        return [
            ComparisonRow(
                "argument",
                f"argv[{i + 1}]",
                tuple(r.arguments[i] if i < len(r.arguments) else None for r in records),
            )
            for i in range(width)
        ]
    parsed = [_parse_arguments(r.arguments) for r in records]
    return [
        ComparisonRow("argument", key, tuple(p.get(key) for p in parsed)) for key in _ordered_keys(parsed)
    ]


def _is_option(token: str) -> bool:
    return token.startswith("-") and token not in ("-", "--") and not _NUMBER.match(token)


def _parse_arguments(arguments: Sequence[str]) -> dict[str, object]:
    """`--lr 0.1 data.csv --fast` -> {"--lr": "0.1", "positional 1": "data.csv", "--fast": True}."""
    out: dict[str, object] = {}
    positional = 0
    i = 0
    only_positional = False
    while i < len(arguments):
        token = arguments[i]
        if token == "--" and not only_positional:
            only_positional = True
        elif _is_option(token) and not only_positional:
            key = token
            found: object = True  # a flag without a value
            if token.startswith("--") and "=" in token:
                key, _, found = token.partition("=")
            elif i + 1 < len(arguments) and not _is_option(arguments[i + 1]) and arguments[i + 1] != "--":
                found = arguments[i + 1]
                i += 1
            previous = out.get(key)
            out[key] = found if previous is None else f"{previous}, {found}"  # a repeated option
        else:
            positional += 1
            out[f"positional {positional}"] = token
        i += 1
    return out


def _ordered_keys(mappings: Any) -> list[str]:
    """Keys in order of first appearance across the mappings."""
    keys: dict[str, None] = {}
    for mapping in mappings:
        keys.update(dict.fromkeys(mapping))
    return list(keys)


def _changed_files(
    snapshots: SnapshotStore, records: Sequence[RunRecord]
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """Paths that differ between any two of the runs' snapshots, labelled against the first one.

    A path equal in runs 1 and 2 but changed in run 3 differs from run 1 too, so diffs against one
    base find every path that is not the same everywhere.
    """
    ids = list(dict.fromkeys(r.snapshot_id for r in records if r.snapshot_id))
    available, unavailable = [], []
    for snapshot_id in ids:
        try:
            snapshots.get(snapshot_id)
            available.append(snapshot_id)
        except SnapshotError:
            log.warning("snapshot %s is no longer in %s; its files are left out", snapshot_id, snapshots.home)
            unavailable.append(snapshot_id)
    changes: dict[str, str] = {}
    base = available[0] if available else None
    for other in available[1:]:
        assert base is not None
        for path, how in snapshots.diff(base, other):
            changes.setdefault(path, how)
    return tuple(sorted(changes.items())), tuple(unavailable)


def _same_key(value: object) -> str:
    """Equality for `differs`: 1 and 1.0 are the same value; True and 1 are not."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"n:{float(value)!r}"
    return "j:" + json.dumps(value, sort_keys=True, default=str)
