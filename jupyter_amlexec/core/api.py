"""`Session`: the one entry point adapters use — a project, its history, and the runs it submits.

A submit validates everything it can before anything is recorded (run configuration, target,
script, snapshot), so bad input raises at once and leaves no half-made run; what can only fail on
the target (engine down, build error) ends as a Failed run with the reason in its control log.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, SnapshotError
from .executors import create_executor
from .executors.base import Executor, PreparedEnv, RunSpec
from .executors.commands import Framework, check_exec_size
from .guardian import LINK
from .history import History, RunRecord
from .models import EnvironmentSpec, RunStatus
from .paths import amlexec_home
from .project import ComputeTarget, Project, RunConfiguration, TargetType
from .run import Run
from .runner import FOLLOWERS, RunFollower, StartRequest
from .secrets import REDACTED, redact_environment, secret_values, secret_variables
from .snapshot import Snapshot, SnapshotStore
from .tracking import CELL_SCRIPT, INRUN_PYTHONPATH, inrun_files

if TYPE_CHECKING:  # compare and environment are imported when used: a local submit needs neither
    from .compare import RunComparison

log = logging.getLogger(__name__)

CELL_SCRIPT_NAME = "<cell>"


@dataclass(frozen=True)
class Submission:
    """One run to record and start, as the user asked for it (a submit or a rerun)."""

    rc: RunConfiguration
    compute: ComputeTarget
    snapshot: Snapshot
    entry: str
    script_name: str
    arguments: tuple[str, ...]
    experiment: str
    env: Mapping[str, str]
    secret_names: tuple[str, ...] = ()
    description: str | None = None
    force_prepare: bool = False
    detach: bool = False


def _rerun_environment(
    record: RunRecord, rc: RunConfiguration, given: Mapping[str, str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """A recorded run's --env values for a rerun: redacted ones read again from this environment."""
    listed = record.properties.get("SecretEnv")
    secret_names = tuple(str(n) for n in listed) if isinstance(listed, list) else ()
    env: dict[str, str] = {}
    missing = []
    for name, value in record.environment.items():
        if name in rc.environment_variables or name in given:
            continue
        if value != REDACTED:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
        else:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"Run {record.run_id} had secret values for {', '.join(missing)}, which are not stored. Set "
            f"{'them' if len(missing) > 1 else 'it'} in this environment, or pass env={{...}} to rerun()."
        )
    return {**env, **given}, secret_names


def parse_env_assignments(pairs: Sequence[str] | None) -> dict[str, str]:
    """`--env NAME=VALUE` arguments as a mapping; ConfigError naming a malformed one."""
    env: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--env takes NAME=VALUE, got {pair!r}.")
        if "\x00" in pair:
            raise ConfigError(f"--env {pair!r}: a NUL character cannot be passed to a process; remove it.")
        env[name] = value
    return env


