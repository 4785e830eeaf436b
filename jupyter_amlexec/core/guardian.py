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

Chosen over a per-run follower process (one Python start per run, ~100 ms of CPU each, and a lease
hand-off for every run) and over a per-home agent (a daemon that must be found, started, upgraded
and stopped); the guardian costs one process start per submitting process, off the submit path, and
goes away by itself when its runs are done. See docs/contracts.md, "Self-finishing runs".
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .runner import StartRequest

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")


@dataclass(frozen=True)
class Message:
    """One instruction from a parent to its guardian."""

    kind: str  # "watch" | "follow"
    home: str
    run_id: str
    request: StartRequest


class GuardianLink:
    """The parent's side: starts the guardian on first use and writes messages to its pipe."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, home: Path) -> int:
        """Make sure the guardian runs; its pid (to name it in a run's lease before a hand-over)."""
        with self._lock:
            return self._ensure(home).pid

    def watch(self, home: Path, run_id: str, request: StartRequest) -> int:
        """Tell the guardian about a run this process follows; returns the guardian's pid."""
        return self._send(Message("watch", str(home), run_id, request))

    def hand_over(self, home: Path, run_id: str, request: StartRequest) -> int:
        """Give the run to the guardian to drive from now on; returns the guardian's pid."""
        return self._send(Message("follow", str(home), run_id, request))

    def _send(self, message: Message) -> int:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            process = self._ensure(Path(message.home))
            assert process.stdin is not None
            process.stdin.write(_HEADER.pack(len(data)) + data)
            process.stdin.flush()
            return process.pid

    def _ensure(self, home: Path) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        logs = home / "guardians"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{os.getpid()}.log", "ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "jupyter_amlexec.core.guardian", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return self._process


LINK = GuardianLink()
"""This process's guardian (started on the first submit)."""


def _read_messages(stream: BinaryIO) -> list[Message] | None:
    """The next message from the pipe as a one-item list, or None at end-of-file (the parent is gone)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    message = pickle.loads(body)
    if not isinstance(message, Message):
        log.error("ignoring a message of type %s", type(message).__name__)
        return []
    return [message]


class Guardian:
    """The guardian process's state: the runs it watches and the followers it drives."""

    def __init__(self) -> None:
        self.watched: dict[tuple[str, str], StartRequest] = {}
        self.followers: list[object] = []

    def receive(self, message: Message) -> None:
        if message.kind == "follow":
            self.drive(message.home, message.run_id, message.request)
        else:
            self.watched[(message.home, message.run_id)] = message.request

    def take_over_watched(self) -> None:
        """The parent is gone: drive every watched run that has not ended."""
        for (home, run_id), request in self.watched.items():
            try:
                self.drive(home, run_id, request)
            except Exception:
                log.exception("could not take over run %s", run_id)

    def drive(self, home: str, run_id: str, request: StartRequest) -> None:
        """Follow a run to its end: re-attach to started work, or start it from the request."""
        from .executors import create_executor
        from .history import History
        from .runner import FOLLOWERS, RunFollower

        history = History(Path(home))
        record = history.get(run_id)
        if record.status.terminal or not history.claim_follower(run_id, os.getpid()):
            return  # ended, or a live process (a reader that re-attached) follows it already
        executor = create_executor(request.spec.target, Path(home))
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
            log.info("guardian %d drives run %s", os.getpid(), run_id)
            follower.begin()
            self.followers.append(follower)

    def wait(self) -> None:
        from .runner import RunFollower

        for follower in self.followers:
            if isinstance(follower, RunFollower):
                follower.wait()


def main(argv: list[str]) -> int:
    """`python -m jupyter_amlexec.core.guardian PARENT_PID`, reading messages from stdin."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s guardian %(process)d %(levelname)s %(message)s"
    )
    parent = int(argv[1]) if len(argv) > 1 else os.getppid()
    guardian = Guardian()
    stream = sys.stdin.buffer
    while (messages := _read_messages(stream)) is not None:
        for message in messages:
            try:
                guardian.receive(message)
            except Exception:
                log.exception("could not handle %s of run %s", message.kind, message.run_id)
    log.info("parent %d is gone; taking over its unfinished runs", parent)
    guardian.take_over_watched()
    guardian.wait()
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: unpickled messages are instances of
    # jupyter_amlexec.core.guardian.Message, which is not this file's __main__.Message.
    from jupyter_amlexec.core.guardian import main as _main

    sys.exit(_main(sys.argv))
