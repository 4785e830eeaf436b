"""Snapshot transfer by delta: a content-addressed blob cache on the host, so a file travels once.

Two round trips per submit, whatever the number of files: (1) the host is asked which blobs it
holds (by an 8-hex prefix of each digest, gzip'd; answered with full names, sizes and times);
(2) one tar stream (gzip'd when small) carries the missing blobs into the cache and hard-link
entries that assemble the run's working directory from the cache (tar makes the links itself: no
process per file on the host).
The host needs only `sh`, `tar` with gzip and coreutils (a Docker host may have no Python).

Cache layout under `root` (default `~/.amlexec`): `blobs/<2 hex>/<sha256>.<mode>` (one file per
content and mode, since hard links share their mode). Cached files carry a fixed mtime: one whose
size or mtime differs (a run wrote into its working copy) counts as missing and is sent again. New
blobs land in `blobs/.in-<id>/` and are renamed into place when the stream ended well, so a broken
transfer leaves no half blob under a final name. Work dirs and the cache share one file system.
"""

from __future__ import annotations

import gzip
import shlex
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, cast

from ..errors import ConfigError, TargetUnavailableError
from .ssh import Sink, SshConnection
from .tarstream import TarWriter

if TYPE_CHECKING:
    from ..snapshot import Snapshot, SnapshotEntry

DEFAULT_ROOT = "~/.amlexec"
CACHE_MTIME = 946684800  # 2000-01-01T00:00:00Z on every cached blob: a changed one is noticed
_PREFIX = 8  # hex digits of a digest in the "which do you have?" question (full names come back)
_STAT_BATCH = 2000  # file names per `stat` call on the host
# A push carrying up to this many bytes of contents is gzip'd (a delta: its ~50 B of link entry
# per file compress to a fraction, and CPU is cheap); a bigger one goes as a plain tar: a first
# upload is CPU-bound with gzip (~36 MB/s on random data; the channel carries ~200 MB/s), and its
# link entries (512 B a file) are a small part of it.
_COMPRESS_UP_TO = 16 * 1024 * 1024
_SEND_UNASKED = 1024 * 1024  # blobs never seen on the host sent without asking, up to this many bytes
STALE_EXIT = 95  # a push's exit code when a blob it trusted to be there is missing or changed
# what this process saw in each host's cache: connection -> root -> cache names (dies with the link)
_KNOWN: weakref.WeakKeyDictionary[SshConnection, dict[str, set[str]]] = weakref.WeakKeyDictionary()
_KNOWN_LOCK = threading.Lock()


@dataclass(frozen=True)
class SyncStats:
    """What a push cost: every byte written to the SSH channel is counted."""

    bytes_sent: int
    blobs_sent: int
    blobs_reused: int
    blob_bytes_sent: int  # file contents among bytes_sent (before compression)
    round_trips: int
    seconds: float


@dataclass(frozen=True)
class PushPlan:
    """One push, ready to run: its host script (reads the tar on stdin) and the tar's producer."""

    script: str
    produce: Callable[[Callable[[bytes], None]], None]
    trusted: bool  # the host was not asked: the script exits STALE_EXIT if a known blob changed
    names: tuple[str, ...]  # every cache name the work dir links to
    blobs_sent: int
    blobs_reused: int
    blob_bytes_sent: int
    query_bytes: int

    def stats(self, bytes_sent: int, seconds: float) -> SyncStats:
        """The push's cost, once it ran (`bytes_sent`: what the push command's stdin carried)."""
        return SyncStats(
            bytes_sent=self.query_bytes + bytes_sent + len(self.script),
            blobs_sent=self.blobs_sent,
            blobs_reused=self.blobs_reused,
            blob_bytes_sent=self.blob_bytes_sent,
            round_trips=1 if self.trusted else 2,
            seconds=seconds,
        )


