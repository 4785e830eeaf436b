"""The guardian: runs finish in the history even when the process that submitted them is gone.

Each process that submits (a kernel, the CLI) starts one guardian the first time it submits: a
detached Python process (its own session, so a kernel's interrupt or kill does not reach it) that
holds the read end of a pipe from its parent. For every run the parent tells it about, it keeps the
start request (in memory only: it holds resolved secrets, which are never stored). Two cases:

- `watch`: the parent follows the run itself (live widget, lowest latency). When the pipe reaches
  end-of-file — the parent exited or was SIGKILLed — the guardian takes over every watched run that
  is not terminal yet: it re-attaches to the work through the executor's handle, or, when the parent
  died before the work started, prepares and starts it from the request.
- `follow`: the parent hands the run over at once (`amlexec experiment submit -a`), and the guardian
  drives it from Queued to its end.
- `done`: the parent recorded a watched run's end itself; the guardian forgets it. A guardian whose
  runs all ended this way exits at end-of-file without importing the runner or opening the history,
  so a CLI submit that waits for its run pays one bare interpreter start for its guarantee.

Chosen over a per-run follower process (one Python start per run, ~100 ms of CPU each, and a lease
hand-off for every run) and over a per-home agent (a daemon that must be found, started, upgraded
and stopped); the guardian costs one process start per submitting process, off the submit path, and
goes away by itself when its runs are done. See docs/contracts.md, "Self-finishing runs".
"""

from __future__ import annotations

# Only what the guardian's own loop needs is imported here: a guardian starts once per submitting
# process (every CLI submit), and one that is never needed should cost little more than a bare
# interpreter (~10 ms of CPU rather than ~45 ms with logging, json, dataclasses and typing;
# `_thread`'s lock rather than `threading`'s, which costs another ~4 ms).
import _thread
import os
import struct
import sys

TYPE_CHECKING = False  # typing's own flag, without importing typing
if TYPE_CHECKING:
    import logging
    import subprocess
    from pathlib import Path
    from typing import BinaryIO

    from .runner import StartRequest

_HEADER = struct.Struct("!II")  # sizes of the head (kind, home, run id; NUL-separated) and of the request


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(__name__)


class Message:
    """One instruction from a parent to its guardian. The start request stays pickled until the
    guardian needs it, so a guardian that is never needed imports next to nothing (it costs one
    bare interpreter start per submitting process)."""

    __slots__ = ("kind", "home", "run_id", "request_pickle")

    def __init__(self, kind: str, home: str, run_id: str, request_pickle: bytes) -> None:
        self.kind = kind  # "watch" | "follow" | "done"
        self.home = home
        self.run_id = run_id
        self.request_pickle = request_pickle

    def encode(self) -> bytes:
        head = "\0".join((self.kind, self.home, self.run_id)).encode("utf-8", "surrogateescape")
        return _HEADER.pack(len(head), len(self.request_pickle)) + head + self.request_pickle

    def request(self) -> StartRequest:
        import pickle

        from .runner import StartRequest

        request = pickle.loads(self.request_pickle)
        if not isinstance(request, StartRequest):
            raise TypeError(f"run {self.run_id}: not a start request but a {type(request).__name__}")
        return request


