"""Following runs for the SSE route: one reader per live run, shared by every client at its head.

Fifty browser tabs on one live run would otherwise be fifty readers polling the history twenty
times a second. A `RunHub` reads the run with one core `RunFollowerView` and keeps the steps it read
(each with the cursor after it) in a bounded buffer; a client that starts from the beginning, or
resumes from a cursor the hub handed out, replays the buffer and then waits for new steps. Anyone
else (an older cursor, a client that fell behind the buffer, a finished run) gets a private view,
which is the same reads without the sharing. Step-end cursors are what clients resume from.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from ..core.follow import POLL_SECONDS, RunFollowerView
from ..core.history import History
from ..core.models import LogEvent, RunEvent

BUFFER_BYTES = 8 * 2**20  # log text a hub keeps for late joiners; older steps are dropped


@dataclass(frozen=True)
class Step:
    """The events one read of the run found, and the cursor to resume right after them."""

    cursor: str
    events: tuple[RunEvent, ...]
    size: int = 0


def _step(view: RunFollowerView) -> Step:
    events = tuple(view.step())
    size = sum(len(e.text) for e in events if isinstance(e, LogEvent))
    return Step(str(view.cursor), events, size)


async def private_steps(
    history: History, run_id: str, cursor: str | None, poll: float = POLL_SECONDS
) -> AsyncIterator[Step]:
    """A run's steps from `cursor` with a view of its own, until its terminal status."""
    view = await asyncio.to_thread(RunFollowerView, history, run_id, cursor)
    while True:
        step = await asyncio.to_thread(_step, view)
        if step.events:
            yield step
        if view.finished:
            return
        await asyncio.sleep(poll)


@dataclass
class RunHub:
    """One live run read once per tick for all its subscribers."""

    history: History
    run_id: str
    view: RunFollowerView
    poll: float = POLL_SECONDS
    steps: deque[Step] = field(default_factory=deque)
    dropped: int = 0  # steps dropped from the front of the buffer (absolute index of steps[0])
    size: int = 0
    done: bool = False
    subscribers: int = 0
    start: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.start = str(self.view.cursor)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while not self.done:
                step = await asyncio.to_thread(_step, self.view)
                if step.events:
                    self._keep(step)
                if self.view.finished:
                    self.done = True
                self._wake()
                if not self.done:
                    await asyncio.sleep(self.poll)
        except Exception:
            self.done = True  # subscribers fall back to private views from their last cursor
            self._wake()
            raise

    def _keep(self, step: Step) -> None:
        self.steps.append(step)
        self.size += step.size
        while self.size > BUFFER_BYTES and len(self.steps) > 1:
            self.size -= self.steps.popleft().size
            self.dropped += 1

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def position(self, cursor: str | None) -> int | None:
        """Absolute index of the first step a client at `cursor` has not seen; None if unknown."""
        if not cursor or cursor == self.start:
            return 0 if self.dropped == 0 else None
        for i, step in enumerate(self.steps):
            if step.cursor == cursor:
                return self.dropped + i + 1
        return None

    async def subscribe(self, index: int) -> AsyncGenerator[Step, None]:
        """Steps from `index` on; stops at the end of the run, or when this client fell behind."""
        self.subscribers += 1
        try:
            while True:
                if index < self.dropped:
                    return  # fell behind the buffer: the caller goes on privately
                while index - self.dropped < len(self.steps):
                    yield self.steps[index - self.dropped]
                    index += 1
                if self.done:
                    return
                await self.changed.wait()
        finally:
            self.subscribers -= 1


class Hubs:
    """The live runs' hubs of one server; a hub ends with its run or its last subscriber."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._hubs: dict[str, RunHub] = {}

    async def steps(self, run_id: str, cursor: str | None) -> AsyncIterator[Step]:
        """The run's steps from `cursor`: shared when a hub can serve it, private otherwise."""
        hub = self._hubs.get(run_id)
        if hub is None and not cursor:
            view = await asyncio.to_thread(RunFollowerView, self.history, run_id, None)
            hub = self._hubs.get(run_id)  # another client may have made one meanwhile
            if hub is None and not (await asyncio.to_thread(self.history.get, run_id)).status.terminal:
                hub = self._hubs[run_id] = RunHub(self.history, run_id, view)
        index = hub.position(cursor) if hub is not None and not hub.done else None
        if hub is not None and index is not None:
            shared = hub.subscribe(index)
            try:
                async for step in shared:
                    cursor = step.cursor
                    yield step
            finally:
                await shared.aclose()  # counts this subscriber out now, not at garbage collection
                self._release(hub)
            if hub.view.finished and hub.steps and hub.steps[-1].cursor == cursor:
                return  # saw the whole run through the hub
        async for step in private_steps(self.history, run_id, cursor):
            yield step

    def _release(self, hub: RunHub) -> None:
        if (hub.done or hub.subscribers == 0) and self._hubs.get(hub.run_id) is hub:
            del self._hubs[hub.run_id]
            if hub.task is not None and not hub.task.done():
                hub.task.cancel()