def host_path(path: str) -> str:
    """A host path as a shell word: `~/x` becomes "$HOME"/x (expanded by the host's shell)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _check_relative(workdir: str) -> str:
    parts = PurePosixPath(workdir).parts
    if not parts or workdir.startswith("/") or ".." in parts:
        raise ConfigError(
            f"work directory {workdir!r} must be a relative path under the host's amlexec root "
            f"(like runs/<run id>/wd), without '..'."
        )
    return str(PurePosixPath(*parts))


def _cache_name(entry: SnapshotEntry) -> str:
    return f"{entry.blob[:2]}/{entry.blob}.{entry.mode:o}"


class BlobSync:
    """Pushes snapshots to one host's blob cache and streams folders back from it."""

    def __init__(self, conn: SshConnection, root: str = DEFAULT_ROOT) -> None:
        self.conn = conn
        self.root = root

    # --- the way out ------------------------------------------------------------------------

    def push(self, snapshot: Snapshot, workdir: str, *, timeout: float = 600.0) -> SyncStats:
        """Make `<root>/<workdir>` on the host hold exactly the snapshot's files (modes kept).

        An existing `workdir` is replaced, so a push interrupted by a dropped connection can simply
        be repeated.
        """
        started = time.monotonic()
        plan = self.plan(snapshot, workdir, timeout=timeout)
        result = self.conn.run(["sh", "-c", plan.script], stdin=plan.produce, timeout=timeout)
        if result.exit_code == STALE_EXIT and plan.trusted:  # what this process knew is out of date
            self.forget()
            plan = self.plan(snapshot, workdir, timeout=timeout)
            result = self.conn.run(["sh", "-c", plan.script], stdin=plan.produce, timeout=timeout)
        if result.exit_code != 0:
            raise self.push_failed(result.exit_code, result.stderr)
        self.remember(plan)
        return plan.stats(result.bytes_sent, time.monotonic() - started)

    def plan(self, snapshot: Snapshot, workdir: str, *, timeout: float = 600.0) -> PushPlan:
        """What one push sends and runs. Blobs this process saw arrive on the host (or saw there)
        are not asked about again: the push checks them there (size and time, in the same command)
        and exits STALE_EXIT when one changed, after which `forget()` and a new plan ask the host.
        Up to _SEND_UNASKED bytes of blobs this process never saw there are sent without asking."""
        workdir = _check_relative(workdir)
        entries = list(snapshot.entries)
        with _KNOWN_LOCK:
            known = set(_KNOWN.setdefault(self.conn, {}).get(self.root, ()))
        names = {_cache_name(e): e for e in entries}
        unknown = sum(e.size for n, e in names.items() if n not in known)
        trusted = bool(known) and unknown <= _SEND_UNASKED
        have, query_bytes = (known & names.keys(), 0) if trusted else self._query(entries, timeout)
        missing = {n: e for n, e in names.items() if n not in have}
        incoming = f"blobs/.in-{uuid.uuid4().hex[:16]}"
        payload = sum(e.size for e in missing.values())
        compress = payload <= _COMPRESS_UP_TO
        script = _PUSH_SCRIPT.format(
            root=host_path(self.root),
            inc=incoming,
            wd=shlex.quote(workdir),
            z="-z" if compress else "",
            verify=_VERIFY.format(wd=shlex.quote(workdir), mtime=CACHE_MTIME, stale_exit=STALE_EXIT)
            if trusted and have
            else "",
            stale=f" || exit {STALE_EXIT}" if trusted else "",
        )

        def produce(write: Callable[[bytes], None]) -> None:
            _write_push_tar(write, snapshot, entries, missing, incoming, workdir, compress)

        return PushPlan(
            script,
            produce,
            trusted,
            tuple(names),
            len(missing),
            len(names) - len(missing),
            payload,
            query_bytes,
        )

    def remember(self, plan: PushPlan) -> None:
        """After a push that ended well: its blobs are on the host (the next plan need not ask)."""
        with _KNOWN_LOCK:
            _KNOWN.setdefault(self.conn, {}).setdefault(self.root, set()).update(plan.names)

    def forget(self) -> None:
        """The host's cache is not what this process thought (cleared, or a blob changed there)."""
        with _KNOWN_LOCK:
            _KNOWN.setdefault(self.conn, {}).pop(self.root, None)

    def push_failed(self, exit_code: int, stderr: bytes) -> TargetUnavailableError:
        """The error for a push that failed on the host."""
        err = stderr.decode("utf-8", "replace").strip()
        return TargetUnavailableError(
            f"Sending the snapshot to {self.conn.endpoint.describe()} failed (exit "
            f"{exit_code}): {err[-2000:] or 'no message'}. The host needs tar with gzip; "
            f"{self.root} and its work directories must be on one file system (hard links)."
        )

    def _query(self, entries: list[SnapshotEntry], timeout: float) -> tuple[set[str], int]:
        """The cache names (`ab/<digest>.<mode>`) the host holds intact, and the bytes asked with."""
        prefixes = sorted({e.blob[:_PREFIX] for e in entries})
        lines = [
            "stat -c '%n %s %Y' -- "
            + " ".join(f"{p[:2]}/{p}*" for p in prefixes[i : i + _STAT_BATCH])
            + " 2>/dev/null || true"
            for i in range(0, len(prefixes), _STAT_BATCH)
        ]
        question = gzip.compress("\n".join([*lines, ""]).encode(), compresslevel=9, mtime=0)
        script = _QUERY_COMMAND.format(root=host_path(self.root))
        result = self.conn.run(script, stdin=question, timeout=timeout)
        if result.exit_code != 0:
            err = result.stderr.decode("utf-8", "replace").strip()
            raise TargetUnavailableError(
                f"Could not list the blob cache {self.root} on {self.conn.endpoint.describe()}: "
                f"{err or 'exit ' + str(result.exit_code)}."
            )
        sizes = {_cache_name(e): e.size for e in entries}
        have: set[str] = set()
        for line in result.text().splitlines():
            fields = line.split()
            if len(fields) == 3 and sizes.get(fields[0]) == int(fields[1]) and int(fields[2]) == CACHE_MTIME:
                have.add(fields[0])
        return have, len(script) + len(question)

    # --- the way back -----------------------------------------------------------------------

    def pull_entry(self, path: str, sink: Sink, *, timeout: float = 600.0) -> int | None:
        """Stream one entry of the host (a run's `outputs`) as a tar whose members start with its
        name, taken from its parent folder: when the entry is a link, the link itself arrives (and a
        safe extractor skips it), never the folder it points to. None when nothing is there."""
        parent, _, name = path.rstrip("/").rpartition("/")
        entry = shlex.quote(name)
        script = f"cd {host_path(parent or '/')} || exit 3; [ -e {entry} ] || [ -L {entry} ] || exit 3; exec tar -c -f - {entry}"
        return self._stream(script, path, sink, timeout)

    def pull_folder(self, folder: str, sink: Sink, *, timeout: float = 600.0) -> int | None:
        """Stream `folder` of the host as an uncompressed tar (members relative to it) into `sink`.

        Returns the bytes received, or None when the folder does not exist (nothing is written).
        `folder` is absolute, `~/...`, or relative to the amlexec root.
        """
        where = folder if folder.startswith(("/", "~")) else f"{self.root.rstrip('/')}/{folder}"
        path = host_path(where)
        return self._stream(f"[ -d {path} ] || exit 3; cd {path} && exec tar -c -f - .", where, sink, timeout)

    def _stream(self, script: str, where: str, sink: Sink, timeout: float) -> int | None:
        """Run a `tar -c` script on the host into `sink`: bytes received, None when it said "not there" (3)."""
        counted = _Counting(sink)
        result = self.conn.run(["sh", "-c", script], stdout=counted.write, timeout=timeout)
        if result.exit_code == 3 and counted.count == 0:
            return None
        if result.exit_code != 0:
            raise TargetUnavailableError(
                f"Reading {where} from {self.conn.endpoint.describe()} failed: "
                f"{result.stderr.decode('utf-8', 'replace').strip() or 'exit ' + str(result.exit_code)}."
            )
        return counted.count


