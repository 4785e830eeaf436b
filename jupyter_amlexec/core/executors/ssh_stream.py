"""LogStream: a detached run's log and end, streamed over one long SSH command on its own thread.

Looking at a run over SSH once per poll costs a round trip per look and up to a poll interval of
latency per line; a stream costs one command for the whole run and shows a line (and the end) as
soon as the host's follow loop sees it. The handle reads from the stream while it flows and falls
back to looking (with backoff) when the connection drops; the bytes the stream handed out are
exactly the host's log from its offset, so nothing is lost or repeated across the switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..transport.detached import ProcessState
from ..transport.ssh import Sink

log = logging.getLogger(__name__)

MAX_BUFFERED = 8 * 1024 * 1024  # log bytes held for the handle; beyond, the stream waits (SSH backpressure)

Follow = Callable[[Sink], ProcessState]  # runs the follow command into the sink; its final state


class StreamClosed(Exception):
    """Raised into the SSH command's pump to end a stream nobody reads any more."""


class LogStream:
    """Runs `follow` on a thread; hands out the log bytes from `offset` on, then the final state."""

    def __init__(self, follow: Follow, offset: int, *, name: str = "amlexec-ssh-log") -> None:
        self._follow = follow
        self._cond = threading.Condition()
        self._buffer = b""
        self._from = offset  # host log offset of the buffer's first byte
        self.final: ProcessState | None = None  # the end, once the follow loop reported it
        self.error: BaseException | None = None  # why the stream stopped early
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LogStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            final = self._follow(self._write)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which falls back
            with self._cond:
                self.error = exc
                self._cond.notify_all()
            return
        with self._cond:
            self.final = final
            self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        with self._cond:
            while len(self._buffer) > MAX_BUFFERED and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                raise StreamClosed
            self._buffer += data
            self._cond.notify_all()

    def read(self, offset: int) -> ProcessState | None:
        """What the stream holds from `offset` (taken: handed out once), with the end once it came;
        None when the stream cannot answer for that offset (it failed, or holds other bytes)."""
        with self._cond:
            if self.error is not None or self._closed:
                return None
            end = self._from + len(self._buffer)
            if not self._from <= offset <= end:
                return None
            data = self._buffer[offset - self._from :]
            self._buffer, self._from = b"", end
            self._cond.notify_all()
            final = self.final
        if final is None:
            return ProcessState(True, None, None, data, end, end)
        return ProcessState(False, final.exit_code, final.ended_at, data, end, final.log_size)

    def wait(self, timeout: float) -> None:
        """Until there is log to read, the end came, the stream failed, or `timeout` s passed."""
        with self._cond:
            if not self._buffer and self.final is None and self.error is None:
                self._cond.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Until the stream's thread ended."""
        self._thread.join(timeout)

    def close(self) -> None:
        """Stop streaming (the follow command ends at its next output)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
