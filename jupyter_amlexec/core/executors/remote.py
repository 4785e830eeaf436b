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
from pathlib import Path

from ..errors import TargetUnavailableError
from ..models import EnvironmentSpec
from ..project import ComputeTarget
from ..snapshot import Snapshot
from ..transport.blobsync import DEFAULT_ROOT
from ..transport.detached import DetachedProcess
from ..transport.ssh import SshConnection, shared_pool
from ..transport.sshconfig import Endpoint, SshSettings, resolve_endpoint
from .base import ControlLog, PreparedEnv, RunSpec
from .commands import SparkOptions, build_command
from .ssh_run import CHECK_VALID_SECONDS, DetachedRunHandle, absolute, launch

log = logging.getLogger(__name__)


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
        self._checked_at = -CHECK_VALID_SECONDS

    @property
    def address(self) -> str:
        return self.settings.ssh.address

    def endpoint(self, project: Path | None = None) -> Endpoint:
        """The host as ~/.ssh/config and the project's aml_config/known_hosts describe it."""
        return resolve_endpoint(self.settings.ssh, project=project or self.project_root)

    def connection(self, project: Path | None = None) -> SshConnection:
        return shared_pool().get(self.endpoint(project))

    def check(self) -> None:
        """Reachable, host key known, authenticated, and the interpreter there answers. Once a check
        passed, runs in the next CHECK_VALID_SECONDS only see that the connection is alive (a run
        pays no extra round trip; a dead host still fails at its first command)."""
        if time.monotonic() - self._checked_at < CHECK_VALID_SECONDS:
            self.connection()
            return
        conn = self.connection()
        result = conn.run([self.settings.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        if result.exit_code != 0:
            raise TargetUnavailableError(
                f"Target '{self.target.name}': {self.settings.python!r} does not run on "
                f"{conn.endpoint.describe()} ({result.stderr.decode('utf-8', 'replace').strip()[-300:]}). "
                f"Set pythonLocation in aml_config/{self.target.name}.compute to the host's Python."
            )
        self._checked_at = time.monotonic()

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
        root = absolute(conn, self.settings.root)
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
        process, stream = launch(conn, self.settings.root, snapshot, run.run_id, argv, env=env, log=log)
        log(f"Started `{python} {run.entry_script}` on {where} (pid {process.pid}, detached from SSH).")
        return RemoteRunHandle(self, process, root, run.run_id, run.project_root, stream=stream)

    def attach(self, data: Mapping[str, object]) -> RemoteRunHandle:
        project = data.get("project_root")
        return RemoteRunHandle(
            self,
            DetachedProcess.from_dict(dict(data["process"])),  # type: ignore[call-overload]
            str(data["root"]),
            str(data["run_id"]),
            Path(str(project)) if project else None,
        )


class RemoteRunHandle(DetachedRunHandle):
    """A detached process on the host running the host's Python (the shared SSH handle, as is)."""

    def to_dict(self) -> dict[str, object]:
        return {"type": "remote", **self.base_dict()}
