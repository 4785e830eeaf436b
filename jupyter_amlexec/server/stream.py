"""Server-sent events: the one streaming form of the API (run events, a prepare's build log).

SSE over a plain GET keeps following a run one request with nothing but HTTP: the browser's
EventSource (or a fetch reader) resumes with the last event id after a drop, and the cursor in that
id means nothing is sent twice. Long-poll would cost a request per chunk of log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from tornado.iostream import StreamClosedError

from .base import AmlExecHandler

T = TypeVar("T")
RETRY_MS = 1000


class EventStreamHandler(AmlExecHandler):
    """A handler that answers with `text/event-stream` and stops when the client goes away."""

    _closed: asyncio.Event | None = None

    def closed_event(self) -> asyncio.Event:
        if self._closed is None:
            self._closed = asyncio.Event()
        return self._closed

    def on_connection_close(self) -> None:
        self.closed_event().set()

    def start_stream(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # a buffering proxy would hold the log back
        self.write(f"retry: {RETRY_MS}\n\n")

    def write_event(self, event: str, data: Any, event_id: str | None = None) -> None:
        """Buffer one event; `push` sends what is buffered."""
        lines = [f"event: {event}"]
        if event_id:
            lines.append(f"id: {event_id}")
        lines.append("data: " + json.dumps(data, default=str))
        self.write("\n".join(lines) + "\n\n")

    async def push(self) -> bool:
        """Flush the buffered events; False once the client has gone."""
        try:
            await self.flush()
        except StreamClosedError:
            self.closed_event().set()
            return False
        return True

    async def send(self, event: str, data: Any, event_id: str | None = None) -> bool:
        """Write one event and flush it; False once the client has gone."""
        self.write_event(event, data, event_id)
        return await self.push()

    async def until_closed(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """The items of `events` until it ends or the client disconnects (whichever comes first)."""
        closed = asyncio.ensure_future(self.closed_event().wait())
        try:
            while True:
                step = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({step, closed}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    return
                try:
                    yield step.result()
                except StopAsyncIteration:
                    return
        finally:
            closed.cancel()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
