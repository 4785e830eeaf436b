"""Content-addressed file contents (blobs) named by their sha256, stored once however many runs use them.

Creating one file per blob costs ~0.1 ms on ext4, more than reading and hashing a small source
file, so small blobs are appended to pack files instead (one per write session, immutable once
named) with a SQLite index of (digest -> pack, offset, size); large blobs stay loose files under
`blobs/<2 hex>/<digest>`, copied in the kernel and hashed from the copy in worker threads while
the calling thread packs the small ones. A crash leaves at most an unnamed temporary file: a pack
is renamed into place before its index rows commit, so every indexed blob is readable.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import SnapshotError

PACK_LIMIT = 1024 * 1024  # blobs up to this size go into packs; larger ones are loose files
_BATCH_BYTES = 16 * 1024 * 1024  # small blobs held in memory before they are looked up and appended
_QUERY_CHUNK = 500  # digests per `IN (...)` query (SQLite's variable limit is 999 on old builds)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS packed (
    digest TEXT PRIMARY KEY,
    pack TEXT NOT NULL,            -- packs/<pack>.pack
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob's bytes are: a file, and the byte range inside it (the whole file when loose)."""

    path: Path
    offset: int
    size: int


class BlobStore:
    """Blobs under one home folder: `blobs/` (loose), `packs/` and `packs.sqlite` (packed)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.loose_dir = self.home / "blobs"
        self.pack_dir = self.home / "packs"
        self.index_path = self.home / "packs.sqlite"
        self._local = threading.local()

    # --- writing ------------------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[BlobWriter]:
        """A write session: blobs added inside it are readable once it exits without an error."""
        self._ensure_dirs()
        writer = BlobWriter(self)
        try:
            yield writer
        except BaseException:
            writer.discard()
            raise
        writer.commit()

    def put_bytes(self, content: bytes) -> str:
        with self.writer() as writer:
            return writer.add_bytes(content)

    # --- reading ------------------------------------------------------------------------------

    def locate(self, digests: Iterable[str]) -> dict[str, BlobLocation]:
        """The location of every digest; a missing one raises SnapshotError naming it."""
        wanted = set(digests)
        found: dict[str, BlobLocation] = {}
        if self.index_path.exists() and wanted:
            for digest, pack, offset, size in self._query("digest, pack, offset, size", wanted):
                found[str(digest)] = BlobLocation(self.pack_dir / f"{pack}.pack", int(offset), int(size))
        for digest in wanted - found.keys():
            path = self.loose_dir / digest[:2] / digest
            try:
                found[digest] = BlobLocation(path, 0, path.stat().st_size)
            except FileNotFoundError:
                raise SnapshotError(
                    f"Blob {digest} is missing from {self.home} (the store was altered outside jupyter_amlexec)."
                ) from None
        return found

    def contains(self, digests: Iterable[str]) -> set[str]:
        """The digests among these that are stored (packed or loose)."""
        wanted = set(digests)
        have = self.indexed(wanted)
        have.update(d for d in wanted - have if (self.loose_dir / d[:2] / d).exists())
        return have

    def indexed(self, digests: Iterable[str]) -> set[str]:
        """The digests among these that are packed (no file system lookups)."""
        wanted = set(digests)
        return {str(row[0]) for row in self._query("digest", wanted)} if self.index_path.exists() else set()

    def read(self, digest: str) -> bytes:
        where = self.locate([digest])[digest]
        with open(where.path, "rb") as f:
            f.seek(where.offset)
            return f.read(where.size)

    def count(self) -> int:
        """How many distinct blobs are stored (what `stored once` means, countable)."""
        packed = (
            self._db().execute("SELECT count(*) FROM packed").fetchone()[0] if self.index_path.exists() else 0
        )
        loose = (
            sum(len(os.listdir(d)) for d in self.loose_dir.iterdir() if d.is_dir())
            if self.loose_dir.is_dir()
            else 0
        )
        return int(packed) + loose

    # --- internals ----------------------------------------------------------------------------

    def _ensure_dirs(self) -> None:
        self.pack_dir.mkdir(parents=True, exist_ok=True)
        self.loose_dir.mkdir(parents=True, exist_ok=True)

    def _db(self) -> sqlite3.Connection:
        """One connection per thread: a store is shared by a kernel's followers and its main thread."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self.home.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._local.db = db
        return db

    def _query(self, columns: str, digests: set[str]) -> Iterator[tuple[Any, ...]]:
        ordered = list(digests)
        db = self._db()
        for i in range(0, len(ordered), _QUERY_CHUNK):
            chunk = ordered[i : i + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from db.execute(f"SELECT {columns} FROM packed WHERE digest IN ({marks})", chunk)


class BlobWriter:
    """One write session of a BlobStore: a pack file being appended, large blobs copied in threads."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self._pack_name = os.urandom(16).hex()
        self._pack_tmp = store.pack_dir / f".incoming-{self._pack_name}"
        self._pack: BinaryIO | None = None
        self._offset = 0
        self._rows: list[tuple[str, str, int, int]] = []
        self._seen: set[str] = set()  # digests already stored or packed in this session
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0

    def add_files(
        self, files: Sequence[tuple[str, int]], unreadable: Callable[[int, str], None] | None = None
    ) -> list[tuple[str, int]]:
        """Store these (path, size from a stat) files; (digest, size read) for each, in order. Sizes
        are what was read, so a manifest matches its blobs even when a file changed meanwhile.

        A file that cannot be read (removed meanwhile, no permission) raises SnapshotError, or, with
        `unreadable`, is reported as `unreadable(index, reason)` and gets ("", -1). A store that
        cannot be written (disk full) raises OSError either way."""
        results: list[tuple[str, int]] = [("", 0)] * len(files)
        large = [(i, path) for i, (path, size) in enumerate(files) if size > PACK_LIMIT]
        from concurrent.futures import ThreadPoolExecutor  # large files only: most snapshots have none

        pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1)) if large else None
        try:
            # workers copy and hash the large files while this thread packs the small ones
            futures = [(i, pool.submit(self._store_large, path)) for i, path in large] if pool else []
            sha256, seen, pending = hashlib.sha256, self._seen, self._pending
            for i, (path, size) in enumerate(files):  # the hot loop of a first snapshot: kept flat
                if size > PACK_LIMIT:
                    continue
                try:
                    data = _read_whole(path, size)
                except OSError as exc:
                    if unreadable is None:
                        raise _unreadable_error(path, exc) from exc
                    unreadable(i, _reason(exc))
                    results[i] = ("", -1)
                    continue
                digest = sha256(data).hexdigest()
                results[i] = (digest, len(data))
                if digest not in seen:
                    seen.add(digest)
                    pending.append((digest, data))
                    self._pending_bytes += len(data)
                    if self._pending_bytes >= _BATCH_BYTES:
                        self._flush()
                        pending = self._pending
            self._flush()
            for i, future in futures:
                try:
                    results[i] = future.result()
                except _Unreadable as exc:
                    if unreadable is None:
                        raise _unreadable_error(files[i][0], exc) from exc
                    unreadable(i, _reason(exc))
                    results[i] = ("", -1)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return results

    def add_bytes(self, content: bytes) -> str:
        if len(content) > PACK_LIMIT:
            return _store_loose_bytes(self.store.loose_dir, content)
        digest = self._add_small(content)
        self._flush()
        return digest

    # --- small blobs: batched, looked up, appended ------------------------------------------------

    def _add_small(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._seen:
            self._seen.add(digest)
            self._pending.append((digest, data))
            self._pending_bytes += len(data)
            if self._pending_bytes >= _BATCH_BYTES:
                self._flush()
        return digest

    def _flush(self) -> None:
        """Append the pending blobs that no earlier session stored."""
        if not self._pending:
            return
        stored = self.store.indexed(d for d, _ in self._pending)  # a loose twin from an old store is fine
        fresh = [p for p in self._pending if p[0] not in stored] if stored else self._pending
        self._pending, self._pending_bytes = [], 0
        if not fresh:
            return
        if self._pack is None:
            self._pack = open(self._pack_tmp, "wb", buffering=0)  # noqa: SIM115 (closed by commit or discard)
        for digest, data in fresh:
            self._rows.append((digest, self._pack_name, self._offset, len(data)))
            self._offset += len(data)
        buffers = [data for _, data in fresh]
        fd = self._pack.fileno()
        for i in range(0, len(buffers), 1024):  # writev: no joined copy; 1024 = IOV_MAX on Linux
            group = buffers[i : i + 1024]
            written, want = os.writev(fd, group), sum(map(len, group))
            rest = b"".join(group)[written:] if written < want else b""
            while rest:  # a short write (a signal, a nearly full disk): finish it plainly
                rest = rest[os.write(fd, rest) :]

    def commit(self) -> None:
        self._flush()
        if self._pack is None:
            return
        self._pack.close()
        os.replace(self._pack_tmp, self.store.pack_dir / f"{self._pack_name}.pack")
        db = self.store._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR IGNORE INTO packed VALUES (?, ?, ?, ?)", sorted(self._rows))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def discard(self) -> None:
        if self._pack is not None:
            self._pack.close()
        self._pack_tmp.unlink(missing_ok=True)

    # --- large blobs: loose files -------------------------------------------------------------

    def _store_large(self, path: str) -> tuple[str, int]:
        """Copy in the kernel, then hash the copy (so the name always matches what was stored)."""
        loose = self.store.loose_dir
        tmp = loose / f".incoming-{os.urandom(16).hex()}"
        try:
            src = _open_source(path)
            with src, open(tmp, "wb") as out:
                try:
                    _copy(src, out)
                except OSError as exc:
                    if exc.errno in _STORE_FAILING:
                        raise
                    raise _Unreadable(exc.errno, exc.strerror, path) from exc
            with open(tmp, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                        digest = hashlib.sha256(view).hexdigest()
                else:
                    digest = hashlib.sha256(b"").hexdigest()
            target = loose / digest[:2] / digest
            if target.exists():
                tmp.unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
            return digest, size
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


def _read_whole(path: str, size: int) -> bytes:
    """A file's bytes with the fewest system calls (open, read, close): this runs once per small file.
    O_NONBLOCK: a FIFO that took a file's place since the walk returns at once instead of hanging."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        data = os.read(fd, size + 1)
        if len(data) > size:  # it grew since it was listed: read to the end
            data += b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
        return data
    finally:
        os.close(fd)


_STORE_FAILING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})  # the store, not the file


class _Unreadable(OSError):
    """A large file's own read failed (not the store's write): the file can be skipped."""


def _open_source(path: str) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller's with)
    except OSError as exc:
        raise _Unreadable(exc.errno, exc.strerror, path) from exc


def _reason(exc: OSError) -> str:
    return f"cannot be read ({exc.strerror or exc})"


def _unreadable_error(path: str, exc: OSError) -> SnapshotError:
    return SnapshotError(
        f"Cannot read {path} for the snapshot: {exc.strerror}. Fix its permissions or list it in .amlignore."
    )


def _copy(src: BinaryIO, out: BinaryIO) -> None:
    """copy_file_range where the kernel and filesystem have it (no bytes through Python), else a loop."""
    try:
        while os.copy_file_range(src.fileno(), out.fileno(), 1 << 30):
            pass
    except OSError:
        src.seek(0)
        out.seek(0)
        out.truncate()
        shutil.copyfileobj(src, out, 1 << 20)


def _store_loose_bytes(loose: Path, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    target = loose / digest[:2] / digest
    if not target.exists():
        target.parent.mkdir(exist_ok=True)
        tmp = loose / f".incoming-{os.urandom(16).hex()}"
        tmp.write_bytes(content)
        os.replace(tmp, target)
    return digest
