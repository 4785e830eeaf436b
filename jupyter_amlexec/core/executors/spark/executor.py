"""The `cluster` target over SSH: spark-submit on the cluster's head node, detached from the
connection, followed like every SSH run (ssh_run.py), plus what a Spark application adds: its id
(read from spark-submit's log, stored with the handle, shown as the run's detail), its state on YARN,
and a cancel that kills the application itself, not only the process that submitted it.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Mapping
from pathlib import Path

from ...errors import TargetUnavailableError
from ...models import EnvironmentSpec, RunStatus
from ...project import ComputeTarget
from ...snapshot import Snapshot
from ...transport.detached import DetachedProcess, ProcessState, kill_group, start_detached
from ...transport.ssh import SshConnection, shared_pool
from ...transport.sshconfig import Endpoint, resolve_endpoint
from ..base import ControlLog, HandleStatus, PreparedEnv, RunSpec
from ..commands import Framework
from ..ssh_run import DetachedRunHandle, absolute, push_snapshot
from . import clustermode, yarn
from .headenv import ensure_environment, environment_hash
from .settings import ClusterSettings
from .submit import application_id, describe, last_error_line, submit_argv, wrapped

log = logging.getLogger(__name__)

APPLICATION_WAIT_SECONDS = 90.0  # start() waits this long at most for the application id
YARN_LOOK_SECONDS = 2.0  # the ResourceManager is asked at most this often while a run lives


class ClusterExecutor:
    """spark-submit on a head node over SSH; one per target and process."""

    needs_managed_environment = True  # the conda file's pip: section, in a venv on the head node

    def __init__(self, target: ComputeTarget, home: Path) -> None:
        self.target = target
        self.settings = ClusterSettings.of(target)
        self.home = home
        self.project_root: Path | None = None  # set by create_executor: aml_config/known_hosts
        self._rm_url: str | None = None

    @property
    def address(self) -> str:
        return self.settings.address

    def endpoint(self, project: Path | None = None) -> Endpoint:
        return resolve_endpoint(self.settings.ssh, project=project or self.project_root)

    def connection(self, project: Path | None = None) -> SshConnection:
        return shared_pool().get(self.endpoint(project))

    def resource_manager(self, conn: SshConnection) -> str:
        """The ResourceManager's web address, read once from the head node's yarn-site.xml."""
        if self._rm_url is None:
            self._rm_url = yarn.resource_manager_url(conn, self.settings.hadoop_conf_dir)
        return self._rm_url

    def check(self) -> None:
        """Reachable, authenticated, and spark-submit and the Python there answer."""
        conn = self.connection()
        s = self.settings
        script = f"command -v {shlex.quote(s.submit)} >/dev/null && {shlex.quote(s.python)} -c 'import sys'"
        result = conn.run(["sh", "-c", script])
        if result.exit_code != 0:
            raise TargetUnavailableError(
                f"Target '{self.target.name}': spark-submit {s.submit!r} or Python {s.python!r} does not "
                f"run on {conn.endpoint.describe()} ({result.stderr.decode('utf-8', 'replace').strip()[-300:]}). "
                f"Set sparkSubmitLocation and pythonLocation in aml_config/{self.target.name}.compute."
            )

    def environment_key(self, env: EnvironmentSpec) -> str:
        return f"cluster:{self.address}:{environment_hash(env, self.settings.python)}"

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """The conda file's venv on the head node, built once per environment hash."""
        conn = self.connection()
        return ensure_environment(
            conn,
            env,
            root=absolute(conn, self.settings.root),
            python=self.settings.python,
            pack=self.settings.is_yarn,
            log=log,
            force=force,
            build=build,
            target_name=self.target.name,
        )

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> ClusterRunHandle:
        conn = self.connection(run.project_root)
        s = self.settings
        work = push_snapshot(conn, s.root, snapshot, run.run_id, log)
        root = absolute(conn, s.root)
        python = run.prepared.python if run.prepared and run.prepared.python else s.python
        archive = run.prepared.details.get("archive") if run.prepared and s.is_yarn else None
        env = {**run.environment_variables, "PYTHONUNBUFFERED": "1"}
        if s.hadoop_conf_dir:
            env.update(HADOOP_CONF_DIR=s.hadoop_conf_dir, YARN_CONF_DIR=s.hadoop_conf_dir)
        cluster_mode = s.is_yarn and s.deploy_mode == "cluster" and run.framework is Framework.PYSPARK
        archives: list[str] = []
        if cluster_mode:
            run, archives, extra = clustermode.prepare(conn, run, work, f"{root}/runs/{run.run_id}")
        else:
            paths = ":".join(f"{work}/{p}" for p in (*run.python_path, "."))
            env["PYTHONPATH"] = paths
            extra = ["--conf", f"spark.executorEnv.PYTHONPATH={paths}"]
        env_archive = str(archive) if archive else None
        argv = submit_argv(s, run, python, env_archive=env_archive, archives=archives, extra=extra)
        state_dir = f"{root}/runs/{run.run_id}/state"
        command = wrapped(s, f"{state_dir}/output.log", argv)
        process = start_detached(conn, command, state_dir=state_dir, cwd=work, env=env)
        log(f"Started on {conn.endpoint.describe()} (pid {process.pid}, detached from SSH): {describe(argv)}")
        handle = ClusterRunHandle(
            self, process, root, run.run_id, run.project_root, cluster_mode=cluster_mode
        )
        if run.framework is Framework.PYSPARK:
            handle.await_application(APPLICATION_WAIT_SECONDS)
            if handle.app_id:
                log(f"Spark application {handle.app_id} ({s.master}, {s.deploy_mode} mode).")
        return handle

    def attach(self, data: Mapping[str, object]) -> ClusterRunHandle:
        project = data.get("project_root")
        handle = ClusterRunHandle(
            self,
            DetachedProcess.from_dict(dict(data["process"])),  # type: ignore[call-overload]
            str(data["root"]),
            str(data["run_id"]),
            Path(str(project)) if project else None,
            app_id=str(data["app_id"]) if data.get("app_id") else None,
            cluster_mode=bool(data.get("cluster_mode")),
        )
        if handle.app_id is None:
            handle.find_application()
        return handle


