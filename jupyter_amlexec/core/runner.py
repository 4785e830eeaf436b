"""The follower: one worker thread that drives one run from Queued to a terminal status.

It prepares the environment, starts the work through the target's executor, streams the raw log
(splitting metric tags from displayable text), checkpoints log + metrics into the history, collects
outputs, and publishes immutable events to listeners. The same follower can pick up a run that
another process started (a kernel that died, the CLI after `-a`): it resumes from the history's
checkpoint, so nothing is logged twice and nothing is lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import AmlExecError, AttachmentError, RunCanceledError
from .executors.base import Executor, HandleStatus, RunHandle, RunSpec
from .history import History
from .models import (
    EnvironmentSpec,
    LogEvent,
    Metric,
    MetricEvent,
    OutputsEvent,
    RunEvent,
    RunStatus,
    StatusEvent,
)
from .secrets import redact_text
from .snapshot import Snapshot
from .tracking import LogDemuxer

log = logging.getLogger(__name__)

Listener = Callable[[RunEvent], None]

# How long one wait on the handle may block before the log is read again: the log latency a user
# sees. A run that ends returns from the wait at once, so this does not add to a run's duration.
LOG_POLL_SECONDS = 0.05
HISTORY_CHECK_SECONDS = 0.2  # how often a follower looks for a cancel asked through the history


class EventBus:
    """Listeners of one run in this process; a failing listener is logged, never fatal."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: RunEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken widget must not break the run
                log.exception("run event listener %r failed", listener)


class FollowerRegistry:
    """This process's followers, keyed by (history home, run id): one follower per run per process,
    whatever Session objects (or the guardian) ask for it."""

    def __init__(self) -> None:
        self._followers: dict[tuple[str, str], RunFollower] = {}
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """Held while deciding whether to make a follower, so two threads never make two."""
        return self._lock

    def get(self, home: Path, run_id: str) -> RunFollower | None:
        with self._lock:
            return self._followers.get((str(home), run_id))

    def add(self, follower: RunFollower) -> RunFollower:
        """Register `follower`, or return the one already following that run."""
        key = (str(follower.history.home), follower.run_id)
        with self._lock:
            return self._followers.setdefault(key, follower)

    def discard(self, follower: RunFollower) -> None:
        key = (str(follower.history.home), follower.run_id)
        with self._lock:
            if self._followers.get(key) is follower:
                del self._followers[key]


FOLLOWERS = FollowerRegistry()
"""The process-wide registry (a process follows a run at most once)."""