class GuardianLink:
    """The parent's side: starts the guardian on first use and writes messages to its pipe."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = _thread.allocate_lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, home: Path) -> int:
        """Make sure the guardian runs; its pid (to name it in a run's lease before a hand-over)."""
        with self._lock:
            return self._ensure(home).pid

    def watch(self, home: Path, run_id: str, request: StartRequest) -> int:
        """Tell the guardian about a run this process follows; returns the guardian's pid."""
        return self._send("watch", home, run_id, request)

    def hand_over(self, home: Path, run_id: str, request: StartRequest) -> int:
        """Give the run to the guardian to drive from now on; returns the guardian's pid."""
        return self._send("follow", home, run_id, request)

    def release(self, home: Path, run_id: str) -> None:
        """A watched run's end is recorded: the guardian need not look at it when this process exits.
        Best effort: a guardian that missed it finds the run terminal in the history instead."""
        with self._lock:
            process = self._process
            if process is None or process.stdin is None or process.poll() is not None:
                return
            try:
                process.stdin.write(Message("done", str(home), run_id, b"").encode())
                process.stdin.flush()
            except (OSError, ValueError):  # the guardian is gone, or this process is shutting down
                _log().debug("could not tell the guardian that run %s ended", run_id)

    def _send(self, kind: str, home: Path, run_id: str, request: StartRequest) -> int:
        import pickle

        body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            process = self._ensure(home)
            assert process.stdin is not None
            process.stdin.write(Message(kind, str(home), run_id, body).encode())
            process.stdin.flush()
            return process.pid

    def _ensure(self, home: Path) -> subprocess.Popen[bytes]:
        import subprocess

        if self._process is not None and self._process.poll() is None:
            return self._process
        logs = home / "guardians"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{os.getpid()}.log"
        with open(log_path, "ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(os.getpid()), str(log_path)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return self._process


# `-c` rather than `-m`: runpy and a second copy of this module as __main__ cost a guardian time.
_ENTRY = "import sys; from jupyter_amlexec.core.guardian import main; sys.exit(main(sys.argv))"

LINK = GuardianLink()
"""This process's guardian (started on the first submit)."""


def _read_message(stream: BinaryIO) -> Message | None:
    """The next message from the pipe, or None at end-of-file (the parent is gone)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    head_size, body_size = _HEADER.unpack(header)
    head, body = stream.read(head_size), stream.read(body_size)
    if len(head) < head_size or len(body) < body_size:
        return None
    kind, home, run_id = head.decode("utf-8", "surrogateescape").split("\0")
    return Message(kind, home, run_id, body)


class Guardian:
    """The guardian process's state: the runs it watches and the followers it drives."""

    def __init__(self) -> None:
        self.watched: list[Message] = []
        self.followers: list[object] = []

    def receive(self, message: Message) -> None:
        if message.kind == "follow":
            self.drive(message)
        elif message.kind == "done":
            key = (message.home, message.run_id)
            self.watched = [m for m in self.watched if (m.home, m.run_id) != key]
        else:
            self.watched.append(message)

    def take_over_watched(self) -> None:
        """The parent is gone: drive every watched run that has not ended."""
        for message in self.watched:
            try:
                self.drive(message)
            except Exception:
                _log().exception("could not take over run %s", message.run_id)

    def drive(self, message: Message) -> None:
        """Follow a run to its end: re-attach to started work, or start it from the request."""
        from pathlib import Path

        from .executors import create_executor
        from .history import History
        from .runner import FOLLOWERS, RunFollower

        _logging_on()
        home, run_id = message.home, message.run_id
        history = History(Path(home))
        record = history.get(run_id)
        if record.status.terminal or not history.claim_follower(run_id, os.getpid()):
            return  # ended, or a live process (a reader that re-attached) follows it already
        request = message.request()
        executor = create_executor(request.spec.target, Path(home), request.spec.project_root)
        if record.handle is not None:
            follower = RunFollower(
                history,
                executor,
                run_id,
                handle=executor.attach(record.handle),
                max_output_file_bytes=request.spec.max_output_file_bytes,
                secrets=request.spec.secrets,
            )
        else:
            follower = RunFollower(history, executor, run_id, start=request)
        if FOLLOWERS.add(follower) is follower:
            _log().info("guardian %d drives run %s", os.getpid(), run_id)
            follower.begin()
            self.followers.append(follower)

    def wait(self) -> None:
        if not self.followers:
            return  # nothing driven here: the runner was never imported, and need not be now
        from .runner import RunFollower

        for follower in self.followers:
            if isinstance(follower, RunFollower):
                follower.wait()


def main(argv: list[str]) -> int:
    """The guardian process (argv: [-c, PARENT_PID, LOG_PATH]), reading messages from stdin."""
    parent = int(argv[1]) if len(argv) > 1 else os.getppid()
    guardian = Guardian()
    stream = sys.stdin.buffer
    while (message := _read_message(stream)) is not None:
        try:
            guardian.receive(message)
        except Exception:
            _logging_on()
            _log().exception("could not handle %s of run %s", message.kind, message.run_id)
    if guardian.watched or guardian.followers:
        _logging_on()
        _log().info("parent %d is gone; taking over its unfinished runs", parent)
    guardian.take_over_watched()
    guardian.wait()
    if len(argv) > 2:
        _remove_if_empty(argv[2])
    return 0


def _remove_if_empty(log_path: str) -> None:
    """A guardian that had nothing to say leaves no file (one per submitting process would pile up)."""
    sys.stdout.flush()
    try:
        if os.fstat(sys.stdout.fileno()).st_size == 0 and os.stat(log_path).st_size == 0:
            os.unlink(log_path)
    except (OSError, ValueError):
        pass


def _logging_on() -> None:
    """The guardian's log (its stdout, a file under AMLEXEC_HOME/guardians), set up when first needed."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s guardian %(process)d %(levelname)s %(message)s"
    )
