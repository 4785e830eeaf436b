"""A run's logs (files appended as they stream) and the follower's checkpoint: the executor's log
cursor, our log size and the metrics parsed up to there, in one transaction."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import HistoryError, RunNotFoundError
from ..models import Metric
from .records import utc_now
from .schema import RUN_FILTER_COLUMNS, SORT_TEXT_CHARS
from .store import HistoryStore

_COPIED = ", ".join(RUN_FILTER_COLUMNS)


class RunLogs(HistoryStore):
    """Log files, checkpoints and metric series of runs."""

    def _log_path(self, run_id: str, source: str) -> Path:
        if source not in ("driver", "control"):
            raise ValueError(f"log source must be 'driver' or 'control', not {source!r}")
        return self.run_dir(run_id) / f"{source}_log.txt"

    def append_log(self, run_id: str, text: str, source: str = "driver") -> int:
        """Append to a run's log (appends, not atomic rewrites: a crash keeps what was written)."""
        path = self._log_path(run_id, source)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                start = f.tell()
                try:
                    f.write(text.encode("utf-8"))
                    f.flush()
                except OSError:
                    f.truncate(start)  # no half line left for a reader (or a checkpoint) to see
                    raise
                return f.tell()
        except OSError as exc:
            raise HistoryError(
                f"Cannot write {path}: {exc.strerror}. Free space on the file system of {self.home} "
                f"(AMLEXEC_HOME), or set AMLEXEC_HOME to another folder."
            ) from exc

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
            row = db.execute(f"SELECT {_COPIED} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
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
                # An upsert keeps the row's position and seq, so a record lists metrics in first-logged
                # order and ties sort by it; a new row carries its run's filter columns (schema.py).
                db.execute(
                    "INSERT INTO latest_metrics (run_id, name, step, kind, value, num, logged_utc, txt, seq,"
                    f" {_COPIED}) VALUES (?,?,?,?,?,?,?,?, (SELECT COALESCE(MAX(rowid), 0) + 1 FROM"
                    " latest_metrics), ?,?,?,?,?) ON CONFLICT (run_id, name) DO UPDATE SET step = excluded.step,"
                    " kind = excluded.kind, value = excluded.value, num = excluded.num,"
                    " logged_utc = excluded.logged_utc, txt = excluded.txt",
                    (*values, sort_text, *row),
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


def _sort_text(value: object, json_text: str) -> str:
    """What a non-numeric metric sorts by: a string itself, anything else its JSON (both cut short)."""
    return (value if isinstance(value, str) else json_text)[:SORT_TEXT_CHARS]


def _numeric(value: object) -> float | None:
    """The sortable number of a metric value: ints and floats, not bools, lists or text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