# The question is itself a gzip'd script of `stat` lines whose arguments are globs like
# ab/abcdef12*: the host's shell expands them (no process per file) and `stat` answers for a batch
# at once; a glob matching nothing stays literal, and stat's complaint about it is dropped.
_QUERY_COMMAND = "mkdir -p {root}/blobs && cd {root}/blobs && gzip -dc | sh"

_PUSH_SCRIPT = """set -e
mkdir -p {root}/blobs
cd {root}
trap 'rm -rf {inc}' EXIT
rm -rf {wd}
mkdir -p {inc} {wd}
tar -x {z} -p -o -f - -C .{stale}
{verify}cd {inc}
set --
for d in */; do
  d=${{d%/}}
  [ -d "$d" ] || continue
  if [ -e "../$d" ]; then mv -f "$d"/* "../$d/"; else set -- "$@" "$d"; fi
done
if [ $# -gt 0 ]; then mv -f "$@" ../; fi
# a concurrent push may have made ../ab meanwhile: then ab landed inside it, as ../ab/ab
for d in "$@"; do
  if [ -d "../$d/$d" ]; then mv -f "../$d/$d"/* "../$d/" && rmdir "../$d/$d"; fi
done
cd ../..
rm -rf {inc}
trap - EXIT
"""

# A trusted push checks the cached blobs it linked: every file of the work dir still carries the
# cache's fixed mtime (a run that wrote into its working copy wrote into the blob: a newer mtime).
# A blob gone from the cache already failed the tar's hard link.
_VERIFY = """[ -z "$(find {wd} -type f -newermt @{mtime} -print -quit)" ] || exit {stale_exit}
"""


