"""`Run`: a user's handle on one run of the history — status, wait, logs, metrics, outputs, cancel.

A Run is a thin view: every property reads the history, so a Run made in one process sees what a
follower in another process recorded. Waiting re-attaches a follower when nobody follows the run.
"""

from __future__ import annotations

import fnmatch
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RunFailedError
from .follow import POLL_SECONDS, RunFollowerView, current_cursor, wait_terminal
from .history import History, RunRecord
from .models import Metric, RunEvent, RunStatus
from .outputs import resolve_attachment

if TYPE_CHECKING:
    from .api import Session

LOG_TAIL_BYTES = 4000


class Run:
    """One run in the history, by id."""

    def __init__(self, session: Session, run_id: str) -> None:
        self._session = session
        self.id = run_id

    # --- state -----------------------------------------------------------------------------------

    @property
    def record(self) -> RunRecord:
        return self._session.history.get(self.id)

    @property
    def status(self) -> RunStatus:
        return self.record.status

    @property
    def done(self) -> bool:
        return self.status.terminal

    @property
    def metrics(self) -> dict[str, object]:
        """Latest value of every metric the run logged."""
        return dict(self.record.metrics)

    @property
    def metric_series(self) -> dict[str, list[Metric]]:
        return self._session.history.metric_series(self.id)

    @property
    def outputs(self) -> list[str]:
        """Files collected from the run's outputs/ folder, relative to it."""
        root = self.outputs_dir
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    @property
    def outputs_dir(self) -> Path:
        return self._session.history.run_dir(self.id) / "outputs"

    def logs(self, source: str = "driver", tail_bytes: int | None = None) -> str:
        return self._session.history.read_log(self.id, source, tail_bytes=tail_bytes)

    # --- following -------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[RunEvent], None]) -> Callable[[], None]:
        """Receive this run's events from now on, on another thread: from this process's follower, or
        through the history (`follow`) when another process follows the run. Returns unsubscribe."""
        follower = self._session.follower(self.id)
        if follower is not None:
            return follower.bus.subscribe(listener)
        if self.done:
            return lambda: None
        return _history_listener(self._session.history, self.id, listener)

    def wait(self, timeout: float | None = None, *, raise_on_failure: bool = True) -> Run:
        """Block until the run is terminal (or `timeout` passes); raise RunFailedError if it failed.

        Woken by this process's follower the moment it records the end; a run another process
        follows is watched through the history (`follow.wait_terminal`)."""
        follower = self._session.follower(self.id)
        if follower is not None:
            follower.wait(timeout)
        if not self.status.terminal:
            wait_terminal(self._session.history, self.id, timeout)
        record = self.record
        if raise_on_failure and record.status in (RunStatus.FAILED, RunStatus.CANCELED):
            raise RunFailedError(
                self.id,
                record.status.value,
                record.exit_code,
                record.error,
                self._failure_tail(),
            )
        return self

    def _failure_tail(self) -> str:
        tail = self.logs(tail_bytes=LOG_TAIL_BYTES).strip()
        if not tail:  # failed before the script ran: the control log says why
            tail = self.logs("control", tail_bytes=LOG_TAIL_BYTES).strip()
        return tail

    def cancel(self) -> None:
        """Stop the run's work on its target; returns once the stop was requested."""
        self._session.cancel(self.id)

    def rerun(self, **overrides: Any) -> Run:
        """Run the same snapshot again (same script, arguments, target unless overridden)."""
        return self._session.rerun(self.id, **overrides)

    def download_outputs(self, dest: str | Path, pattern: str = "*") -> list[Path]:
        """Copy collected outputs matching the glob `pattern` (relative to outputs/) into `dest`."""
        dest = Path(dest)
        copied = []
        run_dir = self.outputs_dir.parent
        for rel in self.outputs:
            if fnmatch.fnmatch(rel, pattern):
                source = resolve_attachment(run_dir, f"outputs/{rel}")  # never a file outside the run
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                copied.append(target)
        return copied

    # --- display ---------------------------------------------------------------------------------

    def __repr__(self) -> str:
        r = self.record
        metrics = ", ".join(f"{k}={_short(v)}" for k, v in r.metrics.items())
        return f"<Run {r.run_id} [{r.status.value}] target={r.target} script={r.script_name}{' ' + metrics if metrics else ''}>"

    def _repr_html_(self) -> str:
        import html  # notebooks only

        r = self.record
        rows = [
            ("Run", r.run_id),
            ("Status", r.status.value + (f" (exit code {r.exit_code})" if r.exit_code is not None else "")),
            ("Target", r.target),
            ("Script", " ".join([r.script_name, *r.arguments])),
            ("Duration", str(r.duration) if r.duration is not None else ""),
        ]
        rows += [(k, _short(v)) for k, v in r.metrics.items()]
        if r.error:
            rows.append(("Error", r.error))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table class='amlexec-run'>{body}</table>"


def _history_listener(
    history: History, run_id: str, listener: Callable[[RunEvent], None]
) -> Callable[[], None]:
    """Events of a run another process follows, read from the history from now on (a thread)."""
    view = RunFollowerView(history, run_id, str(current_cursor(history, run_id)))
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            for event in view.step():
                listener(event)
            if view.finished:
                return
            stop.wait(POLL_SECONDS)

    threading.Thread(target=pump, name=f"amlexec-listen-{run_id}", daemon=True).start()
    return stop.set


def _short(value: object) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
