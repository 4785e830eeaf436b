"""The executor contract: what every compute target (local, docker, remote docker, spark) provides.

The runner drives an Executor through prepare -> start, then follows the RunHandle it got back:
`wait`/`poll` for status, `logs(since)` for the raw byte stream (metric tags included; the runner
strips and stores them), `collect_outputs` at the end. `to_dict` must hold enough to re-attach to
the same work from another process (a new kernel, the CLI) with `Executor.attach(data)`.
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

ControlLog = Callable[[str], None]
"""Receives our own progress text (environment build output, container ids, ...)."""


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
    framework: str  # "Python" | "PySpark"
    target: ComputeTarget
    run_configuration: RunConfiguration
    run_dir: Path  # history's runs/<run_id>/; executors keep private files in run_dir/"executor"
    prepared: PreparedEnv | None = None
    max_output_file_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class HandleStatus:
    """What a handle knows about its work. Monotonic: once terminal it never changes."""

    status: RunStatus
    exit_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class LogChunk:
    """Raw bytes of the run's combined stdout/stderr from offset `since` up to `next_offset`."""

    data: bytes
    next_offset: int


def read_log_chunk(path: Path, since: int, limit: int = 4 * 1024 * 1024) -> LogChunk:
    """The bytes of a raw log file from offset `since` (executors that spool their log to a file)."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read(limit)
    except FileNotFoundError:
        data = b""
    return LogChunk(data, since + len(data))


@runtime_checkable
class RunHandle(Protocol):
    def poll(self) -> HandleStatus: ...
    def wait(self, timeout: float) -> HandleStatus: ...  # block up to timeout; return current status
    def logs(self, since: int) -> LogChunk: ...
    def cancel(self) -> None: ...  # idempotent; really stops the work
    def collect_outputs(
        self, dest: Path, max_file_bytes: int
    ) -> list[str]: ...  # returns relative paths copied; skipped ones logged
    def cleanup(self) -> None: ...  # remove containers/temp dirs after collection
    def to_dict(self) -> dict[str, object]: ...


@runtime_checkable
class Executor(Protocol):
    target: ComputeTarget

    def check(self) -> None: ...  # TargetUnavailableError with the fix
    def environment_key(self, env: EnvironmentSpec) -> str: ...  # cache key of the prepared environment
    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv: ...
    # build=False (PrepareEnvironment: false): use a prepared environment only; a missing one is an
    # EnvironmentBuildError that says how to prepare it. force=True rebuilds even a cached one.
    def start(self, run: RunSpec, snapshot: Snapshot) -> RunHandle: ...
    def attach(self, data: Mapping[str, object]) -> RunHandle: ...
