"""Retrying a host that dropped: exponential backoff, a "connection lost, retrying" report, a limit.

A lost connection says nothing about the work on the host (it goes on, detached); the caller keeps
trying for `give_up_after` seconds (default 5 minutes), reporting each wait, then raises a
TransportError that says how long the host was unreachable. Refusals (host key, authentication)
are not retried: waiting does not fix them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import TransportError
from .ssh import ConnectionPool, SshConnection, shared_pool
from .sshconfig import Endpoint

log = logging.getLogger(__name__)
T = TypeVar("T")
GIVE_UP_AFTER = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """Waits of `initial` seconds doubling up to `max_delay`; no new attempt after `give_up_after` s."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 15.0
    give_up_after: float = GIVE_UP_AFTER

    def delays(self) -> Callable[[], float]:
        """A fresh sequence of waits for one outage: each call gives the next."""
        state = [self.initial]

        def next_delay() -> float:
            delay = state[0]
            state[0] = min(delay * self.factor, self.max_delay)
            return delay

        return next_delay


def call_with_retry(
    endpoint: Endpoint,
    action: Callable[[SshConnection], T],
    *,
    on_retry: Callable[[str], None] | None = None,
    policy: RetryPolicy | None = None,
    pool: ConnectionPool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`action(connection)`, reconnecting and calling it again after each TransportError.

    `on_retry` receives "connection lost (...); retrying in N s" before each wait (a run shows it as
    its detail). The action must be safe to repeat (reads, idempotent writes).
    """
    policy = policy or RetryPolicy()
    pool = pool or shared_pool()
    next_delay = policy.delays()
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return action(pool.get(endpoint))
        except TransportError as exc:
            pool.discard(endpoint)
            attempt += 1
            elapsed = time.monotonic() - started
            delay = next_delay()
            if elapsed + delay > policy.give_up_after:
                raise TransportError(
                    f"{endpoint.describe()} stayed unreachable for {elapsed:.0f} s ({attempt} attempts; "
                    f"last: {exc}). Gave up after {policy.give_up_after:.0f} s. Work started there "
                    f"goes on; try again once the host answers."
                ) from exc
            message = f"connection lost ({exc}); retrying in {delay:.1f} s"
            log.info("ssh %s: %s", endpoint.describe(), message)
            if on_retry is not None:
                on_retry(message)
            sleep(delay)
