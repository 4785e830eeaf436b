"""One SSH command per run: send the snapshot, start the work detached, stream its log to the end.

A run on an SSH host is otherwise four commands or more before its first line (ask the blob cache,
push, start, look); each is a round trip to the host, which over a real network costs more than a
short script. Here one command does it all: its stdin carries the environment (one base64 line,
never on a command line) and then the push's tar; its stderr says "amlexec-started ..." as soon as
the work runs (the caller learns the pid while the log streams on) and ends with the follow loop's
trailer; its stdout is exactly the log's bytes. If the connection drops, only this command dies:
the work is detached, and the caller follows it again from the bytes it received.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from ..errors import TargetUnavailableError
from .blobsync import STALE_EXIT, BlobSync, PushPlan
from .detached import (
    STARTED_LINE,
    DetachedProcess,
    ProcessState,
    export_lines,
    follow_script,
    follow_trailer,
    launch_lines,
)
from .ssh import Sink

_STARTED = b"amlexec-started "


# The run was started by this very command, seconds ago, so its pid is surely its own: GNU tail
# follows the log with inotify and ends once that pid is gone (no process per look, the end seen
# within 5 ms). The wrapper is this shell's child, reaped while tail runs. A tail without --pid
# (not GNU) fails before writing a byte: the polling loop below then follows from offset 0.
_TAIL = """if tail -c +1 -s 0.005 -f --pid="$pid" {d}/output.log 2>/dev/null; then
  code=$(cat {d}/exit_code 2>/dev/null || true)
  printf 'amlexec-follow %s 0 %s\\n' "$(wc -c <{d}/output.log)" "${{code:--}}" >&2
  exit 0
fi"""


class StaleCacheError(TargetUnavailableError):
    """The host's blob cache was not what this process knew: plan the push again, asking the host."""


def launch_and_follow(
    sync: BlobSync,
    plan: PushPlan,
    argv: Sequence[str],
    *,
    state_dir: str,
    cwd: str,
    env: Mapping[str, str],
    on_started: Callable[[DetachedProcess], None],
    sink: Sink,
    interval: float = 0.05,
) -> ProcessState:
    """Push, start `argv` detached in `cwd`, and stream its log into `sink` until it ended.

    `on_started` gets the process as soon as it runs (on the calling thread, mid-command). Raises
    StaleCacheError before anything started when a trusted plan met a changed cache,
    TargetUnavailableError when the push or the start failed, TransportError when the connection
    dropped (after `on_started`: the work goes on, follow it again).
    """
    conn = sync.conn
    exports = base64.b64encode("\n".join(export_lines(env)).encode()).decode()
    script = "\n".join(
        [
            "IFS= read -r amlexec_env",
            plan.script,
            'eval "$(printf %s "$amlexec_env" | base64 -d)"',
            *launch_lines(argv, state_dir, cwd),
            f"started={STARTED_LINE}",
            "set -- $started; pid=$1; ticks=$3",
            "printf 'amlexec-started %s\\n' \"$started\" >&2",
            "set +e",
            _TAIL.format(d=shlex.quote(state_dir)),
            follow_script(state_dir, 0, '"$pid"', '"$ticks"', interval),
        ]
    )

    def started(process: DetachedProcess) -> None:
        sync.remember(plan)  # the push ended well: a concurrent submit need not ask either
        on_started(process)

    stderr = _StartWatch(state_dir, started)

    def produce(write: Callable[[bytes], None]) -> None:
        write(exports.encode() + b"\n")
        plan.produce(write)

    result = conn.run(["sh", "-c", script], stdin=produce, stdout=sink, stderr=stderr.add, timeout=None)
    if stderr.process is None:
        if result.exit_code == STALE_EXIT and plan.trusted:
            raise StaleCacheError("the host's blob cache changed")
        if result.exit_code not in (96, 97):
            raise sync.push_failed(result.exit_code, stderr.text)
        raise TargetUnavailableError(
            f"Could not start `{shlex.join(argv)[:200]}` on {conn.endpoint.describe()} in {state_dir} "
            f"(exit {result.exit_code}: {stderr.text.decode('utf-8', 'replace').strip() or 'no message'}). "
            f"The host needs sh, setsid and /proc."
        )
    return follow_trailer(replace(result, stderr=stderr.text), stderr.process, conn.endpoint.describe())


class _StartWatch:
    """The command's stderr: kept, and its "amlexec-started" line turned into the process at once."""

    def __init__(self, state_dir: str, on_started: Callable[[DetachedProcess], None]) -> None:
        self._state_dir = state_dir
        self._on_started = on_started
        self._parts: list[bytes] = []
        self.process: DetachedProcess | None = None

    @property
    def text(self) -> bytes:
        return b"".join(self._parts)

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        if self.process is not None:
            return
        text = self.text
        at = text.find(_STARTED)
        if at < 0 or b"\n" not in text[at:]:
            return
        fields = text[at + len(_STARTED) :].split(b"\n", 1)[0].decode().split()
        if len(fields) != 4:
            return
        self.process = DetachedProcess(
            self._state_dir, int(fields[0]), int(fields[1]), int(fields[2]), fields[3]
        )
        self._on_started(self.process)
