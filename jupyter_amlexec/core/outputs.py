"""Bringing a run's `outputs/` into the history: the one set of rules every target shares.

A script can leave anything in `outputs/`: links to the user's own folders, hard links, FIFOs,
names that are not UTF-8. Collection never changes anything outside the run, never stores a file
that is not the run's own, and always gives the history names it can store. The rules, for a
folder (local target) and for a tar stream (Docker `get_archive`, later `ssh host tar c`) alike:

- `outputs` itself a link, or a link inside it whose target is outside `outputs/`: not followed,
  not collected, named in the control log. A link to a file inside `outputs/` is stored as a copy
  of that file: the history holds regular files only.
- Only regular files are collected; FIFOs, sockets and devices are named and skipped, as are
  files over `max_file_bytes`.
- A regular file with a single link, on the history's file system, is moved (renamed: fast, and
  `source` is deleted afterwards anyway). A hard-linked file is copied, so the history never
  shares an inode with a file outside the run: a hard link to a host file is a file of the run,
  its content as of collection is stored, and the host file is left as it was.
- Names: a path component that is not valid UTF-8 is stored, on disk and in the list returned,
  under `bytes.decode("utf-8", "backslashreplace")` of its bytes (the byte 0xff becomes the four
  characters `\\xff`); the control log gives the original bytes. A clash with another collected
  name gets `~2`, `~3`, ... before its extension. So every name in the history is valid UTF-8 and
  is the file's real name on disk.
- The history's disk full or read-only: the partial file is removed, the collection goes on (moves
  need no space, smaller files may fit), and at the end AttachmentError names the files not stored,
  the folder and the fix, with the files that were stored in `collected`.
"""

from __future__ import annotations

import errno
import io
import itertools
import logging
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast

from .errors import AttachmentError

logger = logging.getLogger(__name__)