class ClusterRunHandle(DetachedRunHandle):
    """spark-submit running detached on the head node, and the Spark application it submitted."""

    executor: ClusterExecutor

    def __init__(
        self,
        executor: ClusterExecutor,
        process: DetachedProcess,
        root: str,
        run_id: str,
        project_root: Path | None,
        *,
        app_id: str | None = None,
        cluster_mode: bool = False,
    ) -> None:
        super().__init__(executor, process, root, run_id, project_root)
        self.executor = executor
        self.app_id = app_id
        self.cluster_mode = cluster_mode
        self._tail = b""  # the end of the last piece of log seen: an id may straddle two pieces
        self._error: str | None = None
        self._yarn_detail: str | None = None
        self._yarn_looked = 0.0

    def _seen(self, data: bytes) -> None:
        if not data:
            return
        window = self._tail + data
        if self.app_id is None:
            self.app_id = application_id(window)
        if b"Traceback (most recent call last)" in window or self._error is not None:
            self._error = last_error_line(window) or self._error
        self._tail = data[-200:]

    def await_application(self, timeout: float) -> None:
        """Until the application id is in the log, the submit ended, or `timeout` s passed."""
        deadline = time.monotonic() + timeout
        while self.app_id is None and time.monotonic() < deadline:
            if self.poll().status.terminal:
                return
            time.sleep(0.2)

    def find_application(self) -> None:
        """The application id from the whole log on the head node (a handle stored before it was known)."""
        grep = f"grep -o -m 1 -E 'application_[0-9]+_[0-9]+|app-[0-9]{{14}}-[0-9]{{4,}}' {shlex.quote(self.process.log_path)}"
        result = self.connection().run(["sh", "-c", grep])
        self.app_id = result.text().strip() or None

    def _status(self, state: ProcessState | None) -> HandleStatus:
        status = super()._status(state)
        if status.status is RunStatus.RUNNING and state is not None:
            return HandleStatus(RunStatus.RUNNING, detail=self._detail(), started_at=status.started_at)
        if status.status is RunStatus.FAILED and self._error and status.exit_code is not None:
            return HandleStatus(
                RunStatus.FAILED,
                status.exit_code,
                error=f"{self._error} (spark-submit exited with code {status.exit_code})",
                started_at=status.started_at,
                finished_at=status.finished_at,
            )
        return status

    def _detail(self) -> str | None:
        """The application's state for people: on YARN asked of the ResourceManager now and then."""
        if self.app_id is None:
            return "submitting to Spark"
        if not self.app_id.startswith("application_"):
            return f"Spark application {self.app_id} on {self.executor.settings.master}"
        now = time.monotonic()
        if now - self._yarn_looked >= YARN_LOOK_SECONDS:
            self._yarn_looked = now
            try:
                conn = self.connection()
                app = yarn.application(conn, self.executor.resource_manager(conn), self.app_id)
            except TargetUnavailableError as exc:
                log.info("YARN state of %s: %s", self.app_id, exc)
                app = None
            self._yarn_detail = app.detail if app else f"waiting for YARN ({self.app_id})"
        return self._yarn_detail

    def cancel(self) -> None:
        """Kill the application (YARN: through the ResourceManager), then the submitting process."""
        conn = self.connection()
        if self.app_id and self.app_id.startswith("application_"):
            try:
                yarn.kill(conn, self.executor.resource_manager(conn), self.app_id)
            finally:
                kill_group(conn, self.process, grace=3.0)
            return
        kill_group(conn, self.process, grace=3.0)  # client mode: the driver's end is the application's

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """Client mode: outputs/ of the driver's working directory; cluster mode: the folder the
        driver copied its outputs/ to on the head node (clustermode.py)."""
        if self.cluster_mode:
            return self.collect_folder(
                clustermode.outputs_dir(self.root, self.run_id), dest, max_file_bytes, log
            )
        return super().collect_outputs(dest, max_file_bytes, log)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "cluster",
            "transport": "ssh",
            **self.base_dict(),
            "app_id": self.app_id,
            "master": self.executor.settings.master,
            "cluster_mode": self.cluster_mode,
        }
