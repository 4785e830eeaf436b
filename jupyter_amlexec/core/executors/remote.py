"""The `remote` target: a user-managed Python on another machine, reached over SSH (Workbench's
`remote`). No Docker and no install of ours on the host: the snapshot (which carries the in-run
API) travels by delta into a blob cache under the SSH user's home, the run starts detached from the
connection (its own session; log and exit code in files on the host), and any process re-attaches
to it from the handle. A dropped connection is "connection lost, retrying", never a verdict: the
work goes on over there and the run is followed to its real end when the host answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import TargetUnavailableError
from ..models import EnvironmentSpec, RunStatus
from ..outputs import collect_tar
from ..project import ComputeTarget
from ..snapshot import Snapshot
from ..transport.blobsync import DEFAULT_ROOT, BlobSync
from ..transport.detached import DetachedProcess, ProcessState, kill_group, poll, start_detached
from ..transport.ssh import SshConnection, shared_pool
from ..transport.sshconfig import Endpoint, SshSettings, resolve_endpoint
from .base import ControlLog, HandleStatus, LogChunk, LogCursor, PreparedEnv, RunSpec, offset_of
from .commands import SparkOptions, build_command

log = logging.getLogger(__name__)

GIVE_UP_AFTER_SECONDS = 600.0  # a host unreachable this long ends the run Failed (README "Remote")
_RETRY_FIRST, _RETRY_MAX = 0.5, 15.0


@dataclass(frozen=True)
class RemoteSettings:
    """The keys of a `remote` .compute file: where the host is, which Python, where our files go."""

    ssh: SshSettings
    python: str = "python3"  # pythonLocation: the host's interpreter (user-managed)
    root: str = DEFAULT_ROOT  # amlexecRoot: our blob cache and run folders on the host

    @classmethod
    def of(cls, target: ComputeTarget) -> RemoteSettings:
        root = target.extra.get("amlexecRoot")
        return cls(
            SshSettings.from_target(target),
            target.python_location or "python3",
            str(root) if root else DEFAULT_ROOT,
        )


class RemoteExecutor:
    """Runs on a host's own Python over SSH; one per target and process."""

    needs_managed_environment = False  # user-managed, as in Workbench

    def __init__(self, target: ComputeTarget, home: Path) -> None:
        self.target = target
        self.settings = RemoteSettings.of(target)
        self.home = home
        self.project_root: Path | None = None  # set by create_executor: aml_config/known_hosts

    def endpoint(self, project: Path | None = None) -> Endpoint:
        """The host as ~/.ssh/config and the project's aml_config/known_hosts describe it."""
        return resolve_endpoint(self.settings.ssh, project=project or self.project_root)

    def connection(self, project: Path | None = None) -> SshConnection:
        return shared_pool().get(self.endpoint(project))

    def check(self) -> None:
        """Reachable, host key known, authenticated, and the interpreter there answers."""
        conn = self.connection()
        result = conn.run([self.settings.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        if result.exit_code != 0:
            raise TargetUnavailableError(
                f"Target '{self.target.name}': {self.settings.python!r} does not run on "
                f"{conn.endpoint.describe()} ({result.stderr.decode('utf-8', 'replace').strip()[-300:]}). "
                f"Set pythonLocation in aml_config/{self.target.name}.compute to the host's Python."
            )

    def environment_key(self, env: EnvironmentSpec) -> str:
        return f"remote:{self.settings.ssh.address}:{self.settings.python}"

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """Nothing to build: the host's Python is managed by its user, as in Workbench."""
        return PreparedEnv(env_hash=self.environment_key(env), python=self.settings.python)

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> RemoteRunHandle:
        conn = self.connection(run.project_root)
        where = conn.endpoint.describe()
        stats = BlobSync(conn, self.settings.root).push(snapshot, f"runs/{run.run_id}/work")
        log(
            f"Sent the snapshot to {where}: {stats.blobs_sent} new file(s), {stats.blob_bytes_sent} bytes; "
            f"{stats.blobs_reused} already there ({stats.bytes_sent} bytes in {stats.seconds:.2f} s)."
        )
        root = _absolute(conn, self.settings.root)
        work = f"{root}/runs/{run.run_id}/work"
        python = run.prepared.python if run.prepared and run.prepared.python else self.settings.python
        env = {
            **run.environment_variables,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": ":".join(f"{work}/{p}" for p in run.python_path),
        }
        spark = SparkOptions(
            master=self.target.spark_master or "local[*]",
            submit=self.target.spark_submit_location or "spark-submit",
            arguments=run.spark_arguments,
            python=python,
        )
        argv = build_command(run.framework, python, run.entry_script, run.arguments, spark)
        process = start_detached(conn, argv, state_dir=f"{root}/runs/{run.run_id}/state", cwd=work, env=env)
        log(f"Started `{python} {run.entry_script}` on {where} (pid {process.pid}, detached from SSH).")
        return RemoteRunHandle(self, process, root, run.run_id, run.project_root)

    def attach(self, data: Mapping[str, object]) -> RemoteRunHandle:
        project = data.get("project_root")
        return RemoteRunHandle(
            self,
            DetachedProcess.from_dict(dict(data["process"])),  # type: ignore[call-overload]
            str(data["root"]),
            str(data["run_id"]),
            Path(str(project)) if project else None,
        )


class RemoteRunHandle:
    """A detached process on the host; reads its log and state in one round trip per look."""

    def __init__(
        self,
        executor: RemoteExecutor,
        process: DetachedProcess,
        root: str,
        run_id: str,
        project_root: Path | None,
    ) -> None:
        self.executor = executor
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

    # --- looking at the host ------------------------------------------------------------------

    def _look(self, offset: int) -> ProcessState | None:
        """State + log from `offset`; None while the host cannot be reached (retried with backoff)."""
        now = time.monotonic()
        if self._outage_since is not None and now < self._next_try:
            return None
        try:
            state = poll(self.executor.connection(self.project_root), self.process, offset)
        except TargetUnavailableError as exc:  # a dropped link, or a look cut short by one
            shared_pool().discard(self.executor.endpoint(self.project_root))
            if self._outage_since is None:
                self._outage_since, self._delay = now, _RETRY_FIRST
            self._next_try, self._delay = now + self._delay, min(self._delay * 2, _RETRY_MAX)
            self._lost = str(exc)
            return None
        self._outage_since = None
        return state

    def poll(self) -> HandleStatus:
        """One round trip: the state, and any new log kept for the next `logs` call."""
        state = self._look(self._pending_from + len(self._pending))
        if state is not None:
            self._pending += state.log
        return self._status(state)

    def _status(self, state: ProcessState | None) -> HandleStatus:
        started = _epoch(self.process.started_at)
        if state is None:
            down = time.monotonic() - (self._outage_since or time.monotonic())
            if down > GIVE_UP_AFTER_SECONDS:
                return HandleStatus(
                    RunStatus.FAILED,
                    error=f"{self.executor.settings.ssh.address} was unreachable for {down:.0f} s "
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
        ended = _epoch(state.ended_at) if state.ended_at else None
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
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

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
        kill_group(self.executor.connection(self.project_root), self.process, grace=3.0)

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """outputs/ of the run's folder on the host, as one tar stream, through the safe extractor."""
        spool = dest.parent / "executor" / "outputs.tar"
        spool.parent.mkdir(parents=True, exist_ok=True)
        conn = self.executor.connection(self.project_root)
        try:
            with open(spool, "wb") as out:
                got = BlobSync(conn, self.root).pull_folder(
                    f"{self.root}/runs/{self.run_id}/work/outputs", out
                )
            if got is None:
                return []
            with open(spool, "rb") as archive:
                return collect_tar(archive, ".", dest, max_file_bytes, log)
        finally:
            spool.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """The run's folder on the host goes; the blob cache stays for the next submit."""
        conn = self.executor.connection(self.project_root)
        conn.run(["rm", "-rf", f"{self.root}/runs/{self.run_id}"])

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "remote",
            "process": self.process.to_dict(),
            "root": self.root,
            "run_id": self.run_id,
            "host": self.executor.settings.ssh.address,
            "project_root": str(self.project_root) if self.project_root else None,
        }


def _absolute(conn: SshConnection, root: str) -> str:
    """The root as an absolute path of the host (`~` is the SSH user's home there)."""
    if root == "~" or root.startswith("~/"):
        return conn.home.rstrip("/") + root[1:]
    return root


def _epoch(stamp: str | None) -> float | None:
    """An ISO-8601 UTC stamp of the host's clock as epoch seconds."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
