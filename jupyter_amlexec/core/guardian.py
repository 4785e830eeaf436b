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

import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .runner import StartRequest

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!II")  # sizes of the JSON head and of the pickled start request


@dataclass(frozen=True)
class Message:
    """One instruction from a parent to its guardian. The start request stays pickled until the
    guardian needs it, so a guardian that is never needed imports next to nothing (it costs one
    bare interpreter start per submitting process)."""

    kind: str  # "watch" | "follow"
    home: str
    run_id: str
    request_pickle: bytes

    def request(self) -> StartRequest:
        from .runner import StartRequest

        request = pickle.loads(self.request_pickle)
        if not isinstance(request, StartRequest):
            raise TypeError(f"run {self.run_id}: not a start request but a {type(request).__name__}")
        return request


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
        return self._send("watch", home, run_id, request)

    def hand_over(self, home: Path, run_id: str, request: StartRequest) -> int:
        """Give the run to the guardian to drive from now on; returns the guardian's pid."""
        return self._send("follow", home, run_id, request)

    def _send(self, kind: str, home: Path, run_id: str, request: StartRequest) -> int:
        head = json.dumps({"kind": kind, "home": str(home), "run_id": run_id}).encode()
        body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            process = self._ensure(home)
            assert process.stdin is not None
            process.stdin.write(_HEADER.pack(len(head), len(body)) + head + body)
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


def _read_message(stream: BinaryIO) -> Message | None:
    """The next message from the pipe, or None at end-of-file (the parent is gone)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    head_size, body_size = _HEADER.unpack(header)
    head, body = stream.read(head_size), stream.read(body_size)
    if len(head) < head_size or len(body) < body_size:
        return None
    fields = json.loads(head)
    return Message(str(fields["kind"]), str(fields["home"]), str(fields["run_id"]), body)


class Guardian:
    """The guardian process's state: the runs it watches and the followers it drives."""

    def __init__(self) -> None:
        self.watched: list[Message] = []
        self.followers: list[object] = []

    def receive(self, message: Message) -> None:
        if message.kind == "follow":
            self.drive(message)
        else:
            self.watched.append(message)

    def take_over_watched(self) -> None:
        """The parent is gone: drive every watched run that has not ended."""
        for message in self.watched:
            try:
                self.drive(message)
            except Exception:
                log.exception("could not take over run %s", message.run_id)

    def drive(self, message: Message) -> None:
        """Follow a run to its end: re-attach to started work, or start it from the request."""
        from .executors import create_executor
        from .history import History
        from .runner import FOLLOWERS, RunFollower

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
    while (message := _read_message(stream)) is not None:
        try:
            guardian.receive(message)
        except Exception:
            log.exception("could not handle %s of run %s", message.kind, message.run_id)
    log.info("parent %d is gone; taking over its unfinished runs", parent)
    guardian.take_over_watched()
    guardian.wait()
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy, so there is one Message class.
    from jupyter_amlexec.core.guardian import main as _main

    sys.exit(_main(sys.argv))
