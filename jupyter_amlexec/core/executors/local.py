"""The local target: the user's own Python, on a private copy of the snapshot.

A run must outlive the kernel that started it (jupyter_client signals the kernel's whole process
group on interrupt and restart; see shared/notes/kernel-processes.md). So the run gets its own
session, writes its log to a file rather than a pipe, and a tiny /bin/sh wrapper records its exit
code next to the log, where any later process can read it.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, TargetUnavailableError
from ..models import EnvironmentSpec, RunStatus
from ..outputs import collect_directory
from ..processes import same_process_alive, start_ticks
from ..project import ComputeTarget
from ..snapshot import Snapshot
from .base import ControlLog, HandleStatus, LogChunk, LogCursor, PreparedEnv, RunSpec, read_log_chunk
from .commands import Framework, SparkOptions, build_command

log = logging.getLogger(__name__)

# argv: sh -c WRAPPER sh EXIT_FILE PROGRAM ARGS...  (arguments are never interpolated into code)
# the exit file is read only once the wrapper is gone, so a plain write (no temp file + mv, one
# process less per run) is complete when read; a wrapper killed mid-write leaves it empty: "no status"
WRAPPER = 'exit_file="$1"; shift; "$@"; code=$?; echo "$code" > "$exit_file"; exit "$code"'
CANCEL_GRACE_SECONDS = 3.0
_KERNEL_ONLY_VARIABLES = ("JPY_PARENT_PID", "JPY_SESSION_NAME", "JPY_API_TOKEN")


@dataclass(frozen=True)
class LocalSettings:
    """The keys of a `local` .compute file that this executor reads."""

    python_location: str | None = None  # pythonLocation; None: the interpreter jupyter_amlexec runs in
    native_shared_directory: str | None = None
    spark_submit: str = "spark-submit"  # sparkSubmitLocation, for Framework: PySpark
    spark_master: str = "local[*]"  # sparkMaster

    @classmethod
    def of(cls, target: ComputeTarget) -> LocalSettings:
        return cls(
            target.python_location,
            target.native_shared_directory,
            os.path.expanduser(target.spark_submit_location or "spark-submit"),
            target.spark_master or "local[*]",
        )


class LocalExecutor:
    """Runs on this machine with a user-managed interpreter (Workbench's `local`)."""

    needs_managed_environment = False  # the user's own Python, as in Workbench

    def __init__(self, target: ComputeTarget, home: Path) -> None:
        self.target = target
        self.settings = LocalSettings.of(target)
        self.home = home
        self.interpreter()  # a pythonLocation that does not exist is refused before a run is recorded

    def interpreter(self) -> str:
        if not self.settings.python_location:
            return sys.executable
        location = os.path.expanduser(self.settings.python_location)
        found = shutil.which(location)
        if found is None:
            raise ConfigError(
                f"the interpreter {location!r} of target '{self.target.name}' was not found. Set "
                f"pythonLocation to a Python on this machine, or remove it to use {sys.executable}.",
                file=Path("aml_config") / f"{self.target.name}.compute",
                key="pythonLocation",
            )
        return found

    def check(self) -> None:
        self.interpreter()

    def environment_key(self, env: EnvironmentSpec) -> str:
        return f"local:{self.interpreter()}"

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """Nothing to build: local environments are managed by the user, as in Workbench."""
        python = self.interpreter()
        return PreparedEnv(env_hash=f"local:{python}", built=False, python=python)

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> LocalRunHandle:
        private = run.run_dir / "executor"
        work = private / "work"
        if work.exists():
            shutil.rmtree(work)
        snapshot.materialize(work)
        python = run.prepared.python if run.prepared and run.prepared.python else self.interpreter()
        env = self._environment(run, work)
        raw_log, exit_file = private / "raw.log", private / "exit_code"
        spark = SparkOptions(
            master=self.settings.spark_master,
            submit=self.settings.spark_submit,
            arguments=run.spark_arguments,
            python=python,
        )
        if run.framework is Framework.PYSPARK and shutil.which(spark.submit) is None:
            raise TargetUnavailableError(
                f"Framework PySpark runs through spark-submit, and {spark.submit!r} was not found. Set "
                f"sparkSubmitLocation in aml_config/{self.target.name}.compute to your spark-submit (pip "
                f"install pyspark provides one), or set Framework: Python in the run configuration."
            )
        command = build_command(run.framework, python, run.entry_script, run.arguments, spark)
        argv = ["/bin/sh", "-c", WRAPPER, "sh", str(exit_file), *command]
        started_at = time.time()
        with open(raw_log, "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log(f"Started {python} {run.entry_script} (pid {process.pid}) in {work}.")
        return LocalRunHandle(
            pid=process.pid,
            start_ticks=start_ticks(process.pid),
            private_dir=private,
            process=process,
            started_at=started_at,
        )

    def _environment(self, run: RunSpec, work: Path) -> dict[str, str]:
        hidden = {*_KERNEL_ONLY_VARIABLES, *run.scrub_variables}  # our targets' passwords stay with us
        env = {k: v for k, v in os.environ.items() if k not in hidden}
        if env.get("MPLBACKEND", "").startswith("module://"):
            del env["MPLBACKEND"]  # the kernel's inline backend means nothing outside the kernel
        env.update(run.environment_variables)
        env["PYTHONUNBUFFERED"] = "1"
        paths = [str(work / p) for p in run.python_path]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        if self.settings.native_shared_directory:
            shared = Path(os.path.expanduser(self.settings.native_shared_directory)) / run.project_name
            shared.mkdir(parents=True, exist_ok=True)
            env["AZUREML_NATIVE_SHARE_DIRECTORY"] = str(shared) + os.sep
        return env

    def attach(self, data: Mapping[str, object]) -> LocalRunHandle:
        return LocalRunHandle.from_dict(data)


class LocalRunHandle:
    """A local run's process group, raw log and exit-code file."""

    def __init__(
        self,
        *,
        pid: int,
        start_ticks: int | None,
        private_dir: Path,
        process: subprocess.Popen[bytes] | None = None,
        started_at: float | None = None,
    ) -> None:
        self.pid = pid
        self.start_ticks = start_ticks
        self.private_dir = private_dir
        self.started_at = started_at
        self._process = process

    @property
    def raw_log(self) -> Path:
        return self.private_dir / "raw.log"

    @property
    def exit_file(self) -> Path:
        return self.private_dir / "exit_code"

    @property
    def cancel_file(self) -> Path:
        return self.private_dir / "canceled"

    @property
    def work_dir(self) -> Path:
        return self.private_dir / "work"

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "local",
            "pid": self.pid,
            "pgid": self.pid,
            "start_ticks": self.start_ticks,
            "private_dir": str(self.private_dir),
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LocalRunHandle:
        ticks, started = data.get("start_ticks"), data.get("started_at")
        return cls(
            pid=int(str(data["pid"])),
            start_ticks=int(str(ticks)) if ticks is not None else None,
            private_dir=Path(str(data["private_dir"])),
            started_at=float(str(started)) if started is not None else None,
        )

    # --- status -------------------------------------------------------------------------------

    def _alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return same_process_alive(self.pid, self.start_ticks)  # not a reused pid, not a zombie

    def _finished_at(self) -> float | None:
        """When the work ended: the wrapper writes the exit file right after the script exits."""
        try:
            return self.exit_file.stat().st_mtime
        except OSError:
            return None

    def poll(self) -> HandleStatus:
        if self._alive():
            return HandleStatus(RunStatus.RUNNING, started_at=self.started_at)
        code = self._exit_code()
        if self.cancel_file.exists():
            return self._ended(RunStatus.CANCELED, code, "canceled by the user")
        if code is None:
            return self._ended(
                RunStatus.FAILED, None, "the run's process ended without reporting an exit status (killed?)"
            )
        if code == 0:
            return self._ended(RunStatus.COMPLETED, 0, None)
        return self._ended(RunStatus.FAILED, code, _describe_exit(code))

    def _ended(self, status: RunStatus, code: int | None, error: str | None) -> HandleStatus:
        return HandleStatus(
            status, exit_code=code, error=error, started_at=self.started_at, finished_at=self._finished_at()
        )

    def _exit_code(self) -> int | None:
        try:
            return int(self.exit_file.read_text().strip())
        except (OSError, ValueError):
            if (
                self._process is not None
                and self._process.returncode is not None
                and self._process.returncode >= 0
            ):
                return None if self._process.returncode > 128 else self._process.returncode
            return None

    def wait(self, timeout: float) -> HandleStatus:
        deadline = time.monotonic() + timeout
        while self._alive() and (left := deadline - time.monotonic()) > 0:
            _sleep_until_exit(self.pid, left)
        return self.poll()

    def logs(self, cursor: LogCursor) -> LogChunk:
        return read_log_chunk(self.raw_log, cursor)

    # --- control ------------------------------------------------------------------------------

    def cancel(self) -> None:
        if not self._alive():
            return
        self.cancel_file.write_text("canceled\n")
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while _group_exists(self.pid) and time.monotonic() < deadline:
            if self._process is not None:
                self._process.poll()
            time.sleep(0.05)
        _signal_group(self.pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait()

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """The work dir's outputs/ (deleted next) into `dest`, under core/outputs.py's rules: nothing
        outside it is moved, deleted or read through a link."""
        return collect_directory(self.work_dir / "outputs", dest, max_file_bytes, log)

    def cleanup(self) -> None:
        """The work dir, and the raw log: it holds the script's output unredacted, and the runner
        has the whole (redacted) log in the history by now."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.raw_log.unlink(missing_ok=True)


def _sleep_until_exit(pid: int, timeout: float) -> None:
    """Return when the process ends or `timeout` passes. A pidfd wakes at the exit itself (Linux 5.3+),
    for a child and for a run re-attached from another kernel alike; polling would add up to its
    interval to every run's duration."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # an older kernel, or the process is already gone
        time.sleep(min(timeout, 0.02))
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe_exit(code: int) -> str:
    if code > 128:
        try:
            return f"the script was killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return f"the script exited with code {code}"
