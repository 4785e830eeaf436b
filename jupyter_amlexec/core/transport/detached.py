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
from .ssh import CommandResult, Sink, SshConnection

LOG_NAME = "output.log"
EXIT_NAME = "exit_code"
PID_NAME = "pid"
STARTED_LINE = '"$amlexec_pid $amlexec_pid $amlexec_ticks $(date -u +%Y-%m-%dT%H:%M:%SZ)"'  # see launch_lines
READ_LIMIT = 1024 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# $1 = state dir, the rest = argv. The wrapper is the session (and group) leader: its pid is the
# group's id. Its pid file ("pid pgid start_ticks") is written with shell builtins and one mv, so
# the command starts a few ms after the launcher's fork; the launcher adds the start time. A TERM handler (not an ignore: children would inherit that) lets it record 143 after
# a cancel; HUP stays ignored for the command too, as with nohup.
_WRAPPER = r"""
d=$1; shift
trap '' HUP
trap 'true' TERM INT
ticks_of() { read -r s </proc/$1/stat; s=${s##*) }; set -- $s; ticks=${20}; }
ticks_of $$
printf '%s %s %s\n' $$ $$ "$ticks" >"$d/pid.tmp"
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
    exports = export_lines(env or {})
    script = "\n".join(["set -e", *exports, *launch_lines(argv, state_dir, cwd), f"echo {STARTED_LINE}"])
    result = conn.run(["sh", "-s"], stdin=script.encode(), timeout=timeout)
    fields = result.text().split()
    if result.exit_code != 0 or len(fields) != 4:
        err = result.stderr.decode("utf-8", "replace").strip()
        raise TargetUnavailableError(
            f"Could not start `{shlex.join(argv)[:200]}` on {conn.endpoint.describe()} in {state_dir} "
            f"(exit {result.exit_code}: {err or 'no message'}). The host needs sh, setsid and /proc."
        )
    return DetachedProcess(state_dir, int(fields[0]), int(fields[1]), int(fields[2]), fields[3])


def export_lines(env: Mapping[str, str]) -> list[str]:
    """`export NAME='value'` lines for a launcher script (which travels on stdin, never argv)."""
    lines = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(f"not a valid environment variable name: {name!r}.", key="EnvironmentVariables")
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def launch_lines(argv: Sequence[str], state_dir: str, cwd: str | None) -> list[str]:
    """Shell lines (under `set -e`) that start `argv` detached; then `{STARTED_LINE}` is
    "pid pgid start_ticks started_at" (the host's UTC clock).

    The wrapper's pid is `$!`: in a shell without job control (`sh -c`, `sh -s`) a background job
    is no group leader, so `setsid` makes it a session without forking. Its start time is read from
    /proc at once (no wait for the pid file); should the wrapper be gone already, its pid file says.
    """
    d = shlex.quote(state_dir)
    return [
        f"if [ -e {d}/{PID_NAME} ]; then echo 'state dir in use' >&2; exit 96; fi",
        f"mkdir -p {d}",
        f": >>{d}/{LOG_NAME}",
        f"cd {shlex.quote(cwd)}" if cwd else "cd",
        f"setsid sh -c {shlex.quote(_WRAPPER)} amlexec-detached {d} {shlex.join(argv)} "
        "</dev/null >/dev/null 2>&1 &",
        "amlexec_pid=$! amlexec_ticks=",
        "if read -r amlexec_s </proc/$amlexec_pid/stat; then",
        "  amlexec_s=${amlexec_s##*) }; set -- $amlexec_s; amlexec_ticks=${20}",
        "else",
        "  i=0",
        f"  while [ ! -s {d}/{PID_NAME} ]; do i=$((i+1)); [ $i -lt 3000 ] || exit 97; sleep 0.01; done",
        f"  set -- $(cat {d}/{PID_NAME}); amlexec_ticks=$3",
        "fi",
    ]


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
# It looks every 5 ms at first (a short run's end is seen at once), every 20 ms after 0.1 s of
# silence, and every `interval` after a second of it; any new log makes it quick again.
_FOLLOW = r"""d={d}; off={offset}; n=0; idle=0; code=; alive=1
while :; do
  [ -f "$d/exit_code" ] && code=$(cat "$d/exit_code")
  size=$(wc -c <"$d/output.log")
  if [ "$size" -gt "$off" ]; then
    tail -c +$((off + 1)) "$d/output.log" | head -c $((size - off)); off=$size; idle=0
  else
    idle=$((idle + 1))
  fi
  [ -n "$code" ] && break
  n=$((n + 1))
  if [ $((n % 20)) = 0 ]; then
    {alive}
    [ "$alive" = 1 ] || {{ [ -f "$d/exit_code" ] || break; continue; }}
  fi
  if [ $idle -lt 20 ]; then sleep 0.005; elif [ $idle -lt 65 ]; then sleep 0.02; else sleep {interval}; fi
done
printf 'amlexec-follow %s %s %s\n' "$off" "$alive" "${{code:--}}" >&2
"""


def follow_script(state_dir: str, offset: int, pid: str, ticks: str, interval: float = 0.05) -> str:
    """The follow loop as shell text; `pid` and `ticks` may be shell expansions ("$pid")."""
    return _FOLLOW.format(
        d=shlex.quote(state_dir),
        offset=offset,
        interval=f"{interval:g}",
        alive=_ALIVE.format(pid=pid, ticks=ticks).replace("\n", "\n    "),
    )


def follow_trailer(result: CommandResult, proc: DetachedProcess | None, where: str) -> ProcessState:
    """The final state a follow loop's trailer (its last stderr line) reports."""
    trailer = result.stderr.decode("utf-8", "replace").strip().splitlines()
    fields = trailer[-1].split() if trailer else []
    if result.exit_code != 0 or len(fields) < 4 or fields[0] != "amlexec-follow":
        what = f"process {proc.pid} in {proc.state_dir}" if proc is not None else "the run"
        raise TargetUnavailableError(
            f"Could not follow the log of {what} on {where}: "
            f"{' '.join(trailer)[-500:] or 'exit ' + str(result.exit_code)}"
        )
    end, code = int(fields[1]), None if fields[3] == "-" else int(fields[3])
    ended = fields[4] if code is not None and len(fields) > 4 else None
    return ProcessState(fields[2] == "1" and code is None, code, ended, b"", end, end)


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
    script = follow_script(proc.state_dir, offset, str(proc.pid), str(proc.start_ticks), interval)
    result = conn.run(["sh", "-c", script], stdout=sink, timeout=timeout)
    return follow_trailer(result, proc, conn.endpoint.describe())


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
    pid_file = f"{shlex.quote(proc.state_dir)}/{PID_NAME}"
    script = "\n".join(
        [
            # the wrapper writes its pid file once its traps are set: a TERM before would end it
            # without an exit code (a cancel right after the start)
            f"i=0; while [ ! -s {pid_file} ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done",
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
