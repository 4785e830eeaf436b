"""Runs started detached on a host over SSH: what every SSH target (`remote`, `cluster`) shares.

The snapshot travels by delta into the host's blob cache (`push_snapshot`), the command starts in
its own session with its log and exit code in files on the host, and `DetachedRunHandle` follows it
from any process: state and log in one round trip per look, a dropped connection retried with
backoff as "connection lost to the host, retrying" (never a verdict), cancel ends the process
group, outputs/ come back as one tar through the safe extractor. Targets subclass the handle for
what is theirs (a Spark application's id and state, their `to_dict`).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..errors import TargetUnavailableError
from ..models import RunStatus
from ..outputs import collect_tar
from ..snapshot import Snapshot
from ..transport.blobsync import BlobSync
from ..transport.detached import DetachedProcess, ProcessState, kill_group, poll
from ..transport.ssh import SshConnection, shared_pool
from ..transport.sshconfig import Endpoint
from .base import ControlLog, HandleStatus, LogChunk, LogCursor, offset_of

GIVE_UP_AFTER_SECONDS = 600.0  # a host unreachable this long ends the run Failed (README "Remote")
_RETRY_FIRST, _RETRY_MAX = 0.5, 15.0


class SshHost(Protocol):
    """The executor side a handle needs: how to reach the host, and its name for messages."""

    @property
    def address(self) -> str: ...

    def endpoint(self, project: Path | None = None) -> Endpoint: ...

    def connection(self, project: Path | None = None) -> SshConnection: ...


def push_snapshot(conn: SshConnection, root: str, snapshot: Snapshot, run_id: str, log: ControlLog) -> str:
    """The snapshot into `<root>/runs/<run_id>/work` on the host (only blobs it lacks travel);
    returns that folder's absolute path."""
    stats = BlobSync(conn, root).push(snapshot, f"runs/{run_id}/work")
    log(
        f"Sent the snapshot to {conn.endpoint.describe()}: {stats.blobs_sent} new file(s), "
        f"{stats.blob_bytes_sent} bytes; {stats.blobs_reused} already there ({stats.bytes_sent} bytes "
        f"in {stats.seconds:.2f} s)."
    )
    return f"{absolute(conn, root)}/runs/{run_id}/work"


