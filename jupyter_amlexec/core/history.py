"""The run history: an SQLite index (WAL) of runs and metrics, plus each run's files on disk.

Several kernels and CLI processes write at once: every write is one short `BEGIN IMMEDIATE`
transaction with a generous busy timeout, and each thread has its own connection. Logs are files
(`runs/<id>/driver_log.txt`) appended as they stream, so nothing is lost if a process dies; the
follower's checkpoint (raw log offset, log size, metrics) is one transaction, so a new follower
resumes exactly where the last one stopped.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .errors import HistoryError, RunNotFoundError
from .models import Metric, RunStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_number INTEGER NOT NULL,
    project TEXT NOT NULL,
    project_path TEXT NOT NULL,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_utc TEXT NOT NULL,
    start_time_utc TEXT,
    end_time_utc TEXT,
    target TEXT NOT NULL,
    target_type TEXT NOT NULL,
    run_configuration TEXT NOT NULL,
    script_name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    environment TEXT NOT NULL,
    snapshot_id TEXT,
    exit_code INTEGER,
    error TEXT,
    description TEXT,
    properties TEXT NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]',
    handle TEXT,
    follower_pid INTEGER,
    raw_offset INTEGER NOT NULL DEFAULT 0,
    log_size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_project ON runs(project, created_ms);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment, created_ms);
CREATE INDEX IF NOT EXISTS runs_target ON runs(target, created_ms);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created_ms);
CREATE INDEX IF NOT EXISTS runs_script ON runs(script_name, created_ms);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_ms);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    logged_utc TEXT NOT NULL,
    PRIMARY KEY (run_id, name, step)
);
CREATE TABLE IF NOT EXISTS latest_metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    num REAL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS latest_by_name ON latest_metrics(name, num);
"""

_ORDER_COLUMNS = {
    "created_utc": "r.created_ms",
    "created": "r.created_ms",
    "run_number": "r.run_number",
    "status": "r.status",
    "target": "r.target",
    "script_name": "r.script_name",
    "experiment": "r.experiment",
    "duration": "(julianday(COALESCE(r.end_time_utc, r.start_time_utc)) - julianday(r.start_time_utc))",
    "run_id": "r.run_id",
}
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def utc_now() -> str:
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

    @property
    def duration(self) -> timedelta | None:
        if self.start_time_utc is None:
            return None
        end = datetime.fromisoformat(self.end_time_utc) if self.end_time_utc else datetime.now(timezone.utc)
        return end - datetime.fromisoformat(self.start_time_utc)

    def to_json(self) -> dict[str, Any]:
        """Workbench's record shape (`az ml history info -o json`): every metric a top-level key."""
        duration = self.duration
        doc: dict[str, Any] = dict(self.metrics)
        doc.update(
            {
                "attachments": ", ".join(self.attachments),
                "created_utc": self.created_utc,
                "description": self.description,
                "duration": _duration_text(duration) if duration is not None else None,
                "end_time_utc": self.end_time_utc,
                "experiment": self.experiment,
                "project": self.project,
                "project_path": self.project_path,
                "properties": dict(self.properties),
                "run_id": self.run_id,
                "run_number": self.run_number,
                "run_configuration": self.run_configuration,
                "script_name": self.script_name,
                "arguments": list(self.arguments),
                "start_time_utc": self.start_time_utc,
                "status": self.status.value,
                "target": self.target,
                "exit_code": self.exit_code,
                "error": self.error,
            }
        )
        return doc


def _duration_text(d: timedelta) -> str:
    total = d.total_seconds()
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{seconds:09.6f}"


