"""One run's container, followed: status from the container's state (with its real start and end
times and who ended it), the log from a local copy, outputs out with get_archive, removal after.

A Docker engine that stops answering is not the end of the run: status calls say "connection lost,
retrying" and back off, the log copy resumes where it was, and the run is followed to its real end
once the engine answers again; only after ENGINE_LOST_GIVE_UP_SECONDS is it given up as Failed.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

from ...models import RunStatus
from ...outputs import collect_tar
from ..base import ControlLog, HandleStatus, LogChunk, LogCursor, read_log_chunk
from .container import WORKDIR
from .engine import (
    Outage,
    call_with_retry,
    docker_module,
    engine_time,
    is_read_timeout,
    is_transport_error,
)
from .logcopy import LIVE_STATES, LogCopier
from .settings import DockerSettings

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5
LOG_CATCH_UP_SECONDS = 30.0  # at the end, how long the status waits for the log copy to finish
CANCELED = "canceled by the user"
INSPECT_EVERY_SECONDS = 2.0  # while wait() times out, how often the container is inspected anyway


class DockerRunHandle:
    """One run's container; its log is streamed into a local file that `logs(cursor)` reads."""

    def __init__(
        self,
        client: Any,
        container_id: str,
        private_dir: Path,
        settings: DockerSettings,
        *,
        image: str = "",
        max_output_file_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.private_dir = private_dir
        self.settings = settings
        self.image = image
        self.max_output_file_bytes = max_output_file_bytes
        self.raw_log = private_dir / "raw.log"
        self.outage = Outage(settings.docker_host)
        self._cancel_file = private_dir / "canceled"
        self._cancel_pending = False
        self._final: HandleStatus | None = None
        self._cleaned = False
        self._started_at: float | None = None
        self._inspected_at = 0.0
        self._copier = LogCopier(client, container_id, self.raw_log, self.outage)

    @property
    def docker_host(self) -> str:
        return self.settings.docker_host

    @property
    def keep_container(self) -> bool:
        return self.settings.keep_container

    def follow_logs(self) -> None:
        """Copy the container's log into raw.log, following it live. A re-attach continues the
        file a first copy left (its byte offsets are the cursors the history holds)."""
        self._copier.start()

    def poll(self) -> HandleStatus:
        """The container's state now; a lost engine is RUNNING with a detail until given up."""
        if self._final is not None:
            return self._final
        if self.outage.active and self.outage.seconds_to_next_try() > 0:
            return self._lost()
        docker = docker_module()
        try:
            info = self.client.api.inspect_container(self.container_id)
        except docker.errors.NotFound:
            return self._end(self._gone())
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            self.outage.failed(exc)
            return self._lost()
        if self.outage.active:
            self.outage.recovered()
            self._copier.nudge()
        self._inspected_at = time.monotonic()
        state = info.get("State") or {}
        started = self._started_at = engine_time(state.get("StartedAt"))
        if state.get("Status") in LIVE_STATES:
            if self._cancel_pending:
                self.cancel()
            return HandleStatus(RunStatus.RUNNING, started_at=started)
        if not self._copier.join(LOG_CATCH_UP_SECONDS):
            return HandleStatus(RunStatus.RUNNING, detail="reading the rest of the log", started_at=started)
        return self._end(self._ended(state, info.get("HostConfig") or {}))

    def wait(self, timeout: float) -> HandleStatus:
        """Block until the container ends or `timeout` passes; backs off while the engine is lost."""
        if self._final is not None:
            return self._final
        if self.outage.active:
            time.sleep(min(timeout, self.outage.seconds_to_next_try()))
            return self.poll()
        if self._copier.running:
            # the log copy ends when the container has: its thread's end is the run's end, seen at
            # once and without an engine call (an API wait per interval opens a connection each)
            ended = self._copier.join(timeout)
            recent = time.monotonic() - self._inspected_at < INSPECT_EVERY_SECONDS
            if not ended and recent and not self._cancel_pending:
                return HandleStatus(RunStatus.RUNNING, started_at=self._started_at)
            return self.poll()
        try:
            self.client.api.wait(self.container_id, timeout=max(timeout, 0.05))
        except Exception as exc:
            recent = time.monotonic() - self._inspected_at < INSPECT_EVERY_SECONDS
            if is_read_timeout(exc) and recent and not self._cancel_pending:
                # still running: the engine says so by not answering yet (an inspect now and then
                # still checks that the engine itself has not hung)
                return HandleStatus(RunStatus.RUNNING, started_at=self._started_at)
            log.debug("wait on %s: %s", self.container_id[:12], exc)  # gone or lost: poll says which
        return self.poll()

    def logs(self, cursor: LogCursor) -> LogChunk:
        """Raw log bytes from a byte-offset cursor, read from the local copy (never the engine)."""
        return read_log_chunk(self.raw_log, cursor)

    def cancel(self) -> None:
        """Stop the container (SIGTERM, SIGKILL after a few seconds); a finished run is left as it
        is. With the engine lost, the stop is sent as soon as it answers again."""
        docker = docker_module()
        self._cancel_pending = True
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
            if state.get("Status") in LIVE_STATES:
                self._cancel_file.write_text("canceled\n")
                self.client.api.stop(self.container_id, timeout=STOP_TIMEOUT_SECONDS)
            self._cancel_pending = False
        except docker.errors.NotFound:
            self._cancel_pending = False
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            self.outage.failed(exc)
            log.warning("cancel of %s waits for the Docker engine: %s", self.container_id[:12], exc)

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """Copy outputs/ out of the container; files over max_file_bytes and links are skipped and
        named through `log`. The run's own cap (MaxOutputFileSizeMB when it started) holds after a
        re-attach too. A lost engine is waited for (TargetUnavailableError once given up)."""
        max_file_bytes = min(max_file_bytes, self.max_output_file_bytes or max_file_bytes)
        spool = self.private_dir / "outputs.tar"
        try:
            if not call_with_retry(lambda: self._download_outputs(spool), self.outage, "collect outputs/"):
                return []
            with open(spool, "rb") as stream:
                return collect_tar(stream, "outputs", dest, max_file_bytes, log)
        finally:
            spool.unlink(missing_ok=True)

    def _download_outputs(self, spool: Path) -> bool:
        try:
            stream, _stat = self.client.api.get_archive(self.container_id, f"{WORKDIR}/outputs")
        except docker_module().errors.NotFound:
            return False  # no outputs/ folder (or no container)
        with open(spool, "wb") as f:
            for chunk in stream:
                f.write(chunk)
        return True

    def cleanup(self) -> None:
        """Remove the container, unless the target keeps them for debugging (keepContainer). Once.
        The raw log copy goes too: it holds the output unredacted; the history has it all by now."""
        self._copier.stop()
        self.raw_log.unlink(missing_ok=True)
        if self._cleaned:
            return
        if self.keep_container:
            log.info("keeping container %s (keepContainer: true)", self.container_id[:12])
            return
        docker = docker_module()
        try:
            call_with_retry(
                lambda: self.client.api.remove_container(self.container_id, force=True),
                self.outage,
                f"remove the container {self.container_id[:12]}",
            )
        except docker.errors.NotFound:
            log.info("container %s already gone", self.container_id[:12])
        self._cleaned = True

    def to_dict(self) -> dict[str, object]:
        """What `DockerExecutor.attach` needs: the container, the engine, our private folder."""
        return {
            "type": "docker",
            "container_id": self.container_id,
            "image": self.image,
            "workdir": WORKDIR,
            "private_dir": str(self.private_dir),
            "docker_host": self.docker_host,
            "keep_container": self.keep_container,
            "max_output_file_bytes": self.max_output_file_bytes,
        }

    # --- the end of a run ------------------------------------------------------------------------

    def _end(self, status: HandleStatus) -> HandleStatus:
        self._final = status
        return status

    def _lost(self) -> HandleStatus:
        if not self.outage.given_up():
            return HandleStatus(RunStatus.RUNNING, detail=self.outage.detail())
        self._copier.stop()
        return self._end(
            HandleStatus(
                RunStatus.FAILED,
                error=(
                    f"{self.outage.reason()}. The container {self.container_id[:12]} may still be running "
                    f"there: once the engine answers, see it with `docker ps -a --filter "
                    f"label=amlexec.run_id` and remove it with `docker rm -f {self.container_id[:12]}`."
                ),
            )
        )

    def _gone(self) -> HandleStatus:
        if self._cancel_file.exists():
            return HandleStatus(RunStatus.CANCELED, error=CANCELED)
        return HandleStatus(RunStatus.FAILED, error=f"the run's container {self.container_id[:12]} is gone")

    def _ended(self, state: dict[str, Any], host_config: dict[str, Any]) -> HandleStatus:
        """The final status of an ended container: exit code, who ended it, when it ran."""
        code = int(state.get("ExitCode", -1))
        if self._cancel_file.exists():
            status, error = RunStatus.CANCELED, CANCELED
        elif state.get("OOMKilled"):
            status, error = RunStatus.FAILED, self._out_of_memory(int(host_config.get("Memory") or 0))
        elif code == 0:
            status, error = RunStatus.COMPLETED, None
        else:
            status, error = RunStatus.FAILED, state.get("Error") or exit_reason(code)
        return HandleStatus(
            status,
            exit_code=code,
            error=error,
            started_at=engine_time(state.get("StartedAt")),
            finished_at=engine_time(state.get("FinishedAt")),
        )

    def _out_of_memory(self, limit_bytes: int) -> str:
        file = self.settings.compute_file
        if not limit_bytes:
            return f"the container ran out of memory (no `memory` limit in {file}: the Docker host ran out)"
        limit = self.settings.memory or _size_text(limit_bytes)
        return f"the container ran out of memory (limit {limit}: raise `memory` in {file})"


def exit_reason(code: int) -> str:
    """Why a container ended with a non-zero `code`, in words (a signal by name)."""
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = ""
        if name:
            return f"the script was killed by signal {code - 128} ({name}; exit code {code})"
    return f"the script exited with code {code}"


def _size_text(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} bytes"
