"""A run followed as plain text: what the CLI, `--no-widget` and terminal IPython print.

One loop over the core's `follow` for every text adapter: the script's output as it streams, the
Preparing phase and the environment build log (indented, so it reads apart from the script's own
output), and for a long build a one-line summary every so often, so nobody stares at a silent
terminal for the minutes a first Docker build takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .core.follow import follow
from .core.history import History
from .core.models import LogEvent, RunStatus, StatusEvent

SUMMARY_EVERY_SECONDS = 15.0
Write = Callable[[str], None]


@dataclass
class TextFollower:
    """Prints one run's events through `write`; `show_control` adds our own progress lines;
    `only_control` prints the control log alone, every phase of it (`%aml_run logs ID --control`)."""

    write: Write
    show_control: bool = True
    only_control: bool = False
    summary_every: float = SUMMARY_EVERY_SECONDS
    status: RunStatus | None = None
    cursor: str | None = None
    _phase_started: float = field(default_factory=time.monotonic)
    _phase_lines: int = 0
    _last_summary: float = field(default_factory=time.monotonic)

    def run(self, history: History, run_id: str, cursor: str | None = None) -> RunStatus | None:
        """Follow until the run ends (KeyboardInterrupt passes through to the caller)."""
        for event in follow(history, run_id, cursor):
            if isinstance(event, LogEvent):
                self.cursor = event.cursor or self.cursor
                self._log(event)
            elif isinstance(event, StatusEvent):
                self._status(event)
            self._maybe_summary()
        return self.status

    def _log(self, event: LogEvent) -> None:
        if event.source == "driver":
            if not self.only_control:
                self.write(event.text)
            return
        self._phase_lines += event.text.count("\n")
        if self.only_control:
            self.write(event.text)
            return
        if self.show_control and self.status in (None, RunStatus.QUEUED, RunStatus.PREPARING):
            self.write("".join(f"  | {line}\n" for line in event.text.splitlines()))

    def _status(self, event: StatusEvent) -> None:
        if event.status is not self.status:
            self._phase_started, self._phase_lines = time.monotonic(), 0
        self.status = event.status
        if self.show_control and event.status is RunStatus.RUNNING and event.detail:
            self.write(f"[{event.detail}]\n")  # e.g. "connection lost, retrying"

    def _maybe_summary(self) -> None:
        now = time.monotonic()
        if self.status is not RunStatus.PREPARING or now - self._last_summary < self.summary_every:
            return
        self._last_summary = now
        self.write(
            f"[Preparing for {now - self._phase_started:.0f} s, {self._phase_lines} lines of build log so far]\n"
        )
