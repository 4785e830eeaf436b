"""The executor contract (v2): what every compute target (local, docker, remote, spark) provides.

The runner drives an Executor through `check` -> `prepare` -> `start`, then follows the RunHandle it
got back: `wait`/`poll` for status, `logs(cursor)` for the raw byte stream (metric tags included; the
runner strips and stores them), `collect_outputs` at the end, `cleanup` last. `to_dict` holds enough
to re-attach to the same work from another process (a new kernel, the CLI, the per-process guardian)
with `Executor.attach(data)`.

Remote targets shaped v2: nothing here assumes the work is on this machine. A log position is an
opaque cursor string that only its executor understands (a byte offset for local/Docker, a remote
file offset for SSH, a line number for Livy); progress text (uploads, builds, submits) goes through
the control-log callback; a handle's status carries a human `detail` ("connection lost, retrying")
and the real end time of the work, never the time somebody noticed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..models import EnvironmentSpec, RunStatus

if TYPE_CHECKING:
    from ..project import ComputeTarget, RunConfiguration
    from ..snapshot import Snapshot
    from .commands import Framework

ControlLog = Callable[[str], None]
"""Receives our own progress text (environment build output, uploads, container ids, ...)."""

LogCursor = str
"""Where a log read starts; opaque to everyone but the executor that made it. "" is the start."""

START = ""


@dataclass(frozen=True)
class PreparedEnv:
    """An environment ready to run in. `built` says whether this prepare call built anything."""

    env_hash: str
    built: bool = False
    image: str | None = None  # docker image tag/id to run in
    python: str | None = None  # interpreter inside the environment
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """Everything an executor needs to start one run; built by the runner, never by executors."""

    run_id: str
    experiment: str
    project_name: str
    project_root: Path
    entry_script: str  # posix path inside the snapshot, e.g. "train.py"
    arguments: tuple[str, ...]
    environment_variables: Mapping[str, str]  # final: runconfig + --env + AMLEXEC_* (secrets resolved)
    python_path: tuple[str, ...]  # snapshot-relative dirs to prepend to PYTHONPATH
    framework: Framework
    target: ComputeTarget
    run_configuration: RunConfiguration
    run_dir: Path  # history's runs/<run_id>/; executors keep private files in run_dir/"executor"
    prepared: PreparedEnv | None = None
    max_output_file_bytes: int = 512 * 1024 * 1024
    spark_arguments: tuple[str, ...] = ()  # spark-submit options from spark_dependencies.yml
    secrets: tuple[str, ...] = ()  # values never to show in logs or events (redacted by the runner)
    scrub_variables: tuple[str, ...] = ()  # our targets' password variables: never inherited by a run


@dataclass(frozen=True)
class HandleStatus:
    """What a handle knows about its work. Monotonic: once terminal it never changes.

    `detail` is for people ("waiting for YARN", "connection lost, retrying"). `started_at` and
    `finished_at` are epoch seconds taken from the work itself (process exit, container
    `FinishedAt`, a Spark application's finish time); None where the target does not say.
    """

    status: RunStatus
    exit_code: int | None = None
    error: str | None = None
    detail: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class LogChunk:
    """Raw bytes of the run's combined stdout/stderr from a cursor, and the cursor after them."""

    data: bytes
    cursor: LogCursor


def offset_of(cursor: LogCursor) -> int:
    """A byte-offset cursor as an int ("" is 0): for executors whose log is one growing byte stream."""
    return int(cursor) if cursor else 0


def read_log_chunk(path: Path, cursor: LogCursor, limit: int = 4 * 1024 * 1024) -> LogChunk:
    """The bytes of a raw log file from a byte-offset cursor (executors that spool their log to a file)."""
    since = offset_of(cursor)
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read(limit)
    except FileNotFoundError:
        data = b""
    return LogChunk(data, str(since + len(data)))


@runtime_checkable
class RunHandle(Protocol):
    """One started run on its target."""

    def poll(self) -> HandleStatus:
        """The work's status now, without blocking on it."""
        ...

    def wait(self, timeout: float) -> HandleStatus:
        """Block up to `timeout` seconds, returning early when the work ends; the status then."""
        ...

    def logs(self, cursor: LogCursor) -> LogChunk:
        """Raw log bytes from `cursor` (empty data: nothing new yet)."""
        ...

    def cancel(self) -> None:
        """Stop the work on its target (idempotent; a finished run is left as it is)."""
        ...

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """Bring what the run wrote to outputs/ into `dest`; returns the relative names collected.
        Skipped files (too large, links out of the run) are named through `log`."""
        ...

    def cleanup(self) -> None:
        """Remove containers, temp folders and remote files of the run after collection."""
        ...

    def to_dict(self) -> dict[str, object]:
        """JSON-able data from which `Executor.attach` rebuilds this handle in another process."""
        ...


@runtime_checkable
class Executor(Protocol):
    """A target type's way of running work. One instance per target and process, reused."""

    target: ComputeTarget
    settings: object
    """The executor's own typed view of its target's keys, validated when the executor is made
    (Docker's image, limits and volumes; SSH's host, port, key; Spark's master and deploy mode)."""
    needs_managed_environment: bool
    """True when the executor builds the conda file's environment (Docker, clusters); False for
    user-managed targets (local, remote Python, or `userManagedEnvironment: true`)."""

    def check(self) -> None:
        """TargetUnavailableError with the fix when the target cannot take runs now."""
        ...

    def environment_key(self, env: EnvironmentSpec) -> str:
        """Cache key of the prepared environment (what an unchanged prepare is recognised by)."""
        ...

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """Realise `env` (cached by its key). build=False (PrepareEnvironment: false): use a prepared
        environment only, a missing one is an EnvironmentBuildError saying how to prepare it;
        force=True rebuilds even a cached one."""
        ...

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> RunHandle:
        """Send the snapshot and start the work; uploads and submits are reported through `log`."""
        ...

    def attach(self, data: Mapping[str, object]) -> RunHandle:
        """The handle of work started earlier, from `RunHandle.to_dict()` (possibly another process)."""
        ...
