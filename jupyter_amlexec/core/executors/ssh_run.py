"""Runs started detached on a host over SSH: what every SSH target (`remote`, `cluster`) shares.

The snapshot travels by delta into the host's blob cache (`push_snapshot`), the command starts in
its own session with its log and exit code in files on the host, and `DetachedRunHandle` follows it
from any process: state and log in one round trip per look, a dropped connection retried with
backoff as "connection lost to the host, retrying" (never a verdict), cancel ends the process
group, outputs/ come back as one tar through the safe extractor. Targets subclass the handle for
what is theirs (a Spark application's id and state, their `to_dict`).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..errors import TargetUnavailableError
from ..models import RunStatus
from ..outputs import collect_tar
from ..snapshot import Snapshot
from ..transport.blobsync import BlobSync, PushPlan
from ..transport.detached import DetachedProcess, ProcessState, follow, kill_group, poll, start_detached
from ..transport.launch import StaleCacheError, launch_and_follow
from ..transport.ssh import Sink, SshConnection, shared_pool
from ..transport.sshconfig import Endpoint
from .base import ControlLog, HandleStatus, LogChunk, LogCursor, offset_of
from .ssh_stream import LogStream

CHECK_VALID_SECONDS = 60.0  # a passed target check stands this long: runs then only see the link is up
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


START_TIMEOUT_SECONDS = 600.0  # a push and start over one command: as long as a push may take


def launch(
    conn: SshConnection,
    root: str,
    snapshot: Snapshot,
    run_id: str,
    argv: list[str],
    *,
    env: dict[str, str],
    log: ControlLog,
) -> tuple[DetachedProcess, LogStream | None]:
    """Send the snapshot to `<root>/runs/<run_id>/work`, start `argv` there detached, and stream its
    log: one command while the connection has a slot for a long one (`launch_and_follow`), else a
    push then a start (the handle then looks at the run, and streams once a slot is free)."""
    top = absolute(conn, root)
    work, state_dir = f"{top}/runs/{run_id}/work", f"{top}/runs/{run_id}/state"
    sync = BlobSync(conn, root)
    for _attempt in range(2):
        if not conn.long_commands.acquire(blocking=False):
            break
        plan = sync.plan(snapshot, f"runs/{run_id}/work")
        process, stream = _launch_streaming(sync, plan, argv, state_dir=state_dir, cwd=work, env=env)
        if process is not None:
            log(
                f"Sent the snapshot to {conn.endpoint.describe()} and started the run, in one command: "
                f"{plan.blobs_sent} new file(s), {plan.blob_bytes_sent} bytes; {plan.blobs_reused} already there."
            )
            return process, stream
        if not isinstance(stream.error, StaleCacheError):
            raise stream.error or TargetUnavailableError(
                f"The run did not start on {conn.endpoint.describe()}."
            )
        sync.forget()  # the host's cache changed behind this process's back: ask it this time
    push_snapshot(conn, root, snapshot, run_id, log)
    return start_detached(conn, argv, state_dir=state_dir, cwd=work, env=env), None


def _launch_streaming(
    sync: BlobSync, plan: PushPlan, argv: list[str], *, state_dir: str, cwd: str, env: dict[str, str]
) -> tuple[DetachedProcess | None, LogStream]:
    """One `launch_and_follow` on a stream's thread (it holds a long-command slot, released at its
    end); returns once the run started (its process) or the command ended first (None)."""
    started: list[DetachedProcess] = []
    settled = threading.Event()

    def on_started(process: DetachedProcess) -> None:
        started.append(process)
        settled.set()

    def follow_run(sink: Sink) -> ProcessState:
        try:
            return launch_and_follow(
                sync, plan, argv, state_dir=state_dir, cwd=cwd, env=env, on_started=on_started, sink=sink
            )
        finally:
            sync.conn.long_commands.release()
            settled.set()

    stream = LogStream(follow_run, 0, name="amlexec-ssh-launch").start()
    if not settled.wait(START_TIMEOUT_SECONDS):
        stream.close()
        raise TargetUnavailableError(
            f"Sending and starting the run on {sync.conn.endpoint.describe()} took over "
            f"{START_TIMEOUT_SECONDS:.0f} s."
        )
    if not started:
        stream.join()
    return (started[0] if started else None), stream


class DetachedRunHandle:
    """A detached process on the host; reads its log and state in one round trip per look."""

    def __init__(
        self,
        host: SshHost,
        process: DetachedProcess,
        root: str,
        run_id: str,
        project_root: Path | None,
        *,
        stream: LogStream | None = None,
    ) -> None:
        self.host = host
        self.process = process
        self.root = root
        self.run_id = run_id
        self.project_root = project_root
        self._stream = stream  # the log streaming over one long command (started on a first look)
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
        """State + log from `offset`: from the stream while it flows, else one round trip (and a
        stream started for what follows); None while the host cannot be reached (retried with backoff)."""
        state = self._streamed(offset)
        if state is None:
            state = self._ask(offset)
            if state is not None and state.exit_code is None and state.alive:
                self._stream_from(state.next_offset)
        if state is not None:
            self._seen(state.log)
        return state

    def _streamed(self, offset: int) -> ProcessState | None:
        stream = self._stream
        if stream is None:
            return None
        state = stream.read(offset)
        if state is None:  # it failed (a dropped link: asking tells how), or holds other bytes
            stream.close()
            self._stream = None
        return state

    def _stream_from(self, offset: int) -> None:
        """Follow the log from `offset` over one long command, if the connection has a slot for one."""
        conn = self.connection()
        if not conn.long_commands.acquire(blocking=False):
            return  # other runs stream on this connection: this one is looked at

        def run(sink: Sink) -> ProcessState:
            try:
                return follow(conn, self.process, offset, sink)
            finally:
                conn.long_commands.release()

        self._stream = LogStream(run, offset, name=f"amlexec-log-{self.run_id}").start()

    def _ask(self, offset: int) -> ProcessState | None:
        """One round trip; None while the host cannot be reached (retried with backoff)."""
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
            left = deadline - time.monotonic()
            if status.status.terminal or self._pending or left <= 0:
                return status
            stream = self._stream
            if stream is not None:
                stream.wait(left)  # woken by the next line or the end
            else:
                time.sleep(min(0.05, left))

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
        if self._stream is not None:
            self._stream.close()
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
