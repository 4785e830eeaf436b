"""Reading many runs: filters, sorting (also by a metric) and paging done in SQL, counts and
metric names, so a dashboard page of 100k runs is one indexed query."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import RunNotFoundError
from ..models import RunStatus
from .records import RunRecord
from .store import PARAMS_PER_QUERY, HistoryStore

FEW_RUNS = 2000  # below this many matching runs, reading them all beats walking a metric index

_ORDER_COLUMNS = {
    "created_utc": "r.created_ms",
    "created": "r.created_ms",
    "run_number": "r.run_number",
    "status": "r.status",
    "target": "r.target",
    "script_name": "r.script_name",
    "script": "r.script_name",
    "experiment": "r.experiment",
    "project": "r.project",
    "duration": "r.duration_ms",  # NULL (sorted as smallest) until the run ends
    "start_time_utc": "r.start_time_utc",
    "end_time_utc": "r.end_time_utc",
    "run_id": "r.run_id",
}
_FILTERS = {
    "project": "project",
    "experiment": "experiment",
    "target": "target",
    "status": "status",
    "script": "script_name",
}


class RunQueries(HistoryStore):
    """Filtered, sorted, paged reads of the runs."""

    def query(
        self,
        *,
        project: str | None = None,
        experiment: str | None = None,
        target: str | None = None,
        status: str | RunStatus | Sequence[str] | None = None,
        script: str | None = None,
        order_by: str = "created_utc",
        descending: bool = True,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs matching the filters, sorted and paged in SQL (also by a metric: "metric:<name>").

        Sorted by a metric, runs with a numeric value come first (in the asked direction), then runs
        with a text value, then runs that never logged it; ties fall back to submit time.
        """
        filters = {
            "project": project,
            "experiment": experiment,
            "target": target,
            "status": status,
            "script": script,
        }
        direction = "DESC" if descending else "ASC"
        if order_by.startswith("metric:"):
            with self._read():  # the counts that place the page and the page itself agree
                run_ids = self._page_by_metric(order_by[len("metric:") :], filters, direction, limit, offset)
                return self._records(self._rows(run_ids, by="run_id"))
        try:
            column = _ORDER_COLUMNS[order_by]
        except KeyError:
            known = ", ".join(sorted(_ORDER_COLUMNS)) + ", metric:<name>"
            raise ValueError(f"Cannot sort runs by {order_by!r}; use one of {known}.") from None
        where, params = _where(filters)
        terms = dict.fromkeys([column, "r.created_ms", "r.rowid"])
        order = ", ".join(f"{t} {direction}" for t in terms)
        # Sorting rowids (not whole rows) keeps deep pages cheap; the index often covers them.
        rowids = [
            r[0]
            for r in self._db().execute(
                f"SELECT r.rowid FROM runs r{where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, -1 if limit is None else limit, offset],
            )
        ]
        return self._records(self._rows(rowids))

    def _page_by_metric(
        self, name: str, filters: Mapping[str, object], direction: str, limit: int | None, offset: int
    ) -> list[str]:
        """Run ids of one page sorted by a metric: numeric values, then text values, then no value.

        Ties go to the run that first logged the metric earlier (later with `descending`), then by
        submit time. Two plans give that order: with few matching runs, sort them all; with many,
        read the page from the metric's order indexes, which hold the runs' filter columns, so the
        cost is stepping over index entries (no lookup of each run) from the nearer end of a part.
        """
        where, params = _where(filters)
        matching = self._count_where(where, params)
        if matching == 0 or offset >= matching:
            return []
        size = matching - offset if limit is None else min(limit, matching - offset)
        if matching <= FEW_RUNS:
            return self._metric_page_sorted(name, where, params, direction, size, offset, matching)
        return self._metric_page_walked(name, filters, direction, matching, size, offset)

    def _metric_page_sorted(
        self, name: str, where: str, params: list[object], d: str, size: int, offset: int, matching: int
    ) -> list[str]:
        """Sort every matching run (a LEFT JOIN on the metric); cheap when few runs match.

        The order is total, so a page past the middle is read as the same page counted from the end
        in the reverse order."""
        flip = 2 * offset + size > matching
        if flip:
            offset = matching - offset - size
            d = "ASC" if d == "DESC" else "DESC"
        missing_last = "DESC" if flip else "ASC"  # numbers, then text, then missing (reversed if flipped)
        sql = (
            "SELECT r.run_id FROM runs r LEFT JOIN latest_metrics m ON m.run_id = r.run_id AND m.name = ?"
            f"{where} ORDER BY m.run_id IS NULL {missing_last}, m.num IS NULL {missing_last}, m.num {d},"
            f" m.txt {d}, m.seq {d}, r.created_ms {d}, r.rowid {d} LIMIT ? OFFSET ?"
        )
        page = [r[0] for r in self._db().execute(sql, [name, *params, size, offset])]
        return page[::-1] if flip else page

    def _metric_page_walked(
        self, name: str, filters: Mapping[str, object], direction: str, matching: int, size: int, offset: int
    ) -> list[str]:
        """Cut the page out of the segments (numbers, text, missing), whose lengths metric_counts
        gives, and read each part of it from the nearer end of its segment: a page steps over at
        most half of one segment's index entries (or of the runs without the metric)."""
        db = self._db()
        numbers, text = self._metric_value_counts(name, filters)
        lengths = (numbers, text, matching - numbers - text)
        out: list[str] = []
        first, end = 0, offset + size
        for segment, length in zip(_metric_segments(name, filters, direction), lengths):
            lo, hi = max(offset, first) - first, min(end, first + length) - first  # the page, locally
            first += length
            if lo >= hi:
                continue
            from_start = lo <= length - hi
            sql, skip = (segment.forward, lo) if from_start else (segment.backward, length - hi)
            rows = [r[0] for r in db.execute(f"{sql} LIMIT ? OFFSET ?", [*segment.params, hi - lo, skip])]
            out.extend(rows if from_start else rows[::-1])
        return out

    def _metric_value_counts(self, name: str, filters: Mapping[str, object]) -> tuple[int, int]:
        """How many matching runs have a numeric, and a text, latest value of the metric."""
        also, params = _where(filters, table="m")
        also = also.replace(" WHERE ", " AND ", 1)
        sums = dict(
            self._db().execute(
                f"SELECT m.numeric, SUM(m.runs) FROM metric_counts m WHERE m.name = ?{also} GROUP BY m.numeric",
                [name, *params],
            )
        )
        return int(sums.get(1, 0)), int(sums.get(0, 0))

    def _rows(self, keys: Sequence[object], by: Literal["rowid", "run_id"] = "rowid") -> list[sqlite3.Row]:
        """The runs rows whose `by` is in `keys`, in that order."""
        found: dict[object, sqlite3.Row] = {}
        for start in range(0, len(keys), PARAMS_PER_QUERY):
            chunk = list(keys[start : start + PARAMS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            for row in self._db().execute(
                f"SELECT rowid AS rowid_, * FROM runs WHERE {by} IN ({marks})", chunk
            ):
                found[row["rowid_" if by == "rowid" else "run_id"]] = row
        return [found[k] for k in keys if k in found]

    def _count_where(self, where: str, params: Sequence[object]) -> int:
        return int(self._db().execute(f"SELECT COUNT(*) FROM runs r{where}", params).fetchone()[0])

    def count(self, **filters: Any) -> int:
        """How many runs match the filters of `query`."""
        where, params = _where(filters)
        return self._count_where(where, params)

    def metric_names(self, **filters: Any) -> list[str]:
        """Names of the metrics logged by the runs matching the filters of `query`, sorted.

        The catalog (project, experiment, name) answers without touching the runs; other filters
        check each candidate name with a lookup that stops at its first matching run, or, when few
        runs match, read those runs' metrics.
        """
        where, params = _where(filters)
        clauses: list[str] = []
        catalog_params: list[object] = []
        for key in ("project", "experiment"):
            value = filters.get(key)
            if value is not None:
                values = _values(value)
                clauses.append(f"{key} IN ({','.join('?' * len(values))})")
                catalog_params.extend(values)
        catalog_where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        db = self._db()
        names = [
            r[0]
            for r in db.execute(
                f"SELECT DISTINCT name FROM metric_catalog{catalog_where} ORDER BY name", catalog_params
            )
        ]
        if not {k for k, v in filters.items() if v is not None} - {"project", "experiment"}:
            return names
        if self._count_where(where, params) <= FEW_RUNS:  # few runs: read their metrics directly
            rows = db.execute(
                f"SELECT DISTINCT m.name FROM runs r JOIN latest_metrics m ON m.run_id = r.run_id{where}"
                " ORDER BY m.name",
                params,
            )
            return [r[0] for r in rows]
        also, also_params = _where(filters, table="m")
        also = also.replace(" WHERE ", " AND ", 1)
        probe = " OR ".join(
            f"EXISTS (SELECT 1 FROM latest_metrics m WHERE m.name = ? AND m.num IS {kind}{also})"
            for kind in ("NOT NULL", "NULL")
        )  # each stops at the first matching entry of one order index
        return [
            name
            for name in names
            if db.execute(f"SELECT {probe}", [name, *also_params, name, *also_params]).fetchone()[0]
        ]

    def last(self, project: str | None = None) -> RunRecord:
        """The most recently submitted run (of `project`)."""
        runs = self.query(project=project, limit=1)
        if not runs:
            raise RunNotFoundError("(last)" if project is None else f"(last of {project})", self.home)
        return runs[0]


def _values(value: object) -> list[str]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v.value if isinstance(v, RunStatus) else str(v) for v in value]
    return [value.value if isinstance(value, RunStatus) else str(value)]


def status_name(value: str) -> str:
    """A run status as stored ("Running"), from any spelling ("running"); ValueError naming the valid ones."""
    for status in RunStatus:
        if value.lower() == status.value.lower():
            return status.value
    raise ValueError(f"Unknown run status {value!r}; use one of {', '.join(s.value for s in RunStatus)}.")


def _is_pattern(value: str) -> bool:
    return any(c in value for c in "*?[")


def _where(filters: Mapping[str, object], table: str = "r") -> tuple[str, list[object]]:
    """SQL for the query filters on `table` (runs, or latest_metrics' copies of the same columns); a
    list/tuple/set value matches any of its items, a value with * ? or [ is a shell-style pattern
    (case-sensitive), a status matches in any case."""
    unknown = set(filters) - set(_FILTERS)
    if unknown:
        raise ValueError(f"Unknown run filter(s) {sorted(unknown)}; use {sorted(_FILTERS)}.")
    clauses: list[str] = []
    params: list[object] = []
    for key, column in _FILTERS.items():
        value = filters.get(key)
        if value is None:
            continue
        values = _values(value)
        if key == "status":
            values = [status_name(v) for v in values]
        if len(values) == 1 and key != "status" and _is_pattern(values[0]):
            clauses.append(f"{table}.{column} GLOB ?")  # shell-style pattern: train*, *lr*
        elif len(values) == 1:
            clauses.append(f"{table}.{column} = ?")
        else:
            clauses.append(f"{table}.{column} IN ({','.join('?' * len(values))})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass(frozen=True)
class _Segment:
    """One part of a metric's order, as a query in that order and in the reverse one."""

    forward: str
    backward: str
    params: list[object]


def _metric_segments(name: str, filters: Mapping[str, object], d: str) -> list[_Segment]:
    """Numbers, text values, runs without the metric: each in order `d` (ties as `query` says).

    The first two read one order index each, filters included (its copies of the runs' columns,
    which the schema's triggers keep in step); the last walks the runs."""
    r = "ASC" if d == "DESC" else "DESC"
    also_m, params_m = _where(filters, table="m")
    also_m = also_m.replace(" WHERE ", " AND ", 1)
    also_r, params_r = _where(filters)
    also_r = also_r.replace(" WHERE ", " AND ", 1)
    indexed = "SELECT m.run_id FROM latest_metrics m WHERE m.name = ? AND m.num IS"
    missing = (
        "SELECT r.run_id FROM runs r WHERE NOT EXISTS (SELECT 1 FROM latest_metrics m"
        f" WHERE m.run_id = r.run_id AND m.name = ?){also_r} ORDER BY r.created_ms"
    )
    return [
        _Segment(
            f"{indexed} NOT NULL{also_m} ORDER BY m.num {d}, m.seq {d}",
            f"{indexed} NOT NULL{also_m} ORDER BY m.num {r}, m.seq {r}",
            [name, *params_m],
        ),
        _Segment(
            f"{indexed} NULL{also_m} ORDER BY m.txt {d}, m.seq {d}",
            f"{indexed} NULL{also_m} ORDER BY m.txt {r}, m.seq {r}",
            [name, *params_m],
        ),
        _Segment(f"{missing} {d}, r.rowid {d}", f"{missing} {r}, r.rowid {r}", [name, *params_r]),
    ]