OutputLog = Callable[[str], None]
"""Receives one line (no newline) per file that was skipped or renamed: the run's control log."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks us
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_HISTORY_FAILING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})  # every next file fails too
_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF})
_CHUNK = 1 << 20


def stored_name(component: str) -> str:
    """The name one path component gets in the history: itself when valid UTF-8, else its bytes with
    each invalid byte as `\\xNN`. `component` is an OS name (a surrogate-escaped str)."""
    try:
        component.encode("utf-8")
        return component
    except UnicodeEncodeError:
        return _raw(component).decode("utf-8", "backslashreplace")


def collect_directory(source: Path, dest: Path, max_file_bytes: int, log: OutputLog) -> list[str]:
    """Bring the files of `source` (a run's own outputs/ folder, deleted after collection) into
    `dest` (runs/<id>/outputs/) under this module's rules; returns the stored names, posix, relative
    to `dest`, sorted. Nothing outside `source` is moved, deleted, or read through a link; files in
    `source` may be moved away. When `dest` cannot take some files (disk full), the others are still
    stored and AttachmentError is raised at the end: `.collected` lists what was stored."""
    sink = _Sink(dest, max_file_bytes, log)
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        sink.say(
            f"outputs/ is a link to {os.readlink(source)}: not collected, and nothing it points to was "
            f"moved or copied. Write the run's outputs into a real outputs/ folder."
        )
        return []
    if not stat.S_ISDIR(st.st_mode):
        sink.say("outputs is not a folder: nothing collected.")
        return []
    try:
        root_fd = os.open(source, _DIR_FLAGS)  # O_NOFOLLOW: a link swapped in since the lstat fails
    except OSError as exc:
        sink.say(f"outputs/ cannot be opened ({exc.strerror}): nothing collected.")
        return []
    walk = _DirectoryWalk(sink, os.path.realpath(source))
    walk.run(root_fd)
    _copy_links(sink, walk.links)
    return sink.finish()


def collect_tar(
    stream: Iterable[bytes] | BinaryIO, strip: str, dest: Path, max_file_bytes: int, log: OutputLog
) -> list[str]:
    """Bring the files of a tar stream into `dest` under this module's rules, reading the stream once
    and never holding the archive in memory. Members are kept only below the folder `strip` (e.g.
    "outputs" for Docker's `get_archive(".../outputs")`), with that prefix removed; members with an
    absolute name, a `..`, a link leading out, or a device type are named and skipped. Returns the
    stored names, sorted. Raises AttachmentError (with `.collected`) for a malformed or truncated
    archive, or after the end when `dest` could not take some files (disk full); errors of the
    stream's own transport propagate unchanged."""
    sink = _Sink(dest, max_file_bytes, log)
    reader = cast(IO[bytes], stream) if hasattr(stream, "read") else _ChunkReader(iter(stream))
    prefix = [p for p in strip.split("/") if p not in ("", ".")]
    links: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
            for member in tar:
                _tar_member(sink, tar, member, prefix, links)
    except tarfile.TarError as exc:
        raise AttachmentError(
            f"The outputs archive from the target is malformed or ended early ({exc}); "
            f"{len(sink.stored)} file(s) were stored in {dest} before it; the rest of outputs/ was not.",
            collected=sorted(sink.stored.values()),
        ) from exc
    _copy_links(sink, links)
    return sink.finish()


def resolve_attachment(run_dir: Path, name: str) -> Path:
    """The real path of attachment `name` of a run, confined to the run's own files. `name` is
    relative to runs/<id>/, as the attachment list has it (driver_log.txt, outputs/model.pkl). Raises
    AttachmentError for an empty name, an absolute path, a `..`, or a link anywhere on the way that
    leaves run_dir. The path may not exist: the caller says which attachments the run has."""
    root = os.path.realpath(run_dir)
    parts = name.split("/")
    if not name or "\x00" in name or name.startswith("/") or ".." in parts:
        raise _outside(run_dir, name, "an absolute path, a '..' or an empty name")
    real = os.path.realpath(os.path.join(root, name))
    if real != root and not real.startswith(root + os.sep):
        raise _outside(run_dir, name, f"a link on the way leads to {real}")
    return Path(real)


def _outside(run_dir: Path, name: str, why: str) -> AttachmentError:
    run_id = run_dir.name
    return AttachmentError(
        f"Attachment {name!r} is not a file of run {run_id} ({why}). Name a file relative to "
        f"{run_dir}: driver_log.txt, control_log.txt or outputs/<file>, as the run's record lists them."
    ).with_hint("run.show", run_id)


# --- the history side, shared by both collectors ---------------------------------------------------


class _Sink:
    """Names, the size cap, atomic writes and the result list of one collection into `dest`."""

    def __init__(self, dest: Path, max_file_bytes: int, log: OutputLog) -> None:
        self.dest = Path(dest)
        self.max_file_bytes = max_file_bytes
        self.stored: dict[str, str] = {}  # source-relative OS name -> stored name
        self._log = log
        self._taken: set[str] = set()
        self._dirs: dict[str, Path] = {}
        self.failed: list[str] = []  # names the history could not take (disk full, read-only)
        self.failure: OSError | None = None

    def finish(self) -> list[str]:
        """The stored names, sorted; AttachmentError naming what the history could not take."""
        collected = sorted(self.stored.values())
        if self.failure is None:
            return collected
        shown = ", ".join(f"outputs/{n}" for n in self.failed[:5]) + (" ..." if len(self.failed) > 5 else "")
        raise AttachmentError(
            f"Could not store {len(self.failed)} output file(s) in {self.dest}: {self.failure.strerror} "
            f"({shown}); {len(collected)} file(s) were stored. Free space on that file system (it holds "
            f"AMLEXEC_HOME) before the next run.",
            collected=collected,
        ) from self.failure

    def say(self, message: str) -> None:
        message = _raw(message).decode("utf-8", "backslashreplace")  # OS names in it: valid UTF-8 only
        logger.info("%s", message)
        try:
            self._log(message)
        except Exception:  # a control log on a full disk must not stop the collection
            logger.warning("could not write to the control log: %s", message)

    def name_for(self, rel: str, size: int) -> str | None:
        """The stored name of a file at `rel`, or None (said) when it is over the size cap."""
        if size > self.max_file_bytes:
            self.say(
                f"outputs/{display(rel)}: not collected, {size} bytes is over the {self.max_file_bytes}-byte "
                f"limit (MaxOutputFileSizeMB in the run configuration)."
            )
            return None
        if rel in self.stored:  # a name repeated in an archive: the later member replaces it
            return self.stored[rel]
        name = "/".join(map(stored_name, rel.split("/")))
        if name in self._taken:
            stem, ext = posixpath.splitext(name)
            name = next(n for i in itertools.count(2) if (n := f"{stem}~{i}{ext}") not in self._taken)
        if name != rel:
            self.say(
                f"outputs/{name}: stored under this name; the file's own name {_raw(rel)!r} is not "
                f"valid UTF-8 or clashes with another output."
            )
        return name

    def store(self, rel: str, name: str, action: Callable[..., None], *args: object) -> bool:
        """Run `action(*args)` that puts `rel` into the history as `name`; a failure of the source
        is said and skipped; a failing history (disk full) is said and kept for `finish`, and the
        collection goes on: moves need no space, and smaller files may still fit."""
        try:
            action(*args)
        except OSError as exc:
            if exc.errno in _HISTORY_FAILING:
                self.failed.append(name)
                self.failure = self.failure or exc
                self.say(f"outputs/{name}: not stored ({exc.strerror} in {self.dest}).")
            else:
                self.say(f"outputs/{display(rel)}: not collected ({exc.strerror or exc}).")
            return False
        self.stored[rel] = name
        self._taken.add(name)
        return True

    def path_for(self, name: str) -> Path:
        parent, _, base = name.rpartition("/")
        folder = self._dirs.get(parent)
        if folder is None:
            folder = self.dest / parent if parent else self.dest
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs[parent] = folder
        return folder / base

    def write(self, name: str, copy: Callable[[int], None], mode: int, mtime_ns: int) -> None:
        """A file `name` filled by `copy(fd)`, removed again when that fails: no partial file stays.
        Written in place, not renamed from a temporary name: a third fewer system calls a file."""
        target = self.path_for(name)
        fd = os.open(target, _NEW_FLAGS, 0o600)
        try:
            copy(fd)
            os.fchmod(fd, (mode & 0o777) | 0o600)  # never unreadable (or setuid) in the history
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        except BaseException:
            os.close(fd)
            target.unlink(missing_ok=True)
            raise
        os.close(fd)

    def copy_stored(self, stored: str, name: str) -> None:
        src = os.open(self.dest / stored, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(src)
            self.write(name, lambda out: _copy_fd(src, out), st.st_mode, st.st_mtime_ns)
        finally:
            os.close(src)


def _copy_links(sink: _Sink, links: dict[str, str]) -> None:
    """Links to files inside outputs/, stored as copies once their targets are in the history. In
    rounds: an archive's link may point at a hard link that is itself copied in this pass."""
    pending = dict(links)
    while True:
        ready = {rel: sink.stored[target] for rel, target in pending.items() if target in sink.stored}
        if not ready:
            break
        for rel, stored in ready.items():
            del pending[rel]
            name = sink.name_for(rel, (sink.dest / stored).stat().st_size)
            if name is not None:
                sink.store(rel, name, sink.copy_stored, stored, name)
    for rel, target in pending.items():
        sink.say(
            f"outputs/{display(rel)}: not collected, a link to outputs/{display(target)}, which is not "
            f"a collected file (a folder, a loop, or skipped itself)."
        )


# --- a folder on this machine ------------------------------------------------------------------------


class _DirectoryWalk:
    """Walks `source` through directory descriptors, never through a link, moving or copying files."""

    def __init__(self, sink: _Sink, real_root: str) -> None:
        self.sink = sink
        self.real_root = real_root
        self.links: dict[str, str] = {}  # link -> its target, both relative to outputs/
        self.move = True  # until a rename says the history is on another file system

    def run(self, root_fd: int) -> None:
        stack: list[tuple[int, str, list[str]]] = [(root_fd, "", [])]
        try:
            stack[-1] = (root_fd, "", self._files_of(root_fd, ""))
            while stack:
                fd, rel, subdirs = stack[-1]
                if not subdirs:
                    stack.pop()
                    os.close(fd)
                    continue
                name = subdirs.pop()
                child_rel = rel + name + "/"
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    self.sink.say(f"outputs/{display(child_rel)}: not collected ({exc.strerror}).")
                    continue
                stack.append((child, child_rel, []))
                stack[-1] = (child, child_rel, self._files_of(child, child_rel))
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def _files_of(self, fd: int, rel: str) -> list[str]:
        """Collect the files of one folder; returns its subfolders' names."""
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            self.sink.say(f"outputs/{display(rel)}: not collected, cannot list it ({exc.strerror}).")
            return []
        subdirs = []
        for entry in entries:
            entry_rel = rel + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    self._file(fd, entry, entry_rel)
                elif entry.is_symlink():
                    self._link(entry_rel)
                else:
                    self.sink.say(f"outputs/{display(entry_rel)}: not collected, not a regular file.")
            except FileNotFoundError:
                self.sink.say(f"outputs/{display(entry_rel)}: not collected, removed during collection.")
        return subdirs

    def _file(self, fd: int, entry: os.DirEntry[str], rel: str) -> None:
        st = entry.stat(follow_symlinks=False)
        name = self.sink.name_for(rel, st.st_size)
        if name is not None:
            self.sink.store(rel, name, self._move_or_copy, fd, entry.name, name, st)

    def _move_or_copy(self, fd: int, src: str, name: str, st: os.stat_result) -> None:
        if st.st_nlink == 1 and self.move:
            try:
                os.rename(src, self.sink.path_for(name), src_dir_fd=fd)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self.move = False
        in_fd = os.open(src, _FILE_FLAGS, dir_fd=fd)
        try:
            if not stat.S_ISREG(os.fstat(in_fd).st_mode):
                raise OSError(errno.EINVAL, "no longer a regular file")
            self.sink.write(name, lambda out: _copy_fd(in_fd, out), st.st_mode, st.st_mtime_ns)
        finally:
            os.close(in_fd)

    def _link(self, rel: str) -> None:
        path = os.path.join(self.real_root, rel)
        real = os.path.realpath(path)
        if not real.startswith(self.real_root + os.sep):
            self.sink.say(
                f"outputs/{display(rel)}: not collected, a link to {os.readlink(path)}, outside outputs/ "
                f"(links leaving the run's folder are never followed)."
            )
            return
        self.links[rel] = real[len(self.real_root) + 1 :]


# --- a tar stream from a target ----------------------------------------------------------------------


def _tar_member(
    sink: _Sink,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    prefix: list[str],
    links: dict[str, str],
) -> None:
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if member.name.startswith("/") or ".." in parts or parts[: len(prefix)] != prefix:
        sink.say(f"{display(member.name)} in the outputs archive: not collected, outside outputs/.")
        return
    rel = "/".join(parts[len(prefix) :])
    if not rel:
        if member.issym() or member.islnk():
            sink.say(f"outputs/ is a link to {member.linkname}: not collected. Write into a real outputs/.")
        elif not member.isdir():
            sink.say("outputs is not a folder: nothing collected.")
        return
    if member.isdir():
        return  # folders are made as their files arrive
    if member.isreg():
        links.pop(rel, None)  # a name repeated in an archive: the later member replaces it
        name = sink.name_for(rel, member.size)
        source = tar.extractfile(member) if name is not None else None
        if name is not None and source is not None:
            copy = _fileobj_copier(source)
            sink.store(rel, name, sink.write, name, copy, member.mode, int(member.mtime) * 1_000_000_000)
        return
    if member.issym() or member.islnk():
        if member.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), member.linkname))
        else:  # a hard link names an earlier member of the archive
            link_parts = [p for p in member.linkname.split("/") if p not in ("", ".")]
            target = "/".join(link_parts[len(prefix) :]) if link_parts[: len(prefix)] == prefix else ".."
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            sink.say(
                f"outputs/{display(rel)}: not collected, a link to {member.linkname}, outside outputs/ "
                f"(links leaving the run's folder are never followed)."
            )
            return
        links[rel] = target
        return
    sink.say(f"outputs/{display(rel)}: not collected, not a regular file (a device, FIFO or socket).")


