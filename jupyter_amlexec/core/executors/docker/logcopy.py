"""A container's log copied into a local file as it grows, surviving a lost engine connection.

Every read of the engine's logs API starts at the container's first byte, and the bytes already in
the file are skipped: the file never gets a gap or a duplicate, whatever broke when. (`since` would
resume by timestamp, and lines printed within one timestamp step would be lost or repeated.) The
same rule makes a re-attach in a new process continue the file of the first copy.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, BinaryIO

from .engine import Outage, docker_module, is_transport_error

log = logging.getLogger(__name__)

LIVE_STATES = ("created", "running", "restarting", "paused")
_QUICK_RETRY_SECONDS = 0.05


class LogCopier:
    """One thread that keeps `path` equal to the container's combined stdout/stderr so far."""

    def __init__(self, client: Any, container_id: str, path: Path, outage: Outage) -> None:
        self.client = client
        self.container_id = container_id
        self.path = path
        self.outage = outage
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"docker-logs-{container_id[:12]}", daemon=True
        )

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._thread.start()

    def nudge(self) -> None:
        """Retry now (the engine answered someone else): no waiting out a backoff."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    @property
    def running(self) -> bool:
        """Copying (started and not ended): the container may still print."""
        return self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait until the whole log is in the file; False if it is not yet after `timeout`."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            with open(self.path, "ab") as out:
                self._follow(out)
        except Exception:  # never a traceback on a thread: the handle's status tells the run's end
            log.exception("copying the log of container %s stopped", self.container_id[:12])

    def _follow(self, out: BinaryIO) -> None:
        outages_at_start = self.outage.times
        ended = False  # known to have ended before this read began: the read is the whole log
        while not self._stopped.is_set() and not self.outage.given_up():
            outages_before = self.outage.times
            clean = self._copy_once(out) and self.outage.times == outages_before
            if clean and ended:
                return
            live = self._container_live()
            if clean and live is False and self.outage.times == outages_at_start:
                return  # the stream ended with the container and nothing ever broke: all copied
            # the connection broke, or may have (a dropped stream can end like a finished one):
            # read again from the first byte, skipping what the file has
            ended = live is False
            delay = self.outage.seconds_to_next_try() if live is None else _QUICK_RETRY_SECONDS
            self._wake.wait(delay)
            self._wake.clear()

    def _copy_once(self, out: BinaryIO) -> bool:
        """One read of the log from its first byte, appending what the file lacks; True when the
        stream ended without an error (which a dropped connection can look like, too)."""
        skip = out.tell()
        try:
            stream = self.client.api.logs(
                self.container_id, stream=True, follow=True, stdout=True, stderr=True
            )
            for chunk in stream:
                if skip >= len(chunk):
                    skip -= len(chunk)
                    continue
                out.write(chunk[skip:])
                out.flush()
                skip = 0
                if self._stopped.is_set():
                    return False
        except Exception as exc:
            if not is_transport_error(exc):
                log.info("log stream of %s ended: %s", self.container_id[:12], exc)
                return True  # the engine said no (the container is gone): nothing more to read
            self.outage.failed(exc)
            return False
        if skip:
            log.warning(
                "the log of container %s is %d bytes shorter than the copy", self.container_id[:12], skip
            )
        return True

    def _container_live(self) -> bool | None:
        """Whether the container still runs; None when the engine cannot be asked now."""
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
        except docker_module().errors.NotFound:
            return False
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            self.outage.failed(exc)
            return None
        self.outage.recovered()
        return state.get("Status") in LIVE_STATES
