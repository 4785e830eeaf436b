"""The run history: an SQLite index (WAL) of runs, metrics and attachments, plus each run's files.

Several kernels and CLI processes write at once: every write is one short `BEGIN IMMEDIATE`
transaction with a generous busy timeout, and each thread (and each forked process) has its own
connection. Logs are files (`runs/<id>/driver_log.txt`) appended as they stream, so nothing is lost
if a process dies; the follower's checkpoint (raw log offset, log size, metrics) is one transaction,
so a new follower resumes exactly where the last one stopped. `latest_metrics` keeps the newest value
of every metric per run, so a dashboard page of 100k runs with one column per metric, sorted by a
metric, is one indexed query.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .errors import HistoryError, RunNotFoundError
from .models import Metric, RunStatus
from .processes import same_process_alive, start_ticks

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 3: runs_filters, a covering index; 4: cancel requests
BUSY_TIMEOUT_S = 30.0
MMAP_BYTES = 256 * 2**20
LOG_FILES = ("driver_log.txt", "control_log.txt")
FEW_RUNS = 2000  # below this many matching runs, reading them all beats walking a metric index
SORT_TEXT_CHARS = 100  # a text metric sorts by its first 100 characters (kept in an index)

# Version 1 (the first release) kept attachments as a JSON column of `runs` and had no numeric
# column in `metrics`; `_migrate` and `_backfill` bring such a file up to date in place.
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_number INTEGER NOT NULL,
    project TEXT NOT NULL,
    project_path TEXT NOT NULL,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    status_detail TEXT,
    created_ms INTEGER NOT NULL,
    created_utc TEXT NOT NULL,
    start_time_utc TEXT,
    end_time_utc TEXT,
    duration_ms INTEGER,
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
    handle TEXT,
    follower_pid INTEGER,
    follower_started INTEGER,
    raw_offset INTEGER NOT NULL DEFAULT 0,
    log_size INTEGER NOT NULL DEFAULT 0,
    raw_cursor TEXT,
    cancel_requested_utc TEXT
);
CREATE INDEX IF NOT EXISTS runs_project ON runs(project, created_ms);
CREATE INDEX IF NOT EXISTS runs_project_number ON runs(project, run_number);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment, created_ms);
CREATE INDEX IF NOT EXISTS runs_target ON runs(target, created_ms);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created_ms);
CREATE INDEX IF NOT EXISTS runs_script ON runs(script_name, created_ms);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_ms);
CREATE INDEX IF NOT EXISTS runs_filters ON runs(project, experiment, status, target, script_name);
CREATE INDEX IF NOT EXISTS runs_duration ON runs(duration_ms);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    num REAL,
    logged_utc TEXT NOT NULL,
    PRIMARY KEY (run_id, name, step)
);
CREATE TABLE IF NOT EXISTS latest_metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    num REAL,
    txt TEXT,
    logged_utc TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS latest_by_name ON latest_metrics(name, num, txt);
CREATE TABLE IF NOT EXISTS metric_catalog (
    project TEXT NOT NULL,
    experiment TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (project, experiment, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attachments (
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
"""

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
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_PARAMS_PER_QUERY = 500  # well under SQLite's host-parameter limit


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


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


