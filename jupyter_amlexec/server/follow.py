"""Following a run for the REST API: the core's `follow_async` when it exists, else a stand-in.

The stand-in polls the history (status, both logs by byte offset, metric counts) with the same
signature and event types as `jupyter_amlexec.core.follow.follow_async`, so the SSE handler does
not change when the core's version lands. Its cursor is "<driver offset>.<control offset>".
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..core.history import History
from ..core.models import LogEvent, MetricEvent, RunEvent, StatusEvent

FollowAsync = Callable[..., AsyncIterator[RunEvent]]


@dataclass(frozen=True)
class CursorLogEvent(LogEvent):
    """A LogEvent that says where to resume (the core's LogEvent carries `cursor` itself)."""

    cursor: str = ""


def _parse(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        driver, _, control = cursor.partition(".")
        return int(driver), int(control or 0)
    except ValueError:
        raise ValueError(f"Bad log cursor {cursor!r}; pass one a log event gave, or none.") from None


def _snapshot(history: History, run_id: str, offsets: tuple[int, int]) -> tuple[Any, str, str, Any]:
    record = history.get(run_id)
    driver = history.read_log(run_id, "driver", offset=offsets[0])
    control = history.read_log(run_id, "control", offset=offsets[1])
    return record, driver, control, history.metric_series(run_id)


async def poll_follow_async(
    history: History,
    run_id: str,
    cursor: str | None = None,
    *,
    timeout: float | None = None,
    poll_interval: float = 0.05,
) -> AsyncIterator[RunEvent]:
    """Events of a run until its terminal status (or `timeout`), polling the history off the loop."""
    offsets = _parse(cursor)
    deadline = None if timeout is None else time.monotonic() + timeout
    last_status = None
    seen: dict[str, int] = {}
    while True:
        record, driver, control, series = await asyncio.to_thread(_snapshot, history, run_id, offsets)
        d, c = offsets
        if control:
            c += len(control.encode("utf-8"))
            yield CursorLogEvent(run_id, text=control, source="control", cursor=f"{d}.{c}")
        if driver:
            d += len(driver.encode("utf-8"))
            yield CursorLogEvent(run_id, text=driver, source="driver", cursor=f"{d}.{c}")
        offsets = (d, c)
        for name, values in series.items():
            for metric in values[seen.get(name, 0) :]:
                yield MetricEvent(run_id, metric=metric)
            seen[name] = len(values)
        if record.status != last_status:
            last_status = record.status
            yield StatusEvent(run_id, status=record.status, detail=record.detail, exit_code=record.exit_code)
        if record.status.terminal or (deadline is not None and time.monotonic() >= deadline):
            return
        await asyncio.sleep(poll_interval)


def follow_async() -> FollowAsync:
    """The follow function to use: the core's once it is there."""
    try:
        module = importlib.import_module("jupyter_amlexec.core.follow")
    except ImportError:
        return poll_follow_async
    found: FollowAsync = module.follow_async
    return found