class _Counting:
    def __init__(self, sink: Sink) -> None:
        write = getattr(sink, "write", None)
        self._write: Callable[[bytes], object] = write if write is not None else sink  # type: ignore[assignment]
        self.count = 0

    def write(self, data: bytes) -> None:
        self.count += len(data)
        self._write(data)


class _Buffered:
    """Gathers tarfile's 10 KiB records into large writes (fewer, fuller SSH packets)."""

    def __init__(self, write: Callable[[bytes], None], size: int = 256 * 1024) -> None:
        self._write = write
        self._size = size
        self._parts: list[bytes] = []
        self._held = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._held += len(data)
        if self._held >= self._size:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._parts:
            self._write(b"".join(self._parts))
            self._parts, self._held = [], 0


def _write_push_tar(
    write: Callable[[bytes], None],
    snapshot: Snapshot,
    entries: list[SnapshotEntry],
    missing: dict[str, SnapshotEntry],
    incoming: str,
    workdir: str,
    compress: bool,
) -> None:
    """The push's tar (gzip'd if `compress`): missing blobs into `incoming`, then a hard link per file."""
    where = snapshot.store.blobs.locate(e.blob for e in missing.values())
    out = _Buffered(write)
    gz = gzip.GzipFile(fileobj=cast(BinaryIO, out), mode="wb", compresslevel=6, mtime=0) if compress else None
    sink = cast(BinaryIO, gz if gz is not None else out)
    sources: dict[Path, BinaryIO] = {}  # a pack holds many blobs: open it once
    try:
        tar = TarWriter(sink.write)
        for name, entry in missing.items():
            loc = where[entry.blob]
            src = sources.get(loc.path)
            if src is None:
                src = sources[loc.path] = open(loc.path, "rb")  # noqa: SIM115 (closed below)
            src.seek(loc.offset)
            tar.add_file(f"{incoming}/{name}", entry.size, entry.mode, CACHE_MTIME, src)
        for entry in entries:
            name = _cache_name(entry)
            target = f"{incoming}/{name}" if name in missing else f"blobs/{name}"
            tar.add_hardlink(f"{workdir}/{entry.path}", target, CACHE_MTIME)
        tar.close()
        if gz is not None:
            gz.close()
    finally:
        for f in sources.values():
            f.close()
    out.flush()