class History:
    """Run records and metrics in `home/history.sqlite`, run files in `home/runs/<run_id>/`."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.db_path = self.home / "history.sqlite"
        self._local = threading.local()
        try:
            (self.home / "runs").mkdir(parents=True, exist_ok=True)
            self._db().executescript(SCHEMA)  # idempotent; executescript manages its own transaction
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(
                f"Cannot open the run history in {self.home}: {exc}. Make the folder writable, or point "
                f"AMLEXEC_HOME at a writable folder."
            ) from exc

    # --- connections ----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=60000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def run_dir(self, run_id: str) -> Path:
        return self.home / "runs" / run_id

    # --- creating and updating --------------------------------------------------------------------

    def create_run(
        self,
        *,
        project: str,
        project_path: str,
        experiment: str,
        target: str,
        target_type: str,
        run_configuration: str,
        script_name: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        snapshot_id: str | None,
        description: str | None = None,
        properties: Mapping[str, object] | None = None,
    ) -> RunRecord:
        """Record a new Queued run with a unique, time-sortable id `<project>_<epoch ms>[-n]`."""
        created_ms = int(time.time() * 1000)
        base = f"{_SAFE_ID.sub('_', project) or 'project'}_{created_ms}"
        created_utc = datetime.fromtimestamp(created_ms / 1000, timezone.utc).isoformat()
        with self._write() as db:
            run_id, n = base, 1
            while db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                n += 1
                run_id = f"{base}-{n}"
            number = db.execute(
                "SELECT COALESCE(MAX(run_number), 0) + 1 FROM runs WHERE project = ?", (project,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO runs (run_id, run_number, project, project_path, experiment, status, created_ms,"
                " created_utc, target, target_type, run_configuration, script_name, arguments, environment,"
                " snapshot_id, description, properties) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    number,
                    project,
                    project_path,
                    experiment,
                    RunStatus.QUEUED.value,
                    created_ms,
                    created_utc,
                    target,
                    target_type,
                    run_configuration,
                    script_name,
                    json.dumps(list(arguments)),
                    json.dumps(dict(environment)),
                    snapshot_id,
                    description,
                    json.dumps(dict(properties or {}), default=str),
                ),
            )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return self.get(run_id)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        detail: str | None = None,
    ) -> RunRecord:
        """Move a run to `status`; a terminal status is final (later calls leave it unchanged)."""
        now = utc_now()
        with self._write() as db:
            row = db.execute("SELECT status, start_time_utc FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, self.home)
            if not RunStatus(row["status"]).terminal:
                start = row["start_time_utc"]
                if start is None and (status is RunStatus.RUNNING or status.terminal):
                    start = now
                db.execute(
                    "UPDATE runs SET status = ?, start_time_utc = ?, end_time_utc = ?,"
                    " exit_code = COALESCE(?, exit_code), error = COALESCE(?, error) WHERE run_id = ?",
                    (status.value, start, now if status.terminal else None, exit_code, error, run_id),
                )
        return self.get(run_id)

    def set_handle(self, run_id: str, handle: Mapping[str, object] | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET handle = ? WHERE run_id = ?",
                (json.dumps(dict(handle), default=str) if handle is not None else None, run_id),
            )

    def set_attachments(self, run_id: str, paths: Sequence[str]) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET attachments = ? WHERE run_id = ?", (json.dumps(list(paths)), run_id))

    # --- logs -------------------------------------------------------------------------------------

    def _log_path(self, run_id: str, source: str) -> Path:
        if source not in ("driver", "control"):
            raise ValueError(f"log source must be 'driver' or 'control', not {source!r}")
        return self.run_dir(run_id) / f"{source}_log.txt"

    def append_log(self, run_id: str, text: str, source: str = "driver") -> int:
        path = self._log_path(run_id, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(text.encode("utf-8"))
            return f.tell()

    def truncate_log(self, run_id: str, size: int, source: str = "driver") -> None:
        """Cut a log back to `size` bytes (text a dead follower wrote after its last checkpoint)."""
        path = self._log_path(run_id, source)
        if path.exists() and path.stat().st_size > size:
            os.truncate(path, size)

    def read_log(
        self, run_id: str, source: str = "driver", *, tail_bytes: int | None = None, offset: int = 0
    ) -> str:
        path = self._log_path(run_id, source)
        try:
            with open(path, "rb") as f:
                if tail_bytes is not None:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(offset, size - tail_bytes))
                else:
                    f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            self.get(run_id)  # RunNotFoundError for an unknown run; no log yet otherwise
            return ""
        return data.decode("utf-8", errors="replace")

    # --- follower checkpoint --------------------------------------------------------------------

    def checkpoint(self, run_id: str, *, raw_offset: int, log_size: int, metrics: Sequence[Metric]) -> None:
        """Store the follower's position and the metrics it parsed up to there, in one transaction."""
        with self._write() as db:
            for metric in metrics:
                step = db.execute(
                    "SELECT COALESCE(MAX(step) + 1, 0) FROM metrics WHERE run_id = ? AND name = ?",
                    (run_id, metric.name),
                ).fetchone()[0]
                value = json.dumps(metric.value)
                db.execute(
                    "INSERT INTO metrics (run_id, name, step, kind, value, logged_utc) VALUES (?,?,?,?,?,?)",
                    (run_id, metric.name, step, metric.kind, value, metric.logged_utc or utc_now()),
                )
                num = (
                    metric.value
                    if isinstance(metric.value, (int, float)) and not isinstance(metric.value, bool)
                    else None
                )
                db.execute(
                    "INSERT OR REPLACE INTO latest_metrics (run_id, name, value, num) VALUES (?,?,?,?)",
                    (run_id, metric.name, value, num),
                )
            db.execute(
                "UPDATE runs SET raw_offset = ?, log_size = ? WHERE run_id = ?",
                (raw_offset, log_size, run_id),
            )

    def progress(self, run_id: str) -> tuple[int, int]:
        row = (
            self._db().execute("SELECT raw_offset, log_size FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )
        if row is None:
            raise RunNotFoundError(run_id, self.home)
        return int(row[0]), int(row[1])

    def claim_follower(self, run_id: str, pid: int) -> bool:
        """Become the process that follows this run, unless another live process already does."""
        with self._write() as db:
            row = db.execute("SELECT follower_pid FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, self.home)
            current = row[0]
            if current is not None and current != pid and _alive(current):
                return False
            db.execute("UPDATE runs SET follower_pid = ? WHERE run_id = ?", (pid, run_id))
            return True

    def release_follower(self, run_id: str, pid: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET follower_pid = NULL WHERE run_id = ? AND follower_pid = ?", (run_id, pid)
            )

    # --- reading ----------------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        db = self._db()
        row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id, self.home)
        return self._record(row, self._latest_metrics([run_id]).get(run_id, {}))

    def metric_series(self, run_id: str) -> dict[str, list[Metric]]:
        rows = self._db().execute(
            "SELECT name, step, kind, value, logged_utc FROM metrics WHERE run_id = ? ORDER BY name, step",
            (run_id,),
        )
        series: dict[str, list[Metric]] = {}
        for r in rows:
            series.setdefault(r["name"], []).append(
                Metric(r["name"], json.loads(r["value"]), r["kind"], r["step"], r["logged_utc"])
            )
        return series

    def _where(self, filters: Mapping[str, object]) -> tuple[str, list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        for key in ("project", "experiment", "target", "status", "script_name"):
            value = filters.get("script" if key == "script_name" else key)
            if value is None:
                continue
            if isinstance(value, (list, tuple, set, frozenset)):
                values = [str(v) for v in value]
                clauses.append(f"r.{key} IN ({','.join('?' * len(values))})")
                params.extend(values)
            else:
                clauses.append(f"r.{key} = ?")
                params.append(str(value))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

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
        """Runs matching the filters, sorted and paged in SQL (also by a metric: "metric:<name>")."""
        where, params = self._where(
            {
                "project": project,
                "experiment": experiment,
                "target": target,
                "status": status,
                "script": script,
            }
        )
        join = ""
        if order_by.startswith("metric:"):
            join = " LEFT JOIN latest_metrics m ON m.run_id = r.run_id AND m.name = ?"
            params = [order_by[len("metric:") :], *params]
            order = "m.num IS NULL, m.num"  # runs without the metric last, either direction
        else:
            try:
                order = _ORDER_COLUMNS[order_by]
            except KeyError:
                known = ", ".join(sorted(_ORDER_COLUMNS)) + ", metric:<name>"
                raise ValueError(f"Cannot sort runs by {order_by!r}; use one of {known}.") from None
        direction = "DESC" if descending else "ASC"
        order_sql = (
            f"m.num IS NULL, m.num {direction}" if join else f"{order} {direction}"
        ) + f", r.created_ms {direction}"
        sql = f"SELECT r.* FROM runs r{join}{where} ORDER BY {order_sql} LIMIT ? OFFSET ?"
        rows = self._db().execute(sql, [*params, -1 if limit is None else limit, offset]).fetchall()
        latest = self._latest_metrics([r["run_id"] for r in rows])
        return [self._record(r, latest.get(r["run_id"], {})) for r in rows]

    def count(self, **filters: Any) -> int:
        where, params = self._where(filters)
        return int(self._db().execute(f"SELECT COUNT(*) FROM runs r{where}", params).fetchone()[0])

    def metric_names(self, **filters: Any) -> list[str]:
        where, params = self._where(filters)
        if not where:
            rows = self._db().execute("SELECT DISTINCT name FROM latest_metrics ORDER BY name")
        else:
            rows = self._db().execute(
                f"SELECT DISTINCT m.name FROM latest_metrics m JOIN runs r ON r.run_id = m.run_id{where} ORDER BY m.name",
                params,
            )
        return [r[0] for r in rows]

    def last(self, project: str | None = None) -> RunRecord:
        runs = self.query(project=project, limit=1)
        if not runs:
            raise RunNotFoundError("(last)", self.home)
        return runs[0]

    def _latest_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, object]]:
        if not run_ids:
            return {}
        out: dict[str, dict[str, object]] = {}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = self._db().execute(
                f"SELECT run_id, name, value FROM latest_metrics WHERE run_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY rowid",
                chunk,
            )
            for r in rows:
                out.setdefault(r[0], {})[r[1]] = json.loads(r[2])
        return out

    @staticmethod
    def _record(row: sqlite3.Row, metrics: Mapping[str, object]) -> RunRecord:
        attachments = ["driver_log.txt", "control_log.txt", *json.loads(row["attachments"])]
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
            attachments=tuple(attachments),
            handle=json.loads(row["handle"]) if row["handle"] else None,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