def _fileobj_copier(source: IO[bytes]) -> Callable[[int], None]:
    def copy(out: int) -> None:
        while data := source.read(_CHUNK):
            _write_all(out, data)

    return copy


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (docker-py's `get_archive` stream). A view
    and an offset into the current chunk: no copy of what is left of it on every read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._at >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._chunk, self._at = memoryview(chunk).cast("B"), 0
        n = min(len(buffer), len(self._chunk) - self._at)
        buffer[:n] = self._chunk[self._at : self._at + n]
        self._at += n
        return n


# --- small helpers -------------------------------------------------------------------------------------


def display(rel: str) -> str:
    """A source-relative name as a control-log line shows it: stored names, no line breaks."""
    shown = "/".join(map(stored_name, rel.split("/")))
    return shown.replace("\n", "\\n").replace("\r", "\\r")


def _raw(name: str) -> bytes:
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file-system decoding produced
        return name.encode("utf-8", "surrogatepass")


def _copy_fd(src: int, out: int) -> None:
    """copy_file_range where the kernel and file systems have it (no bytes through Python), else a loop."""
    try:
        while os.copy_file_range(src, out, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(out, 0, os.SEEK_SET)
    os.ftruncate(out, 0)
    while data := os.read(src, _CHUNK):
        _write_all(out, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
