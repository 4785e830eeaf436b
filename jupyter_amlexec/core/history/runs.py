"""Writing runs: creating a record, its status and detail, cancel requests, the executor handle,
attachments, and the follower lease (who follows a run, so a dead follower's run is taken over)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from ..errors import RunNotFoundError
from ..models import RunStatus
from ..processes import same_process_alive, start_ticks
from .records import RunRecord, utc_at, utc_now
from .schema import LOG_FILES
from .store import HistoryStore

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


class RunWrites(HistoryStore):
    """The writes of a run's life: create, status, detail, cancel request, handle, attachments, lease."""

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
        start = utc_at(started_at) if started_at is not None else now
        end = utc_at(finished_at) if finished_at is not None else now
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
        """Give up following the run (only if `pid` still holds the lease)."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET follower_pid = NULL, follower_started = NULL"
                " WHERE run_id = ? AND follower_pid = ?",
                (run_id, pid),
            )