@dataclass(frozen=True)
class StartRequest:
    """What a fresh run needs beyond its history record."""

    spec: RunSpec
    snapshot: Snapshot
    environment: EnvironmentSpec
    force_prepare: bool = False

    def __getstate__(self) -> dict[str, object]:
        """Sent to the guardian process by snapshot id: the manifest is in the store already."""
        return {
            "spec": self.spec,
            "snapshot_id": self.snapshot.id,
            "home": str(self.snapshot.store.home),
            "environment": self.environment,
            "force_prepare": self.force_prepare,
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        from .snapshot import SnapshotStore

        snapshot = SnapshotStore(Path(str(state["home"]))).get(str(state["snapshot_id"]))
        for name, value in (
            ("spec", state["spec"]),
            ("snapshot", snapshot),
            ("environment", state["environment"]),
            ("force_prepare", state["force_prepare"]),
        ):
            object.__setattr__(self, name, value)


class RunFollower:
    """Drives one run on a daemon thread; `done` is set once the run is terminal in the history."""

    def __init__(
        self,
        history: History,
        executor: Executor,
        run_id: str,
        *,
        start: StartRequest | None = None,
        handle: RunHandle | None = None,
        max_output_file_bytes: int = 512 * 1024 * 1024,
        secrets: tuple[str, ...] = (),
        on_recorded_end: Callable[[], None] | None = None,
    ) -> None:
        """on_recorded_end: called on the follower's thread once the run's end is in the history,
        before `done` is set (the submitter tells its guardian it need not take the run over)."""
        if (start is None) == (handle is None):
            raise ValueError("a follower either starts a run or resumes a handle")
        self.history = history
        self.executor = executor
        self.run_id = run_id
        self.bus = EventBus()
        self.done = threading.Event()
        self._start = start
        self._handle = handle
        self._max_output_file_bytes = (
            start.spec.max_output_file_bytes if start is not None else max_output_file_bytes
        )
        self._secrets = start.spec.secrets if start is not None else secrets
        self._cancel_requested = threading.Event()
        self._last_history_check = 0.0
        self._detail: str | None = None
        self._on_recorded_end = on_recorded_end
        self._end_recorded = False
        self._thread = threading.Thread(target=self._main, name=f"amlexec-run-{run_id}", daemon=True)

    # --- control ---------------------------------------------------------------------------------

    def begin(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Ask the run to stop; the follower records Canceled once the work has really stopped."""
        self._cancel_requested.set()
        handle = self._handle
        if handle is not None:
            handle.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    # --- the thread ------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            status = self._start_run() if self._start is not None else self._status_of_resumed()
            if status is None:
                return
            self._follow()
        except Exception as exc:  # every failure ends in a terminal record, never a stuck run
            self._fail(exc)
        finally:
            try:
                self.history.release_follower(self.run_id, os.getpid())
            except Exception:
                log.exception("could not release follower of %s", self.run_id)
            self._tell_recorded_end()
            self.done.set()
            FOLLOWERS.discard(self)

    def _tell_recorded_end(self) -> None:
        if self._end_recorded and self._on_recorded_end is not None:
            try:
                self._on_recorded_end()
            except Exception:
                log.exception("on_recorded_end of %s failed", self.run_id)

    def _start_run(self) -> RunStatus | None:
        assert self._start is not None
        request = self._start
        self._set_status(
            RunStatus.PREPARING, detail=f"preparing the environment on '{request.spec.target.name}'"
        )
        self.executor.check()
        prepared = self.executor.prepare(
            request.environment,
            self._preparing_log,
            force=request.force_prepare,
            build=request.force_prepare or request.spec.run_configuration.prepare_environment,
        )
        if not self.executor.needs_managed_environment:
            self._control(f"User-managed environment: {prepared.python or 'the target’s own Python'}.\n")
        elif prepared.built:
            self._control(f"Environment {prepared.env_hash[:12]} built.\n")
        else:
            self._control(f"Environment {prepared.env_hash[:12]} ready (cached).\n")
        if self._canceled(check_history=True):
            self._set_status(RunStatus.CANCELED, detail="canceled before it started")
            return None
        self._set_status(RunStatus.STARTING)
        spec = replace(request.spec, prepared=prepared)
        handle = self.executor.start(spec, request.snapshot, self._control)
        self._handle = handle
        self.history.set_handle(self.run_id, handle.to_dict())
        if self._canceled(check_history=True):  # also a cancel from another process meanwhile
            handle.cancel()
        self._set_status(RunStatus.RUNNING, started_at=handle.poll().started_at)
        return RunStatus.RUNNING

    def _status_of_resumed(self) -> RunStatus | None:
        record = self.history.get(self.run_id)
        if record.status.terminal:
            self._end_recorded = True
            return None
        if record.status is not RunStatus.RUNNING:
            self._set_status(RunStatus.RUNNING)
        return RunStatus.RUNNING

    def _follow(self) -> None:
        handle = self._handle
        assert handle is not None
        cursor, log_size = self.history.progress(self.run_id)
        self.history.truncate_log(self.run_id, log_size)  # text a dead follower wrote past its checkpoint
        demux = LogDemuxer()
        while True:
            state = handle.wait(LOG_POLL_SECONDS)
            cursor = self._drain(handle, demux, cursor, final=False)
            if state.status.terminal:
                break
            self._note_detail(state.detail)
            if not self._cancel_requested.is_set() and self._canceled(check_history=self._history_due()):
                self._control("Canceling: asked through the run history.")
                handle.cancel()
        cursor = self._drain(handle, demux, cursor, final=True)
        self._finish(handle, state)

    def _note_detail(self, detail: str | None) -> None:
        """Keep the record's detail in step with the handle's ("connection lost, retrying")."""
        if detail == self._detail:
            return
        self._detail = detail
        self.history.set_detail(self.run_id, detail)
        self._control(detail or "Connection to the target restored.")
        self.bus.publish(StatusEvent(self.run_id, status=RunStatus.RUNNING, detail=detail))

    def _drain(self, handle: RunHandle, demux: LogDemuxer, cursor: str, *, final: bool) -> str:
        """Move every new raw byte into the history: displayable text to the log, tags to metrics."""
        while True:
            chunk = handle.logs(cursor)
            if not chunk.data and not final:
                return cursor
            text, metrics = demux.feed(chunk.data) if chunk.data else ("", [])
            if final and not chunk.data:
                tail_text, tail_metrics = demux.flush()
                text, metrics = text + tail_text, metrics + tail_metrics
            cursor = chunk.cursor
            self._record(text, metrics, cursor)
            if not chunk.data:
                return cursor

    def _record(self, text: str, metrics: list[Metric], cursor: str) -> None:
        text = redact_text(text, self._secrets)
        log_size = (
            self.history.append_log(self.run_id, text) if text else self.history.progress(self.run_id)[1]
        )
        self.history.checkpoint(self.run_id, cursor=cursor, log_size=log_size, metrics=metrics)
        if text:
            self.bus.publish(LogEvent(self.run_id, text=text, source="driver"))
        for metric in metrics:
            self.bus.publish(MetricEvent(self.run_id, metric=metric))

    def _finish(self, handle: RunHandle, state: HandleStatus) -> None:
        self._set_status(RunStatus.FINALIZING)
        outputs_dir = self.history.run_dir(self.run_id) / "outputs"
        collect_error: str | None = None
        try:
            files = handle.collect_outputs(outputs_dir, self._max_output_file_bytes, self._control)
        except AttachmentError as exc:  # some files stored, the rest not (disk full, a cut archive)
            files = list(exc.collected)
            collect_error = f"outputs/ not fully collected: {exc}"
            self._control(collect_error)
        except AmlExecError as exc:
            files = []
            self._control(f"Could not collect outputs/: {exc}\n")
        except OSError as exc:  # a full disk, a vanished folder: the run's own result still stands
            files = []
            self._control(f"Could not collect outputs/ into {outputs_dir}: {exc}\n")
        self.history.set_attachments(self.run_id, [f"outputs/{f}" for f in files])
        if files:
            self._control(f"Collected {len(files)} file(s) from outputs/.\n")
        self.bus.publish(OutputsEvent(self.run_id, files=tuple(files)))
        try:
            handle.cleanup()
        except Exception as exc:
            self._control(f"Clean-up after the run failed: {exc}\n")
        status, error = state.status, state.error
        if self._cancel_requested.is_set() and status is not RunStatus.COMPLETED:
            status = RunStatus.CANCELED
        if collect_error is not None and status is RunStatus.COMPLETED:
            status, error = (
                RunStatus.FAILED,
                collect_error,
            )  # the script did its part; its outputs are not all kept
        self._set_status(
            status,
            exit_code=state.exit_code,
            error=error,
            started_at=state.started_at,
            finished_at=state.finished_at,
        )

    def _fail(self, exc: BaseException) -> None:
        # with its fixing command, spelled as the adapter in this process spells it (none: plain)
        message = (exc.explained() if isinstance(exc, AmlExecError) else str(exc)) or type(exc).__name__
        if not isinstance(exc, AmlExecError):
            log.exception("run %s failed inside jupyter_amlexec", self.run_id)
            message = f"{type(exc).__name__}: {message}"
        if isinstance(exc, RunCanceledError):
            message = "canceled by the user while the environment was being prepared"
        try:
            self._control(("" if isinstance(exc, RunCanceledError) else "Error: ") + message + "\n")
        except Exception:
            log.exception("could not write the control log of %s", self.run_id)
        handle = self._handle
        if handle is not None:
            for step in (handle.cancel, handle.cleanup):
                try:
                    step()
                except Exception:
                    log.exception("clean-up of %s after an error failed", self.run_id)
        status = RunStatus.CANCELED if self._cancel_requested.is_set() else RunStatus.FAILED
        self._set_status(status, error=message)

    # --- helpers ---------------------------------------------------------------------------------

    def _canceled(self, *, check_history: bool = False) -> bool:
        """Canceled here, or (check_history) by another process through the history's cancel request
        (or a record another process already ended): a run it cannot reach must not start afterwards."""
        if self._cancel_requested.is_set():
            return True
        if check_history and (
            self.history.cancel_requested(self.run_id) or self.history.get(self.run_id).status.terminal
        ):
            self._cancel_requested.set()
            return True
        return False

    def _preparing_log(self, text: str) -> None:
        """The log of prepare(); a cancel stops a build at its next line (the executor's clean-up
        removes what the build made)."""
        self._control(text)
        if self._canceled(check_history=self._history_due()):
            raise RunCanceledError("canceled while the environment was being prepared")

    def _history_due(self) -> bool:
        """Whether it is time to look at the history for a cancel asked by another process."""
        now = time.monotonic()
        if now - self._last_history_check < HISTORY_CHECK_SECONDS:
            return False
        self._last_history_check = now
        return True

    def _control(self, text: str) -> None:
        if not text:
            return
        if not text.endswith("\n"):
            text += "\n"
        text = redact_text(text, self._secrets)
        self.history.append_log(self.run_id, text, source="control")
        self.bus.publish(LogEvent(self.run_id, text=text, source="control"))

    def _set_status(
        self,
        status: RunStatus,
        *,
        detail: str | None = None,
        exit_code: int | None = None,
        error: str | None = None,
        started_at: float | None = None,
        finished_at: float | None = None,
    ) -> None:
        stamp = time.strftime(
            "%H:%M:%S", time.gmtime(finished_at if status.terminal and finished_at else None)
        )
        line = f"[{stamp}Z] {status.value}" + (f": {detail}" if detail else "")
        if status.terminal and exit_code is not None:
            line += f" (exit code {exit_code})"
        if status.terminal:  # readers stop at a terminal record: its line must already be there
            self.history.append_log(self.run_id, line + "\n", source="control")
        record = self.history.set_status(
            self.run_id,
            status,
            exit_code=exit_code,
            error=error,
            detail=detail,
            started_at=started_at,
            finished_at=finished_at,
        )
        self._end_recorded = record.status.terminal
        if not status.terminal:
            self.history.append_log(self.run_id, line + "\n", source="control")
        self.bus.publish(
            StatusEvent(self.run_id, status=record.status, detail=detail or error, exit_code=record.exit_code)
        )
