"""Is a process still the one we started? Pids are reused, so a pid alone cannot say.

The history uses this to tell a live follower from a dead one; the local executor to tell its run
from an unrelated process that got the same pid after a reboot or a long time.
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux /proc); None where unknown."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def is_zombie(pid: int) -> bool:
    """True for a process that has ended but is not reaped yet: it does no more work, whatever
    `kill(pid, 0)` says (a SIGKILLed kernel stays a zombie until the Jupyter server reaps it)."""
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] in ("Z", "X")


def same_process_alive(pid: int, started: int | None) -> bool:
    """True while `pid` runs and, when `started` is known, is the process that started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if is_zombie(pid):
        return False
    if started is None:
        return True
    now = start_ticks(pid)
    return now is None or now == started
