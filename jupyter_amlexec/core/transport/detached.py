"""Processes on a remote host that outlive the SSH connection that started them.

`start_detached` runs a command in its own session and process group (`setsid`, SIGHUP ignored as
`nohup` does) with stdout+stderr appended to `<state_dir>/output.log`; when the command ends, its
wrapper writes `<state_dir>/exit_code` atomically (temp + mv). The truth about the work is those
files and the process table of the host, so any process can re-attach with `DetachedProcess`'s
dict and read the log from a byte cursor. Needs only `sh`, coreutils and Linux's /proc on the host.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ..errors import ConfigError, TargetUnavailableError
from .ssh import Sink, SshConnection

LOG_NAME = "output.log"
EXIT_NAME = "exit_code"
PID_NAME = "pid"
READ_LIMIT = 1024 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# $1 = state dir, the rest = argv. The wrapper is the session (and group) leader: its pid is the
# group's id. A TERM handler (not an ignore: children would inherit that) lets it record 143 after
# a cancel; HUP stays ignored for the command too, as with nohup.
_WRAPPER = r"""
d=$1; shift
trap '' HUP
trap 'true' TERM INT
stat_ticks() { s=$(cat /proc/$1/stat 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
printf '%s %s %s %s\n' $$ $$ "$(stat_ticks $$)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$d/pid.tmp"
mv -f "$d/pid.tmp" "$d/pid"
"$@" >>"$d/output.log" 2>&1 </dev/null
code=$?
printf '%s %s\n' "$code" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$d/exit_code.tmp"
mv -f "$d/exit_code.tmp" "$d/exit_code"
"""

# alive=1: our process runs; ours=1: the pid still names our process (perhaps a zombie)
_ALIVE = r"""alive=0; ours=0
if s=$(cat /proc/{pid}/stat 2>/dev/null); then
  s=${{s##*) }}; set -- $s
  if [ "${{20}}" = {ticks} ]; then ours=1; [ "$1" != Z ] && alive=1; fi
fi"""


@dataclass(frozen=True)
class DetachedProcess:
    """A command running detached on a host; pid + start time identify it (a pid alone is reused)."""

    state_dir: str  # absolute path on the host
    pid: int
    pgid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: clock ticks after boot at which it started
    started_at: str  # UTC ISO-8601, the host's clock

    @property
    def log_path(self) -> str:
        """stdout + stderr of the command, appended as it runs."""
        return f"{self.state_dir}/{LOG_NAME}"

    @property
    def exit_path(self) -> str:
        """Written (atomically) when the command ended: "<exit code> <UTC end time>"."""
        return f"{self.state_dir}/{EXIT_NAME}"

    def to_dict(self) -> dict[str, object]:
        """Enough to re-attach from another process (stored with the run)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DetachedProcess:
        """The process `to_dict` described (from a run record, in any process)."""
        return cls(
            state_dir=str(data["state_dir"]),
            pid=int(str(data["pid"])),
            pgid=int(str(data["pgid"])),
            start_ticks=int(str(data["start_ticks"])),
            started_at=str(data["started_at"]),
        )


@dataclass(frozen=True)
class ProcessState:
    """One look at a detached process: alive?, its exit code once written, and a piece of its log."""

    alive: bool
    exit_code: int | None
    ended_at: str | None
    log: bytes  # the log from the cursor asked for, at most the limit asked for
    next_offset: int  # the cursor for the next read: no gap, no duplicate
    log_size: int  # the log's size when looked at (the log may have grown since)

    @property
    def finished(self) -> bool:
        """Exit code written and the log read to its end: nothing more will come."""
        return self.exit_code is not None and self.next_offset >= self.log_size


def start_detached(
    conn: SshConnection,
    argv: Sequence[str],
    *,
    state_dir: str,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> DetachedProcess:
    """Start `argv` on the host in its own session; returns once its pid file is written.

    `env` travels in the launcher's stdin, not on a command line (no other user sees it in `ps`).
    `state_dir` must not hold an earlier process's files.
    """
    if not argv:
        raise ConfigError("nothing to run: the command is empty.")
    exports = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(f"not a valid environment variable name: {name!r}.", key="EnvironmentVariables")
        exports.append(f"export {name}={shlex.quote(value)}")
    d = shlex.quote(state_dir)
    script = "\n".join(
        [
            "set -e",
            f"if [ -e {d}/{PID_NAME} ]; then echo 'state dir in use' >&2; exit 96; fi",
            f"mkdir -p {d}",
            f": >>{d}/{LOG_NAME}",
            *exports,
            f"cd {shlex.quote(cwd)}" if cwd else "cd",
            f"setsid sh -c {shlex.quote(_WRAPPER)} amlexec-detached {d} {shlex.join(argv)} "
            "</dev/null >/dev/null 2>&1 &",
            "i=0",
            f"while [ ! -s {d}/{PID_NAME} ]; do i=$((i+1)); [ $i -lt 3000 ] || exit 97; sleep 0.01; done",
            f"cat {d}/{PID_NAME}",
        ]
    )
    result = conn.run(["sh", "-s"], stdin=script.encode(), timeout=timeout)
    fields = result.text().split()
    if result.exit_code != 0 or len(fields) != 4:
        err = result.stderr.decode("utf-8", "replace").strip()
        raise TargetUnavailableError(
            f"Could not start `{shlex.join(argv)[:200]}` on {conn.endpoint.describe()} in {state_dir} "
            f"(exit {result.exit_code}: {err or 'no message'}). The host needs sh, setsid and /proc."
        )
    return DetachedProcess(state_dir, int(fields[0]), int(fields[1]), int(fields[2]), fields[3])


def poll(
    conn: SshConnection,
    proc: DetachedProcess,
    offset: int = 0,
    limit: int = READ_LIMIT,
    timeout: float = 30.0,
) -> ProcessState:
    """Alive, exit code and the log from `offset`, in one round trip.

    The exit code is read before the log, so once it is there the log read is final: keep reading
    from `next_offset` until `finished`.
    """
    d = shlex.quote(proc.state_dir)
    script = "\n".join(
        [
            _ALIVE.format(pid=proc.pid, ticks=proc.start_ticks),
            f"code=$(cat {d}/{EXIT_NAME} 2>/dev/null || true)",
            f"size=$(wc -c <{d}/{LOG_NAME} 2>/dev/null || echo 0)",
            'printf "%s %s %s %s\\n" "$alive" $size ${code:--}',
            f"tail -c +{offset + 1} {d}/{LOG_NAME} 2>/dev/null | head -c {limit}",
        ]
    )
    result = conn.run(["sh", "-c", script], timeout=timeout)
    header, _, data = result.stdout.partition(b"\n")
    fields = header.decode().split()
    if result.exit_code != 0 or len(fields) < 3:
        raise TargetUnavailableError(
            f"Could not read the state of process {proc.pid} in {proc.state_dir} on "
            f"{conn.endpoint.describe()}: {result.stderr.decode('utf-8', 'replace').strip() or header!r}"
        )
    code = None if fields[2] == "-" else int(fields[2])
    ended = fields[3] if code is not None and len(fields) > 3 else None
    return ProcessState(fields[0] == "1", code, ended, data, offset + len(data), int(fields[1]))


# Streams the log from an offset while the process runs; ends when the exit file appears (read
# before the last log read, so that read is final) or the process is gone without one. Exactly
# the bytes counted are written (head -c), so the caller's offset is the host's. Trailer on stderr.
_FOLLOW = r"""d={d}; off={offset}; n=0; code=; alive=1
while :; do
  [ -f "$d/exit_code" ] && code=$(cat "$d/exit_code")
  size=$(wc -c <"$d/output.log")
  if [ "$size" -gt "$off" ]; then
    tail -c +$((off + 1)) "$d/output.log" | head -c $((size - off)); off=$size
  fi
  [ -n "$code" ] && break
  n=$((n + 1))
  if [ $((n % 20)) = 0 ]; then
    {alive}
    [ "$alive" = 1 ] || {{ [ -f "$d/exit_code" ] || break; continue; }}
  fi
  sleep {interval}
done
printf 'amlexec-follow %s %s %s\n' "$off" "$alive" "${{code:--}}" >&2
"""


def follow(
    conn: SshConnection,
    proc: DetachedProcess,
    offset: int,
    sink: Sink,
    *,
    interval: float = 0.05,
    timeout: float | None = None,
) -> ProcessState:
    """Stream the log from `offset` into `sink` as it grows, until the process ends (one channel).

    Returns the final state (`log` empty: it went to the sink). If the connection drops, a
    TransportError is raised; the bytes the sink got are exactly those of the log from `offset`,
    so following again from `offset + received` leaves no gap and no duplicate.
    """
    script = _FOLLOW.format(
        d=shlex.quote(proc.state_dir),
        offset=offset,
        interval=f"{interval:g}",
        alive=_ALIVE.format(pid=proc.pid, ticks=proc.start_ticks).replace("\n", "\n    "),
    )
    result = conn.run(["sh", "-c", script], stdout=sink, timeout=timeout)
    trailer = result.stderr.decode("utf-8", "replace").strip().splitlines()
    fields = trailer[-1].split() if trailer else []
    if result.exit_code != 0 or len(fields) < 4 or fields[0] != "amlexec-follow":
        raise TargetUnavailableError(
            f"Could not follow the log of process {proc.pid} in {proc.state_dir} on "
            f"{conn.endpoint.describe()}: {' '.join(trailer)[-500:] or 'exit ' + str(result.exit_code)}"
        )
    end, code = int(fields[1]), None if fields[3] == "-" else int(fields[3])
    ended = fields[4] if code is not None and len(fields) > 4 else None
    return ProcessState(fields[2] == "1" and code is None, code, ended, b"", end, end)


def is_alive(conn: SshConnection, proc: DetachedProcess) -> bool:
    """True while the process started is running (same pid AND start time: not a reused pid)."""
    result = conn.run(["sh", "-c", _ALIVE.format(pid=proc.pid, ticks=proc.start_ticks) + "\necho $alive"])
    return result.text().strip() == "1"


def kill_group(conn: SshConnection, proc: DetachedProcess, *, grace: float = 5.0) -> bool:
    """End the whole process group: TERM, then KILL after `grace` s. True if anything was running.

    Idempotent. A group id is not reused while any member lives, so signalling it cannot reach
    someone else's processes; the leader's start time is checked while the leader lives.
    """
    tries = max(1, int(grace * 10))
    pg = proc.pgid
    script = "\n".join(
        [
            _ALIVE.format(pid=proc.pid, ticks=proc.start_ticks),
            f'if [ "$ours" = 0 ] && [ -r /proc/{proc.pid}/stat ] && [ {proc.pid} = {pg} ]; then',
            "  echo reused; exit 0",  # the leader's pid now names another process: leave it be
            "fi",
            f"kill -0 -{pg} 2>/dev/null || {{ echo gone; exit 0; }}",
            f"kill -TERM -{pg} 2>/dev/null || true",
            "i=0",
            f"while kill -0 -{pg} 2>/dev/null && [ $i -lt {tries} ]; do sleep 0.1; i=$((i+1)); done",
            f"kill -KILL -{pg} 2>/dev/null || true",
            "i=0",
            f"while kill -0 -{pg} 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done",
            "echo killed",
        ]
    )
    result = conn.run(["sh", "-c", script], timeout=grace + 30)
    return result.text().strip() == "killed"
