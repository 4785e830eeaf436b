"""Follow any run from any process: its log lines, metrics and status changes, from a cursor.

The history is the meeting point: whoever drives a run (a kernel, the CLI's guardian, a re-attached
reader) appends its log to `runs/<id>/{driver,control}_log.txt` and its metrics and status to
SQLite; a follower here reads them from where it stopped. A cursor names that place for both logs
and the metrics (`"<driver bytes>.<control bytes>.<metric rowid>"`), so a reader that reconnects (the
REST API, `history info --follow`) continues with each line exactly once, in order. Only whole
lines are handed out while the run lives; the rest follows once it ends.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

from .history import History
from .models import LogEvent, Metric, MetricEvent, RunEvent, RunStatus, StatusEvent

POLL_SECONDS = 0.05  # how often a follower looks for news: the latency a reader in another process sees
SOURCES = ("control", "driver")  # our phases before the output they lead to


@dataclass(frozen=True)
class FollowCursor:
    """A position in a run's record: bytes of each log read, and the last metric row seen."""

    driver: int = 0
    control: int = 0
    metric: int = 0

    @classmethod
    def parse(cls, text: str | None) -> FollowCursor:
        """The cursor a follower handed out earlier ("" or None: from the start); ValueError if malformed."""
        if not text:
            return cls()
        pieces = text.split(".")
        if len(pieces) != 3 or not all(p.isdigit() for p in pieces):
            raise ValueError(
                f"not a log cursor: {text!r}. Pass the `cursor` of an event received earlier "
                f"(three whole numbers, e.g. '120.48.3'), or none to start from the beginning."
            )
        return cls(*(int(p) for p in pieces))

    def __str__(self) -> str:
        return f"{self.driver}.{self.control}.{self.metric}"


class RunFollowerView:
    """Reads one run's news since a cursor; `step()` returns the events that arrived meanwhile."""

    def __init__(self, history: History, run_id: str, cursor: str | None = None) -> None:
        self.history = history
        self.run_id = run_id
        self.cursor = FollowCursor.parse(cursor)
        self.status: RunStatus | None = None
        self.detail: str | None = None
        history.get(run_id)  # RunNotFoundError at once for an unknown id

    def step(self) -> list[RunEvent]:
        """Everything new: a terminal status comes last, after the final log text."""
        record = self.history.get(self.run_id)
        final = record.status.terminal  # read before the logs: text written before the end is in them
        events: list[RunEvent] = []
        for source in SOURCES:
            events += self._log_events(source, final)
        events += self._metric_events()
        if record.status is not self.status or record.detail != self.detail:
            self.status, self.detail = record.status, record.detail
            events.append(
                StatusEvent(
                    self.run_id,
                    status=record.status,
                    detail=record.error if final and record.error else record.detail,
                    exit_code=record.exit_code,
                )
            )
        return events

    @property
    def finished(self) -> bool:
        return self.status is not None and self.status.terminal

    def _log_events(self, source: str, final: bool) -> list[RunEvent]:
        offset = getattr(self.cursor, source)
        data = self._read(source, offset)
        if not final:
            data = data[: data.rfind(b"\n") + 1]  # whole lines only while the run lives
        if not data:
            return []
        self.cursor = replace(self.cursor, **{source: offset + len(data)})
        text = data.decode("utf-8", errors="replace")
        return [LogEvent(self.run_id, text=text, source=source, cursor=str(self.cursor))]

    def _read(self, source: str, offset: int) -> bytes:
        path = self.history.run_dir(self.run_id) / f"{source}_log.txt"
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(4 * 1024 * 1024)
        except FileNotFoundError:
            return b""

    def _metric_events(self) -> list[RunEvent]:
        try:
            rows = self.history.metric_rows_after(self.run_id, self.cursor.metric)
        except sqlite3.Error:
            return []
        events: list[RunEvent] = []
        for rowid, metric in rows:
            self.cursor = replace(self.cursor, metric=rowid)
            events.append(MetricEvent(self.run_id, metric=metric))
        return events


def current_cursor(history: History, run_id: str) -> FollowCursor:
    """Where the run's record ends now: a follower from here sees only what comes next."""
    run_dir = history.run_dir(run_id)
    sizes = []
    for source in ("driver", "control"):
        try:
            sizes.append((run_dir / f"{source}_log.txt").stat().st_size)
        except FileNotFoundError:
            sizes.append(0)
    rows = history.metric_rows_after(run_id, 0)
    return FollowCursor(sizes[0], sizes[1], rows[-1][0] if rows else 0)


def follow(
    history: History,
    run_id: str,
    cursor: str | None = None,
    *,
    timeout: float | None = None,
    poll_interval: float = POLL_SECONDS,
) -> Iterator[RunEvent]:
    """The run's events from `cursor` on, as they happen; ends after the terminal StatusEvent (or
    when `timeout` seconds pass). Each LogEvent's `cursor` resumes right after its text."""
    view = RunFollowerView(history, run_id, cursor)
    deadline = None if timeout is None else time.monotonic() + timeout
    news = _LocalNews(history, run_id)
    try:
        while True:
            yield from view.step()
            if view.finished or (deadline is not None and time.monotonic() >= deadline):
                return
            news.wait(poll_interval)
    finally:
        news.close()


class _LocalNews:
    """Wakes a reader as soon as this process's own follower of the run publishes an event (the CLI
    waiting for its run), instead of at the next poll: each run's end then reaches the reader without
    up to `poll_interval` of idle latency. With no follower here it is a plain sleep."""

    def __init__(self, history: History, run_id: str) -> None:
        from .runner import FOLLOWERS

        self._event = threading.Event()
        follower = FOLLOWERS.get(history.home, run_id)
        self._unsubscribe = follower.bus.subscribe(lambda _: self._event.set()) if follower else None
        if follower is not None and follower.done.is_set():
            self._event.set()  # ended before the subscription: no event will come

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)
        self._event.clear()

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()


async def follow_async(
    history: History,
    run_id: str,
    cursor: str | None = None,
    *,
    timeout: float | None = None,
    poll_interval: float = POLL_SECONDS,
) -> AsyncIterator[RunEvent]:
    """`follow` for an event loop (the server): reads run in a worker thread, waits with asyncio."""
    import asyncio  # only servers need it; the CLI and kernels start faster without it

    view = await asyncio.to_thread(RunFollowerView, history, run_id, cursor)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for event in await asyncio.to_thread(view.step):
            yield event
        if view.finished or (deadline is not None and time.monotonic() >= deadline):
            return
        await asyncio.sleep(poll_interval)


def wait_terminal(history: History, run_id: str, timeout: float | None = None) -> RunStatus:
    """Block until the run is terminal (or `timeout`), looking at the record only; its status then."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = history.get(run_id).status
        if status.terminal or (deadline is not None and time.monotonic() >= deadline):
            return status
        time.sleep(POLL_SECONDS)


__all__ = ["FollowCursor", "Metric", "follow", "follow_async", "wait_terminal"]
