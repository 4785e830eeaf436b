"""The history's connections: one SQLite connection per thread and process, write transactions,
the schema check on open, and reading records (which every other part of the history needs)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import HistoryError, RunNotFoundError
from .records import RunRecord, record_of
from .schema import SCHEMA_VERSION, backfill, create, migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
MMAP_BYTES = 256 * 2**20
PARAMS_PER_QUERY = 500  # well under SQLite's host-parameter limit


class HistoryStore:
    """Run records in `home/history.sqlite`, run files in `home/runs/<run_id>/`: the connection
    layer that the run writes, the logs and the queries of `History` share."""

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
        """Create or upgrade the schema once per file; concurrent openers agree through BEGIN IMMEDIATE."""
        db = self._db()
        if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        # WAL is a property of the file: set once, outside a transaction.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            if version < SCHEMA_VERSION:
                old_columns = migrate(db)
                create(db)
                backfill(db, old_columns)
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

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so reads that must agree (a count and the page it cuts) see the
        same commit while other processes write; nested in a transaction, that one is used."""
        db = self._db()
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def _error(self, exc: sqlite3.Error) -> HistoryError:
        """What to do about a failed write: wait for the other writer, or move AMLEXEC_HOME."""
        return HistoryError(
            f"Cannot write the run history {self.db_path}: {exc}. If another process holds it for more "
            f"than {BUSY_TIMEOUT_S:.0f} s, retry; if the folder is read-only, set AMLEXEC_HOME to a "
            f"writable folder."
        )

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run's logs, outputs and executor files."""
        return self.home / "runs" / run_id

    def get(self, run_id: str) -> RunRecord:
        """The run's record, fresh from the file (RunNotFoundError naming the history otherwise)."""
        row = self._db().execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id, self.home)
        return self._records([row])[0]

    def _records(self, rows: Sequence[sqlite3.Row]) -> list[RunRecord]:
        """Records for runs rows, with their latest metrics and attachments in two queries a chunk."""
        run_ids = [r["run_id"] for r in rows]
        metrics: dict[str, dict[str, object]] = {}
        attachments: dict[str, list[str]] = {}
        db = self._db()
        for chunk in chunks(run_ids, PARAMS_PER_QUERY):
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
        return [record_of(r, metrics.get(r["run_id"], {}), attachments.get(r["run_id"], [])) for r in rows]


def chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    """`items` in lists of at most `size` (one query each)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
