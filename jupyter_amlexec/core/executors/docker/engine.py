"""The connection to a Docker engine: docker-py imported lazily, the client made by a pluggable
factory from the settings (a remote engine is another address, or another factory), and a lost
engine told apart from a refusal so a run survives an engine that stops answering for a while.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from ...errors import TargetUnavailableError
from .settings import DockerSettings

log = logging.getLogger(__name__)

CLIENT_TIMEOUT_SECONDS = 120
# How long a run waits for a Docker engine that stopped answering (a restarted daemon, a dropped
# SSH tunnel) before it is given up as Failed. The work goes on in the container meanwhile.
ENGINE_LOST_GIVE_UP_SECONDS = 600.0
BACKOFF_FIRST_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 2.0  # a returning engine is noticed within 2 s; a refused connect is cheap

EngineFactory = Callable[[DockerSettings], Any]
"""Makes a docker-py client for the settings' engine (the default: `connect_engine`)."""

T = TypeVar("T")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def docker_module() -> Any:
    """docker-py, or the error that says how to install it.

    Imported without paramiko when nothing has imported it yet: docker-py imports it at once only
    for its ssh:// engines (55 ms of every CLI submit to a local engine, a third of docker-py's
    import); `ssh_support` gives it back to a client of an ssh:// engine."""
    if "docker" not in sys.modules and "paramiko" not in sys.modules:
        sys.modules["paramiko"] = None  # type: ignore[assignment]  # an import of it fails quietly
        try:
            return _import_docker()
        finally:
            if sys.modules.get("paramiko", False) is None:
                del sys.modules["paramiko"]
    return _import_docker()


def _import_docker() -> Any:
    try:
        import docker
    except ImportError:
        raise TargetUnavailableError(
            "Docker targets need docker-py, which is not installed: pip install 'jupyter_amlexec[docker]'."
        ) from None
    return docker


def ssh_support() -> None:
    """docker-py's ssh:// transport, for an engine reached that way (imports paramiko now)."""
    import docker.api.client as api_client
    import docker.transport as transport
    from docker.transport.sshconn import SSHHTTPAdapter

    transport.SSHHTTPAdapter = SSHHTTPAdapter
    api_client.SSHHTTPAdapter = SSHHTTPAdapter


def connect_engine(settings: DockerSettings) -> Any:
    """A docker-py client for `settings.docker_host`; DOCKER_TLS_VERIFY / DOCKER_CERT_PATH from the
    environment still apply (TLS to a tcp:// engine), whichever way the address was given."""
    environment = {**os.environ, "DOCKER_HOST": settings.docker_host}
    docker = docker_module()
    if settings.docker_host.startswith("ssh://"):
        ssh_support()
    return docker.from_env(environment=environment, timeout=CLIENT_TIMEOUT_SECONDS)


def engine_unavailable(settings: DockerSettings, exc: BaseException) -> TargetUnavailableError:
    """The error for an engine that does not answer, naming its address and where to change it."""
    return TargetUnavailableError(
        f"Target '{settings.target_name}': no Docker engine answers at {settings.docker_host} ({exc}). "
        f"Start Docker (e.g. `sudo systemctl start docker`), or point DOCKER_HOST (or `dockerHost` in "
        f"{settings.compute_file}) at a running engine."
    )


@contextmanager
def engine_errors(settings: DockerSettings) -> Iterator[None]:
    """Turn a lost connection to the engine into TargetUnavailableError naming the engine (a run
    that cannot even start then fails with that message, never a raw ConnectionError)."""
    try:
        yield
    except Exception as exc:
        if is_transport_error(exc):
            raise engine_unavailable(settings, exc) from exc
        raise


def is_transport_error(exc: BaseException) -> bool:
    """True when the engine could not be reached or the connection broke (not an engine's answer)."""
    docker = docker_module()
    if isinstance(exc, docker.errors.DockerException):
        # the engine answered (NotFound, APIError, ...), except docker-py's wrapped first contact
        return "error while fetching server api version" in str(exc).lower()
    import requests
    import urllib3

    transport = (
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.Timeout,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        OSError,
    )
    return isinstance(exc, transport)


def is_read_timeout(exc: BaseException) -> bool:
    """A blocking call's own timeout running out (the engine is there, the work goes on)."""
    import requests
    import urllib3

    if isinstance(exc, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and "read timed out" in str(exc).lower()


class Outage:
    """How long the engine has been unreachable, and when to try it next (exponential backoff).

    Shared by a handle's status calls; `failed` is told each transport error, `recovered` each answer.
    """

    def __init__(self, docker_host: str, give_up_after: float = ENGINE_LOST_GIVE_UP_SECONDS) -> None:
        self.docker_host = docker_host
        self.give_up_after = give_up_after
        self.since: float | None = None
        self.last_error = ""
        self.times = 0  # outages seen so far (each run of failures counts once)
        self._delay = BACKOFF_FIRST_SECONDS
        self._next_try = 0.0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            if self.since is None:
                self.since, self._delay = now, BACKOFF_FIRST_SECONDS
                self.times += 1
                log.warning("connection lost to the Docker engine at %s: %s", self.docker_host, exc)
            else:
                self._delay = min(self._delay * 2, BACKOFF_MAX_SECONDS)
            self.last_error = str(exc) or type(exc).__name__
            self._next_try = now + self._delay

    def recovered(self) -> None:
        with self._lock:
            if self.since is not None:
                log.warning(
                    "the Docker engine at %s answers again after %.1f s",
                    self.docker_host,
                    time.monotonic() - self.since,
                )
            self.since = None

    def seconds_to_next_try(self) -> float:
        return max(0.0, self._next_try - time.monotonic()) if self.active else 0.0

    def given_up(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.give_up_after

    def detail(self) -> str:
        # the same text for the whole outage: the runner records each change of detail
        return f"connection lost to the Docker engine at {self.docker_host}, retrying"

    def reason(self) -> str:
        limit = self.give_up_after
        took = f"{limit / 60:g} minutes" if limit >= 120 else f"{limit:g} seconds"
        return (
            f"lost the connection to the Docker engine at {self.docker_host} for {took} "
            f"(last error: {self.last_error})"
        )


def call_with_retry(call: Callable[[], T], outage: Outage, what: str) -> T:
    """`call()`, retried with backoff while the engine is unreachable; TargetUnavailableError once
    the outage passes its give-up time. Errors that are the engine's own answer pass through."""
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            outage.failed(exc)
            if outage.given_up():
                raise TargetUnavailableError(f"Could not {what}: {outage.reason()}.") from exc
            time.sleep(outage.seconds_to_next_try())
            continue
        outage.recovered()
        return result


def engine_time(stamp: object) -> float | None:
    """Epoch seconds of an engine timestamp (RFC 3339 with nanoseconds); None for the zero time."""
    match = _STAMP.match(str(stamp or ""))
    if match is None or match[1].startswith("0001-"):
        return None
    whole = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    offset = 0
    if match[3] != "Z":
        sign = -1 if match[3][0] == "-" else 1
        offset = sign * (int(match[3][1:3]) * 3600 + int(match[3][4:6]) * 60)
    return whole.timestamp() - offset + float("0." + (match[2] or "0"))
