"""Content-addressed snapshots of a project folder: what exactly a run ran.

Every file is stored once as a blob named by its sha256 (blobstore.py: packed when small); a
snapshot is a manifest of (path, blob, size, mode) whose own hash is the snapshot id, so two
identical trees give one id. A per-project
stat cache (size, mtime_ns, inode -> blob) means an unchanged file is neither re-read nor re-hashed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import sqlite3
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from .blobstore import BlobStore
from .errors import SnapshotError

if TYPE_CHECKING:
    import pathspec  # imported only for a folder with an ignore file (~10 ms of a CLI start otherwise)

log = logging.getLogger(__name__)

ALWAYS_SKIPPED_DIRS = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".amlexec"})
TOP_LEVEL_SKIPPED_DIRS = frozenset({"outputs"})
IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present wins, as in azureml
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
_CHUNK = 1024 * 1024
_SMALL_FILE = 4 * 1024 * 1024


class SnapshotEntry(NamedTuple):
    """One file of a snapshot (a tuple: ten thousand of them are made per first snapshot)."""

    path: str
    blob: str
    size: int
    mode: int


@dataclass(frozen=True)
class Snapshot:
    """A manifest in a store; materialize/write_tar turn it back into files."""

    id: str
    entries: tuple[SnapshotEntry, ...]
    entry_script: str | None
    store: SnapshotStore = field(compare=False, repr=False)
    # (path, reason) of what the take() that made this object left out: link loops, links leaving
    # the project, FIFOs, unreadable files and folders; valid UTF-8 (invalid name bytes as \xNN).
    # Not part of the manifest or the id: a snapshot read back with get() has none.
    skipped: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def read(self, path: str) -> bytes:
        for entry in self.entries:
            if entry.path == path:
                return self.store.blobs.read(entry.blob)
        raise SnapshotError(f"No file '{path}' in snapshot {self.id}.")

    def materialize(self, dest: Path) -> None:
        """Write every file into `dest` (copies: a run may modify its files freely)."""
        dest.mkdir(parents=True, exist_ok=True)
        made: set[Path] = set()
        where = self.store.blobs.locate(e.blob for e in self.entries)
        with _OpenFiles() as sources:
            for entry in self.entries:
                target = dest / entry.path
                parent = target.parent
                if parent not in made:
                    parent.mkdir(parents=True, exist_ok=True)
                    made.add(parent)
                blob = where[entry.blob]
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    offset, left = blob.offset, entry.size
                    while left > 0:
                        sent = os.sendfile(fd, sources.fd(blob.path), offset, left)
                        if sent == 0:
                            raise SnapshotError(f"Blob {entry.blob} in {blob.path} is shorter than recorded.")
                        offset, left = offset + sent, left - sent
                finally:
                    os.close(fd)
                os.chmod(target, entry.mode)

    def write_tar(self, fileobj: BinaryIO, prefix: str = "") -> None:
        """An uncompressed tar of the entries (for Docker's put_archive)."""
        where = self.store.blobs.locate(e.blob for e in self.entries)
        with (
            _OpenFiles() as sources,
            tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for entry in self.entries:
                info = tarfile.TarInfo(name=f"{prefix}{entry.path}")
                info.size = entry.size
                info.mode = entry.mode
                blob = where[entry.blob]
                src = sources.file(blob.path)
                src.seek(blob.offset)
                tar.addfile(info, src)

    def tar_bytes(self, prefix: str = "") -> bytes:
        buffer = io.BytesIO()
        self.write_tar(buffer, prefix)
        return buffer.getvalue()


class SnapshotStore:
    """Manifests and stat caches under one home folder, file contents in its BlobStore."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.blobs = BlobStore(self.home)
        self.manifests = self.home / "snapshots"
        self.statcache = self.home / "statcache"
        self.cache_hits = 0  # files whose blob came from the stat cache in the last take()

    # --- taking -------------------------------------------------------------------------------

    def take(
        self,
        project_root: Path,
        *,
        extra_files: Mapping[str, bytes] | None = None,
        entry_script: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Snapshot:
        """Snapshot `project_root` (ignore rules applied) plus `extra_files`; what cannot be read is
        skipped with a warning and listed in `Snapshot.skipped`, never a traceback. SnapshotError when
        the project is over `max_bytes`, the entry script is missing, or the store cannot be written."""
        root = Path(project_root).resolve()
        extra = dict(extra_files or {})
        walked, skipped = _walk(root)
        files = [(rel, st) for rel, st in walked if rel not in extra]
        _check_size(root, files, max_bytes)
        cache_file = self.statcache / (hashlib.sha256(str(root).encode()).hexdigest()[:32] + ".json")
        cache = _load_json(cache_file)
        new_cache: dict[str, list[object]] = {}
        entries: list[SnapshotEntry] = []
        to_store: list[tuple[str, os.stat_result]] = []
        self.cache_hits = 0
        for rel, st in files:
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            hit = cache.get(rel)
            if hit is not None and hit[:3] == key:  # blobs are never deleted: a cached digest is stored
                entries.append(SnapshotEntry(rel, str(hit[3]), st.st_size, stat.S_IMODE(st.st_mode)))
                new_cache[rel] = hit
                self.cache_hits += 1
            else:
                to_store.append((rel, st))
        if to_store or extra:
            unreadable: dict[int, str] = {}
            stored = self._store(root, to_store, extra, entries, unreadable.__setitem__)
            for i, ((rel, st), (digest, size)) in enumerate(zip(to_store, stored)):
                if i in unreadable:
                    skipped.append(_skip(rel, unreadable[i]))
                    continue
                entries.append(SnapshotEntry(rel, digest, size, stat.S_IMODE(st.st_mode)))
                if size == st.st_size:  # a file that changed while read is read again next time
                    new_cache[rel] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
        entries.sort()  # by path: paths are unique
        if entry_script is not None and not any(e.path == entry_script for e in entries):
            why = dict(skipped).get(entry_script) or f"missing, or excluded by {' / '.join(IGNORE_FILES)}"
            raise SnapshotError(
                f"The entry script '{entry_script}' is not in the snapshot of {root} ({why})."
            )
        if new_cache != cache:
            try:
                _write_json_atomic(cache_file, new_cache)
            except OSError as exc:  # only a cache: the next snapshot reads the files again
                log.warning("could not write the snapshot stat cache %s: %s", cache_file, exc)
        try:
            snapshot = self._save(tuple(entries), entry_script)
        except OSError as exc:
            raise _store_error(self.home, exc) from exc
        return replace(snapshot, skipped=tuple(sorted(skipped)))

    def _store(
        self,
        root: Path,
        files: list[tuple[str, os.stat_result]],
        extra: Mapping[str, bytes],
        entries: list[SnapshotEntry],
        unreadable: Callable[[int, str], None],
    ) -> list[tuple[str, int]]:
        """Store the files' and the extra files' blobs; a full or unwritable store is a SnapshotError."""
        try:
            with self.blobs.writer() as writer:
                stored = writer.add_files([(f"{root}/{rel}", st.st_size) for rel, st in files], unreadable)
                for rel, content in extra.items():
                    entries.append(SnapshotEntry(rel, writer.add_bytes(content), len(content), 0o644))
        except (OSError, sqlite3.Error) as exc:
            raise _store_error(self.home, exc) from exc
        return stored

    def _save(self, entries: tuple[SnapshotEntry, ...], entry_script: str | None) -> Snapshot:
        doc = {
            "entry_script": entry_script,
            "entries": entries,  # tuples: JSON arrays of [path, blob, size, mode]
        }
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        snapshot_id = hashlib.sha256(canonical).hexdigest()
        path = self.manifests / f"{snapshot_id}.json"
        if not path.exists():
            _write_stream_atomic(path, io.BytesIO(canonical))
        return Snapshot(snapshot_id, entries, entry_script, self)

    # --- reading ------------------------------------------------------------------------------

    def get(self, snapshot_id: str) -> Snapshot:
        path = self.manifests / f"{snapshot_id}.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise SnapshotError(f"No snapshot {snapshot_id} in {self.manifests}.") from None
        entries = tuple(SnapshotEntry(p, b, s, m) for p, b, s, m in doc["entries"])
        return Snapshot(snapshot_id, entries, doc.get("entry_script"), self)

    def restore(self, snapshot_id: str, dest: Path, *, overwrite: bool = False) -> list[str]:
        """Write a snapshot's project files into `dest`; existing different files need overwrite."""
        snapshot = self.get(snapshot_id)
        dest = Path(dest)
        files = [e for e in snapshot.entries if not e.path.startswith(".amlexec/")]
        if not overwrite:
            clashes = [
                e.path for e in files if (dest / e.path).exists() and _file_digest(dest / e.path) != e.blob
            ]
            if clashes:
                shown = ", ".join(clashes[:10]) + (" ..." if len(clashes) > 10 else "")
                raise SnapshotError(
                    f"Restoring into {dest} would overwrite {len(clashes)} changed file(s): {shown}. "
                    f"Restore into an empty folder, or pass overwrite=True (--overwrite)."
                )
        subset = Snapshot(snapshot.id, tuple(files), snapshot.entry_script, self)
        subset.materialize(dest)
        return [e.path for e in files]

    def diff(self, a: str, b: str) -> list[tuple[str, str]]:
        """Paths whose content differs between two snapshots: (path, added|removed|changed)."""
        left = {e.path: e.blob for e in self.get(a).entries if not e.path.startswith(".amlexec/lib/")}
        right = {e.path: e.blob for e in self.get(b).entries if not e.path.startswith(".amlexec/lib/")}
        out = []
        for path in sorted(left.keys() | right.keys()):
            if path not in right:
                out.append((path, "removed"))
            elif path not in left:
                out.append((path, "added"))
            elif left[path] != right[path]:
                out.append((path, "changed"))
        return out


# --- walking with ignore rules ---------------------------------------------------------------------


def _ignore_spec(directory: Path) -> pathspec.PathSpec[Any] | None:
    for name in IGNORE_FILES:
        path = directory / name
        if path.is_file():
            import pathspec

            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            # pathspec >= 0.12.2 names git's own rules "gitignore"; older releases say "gitwildmatch"
            registered = getattr(pathspec.util, "_registered_patterns", {})
            style = "gitignore" if "gitignore" in registered else "gitwildmatch"
            return pathspec.PathSpec.from_lines(style, lines)
    return None


_Skipped = list[tuple[str, str]]
_Specs = list[tuple[str, "pathspec.PathSpec[Any]"]]


def _walk(root: Path) -> tuple[list[tuple[str, os.stat_result]], _Skipped]:
    """(posix relative path, stat) of every file to snapshot, in no particular order, and (path,
    reason) of what was left out. Ignore files apply to their subtree; links to files inside the
    project are followed, other links (leaving it, to a folder, dangling, a loop) are skipped, as
    are FIFOs, sockets and folders that cannot be listed. A loop over a stack of folders, not
    recursion: this runs once per folder of a project."""
    found: list[tuple[str, os.stat_result]] = []
    skipped: _Skipped = []
    folders: list[tuple[str, str, _Specs]] = [(str(root), "", [])]
    while folders:
        directory, prefix, specs = folders.pop()
        try:
            with os.scandir(directory) as it:
                items = list(it)
        except OSError as exc:
            if not prefix:
                raise SnapshotError(f"Cannot list {directory} for the snapshot: {exc.strerror}.") from exc
            skipped.append(_skip(prefix, f"a folder that cannot be listed ({exc.strerror})"))
            continue
        names = {item.name for item in items}
        for name in IGNORE_FILES:  # found in the listing: no extra stat per folder
            if name in names:
                specs = _with_ignore_file(Path(directory), prefix, specs, skipped)
                break
        for item in items:
            rel = prefix + item.name
            if item.is_dir(follow_symlinks=False):
                if item.name in ALWAYS_SKIPPED_DIRS or (not prefix and item.name in TOP_LEVEL_SKIPPED_DIRS):
                    continue
                if not (specs and _ignored(rel, True, specs)):
                    folders.append((item.path, rel + "/", specs))
            elif specs and _ignored(rel, False, specs):
                continue
            elif item.is_file(follow_symlinks=False):
                try:
                    found.append((rel, item.stat(follow_symlinks=False)))
                except OSError as exc:
                    skipped.append(_skip(rel, f"cannot be read ({exc.strerror})"))
            elif item.is_symlink():
                _follow_link(root, item.path, rel, found, skipped)
            else:
                skipped.append(_skip(rel, "not a regular file (a FIFO, socket or device)"))
    return found, skipped


def _with_ignore_file(directory: Path, prefix: str, specs: _Specs, skipped: _Skipped) -> _Specs:
    try:
        spec = _ignore_spec(directory)
    except OSError as exc:
        name = Path(exc.filename).name if exc.filename else IGNORE_FILES[-1]
        skipped.append(_skip(prefix + name, f"cannot be read, its rules not applied ({exc.strerror})"))
        return specs
    return [*specs, (prefix, spec)] if spec is not None else specs


def _follow_link(
    root: Path, path: str, rel: str, found: list[tuple[str, os.stat_result]], skipped: _Skipped
) -> None:
    """A link is taken as the file it points to when that is a regular file inside the project."""
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = "a link loop" if exc.errno == errno.ELOOP else f"a dangling link ({exc.strerror})"
        skipped.append(_skip(rel, reason))
        return
    target = os.path.realpath(path)
    if stat.S_ISDIR(st.st_mode):
        skipped.append(_skip(rel, f"a link to the folder {target} (links to folders are not followed)"))
    elif not target.startswith(f"{root}{os.sep}"):
        skipped.append(_skip(rel, f"a link to {target}, outside the project"))
    elif not stat.S_ISREG(st.st_mode):
        skipped.append(_skip(rel, f"a link to {target}, not a regular file"))
    else:
        found.append((rel, st))


def _skip(rel: str, reason: str) -> tuple[str, str]:
    """(path, reason) as valid UTF-8 (a name's invalid bytes as \\xNN): they go into logs and the history."""
    rel, reason = (_utf8(text) for text in (rel, reason))
    log.warning("snapshot skips %s: %s", rel, reason)
    return rel, reason


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _ignored(rel: str, is_dir: bool, specs: _Specs) -> bool:
    for base, spec in specs:
        sub = rel[len(base) :] if base else rel
        if spec.match_file(sub + "/" if is_dir else sub):
            return True
    return False


# --- small file helpers ------------------------------------------------------------------------------


def _digest(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return _digest(f)


def _write_stream_atomic(target: Path, source: BinaryIO) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_json(path: Path) -> dict[str, list[object]]:
    try:
        data = json.loads(path.read_bytes())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_stream_atomic(path, io.BytesIO(json.dumps(doc, separators=(",", ":")).encode()))


class _OpenFiles:
    """Blob files opened once per materialize/tar, however many blobs a pack holds."""

    def __init__(self) -> None:
        self._files: dict[Path, BinaryIO] = {}

    def file(self, path: Path) -> BinaryIO:
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = open(path, "rb")  # noqa: SIM115 (closed by __exit__)
        return f

    def fd(self, path: Path) -> int:
        return self.file(path).fileno()

    def __enter__(self) -> _OpenFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self._files.values():
            f.close()


def _check_size(root: Path, files: list[tuple[str, os.stat_result]], max_bytes: int) -> None:
    total = sum(st.st_size for _, st in files)
    if total > max_bytes:
        largest = sorted(files, key=lambda f: f[1].st_size, reverse=True)[:5]
        listing = "; ".join(f"{rel} ({_mb(st.st_size)})" for rel, st in largest)
        raise SnapshotError(
            f"The project {root} holds {_mb(total)} to snapshot, over the {_mb(max_bytes)} limit. "
            f"Largest files: {listing}. Exclude data with a .amlignore file (gitignore syntax), keep "
            f"it outside the project, or raise MaxSnapshotSizeMB in the run configuration."
        )


def _store_error(home: Path, exc: BaseException) -> SnapshotError:
    reason = getattr(exc, "strerror", None) or str(exc)
    return SnapshotError(
        f"Cannot write the snapshot into {home}: {reason}. Free space on that file system (or make it "
        f"writable) and submit again; nothing was recorded."
    )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
