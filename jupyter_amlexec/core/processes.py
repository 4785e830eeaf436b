"""Is a process still the one we started? Pids are reused, so a pid alone cannot say.

The history uses this to tell a live follower from a dead one; the local executor to tell its run
from an unrelated process that got the same pid after a reboot or a long time.
"""

from __future__ import annotations

import os
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux /proc); None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def same_process_alive(pid: int, started: int | None) -> bool:
    """True while `pid` runs and, when `started` is known, is the process that started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if started is None:
        return True
    now = start_ticks(pid)
    return now is None or now == started