class History:
    """Run records and metrics in `home/history.sqlite`, run files in `home/runs/<run_id>/`."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.db_path = self.home / "history.sqlite"
        self._local = threading.local()
        try:
            (self.home / "runs").mkdir(parents=True, exist_ok=True)
            if not os.access(self.home, os.W_OK):
                raise PermissionError(f"no write permission on {self.home}")
            self._ensure_schema()
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(
                f"Cannot open the run history in {self.home}: {exc}. Make that folder writable, or set "
                f"AMLEXEC_HOME to a writable folder."
            ) from exc

    # --- connections ----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """This thread's connection; a forked child opens its own (SQLite handles must not cross fork)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA synchronous=NORMAL")
            # Reads through a memory map: a page sorted by a metric touches rows all over the file.
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._local.db = db
            self._local.pid = os.getpid()
        return db

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "pid", None) == os.getpid():
            db.close()
        self._local.db = None

    def _ensure_schema(self) -> None:
        db = self._db()
        if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        # WAL is a property of the file: set once, outside a transaction.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            if version < SCHEMA_VERSION:
                old_columns = _migrate(db)
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                _backfill(db, old_columns)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (`BEGIN IMMEDIATE`) so it never deadlocks on upgrade."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            yield db
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise self._error(exc) from exc
        except BaseException:
            db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> HistoryError:
        return HistoryError(
            f"Cannot write the run history {self.db_path}: {exc}. If another process holds it for more "
            f"than {BUSY_TIMEOUT_S:.0f} s, retry; if the folder is read-only, set AMLEXEC_HOME to a "
            f"writable folder."
        )

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
        """Record a new Queued run with a unique, time-sortable id `<project>_<epoch ms>[-n]`.

        The id and the run number are chosen inside the write transaction, so two processes
        submitting in the same millisecond get `..._<ms>` and `..._<ms>-2`, and numbers 7 and 8.
        """
        prefix = _SAFE_ID.sub("_", project) or "project"
        with self._write() as db:
            created_ms = int(time.time() * 1000)
            base = f"{prefix}_{created_ms}"
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
                    datetime.fromtimestamp(created_ms / 1000, timezone.utc).isoformat(),
                    target,
                    target_type,
                    run_configuration,
                    script_name,
                    json.dumps([str(a) for a in arguments]),
                    json.dumps(dict(environment)),
                    snapshot_id,
                    description,
                    json.dumps(dict(properties or {}), default=str),
                ),
            )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        log.debug("created run %s (#%d of %s)", run_id, number, project)
        return self.get(run_id)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        detail: str | None = None,
        started_at: float | None = None,
        finished_at: float | None = None,
    ) -> RunRecord:
        """Move a run to `status`. Entering Running stamps the start, a terminal status the end —
        `started_at`/`finished_at` (epoch seconds reported by the work itself) when given, else now;
        a terminal status is final: later calls return the stored record unchanged."""
        status = RunStatus(status)
        now = utc_now()
        start = _utc(started_at) if started_at is not None else now
        end = _utc(finished_at) if finished_at is not None else now
        with self._write() as db:
            row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, self.home)
            if RunStatus(row["status"]).terminal:
                log.debug("run %s is already %s; ignoring %s", run_id, row["status"], status.value)
            else:
                db.execute(
                    "UPDATE runs SET status = ?, status_detail = ?,"
                    " start_time_utc = CASE WHEN ? THEN ? WHEN ? AND start_time_utc IS NULL THEN ?"
                    " ELSE start_time_utc END,"
                    " end_time_utc = CASE WHEN ? THEN ? ELSE end_time_utc END,"
                    " duration_ms = CASE WHEN ? THEN MAX(0, CAST(ROUND((julianday(?) -"
                    " julianday(COALESCE(?, start_time_utc))) * 86400000) AS INTEGER)) ELSE duration_ms END,"
                    " exit_code = COALESCE(?, exit_code), error = COALESCE(?, error) WHERE run_id = ?",
                    (
                        status.value,
                        detail,
                        started_at is not None,
                        start,
                        status is RunStatus.RUNNING,
                        start,
                        status.terminal,
                        end,
                        status.terminal,
                        end,
                        start if started_at is not None else None,
                        exit_code,
                        error,
                        run_id,
                    ),
                )
        return self.get(run_id)

    def set_detail(self, run_id: str, detail: str | None) -> None:
        """Say what a live run is doing ("connection lost, retrying") without changing its status."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status_detail = ? WHERE run_id = ? AND status NOT IN (?,?,?)",
                (detail, run_id, *(s.value for s in RunStatus if s.terminal)),
            )

    def request_cancel(self, run_id: str) -> bool:
        """Ask whoever follows the run to stop it (a row, so any process can ask: another kernel, the
        CLI, the server). False when the run has already ended."""
        with self._write() as db:
            row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, self.home)
            if RunStatus(row["status"]).terminal:
                return False
            db.execute(
                "UPDATE runs SET cancel_requested_utc = COALESCE(cancel_requested_utc, ?) WHERE run_id = ?",
                (utc_now(), run_id),
            )
            return True

    def cancel_requested(self, run_id: str) -> bool:
        """True once any process asked to cancel the run (the owning follower honours it)."""
        row = (
            self._db().execute("SELECT cancel_requested_utc FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )
        return row is not None and row[0] is not None

    def set_handle(self, run_id: str, handle: Mapping[str, object] | None) -> None:
        """Keep the executor's handle so another process can re-attach to the run."""
        text = json.dumps(dict(handle), default=str) if handle is not None else None
        with self._write() as db:
            if db.execute("UPDATE runs SET handle = ? WHERE run_id = ?", (text, run_id)).rowcount == 0:
                raise RunNotFoundError(run_id, self.home)

    def set_attachments(self, run_id: str, paths: Sequence[str]) -> None:
        """Replace the run's attachment list (the logs are always listed first)."""
        extra = [p for p in dict.fromkeys(paths) if p not in LOG_FILES]
        with self._write() as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise RunNotFoundError(run_id, self.home)
            db.execute("DELETE FROM attachments WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO attachments (run_id, position, path) VALUES (?,?,?)",
                [(run_id, i, p) for i, p in enumerate(extra)],
            )

    # --- logs -------------------------------------------------------------------------------------

    def _log_path(self, run_id: str, source: str) -> Path:
        if source not in ("driver", "control"):
            raise ValueError(f"log source must be 'driver' or 'control', not {source!r}")
        return self.run_dir(run_id) / f"{source}_log.txt"

    def append_log(self, run_id: str, text: str, source: str = "driver") -> int:
        """Append to a run's log (appends, not atomic rewrites: a crash keeps what was written)."""
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
        """The log from byte `offset` on, or its last `tail_bytes` (cut at a character boundary)."""
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
        if tail_bytes is not None:
            skip = 0
            while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:  # UTF-8 continuation byte
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", errors="replace")

    # --- follower checkpoint --------------------------------------------------------------------

    def checkpoint(self, run_id: str, *, cursor: str, log_size: int, metrics: Sequence[Metric]) -> None:
        """Store the follower's position and the metrics it parsed up to there, in one transaction.

        Each metric gets the next step of its name; `latest_metrics` and the metric catalog follow.
        """
        with self._write() as db:
            row = db.execute("SELECT project, experiment FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, self.home)
            next_step: dict[str, int] = {}
            for metric in metrics:
                if metric.name not in next_step:
                    next_step[metric.name] = db.execute(
                        "SELECT COALESCE(MAX(step) + 1, 0) FROM metrics WHERE run_id = ? AND name = ?",
                        (run_id, metric.name),
                    ).fetchone()[0]
                step = next_step[metric.name]
                next_step[metric.name] = step + 1
                values = (
                    run_id,
                    metric.name,
                    step,
                    metric.kind,
                    json.dumps(metric.value),
                    _numeric(metric.value),
                    metric.logged_utc or utc_now(),
                )
                sort_text = None if values[5] is not None else _sort_text(metric.value, values[4])
                db.execute(
                    "INSERT INTO metrics (run_id, name, step, kind, value, num, logged_utc)"
                    " VALUES (?,?,?,?,?,?,?)",
                    values,
                )
                # An upsert keeps the row's position, so a record lists metrics in first-logged order.
                db.execute(
                    "INSERT INTO latest_metrics (run_id, name, step, kind, value, num, logged_utc, txt)"
                    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (run_id, name) DO UPDATE SET step = excluded.step,"
                    " kind = excluded.kind, value = excluded.value, num = excluded.num,"
                    " logged_utc = excluded.logged_utc, txt = excluded.txt",
                    (*values, sort_text),
                )
            db.executemany(
                "INSERT OR IGNORE INTO metric_catalog (project, experiment, name) VALUES (?,?,?)",
                [(row["project"], row["experiment"], name) for name in next_step],
            )
            db.execute(
                "UPDATE runs SET raw_cursor = ?, log_size = ? WHERE run_id = ?",
                (cursor, log_size, run_id),
            )

    def progress(self, run_id: str) -> tuple[str, int]:
        """(executor log cursor, our log size) at the last checkpoint: where a re-attached follower
        resumes. Files of schema 3 kept a byte offset, which is the cursor of local and Docker runs."""
        row = (
            self._db()
            .execute("SELECT raw_cursor, raw_offset, log_size FROM runs WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        if row is None:
            raise RunNotFoundError(run_id, self.home)
        cursor = row[0] if row[0] is not None else (str(row[1]) if row[1] else "")
        return cursor, int(row[2])

    def claim_follower(self, run_id: str, pid: int) -> bool:
        """Become the process that follows this run, unless another live process already does.

        A recorded follower that is gone (or whose pid now belongs to a newer process) is replaced.
        """
        with self._write() as db:
            row = db.execute(
                "SELECT follower_pid, follower_started FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, self.home)
            current, started = row
            if current is not None and current != pid and same_process_alive(current, started):
                return False
            db.execute(
                "UPDATE runs SET follower_pid = ?, follower_started = ? WHERE run_id = ?",
                (pid, start_ticks(pid), run_id),
            )
            return True

    def release_follower(self, run_id: str, pid: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET follower_pid = NULL, follower_started = NULL"
                " WHERE run_id = ? AND follower_pid = ?",
                (run_id, pid),
            )

    # --- reading ----------------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        row = self._db().execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id, self.home)
        return self._records([row])[0]

    def metric_series(self, run_id: str) -> dict[str, list[Metric]]:
        """Every logged value per metric name, in step order."""
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

    def metric_rows_after(self, run_id: str, rowid: int) -> list[tuple[int, Metric]]:
        """Metrics logged after row `rowid`, in logging order (what a follower has not seen yet)."""
        rows = self._db().execute(
            "SELECT rowid, name, step, kind, value, logged_utc FROM metrics WHERE run_id = ? AND rowid > ?"
            " ORDER BY rowid",
            (run_id, rowid),
        )
        return [
            (r[0], Metric(r["name"], json.loads(r["value"]), r["kind"], r["step"], r["logged_utc"]))
            for r in rows
        ]

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
        where, params = _where(
            {
                "project": project,
                "experiment": experiment,
                "target": target,
                "status": status,
                "script": script,
            }
        )
        direction = "DESC" if descending else "ASC"
        if order_by.startswith("metric:"):
            rowids = self._page_by_metric(order_by[len("metric:") :], where, params, direction, limit, offset)
        else:
            try:
                column = _ORDER_COLUMNS[order_by]
            except KeyError:
                known = ", ".join(sorted(_ORDER_COLUMNS)) + ", metric:<name>"
                raise ValueError(f"Cannot sort runs by {order_by!r}; use one of {known}.") from None
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
        self, name: str, where: str, params: list[object], direction: str, limit: int | None, offset: int
    ) -> list[int]:
        """Rowids of one page sorted by a metric: numeric values, then text values, then no value.

        Ties go to the run that first logged the metric earlier (later with `descending`), then by
        submit time. The order is total, so a page past the middle is read as the same page counted
        from the end in the reverse order. Two plans give that order: with few matching runs, sort
        them all; with many, walk the metric's index (`latest_by_name`) and stop once the page is
        full, which costs O(offset + page) instead of O(runs).
        """
        db = self._db()
        matching = self._count_where(where, params)
        if matching == 0 or offset >= matching:
            return []
        size = matching - offset if limit is None else min(limit, matching - offset)
        flip = 2 * offset + size > matching
        if flip:
            offset = matching - offset - size
            direction = "ASC" if direction == "DESC" else "DESC"
        total = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0]  # runs are never deleted
        if (offset + size) * total / matching >= matching:
            page = self._metric_page_sorted(name, where, params, direction, flip, size, offset)
        else:
            page = self._metric_page_walked(name, where, params, direction, flip, size, offset)
        return page[::-1] if flip else page

    def _metric_page_sorted(
        self, name: str, where: str, params: list[object], d: str, flip: bool, size: int, offset: int
    ) -> list[int]:
        """Sort every matching run (a LEFT JOIN on the metric); cheap when few runs match."""
        missing_last = "DESC" if flip else "ASC"  # numbers, then text, then missing (reversed if flipped)
        sql = (
            "SELECT r.rowid FROM runs r LEFT JOIN latest_metrics m ON m.run_id = r.run_id AND m.name = ?"
            f"{where} ORDER BY m.run_id IS NULL {missing_last}, m.num IS NULL {missing_last}, m.num {d},"
            f" m.txt {d}, m.rowid {d}, r.created_ms {d}, r.rowid {d} LIMIT ? OFFSET ?"
        )
        return [r[0] for r in self._db().execute(sql, [name, *params, size, offset])]

    def _metric_page_walked(
        self, name: str, where: str, params: list[object], d: str, flip: bool, size: int, offset: int
    ) -> list[int]:
        """Walk the metric's index in order, segment by segment, until the page is full."""
        db = self._db()
        also = where.replace(" WHERE ", " AND ", 1)
        # CROSS JOIN pins the join order: the metric index drives, runs are looked up per entry.
        segments = [
            "SELECT r.rowid FROM latest_metrics m CROSS JOIN runs r ON r.run_id = m.run_id"
            f" WHERE m.name = ? AND m.num IS NOT NULL{also} ORDER BY m.num {d}, m.rowid {d}",
            "SELECT r.rowid FROM latest_metrics m CROSS JOIN runs r ON r.run_id = m.run_id"
            f" WHERE m.name = ? AND m.num IS NULL{also} ORDER BY m.txt {d}, m.rowid {d}",
            "SELECT r.rowid FROM runs r WHERE NOT EXISTS (SELECT 1 FROM latest_metrics m"
            f" WHERE m.run_id = r.run_id AND m.name = ?){also} ORDER BY r.created_ms {d}, r.rowid {d}",
        ]
        if flip:
            segments.reverse()
        out: list[int] = []
        skip, need = offset, size
        for sql in segments:
            if need <= 0:
                break
            rows = [r[0] for r in db.execute(f"{sql} LIMIT ? OFFSET ?", [name, *params, need, skip])]
            out.extend(rows)
            need -= len(rows)
            if skip and not rows:  # the page starts past this segment: skip over all of it
                length = db.execute(f"SELECT COUNT(*) FROM ({sql})", [name, *params]).fetchone()[0]
                skip = max(0, skip - length)
            elif rows:
                skip = 0
        return out

    def _rows(self, rowids: Sequence[int]) -> list[sqlite3.Row]:
        """The runs rows for `rowids`, in that order."""
        found: dict[int, sqlite3.Row] = {}
        for start in range(0, len(rowids), _PARAMS_PER_QUERY):
            chunk = list(rowids[start : start + _PARAMS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            for row in self._db().execute(
                f"SELECT rowid AS rowid_, * FROM runs WHERE rowid IN ({marks})", chunk
            ):
                found[row["rowid_"]] = row
        return [found[i] for i in rowids if i in found]

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
        also = where.replace(" WHERE ", " AND ", 1)
        probe = (
            "SELECT 1 FROM latest_metrics m CROSS JOIN runs r ON r.run_id = m.run_id"
            f" WHERE m.name = ?{also} LIMIT 1"
        )
        return [name for name in names if db.execute(probe, [name, *params]).fetchone()]

    def last(self, project: str | None = None) -> RunRecord:
        """The most recently submitted run (of `project`)."""
        runs = self.query(project=project, limit=1)
        if not runs:
            raise RunNotFoundError("(last)" if project is None else f"(last of {project})", self.home)
        return runs[0]

    def _records(self, rows: Sequence[sqlite3.Row]) -> list[RunRecord]:
        """Records for runs rows, with their latest metrics and attachments in two queries a chunk."""
        run_ids = [r["run_id"] for r in rows]
        metrics: dict[str, dict[str, object]] = {}
        attachments: dict[str, list[str]] = {}
        db = self._db()
        for chunk in _chunks(run_ids, _PARAMS_PER_QUERY):
            marks = ",".join("?" * len(chunk))
            for m in db.execute(
                f"SELECT run_id, name, value FROM latest_metrics WHERE run_id IN ({marks}) ORDER BY rowid",
                chunk,
            ):
                metrics.setdefault(m[0], {})[m[1]] = json.loads(m[2])
            for a in db.execute(
                f"SELECT run_id, path FROM attachments WHERE run_id IN ({marks}) ORDER BY run_id, position",
                chunk,
            ):
                attachments.setdefault(a[0], []).append(a[1])
        return [_record(r, metrics.get(r["run_id"], {}), attachments.get(r["run_id"], [])) for r in rows]


# --- helpers ----------------------------------------------------------------------------------------


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


def _where(filters: Mapping[str, object]) -> tuple[str, list[object]]:
    """SQL for the query filters; a list/tuple/set value matches any of its items, a value with
    * ? or [ is a shell-style pattern (case-sensitive), a status matches in any case."""
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
            clauses.append(f"r.{column} GLOB ?")  # shell-style pattern: train*, *lr*
        elif len(values) == 1:
            clauses.append(f"r.{column} = ?")
        else:
            clauses.append(f"r.{column} IN ({','.join('?' * len(values))})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _sort_text(value: object, json_text: str) -> str:
    """What a non-numeric metric sorts by: a string itself, anything else its JSON (both cut short)."""
    return (value if isinstance(value, str) else json_text)[:SORT_TEXT_CHARS]


def _numeric(value: object) -> float | None:
    """The sortable number of a metric value: ints and floats, not bools, lists or text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _record(row: sqlite3.Row, metrics: Mapping[str, object], extra: Sequence[str]) -> RunRecord:
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


def _migrate(db: sqlite3.Connection) -> set[str]:
    """Add what version 2 added to the tables of a version-1 file; returns runs' old columns."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "runs" not in tables:
        return set()
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    for name, decl in (
        ("status_detail", "TEXT"),
        ("follower_started", "INTEGER"),
        ("duration_ms", "INTEGER"),
        ("raw_cursor", "TEXT"),
        ("cancel_requested_utc", "TEXT"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
    db.execute(
        "UPDATE runs SET duration_ms = CAST(ROUND((julianday(end_time_utc) - julianday(start_time_utc))"
        " * 86400000) AS INTEGER) WHERE duration_ms IS NULL AND end_time_utc IS NOT NULL"
    )
    if "metrics" in tables and "num" not in {r[1] for r in db.execute("PRAGMA table_info(metrics)")}:
        db.execute("ALTER TABLE metrics ADD COLUMN num REAL")
        db.execute(
            "UPDATE metrics SET num = CAST(value AS REAL) WHERE json_type(value) IN ('integer', 'real')"
        )
    if "latest_metrics" in tables and "txt" not in {
        r[1] for r in db.execute("PRAGMA table_info(latest_metrics)")
    }:
        db.execute("DROP TABLE latest_metrics")  # rebuilt from the series by _backfill
        db.execute("DROP INDEX IF EXISTS latest_by_name")
    return columns


def _backfill(db: sqlite3.Connection, old_columns: set[str]) -> None:
    """Fill the tables version 2 added from what a version-1 file holds."""
    if not old_columns:
        return
    if db.execute("SELECT COUNT(*) FROM latest_metrics").fetchone()[0] == 0:
        db.execute(
            "INSERT INTO latest_metrics (run_id, name, step, kind, value, num, logged_utc, txt)"
            " SELECT m.run_id, m.name, m.step, m.kind, m.value, m.num, m.logged_utc, CASE WHEN m.num IS NOT"
            f" NULL THEN NULL WHEN json_type(m.value) = 'text' THEN substr(json_extract(m.value, '$'), 1,"
            f" {SORT_TEXT_CHARS}) ELSE substr(m.value, 1, {SORT_TEXT_CHARS}) END FROM metrics m"
            " JOIN (SELECT run_id, name, MAX(step) AS step FROM metrics GROUP BY run_id, name) last"
            " ON last.run_id = m.run_id AND last.name = m.name AND last.step = m.step"
            " ORDER BY m.run_id, m.rowid"
        )
    db.execute(
        "INSERT OR IGNORE INTO metric_catalog (project, experiment, name) SELECT DISTINCT r.project,"
        " r.experiment, m.name FROM latest_metrics m JOIN runs r ON r.run_id = m.run_id"
    )
    if "attachments" in old_columns:
        for run_id, text in db.execute("SELECT run_id, attachments FROM runs").fetchall():
            paths = [p for p in json.loads(text or "[]") if p not in LOG_FILES]
            db.executemany(
                "INSERT OR IGNORE INTO attachments (run_id, position, path) VALUES (?,?,?)",
                [(run_id, i, p) for i, p in enumerate(paths)],
            )