class Session:
    """A project + a history; submits runs and keeps one follower thread per run it follows."""

    def __init__(
        self,
        project: Project,
        history: History,
        snapshots: SnapshotStore,
        *,
        cwd: Path | None = None,
    ) -> None:
        self.project = project
        self.history = history
        self.snapshots = snapshots
        self.cwd = (cwd or project.root).resolve()
        self.default_run_configuration: str | None = None
        self._executors: dict[str, Executor] = {}
        self._lock = threading.RLock()

    @classmethod
    def open(cls, cwd: Path | None = None, home: Path | None = None) -> Session:
        cwd = Path(cwd or Path.cwd()).resolve()
        home = Path(home) if home is not None else amlexec_home()
        history = History(home)
        return cls(Project.find(cwd), history, SnapshotStore(home), cwd=cwd)

    # --- submitting --------------------------------------------------------------------------------

    def submit(
        self,
        *,
        script: str | None = None,
        cell: str | None = None,
        arguments: Sequence[str] = (),
        run_configuration: str | None = None,
        target: str | None = None,
        experiment: str | None = None,
        env: Mapping[str, str] | None = None,
        secret_env: Sequence[str] = (),
        description: str | None = None,
        force_prepare: bool = False,
        detach: bool = False,
    ) -> Run:
        """Snapshot the project and start a run; returns at once with the run Queued.

        secret_env names variables of this process's environment passed to the run and never
        stored (the record shows ***; a rerun reads them again). detach=True hands the run to this
        process's guardian at once (the CLI's `-a`): it goes on and is recorded to its end after
        this process exits. Otherwise this process follows it, and the guardian takes over only if
        this process dies first."""
        if script is not None and cell is not None:
            raise ConfigError("Give a script or a cell, not both.")
        rc = self.resolve_run_configuration(run_configuration, target)
        compute = self.project.target(rc.target)
        entry, args = self._entry_and_arguments(rc, script, cell, arguments)
        extra = inrun_files()
        if cell is not None:
            extra[CELL_SCRIPT] = cell.encode("utf-8")
        snapshot = self.snapshots.take(
            self.project.root,
            extra_files=extra,
            entry_script=entry,
            max_bytes=int(rc.max_snapshot_mb * 1024 * 1024),
        )
        submission = Submission(
            rc,
            compute,
            snapshot,
            entry=entry,
            script_name=CELL_SCRIPT_NAME if cell is not None else entry,
            arguments=args,
            experiment=experiment or self.project.name,
            env={**(env or {}), **secret_variables(secret_env)},
            secret_names=tuple(secret_env),
            description=description,
            force_prepare=force_prepare,
            detach=detach,
        )
        return self._start(submission)

    def rerun(self, run_id: str, **overrides: Any) -> Run:
        """Run a recorded run's snapshot again; overrides: arguments, target, run_configuration, env.

        Redacted values are read again from this process's environment (a `secret_env` variable, or
        one of the same name); a redacted value that cannot be found is a ConfigError naming it."""
        record = self.history.get(run_id)
        if record.snapshot_id is None:
            raise SnapshotError(f"Run {run_id} has no snapshot to run again.")
        snapshot = self.snapshots.get(record.snapshot_id)
        rc = self.resolve_run_configuration(
            overrides.pop("run_configuration", None) or record.run_configuration,
            overrides.pop("target", None) or record.target,
        )
        given = dict(overrides.pop("env", {}))
        env, secret_names = _rerun_environment(record, rc, given)
        submission = Submission(
            rc,
            self.project.target(rc.target),
            snapshot,
            entry=snapshot.entry_script or record.script_name,
            script_name=record.script_name,
            arguments=tuple(overrides.pop("arguments", record.arguments)),
            experiment=overrides.pop("experiment", record.experiment),
            env=env,
            secret_names=secret_names,
            description=f"rerun of {run_id}",
        )
        if overrides:
            raise ConfigError(f"rerun() does not take {', '.join(sorted(overrides))}.")
        return self._start(submission)

    def _start(self, sub: Submission) -> Run:
        executor = self._executor(sub.compute)  # an unknown type or a bad setting: refused, nothing recorded
        environment = self._environment(sub.rc, sub.compute, executor)
        user_env = {**sub.rc.environment_variables, **sub.env}
        check_exec_size(sub.arguments, user_env)
        record = self.history.create_run(
            project=self.project.name,
            project_path=str(self.project.root),
            experiment=sub.experiment,
            target=sub.compute.name,
            target_type=sub.compute.type.value,
            run_configuration=sub.rc.name,
            script_name=sub.script_name,
            arguments=tuple(sub.arguments),
            environment=redact_environment(user_env, sub.secret_names),
            snapshot_id=sub.snapshot.id,
            description=sub.description,
            properties={
                "SnapshotId": sub.snapshot.id,
                "EntryScript": sub.entry,
                "Framework": sub.rc.framework,
                "MaxOutputFileBytes": int(sub.rc.max_output_file_mb * 1024 * 1024),
                "SecretEnv": list(sub.secret_names),
            },
        )
        for path, reason in sub.snapshot.skipped:
            self.history.append_log(
                record.run_id, f"Not in the snapshot: {path} ({reason}).\n", source="control"
            )
        spec = self._spec(sub, record.run_id, user_env)
        request = StartRequest(spec, sub.snapshot, environment, force_prepare=sub.force_prepare)
        if sub.detach:
            return self._hand_over(request)
        self.history.claim_follower(record.run_id, os.getpid())
        home, run_id = self.history.home, record.run_id
        follower = FOLLOWERS.add(
            RunFollower(
                self.history,
                executor,
                run_id,
                start=request,
                on_recorded_end=lambda: LINK.release(home, run_id),
            )
        )
        try:  # the guardian knows of the run before it starts, and forgets it once its end is recorded here
            LINK.watch(home, run_id, request)
        finally:
            follower.begin()
        return Run(self, run_id)

    def _spec(self, sub: Submission, run_id: str, user_env: Mapping[str, str]) -> RunSpec:
        run_env = {
            **user_env,
            "AMLEXEC_RUN_ID": run_id,
            "AMLEXEC_EXPERIMENT": sub.experiment,
            "AMLEXEC_PROJECT": self.project.name,
        }
        cell = sub.script_name == CELL_SCRIPT_NAME
        return RunSpec(
            run_id=run_id,
            experiment=sub.experiment,
            project_name=self.project.name,
            project_root=self.project.root,
            entry_script=sub.entry,
            arguments=tuple(str(a) for a in sub.arguments),
            environment_variables=run_env,
            python_path=(INRUN_PYTHONPATH, ".") if cell else (INRUN_PYTHONPATH,),
            framework=Framework.of(sub.rc.framework),
            target=sub.compute,
            run_configuration=sub.rc,
            run_dir=self.history.run_dir(run_id),
            max_output_file_bytes=int(sub.rc.max_output_file_mb * 1024 * 1024),
            secrets=secret_values(user_env, sub.secret_names),
            scrub_variables=self._target_secret_variables(),
            spark_arguments=self._spark_arguments(sub.rc),
        )

    def _spark_arguments(self, rc: RunConfiguration) -> tuple[str, ...]:
        """spark-submit options from the run's spark_dependencies.yml (PySpark runs only)."""
        if Framework.of(rc.framework) is not Framework.PYSPARK:
            return ()
        spark = self.project.spark_dependencies(rc)
        if not spark:
            return ()
        from .environment import normalised_spark, spark_submit_args

        path = self.project.dependency_path(rc.spark_dependencies_file)
        return tuple(spark_submit_args(normalised_spark(spark, path=path)))

    def _target_secret_variables(self) -> tuple[str, ...]:
        """Variables that hold our targets' passwords: never inherited by a run's environment."""
        names = set()
        for target in self.project.targets():
            if target.password_env:
                names.add(target.password_env)
        return tuple(sorted(names))

    def _hand_over(self, request: StartRequest) -> Run:
        """Give a new run to the guardian; the lease names it at once, so no reader takes the run
        for orphaned in the moment before the guardian claims it."""
        run_id = request.spec.run_id
        self.history.claim_follower(run_id, LINK.start(self.history.home))
        LINK.hand_over(self.history.home, run_id, request)
        return Run(self, run_id)

    # --- configuration -----------------------------------------------------------------------------

    def resolve_run_configuration(self, name: str | None, target: str | None = None) -> RunConfiguration:
        """The run configuration to use: the named one, else the session default, else `local`;
        `target` overrides its Target (Workbench's `-t`); a bare target name picks its own runconfig."""
        if name is None and target is not None:
            known = {rc.name for rc in self.project.run_configurations()}
            name = target if target in known else (self.default_run_configuration or "local")
        rc = self.project.run_configuration(name or self.default_run_configuration or "local")
        if target is not None and target != rc.target:
            self.project.target(target)  # TargetNotFoundError lists the known ones
            rc = replace(rc, target=target)
        return rc

    def _entry_and_arguments(
        self,
        rc: RunConfiguration,
        script: str | None,
        cell: str | None,
        arguments: Sequence[str],
    ) -> tuple[str, tuple[str, ...]]:
        if cell is not None:
            return CELL_SCRIPT, tuple(str(a) for a in arguments)
        if script is None:
            vector = list(rc.argument_vector)
            if not vector or vector[0] == "$file":
                raise ConfigError(
                    f"Run configuration '{rc.name}' has ArgumentVector {vector or '[]'}: name the script to run.",
                    key="ArgumentVector",
                ).with_hint("submit", rc.name, "train.py")
            script, arguments = vector[0], tuple(vector[1:]) + tuple(arguments)
        entry = self._project_relative(script)
        return entry, tuple(entry if str(a) == "$file" else str(a) for a in arguments)

    def _project_relative(self, script: str) -> str:
        """A script path as given by the user (relative to the cwd or the project) -> project-relative."""
        root = self.project.root.resolve()
        for base in (self.cwd, root):
            candidate = (base / script).resolve()
            if candidate.is_file():
                try:
                    return candidate.relative_to(root).as_posix()
                except ValueError:
                    raise SnapshotError(
                        f"Script {candidate} is outside the project {root}; only project files are "
                        f"snapshotted. Move it into the project folder."
                    ) from None
        raise SnapshotError(f"No script '{script}' in {self.cwd} or the project folder {root}.")

    def _environment(
        self, rc: RunConfiguration, compute: ComputeTarget, executor: Executor
    ) -> EnvironmentSpec:
        """Managed targets build the conda file; local and remote Python are user-managed (Workbench)."""
        if executor.needs_managed_environment:
            from .environment import load_environment

            return load_environment(self.project, rc)
        return EnvironmentSpec(conda=None)

    def _executor(self, compute: ComputeTarget) -> Executor:
        key = repr(compute)
        with self._lock:
            executor = self._executors.get(key)
            if executor is None:
                executor = create_executor(compute, self.history.home, self.project.root)
                self._executors[key] = executor
            return executor

    def check(self, target: str) -> None:
        """Whether a target can take runs now: TargetUnavailableError (or ConfigError) with the fix."""
        self._executor(self.project.target(target)).check()

    def prepare(
        self,
        run_configuration: str | None = None,
        *,
        target: str | None = None,
        force: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> PreparedEnv:
        """Build (or find cached) the environment of a run configuration ahead of the first run."""
        rc = self.resolve_run_configuration(run_configuration, target)
        compute = self.project.target(rc.target)
        executor = self._executor(compute)
        executor.check()
        return executor.prepare(
            self._environment(rc, compute, executor), log or (lambda _text: None), force=force
        )

    # --- runs --------------------------------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        """A handle on a recorded run; re-attaches a follower when it is live and nobody follows it."""
        self.history.get(run_id)  # RunNotFoundError
        self.follower(run_id)
        return Run(self, run_id)

    def last_run(self) -> Run:
        return self.run(self.history.last(self.project.name).run_id)

    def follower(self, run_id: str) -> RunFollower | None:
        """This process's follower of a live run, re-attaching one if no live process follows it
        (the history's lease: a follower that died, or is a zombie, has lost it)."""
        with FOLLOWERS.lock:
            follower = FOLLOWERS.get(self.history.home, run_id)
            if follower is not None:
                return follower
            record = self.history.get(run_id)
            if record.status.terminal or not self.history.claim_follower(run_id, os.getpid()):
                return None
            if record.handle is None:
                canceled = self.history.cancel_requested(run_id)
                self.history.set_status(
                    run_id,
                    RunStatus.CANCELED if canceled else RunStatus.FAILED,
                    error="canceled by the user before it started"
                    if canceled
                    else "the process that was preparing this run ended before the run started",
                )
                self.history.release_follower(run_id, os.getpid())
                return None
            try:
                executor = self._executor(self._target_of(record))
                handle = executor.attach(record.handle)
            except Exception:
                self.history.release_follower(run_id, os.getpid())
                raise
            max_output = record.properties.get("MaxOutputFileBytes")
            follower = RunFollower(
                self.history,
                executor,
                run_id,
                handle=handle,
                max_output_file_bytes=int(str(max_output)) if max_output else 512 * 1024 * 1024,
            )
            FOLLOWERS.add(follower)
        log.info("re-attached to run %s", run_id)
        follower.begin()
        return follower

    def _target_of(self, record: RunRecord) -> ComputeTarget:
        """The target a run ran on: its config if still attached, else enough to re-attach."""
        try:
            return self.project.target(record.target)
        except ConfigError:
            return ComputeTarget(name=record.target, type=TargetType(record.target_type))

    def cancel(self, run_id: str) -> None:
        """Stop a run from any process: the request goes into the history, where the process that
        follows the run honours it within a fraction of a second; with no live follower, this process
        takes the run over and stops the work through its target."""
        follower = FOLLOWERS.get(self.history.home, run_id)
        if follower is None:
            if not self.history.request_cancel(run_id):
                return  # already ended
            follower = self.follower(run_id)
        if follower is not None:
            follower.cancel()

    def runs(self, **filters: Any) -> list[RunRecord]:
        filters.setdefault("project", self.project.name)
        return self.history.query(**filters)

    def compare(self, run_ids: Sequence[str]) -> RunComparison:
        from .compare import compare_runs

        return compare_runs(self.history, self.snapshots, list(run_ids))

    def restore(self, run_id: str, dest: Path, *, overwrite: bool = False) -> list[str]:
        record = self.history.get(run_id)
        if record.snapshot_id is None:
            raise SnapshotError(f"Run {run_id} has no snapshot.")
        return self.snapshots.restore(record.snapshot_id, Path(dest), overwrite=overwrite)

    def close(self) -> None:
        """Nothing to release: followers belong to the process (FOLLOWERS), runs go on without us."""
