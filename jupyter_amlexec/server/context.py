"""What every request shares: the server's root folder, one run history, sessions per project.

The history is opened once per server (its connections are per thread); a `Session` is kept per
project folder so a run submitted through the server keeps its follower thread in this process.
Blocking core calls run on one small thread pool, never on the IOLoop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..core.api import Session
from ..core.history import History
from ..core.paths import amlexec_home
from ..core.project import Project
from ..core.snapshot import SnapshotStore
from .hub import Hubs

T = TypeVar("T")
WORKERS = 8  # core calls are short SQLite/file reads; a prepare or a check holds one worker


class PathRefusedError(Exception):
    """A path from a request points outside what the server may touch (root dir, run folder)."""


@dataclass
class ServerContext:
    """Shared by every handler through `web_app.settings["amlexec"]`."""

    root_dir: Path
    home: Path
    history: History
    snapshots: SnapshotStore
    pool: ThreadPoolExecutor
    hubs: Hubs
    _sessions: dict[Path, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, root_dir: str | Path, home: Path | None = None) -> ServerContext:
        home = Path(home) if home is not None else amlexec_home()
        history = History(home)
        return cls(
            root_dir=Path(os.path.expanduser(str(root_dir))).resolve(),
            home=home,
            history=history,
            snapshots=SnapshotStore(home),
            pool=ThreadPoolExecutor(WORKERS, thread_name_prefix="amlexec-rest"),
            hubs=Hubs(history),
        )

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking core call on the pool; the IOLoop keeps serving other requests."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def folder(self, relative: str) -> Path:
        """A folder of the server's root from a request's path ('' = the root), confined to it."""
        if relative.startswith(("/", "\\")) or os.path.isabs(relative) or "\x00" in relative:
            raise PathRefusedError(f"Path {relative!r} must be relative to the server's root folder.")
        path = (self.root_dir / relative).resolve()
        if not path.is_relative_to(self.root_dir):
            raise PathRefusedError(f"Path {relative!r} is outside the server's root folder.")
        if path.is_file():
            path = path.parent
        if not path.is_dir():
            raise FileNotFoundError(f"No folder {relative!r} under the server's root folder.")
        return path

    def relative(self, path: Path) -> str:
        """A path as the file browser names it (relative to the root, '' for the root)."""
        rel = path.resolve().relative_to(self.root_dir).as_posix()
        return "" if rel == "." else rel

    def project_of(self, folder: Path) -> Project:
        """The project a folder belongs to, never one above the root: a project found outside the
        root would let a request read or write aml_config/ files the server must not reach."""
        project = Project.find(folder)
        if not project.root.resolve().is_relative_to(self.root_dir):
            return Project(folder)
        return project

    def session(self, relative: str) -> Session:
        """The session of the project that the folder `relative` belongs to (one per project)."""
        project = self.project_of(self.folder(relative))
        key = project.root.resolve()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = Session(project, self.history, self.snapshots, cwd=key)
                self._sessions[key] = session
            return session

    def session_of_run(self, run_id: str) -> Session:
        """The session of the project a recorded run was submitted from (for cancel and rerun)."""
        record = self.history.get(run_id)
        root = Path(record.project_path).resolve()
        with self._lock:
            session = self._sessions.get(root)
            if session is None:
                session = Session(Project(root), self.history, self.snapshots, cwd=root)
                self._sessions[root] = session
            return session

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
