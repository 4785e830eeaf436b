"""Content-addressed snapshots of a project folder: what exactly a run ran.

Every file is stored once as a blob named by its sha256; a snapshot is a manifest of (path, blob,
size, mode) whose own hash is the snapshot id, so two identical trees give one id. A per-project
stat cache (size, mtime_ns, inode -> blob) means an unchanged file is neither re-read nor re-hashed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pathspec

from .errors import SnapshotError

log = logging.getLogger(__name__)

ALWAYS_SKIPPED_DIRS = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".amlexec"})
TOP_LEVEL_SKIPPED_DIRS = frozenset({"outputs"})
IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present wins, as in azureml
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
_CHUNK = 1024 * 1024
_SMALL_FILE = 4 * 1024 * 1024
# pathspec >= 0.12.2 names git's own rules "gitignore"; older releases call them "gitwildmatch"
_PATTERN_STYLE = (
    "gitignore" if "gitignore" in getattr(pathspec.util, "_registered_patterns", {}) else "gitwildmatch"
)


@dataclass(frozen=True)
class SnapshotEntry:
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

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def read(self, path: str) -> bytes:
        for entry in self.entries:
            if entry.path == path:
                return self.store.blob_path(entry.blob).read_bytes()
        raise SnapshotError(f"No file '{path}' in snapshot {self.id}.")

    def materialize(self, dest: Path) -> None:
        """Write every file into `dest` (copies: a run may modify its files freely)."""
        dest.mkdir(parents=True, exist_ok=True)
        made: set[Path] = set()
        for entry in self.entries:
            target = dest / entry.path
            parent = target.parent
            if parent not in made:
                parent.mkdir(parents=True, exist_ok=True)
                made.add(parent)
            with open(self.store.blob_path(entry.blob), "rb") as src, open(target, "wb") as out:
                if entry.size:
                    os.sendfile(out.fileno(), src.fileno(), 0, entry.size)
            os.chmod(target, entry.mode)

    def write_tar(self, fileobj: BinaryIO, prefix: str = "") -> None:
        """An uncompressed tar of the entries (for Docker's put_archive)."""
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in self.entries:
                info = tarfile.TarInfo(name=f"{prefix}{entry.path}")
                info.size = entry.size
                info.mode = entry.mode
                with open(self.store.blob_path(entry.blob), "rb") as src:
                    tar.addfile(info, src)

    def tar_bytes(self, prefix: str = "") -> bytes:
        buffer = io.BytesIO()
        self.write_tar(buffer, prefix)
        return buffer.getvalue()


class SnapshotStore:
    """Blobs, manifests and stat caches under one home folder."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.blobs = self.home / "blobs"
        self.manifests = self.home / "snapshots"
        self.statcache = self.home / "statcache"
        self.cache_hits = 0  # files whose blob came from the stat cache in the last take()

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest

    # --- taking -------------------------------------------------------------------------------

    def take(
        self,
        project_root: Path,
        *,
        extra_files: Mapping[str, bytes] | None = None,
        entry_script: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Snapshot:
        root = Path(project_root).resolve()
        extra = dict(extra_files or {})
        files = [(rel, st) for rel, st in _walk(root) if rel not in extra]
        total = sum(st.st_size for _, st in files)
        if total > max_bytes:
            largest = sorted(files, key=lambda f: f[1].st_size, reverse=True)[:5]
            listing = "; ".join(f"{rel} ({_mb(st.st_size)})" for rel, st in largest)
            raise SnapshotError(
                f"The project {root} holds {_mb(total)} to snapshot, over the {_mb(max_bytes)} limit. "
                f"Largest files: {listing}. Exclude data with a .amlignore file (gitignore syntax), keep "
                f"it outside the project, or raise MaxSnapshotSizeMB in the run configuration."
            )
        cache_file = self.statcache / (hashlib.sha256(str(root).encode()).hexdigest()[:32] + ".json")
        cache = _load_json(cache_file)
        new_cache: dict[str, list[object]] = {}
        entries: list[SnapshotEntry] = []
        to_hash: list[tuple[str, os.stat_result]] = []
        self.cache_hits = 0
        for rel, st in files:
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            hit = cache.get(rel)
            if hit is not None and hit[:3] == key:  # blobs are never deleted: a cached digest is stored
                entries.append(SnapshotEntry(rel, str(hit[3]), st.st_size, stat.S_IMODE(st.st_mode)))
                new_cache[rel] = hit
                self.cache_hits += 1
            else:
                to_hash.append((rel, st))
        if to_hash:
            self._ensure_dirs()
            if len(to_hash) < 64:
                digests = [self._store_file(root / rel) for rel, _st in to_hash]
            else:  # hashlib and file I/O release the GIL: overlap them across cores
                with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
                    digests = list(pool.map(lambda f: self._store_file(root / f[0]), to_hash, chunksize=64))
            for (rel, st), digest in zip(to_hash, digests):
                entries.append(SnapshotEntry(rel, digest, st.st_size, stat.S_IMODE(st.st_mode)))
                new_cache[rel] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
        for rel, content in extra.items():
            self._ensure_dirs()
            entries.append(SnapshotEntry(rel, self._store_bytes(content), len(content), 0o644))
        entries.sort(key=lambda e: e.path)
        if entry_script is not None and not any(e.path == entry_script for e in entries):
            raise SnapshotError(
                f"The entry script '{entry_script}' is not in the snapshot of {root} "
                f"(missing, or excluded by {' / '.join(IGNORE_FILES)})."
            )
        if new_cache != cache:
            _write_json_atomic(cache_file, new_cache)
        return self._save(tuple(entries), entry_script)

    def _ensure_dirs(self) -> None:
        if not (self.blobs / "ff").is_dir():
            for d in (self.manifests, self.statcache):
                d.mkdir(parents=True, exist_ok=True)
            for i in range(256):  # every blob folder up front: no mkdir on the hot path
                (self.blobs / f"{i:02x}").mkdir(parents=True, exist_ok=True)

    def _store_file(self, path: Path) -> str:
        """Hash a file and store its blob; a small file is read once, a large one hashed while copied."""
        blobs = str(self.blobs)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if size <= _SMALL_FILE:
                    data = f.read()
                    digest = hashlib.sha256(data).hexdigest()
                    target = f"{blobs}/{digest[:2]}/{digest}"
                    if not os.path.exists(target):
                        _write_bytes_atomic(target, data)
                    return digest
                tmp = f"{blobs}/.incoming-{os.getpid()}-{threading.get_ident()}"
                h = hashlib.sha256()
                with open(tmp, "wb") as out:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                digest = h.hexdigest()
                target = f"{blobs}/{digest[:2]}/{digest}"
                if os.path.exists(target):
                    os.unlink(tmp)
                else:
                    os.replace(tmp, target)
                return digest
        except OSError as exc:
            raise SnapshotError(
                f"Cannot read {path} for the snapshot: {exc.strerror}. Fix its permissions or list it in .amlignore."
            ) from exc

    def _store_bytes(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        target = self.blob_path(digest)
        if not target.exists():
            _write_stream_atomic(target, io.BytesIO(content))
        return digest

    def _save(self, entries: tuple[SnapshotEntry, ...], entry_script: str | None) -> Snapshot:
        doc = {
            "entry_script": entry_script,
            "entries": [[e.path, e.blob, e.size, e.mode] for e in entries],
        }
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        snapshot_id = hashlib.sha256(canonical).hexdigest()
        path = self.manifests / f"{snapshot_id}.json"
        if not path.exists():
            self._ensure_dirs()
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
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            return pathspec.PathSpec.from_lines(_PATTERN_STYLE, lines)
    return None


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(posix relative path, stat) of every file to snapshot. Ignore files apply to their subtree;
    links to files inside the project are followed, links leaving it are skipped."""
    yield from _walk_dir(root, str(root), "", [])


def _ignored(rel: str, is_dir: bool, specs: list[tuple[str, pathspec.PathSpec[Any]]]) -> bool:
    for base, spec in specs:
        sub = rel[len(base) :] if base else rel
        if spec.match_file(sub + "/" if is_dir else sub):
            return True
    return False


def _walk_dir(
    root: Path, directory: str, prefix: str, specs: list[tuple[str, pathspec.PathSpec[Any]]]
) -> Iterator[tuple[str, os.stat_result]]:
    try:
        with os.scandir(directory) as it:
            items = sorted(it, key=lambda d: d.name)
    except OSError as exc:
        raise SnapshotError(f"Cannot list {directory} for the snapshot: {exc.strerror}.") from exc
    names = {item.name for item in items}
    for name in IGNORE_FILES:  # found in the listing: no extra stat per folder
        if name in names:
            spec = _ignore_spec(Path(directory))
            if spec is not None:
                specs = [*specs, (prefix, spec)]
            break
    for item in items:
        rel = prefix + item.name
        if item.is_dir(follow_symlinks=False):
            if item.name in ALWAYS_SKIPPED_DIRS or (not prefix and item.name in TOP_LEVEL_SKIPPED_DIRS):
                continue
            if specs and _ignored(rel, True, specs):
                continue
            yield from _walk_dir(root, item.path, rel + "/", specs)
        elif item.is_file(follow_symlinks=False):
            if specs and _ignored(rel, False, specs):
                continue
            yield rel, item.stat(follow_symlinks=False)
        elif item.is_symlink():
            target = Path(item.path).resolve()
            if not target.is_file() or root not in target.parents:
                log.warning("snapshot skips %s: a link to %s, outside the project or not a file", rel, target)
                continue
            if not (specs and _ignored(rel, False, specs)):
                yield rel, target.stat()


# --- small file helpers ------------------------------------------------------------------------------


def _digest(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _write_bytes_atomic(target: str, data: bytes) -> None:
    tmp = f"{target}.{os.getpid()}-{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, target)


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


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