class DetachedRunHandle:
    """A detached process on the host; reads its log and state in one round trip per look."""

    def __init__(
        self,
        host: SshHost,
        process: DetachedProcess,
        root: str,
        run_id: str,
        project_root: Path | None,
    ) -> None:
        self.host = host
        self.process = process
        self.root = root
        self.run_id = run_id
        self.project_root = project_root
        self._pending = b""  # log bytes read from the host but not handed out yet ...
        self._pending_from = 0  # ... starting at this byte offset of the host's log
        self._outage_since: float | None = None
        self._next_try = 0.0
        self._delay = _RETRY_FIRST
        self._lost = ""

    @property
    def work_dir(self) -> str:
        """The run's copy of the snapshot on the host (its working directory)."""
        return f"{self.root}/runs/{self.run_id}/work"

    def connection(self) -> SshConnection:
        return self.host.connection(self.project_root)

    # --- looking at the host ------------------------------------------------------------------

    def _look(self, offset: int) -> ProcessState | None:
        """State + log from `offset`; None while the host cannot be reached (retried with backoff)."""
        now = time.monotonic()
        if self._outage_since is not None and now < self._next_try:
            return None
        try:
            state = poll(self.connection(), self.process, offset)
        except TargetUnavailableError as exc:  # a dropped link, or a look cut short by one
            shared_pool().discard(self.host.endpoint(self.project_root))
            if self._outage_since is None:
                self._outage_since, self._delay = now, _RETRY_FIRST
            self._next_try, self._delay = now + self._delay, min(self._delay * 2, _RETRY_MAX)
            self._lost = str(exc)
            return None
        self._outage_since = None
        self._seen(state.log)
        return state

    def _seen(self, data: bytes) -> None:
        """Every log byte read from the host passes here once (subclasses look for their ids)."""

    def poll(self) -> HandleStatus:
        """One round trip: the state, and any new log kept for the next `logs` call."""
        state = self._look(self._pending_from + len(self._pending))
        if state is not None:
            self._pending += state.log
        return self._status(state)

    def _status(self, state: ProcessState | None) -> HandleStatus:
        started = epoch(self.process.started_at)
        if state is None:
            down = time.monotonic() - (self._outage_since or time.monotonic())
            if down > GIVE_UP_AFTER_SECONDS:
                return HandleStatus(
                    RunStatus.FAILED,
                    error=f"{self.host.address} was unreachable for {down:.0f} s "
                    f"({self._lost}). The work may still be running there (pid {self.process.pid}); "
                    f"it was left alone.",
                )
            return HandleStatus(
                RunStatus.RUNNING, detail="connection lost to the host, retrying", started_at=started
            )
        if state.exit_code is None:
            if state.alive:
                return HandleStatus(RunStatus.RUNNING, started_at=started)
            return HandleStatus(
                RunStatus.FAILED, error="the run's process on the host ended without an exit status"
            )
        ended = epoch(state.ended_at) if state.ended_at else None
        if state.exit_code == 0:
            return HandleStatus(RunStatus.COMPLETED, 0, started_at=started, finished_at=ended)
        return HandleStatus(
            RunStatus.FAILED,
            state.exit_code,
            error=f"the script exited with code {state.exit_code}",
            started_at=started,
            finished_at=ended,
        )

    def wait(self, timeout: float) -> HandleStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.poll()
            if status.status.terminal or self._pending or time.monotonic() >= deadline:
                return status
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def logs(self, cursor: LogCursor) -> LogChunk:
        offset = offset_of(cursor)
        if offset != self._pending_from or not self._pending:
            self._pending, self._pending_from = b"", offset
            state = self._look(offset)
            if state is None:
                return LogChunk(b"", cursor)
            self._pending = state.log
        data, self._pending = self._pending, b""
        self._pending_from = offset + len(data)
        return LogChunk(data, str(self._pending_from))

    # --- control ------------------------------------------------------------------------------

    def cancel(self) -> None:
        """TERM to the run's whole process group on the host, KILL after a few seconds."""
        kill_group(self.connection(), self.process, grace=3.0)

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """outputs/ of the run's folder on the host, as one tar stream, through the safe extractor."""
        return self.collect_folder(f"{self.work_dir}/outputs", dest, max_file_bytes, log)

    def collect_folder(self, folder: str, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """A folder of the host into `dest` (the files of outputs/, wherever the run left them). The
        folder is taken from its parent, so a folder that is a link arrives as a link (and is skipped
        by the safe extractor), never as the host folder it points to."""
        spool = dest.parent / "executor" / "outputs.tar"
        spool.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(spool, "wb") as out:
                got = BlobSync(self.connection(), self.root).pull_entry(folder, out)
            if got is None:
                return []
            with open(spool, "rb") as archive:
                return collect_tar(archive, folder.rstrip("/").rsplit("/", 1)[-1], dest, max_file_bytes, log)
        finally:
            spool.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """The run's folder on the host goes; the blob cache stays for the next submit."""
        self.connection().run(["rm", "-rf", f"{self.root}/runs/{self.run_id}"])

    def base_dict(self) -> dict[str, object]:
        """What every SSH handle needs to re-attach; subclasses add their type and ids."""
        return {
            "process": self.process.to_dict(),
            "root": self.root,
            "run_id": self.run_id,
            "host": self.host.address,
            "project_root": str(self.project_root) if self.project_root else None,
        }


def absolute(conn: SshConnection, root: str) -> str:
    """The root as an absolute path of the host (`~` is the SSH user's home there)."""
    if root == "~" or root.startswith("~/"):
        return conn.home.rstrip("/") + root[1:]
    return root


def epoch(stamp: str | None) -> float | None:
    """An ISO-8601 UTC stamp of the host's clock as epoch seconds."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
