"""Snapshot transfer by delta: a content-addressed blob cache on the host, so a file travels once.

Two round trips per submit, whatever the number of files: (1) the host is asked which blobs it
holds (by an 8-hex prefix of each digest, gzip'd; answered with full names, sizes and times); (2) one gzip'd
tar stream carries the missing blobs into the cache and hard-link entries that assemble the run's
working directory from the cache (tar makes the links itself: no process per file on the host).
The host needs only `sh`, `tar` with gzip and coreutils (a Docker host may have no Python).

Cache layout under `root` (default `~/.amlexec`): `blobs/<2 hex>/<sha256>.<mode>` (one file per
content and mode, since hard links share their mode). Cached files carry a fixed mtime: one whose
size or mtime differs (a run wrote into its working copy) counts as missing and is sent again. New
blobs land in `blobs/.in-<id>/` and are renamed into place when the stream ended well, so a broken
transfer leaves no half blob under a final name. Work dirs and the cache share one file system.
"""

from __future__ import annotations

import gzip
import os
import shlex
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from ..errors import ConfigError, TargetUnavailableError
from .ssh import Sink, SshConnection

if TYPE_CHECKING:
    from ..snapshot import Snapshot, SnapshotEntry

DEFAULT_ROOT = "~/.amlexec"
CACHE_MTIME = 946684800  # 2000-01-01T00:00:00Z on every cached blob: a changed one is noticed
_PREFIX = 8  # hex digits of a digest in the "which do you have?" question (full names come back)
_STAT_BATCH = 2000  # file names per `stat` call on the host
_SMALL_PAYLOAD = 16 * 1024 * 1024  # below this, compress hard (headers and text); above, fast


@dataclass(frozen=True)
class SyncStats:
    """What a push cost: every byte written to the SSH channel is counted."""

    bytes_sent: int
    blobs_sent: int
    blobs_reused: int
    blob_bytes_sent: int  # file contents among bytes_sent (before compression)
    round_trips: int
    seconds: float


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
        workdir = _check_relative(workdir)
        entries = list(snapshot.entries)
        have, query_bytes = self._query(entries, timeout)
        missing: dict[str, SnapshotEntry] = {}
        for entry in entries:
            name = _cache_name(entry)
            if name not in have:
                missing.setdefault(name, entry)
        incoming = f"blobs/.in-{uuid.uuid4().hex[:16]}"
        payload = sum(e.size for e in missing.values())
        stream = _TarStream(snapshot, entries, missing, incoming, workdir, payload)
        script = _PUSH_SCRIPT.format(root=host_path(self.root), inc=incoming, wd=shlex.quote(workdir))
        try:
            result = self.conn.run(["sh", "-c", script], stdin=stream.reader, timeout=timeout)
        finally:
            stream.finish()
        if result.exit_code != 0:
            err = result.stderr.decode("utf-8", "replace").strip()
            raise TargetUnavailableError(
                f"Sending the snapshot to {self.conn.endpoint.describe()} failed (exit "
                f"{result.exit_code}): {err[-2000:] or 'no message'}. The host needs tar with gzip; "
                f"{self.root} and its work directories must be on one file system (hard links)."
            )
        return SyncStats(
            bytes_sent=query_bytes + result.bytes_sent + len(script),
            blobs_sent=len(missing),
            blobs_reused=len({_cache_name(e) for e in entries}) - len(missing),
            blob_bytes_sent=payload,
            round_trips=2,
            seconds=time.monotonic() - started,
        )

    def _query(self, entries: list[SnapshotEntry], timeout: float) -> tuple[set[str], int]:
        """The cache names (`ab/<digest>.<mode>`) the host holds intact, and the bytes asked with."""
        prefixes = "".join(f"{p}\n" for p in sorted({e.blob[:_PREFIX] for e in entries}))
        question = gzip.compress(prefixes.encode(), compresslevel=9, mtime=0)
        script = _QUERY_SCRIPT.format(root=host_path(self.root), batch=_STAT_BATCH)
        result = self.conn.run(["sh", "-c", script], stdin=question, timeout=timeout)
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

    def pull_folder(self, folder: str, sink: Sink, *, timeout: float = 600.0) -> int | None:
        """Stream `folder` of the host as an uncompressed tar (members relative to it) into `sink`.

        Returns the bytes received, or None when the folder does not exist (nothing is written).
        `folder` is absolute, `~/...`, or relative to the amlexec root.
        """
        where = folder if folder.startswith(("/", "~")) else f"{self.root.rstrip('/')}/{folder}"
        path = host_path(where)
        counted = _Counting(sink)
        script = f"[ -d {path} ] || exit 3; cd {path} && exec tar -c -f - ."
        result = self.conn.run(["sh", "-c", script], stdout=counted.write, timeout=timeout)
        if result.exit_code == 3 and counted.count == 0:
            return None
        if result.exit_code != 0:
            raise TargetUnavailableError(
                f"Reading {where} from {self.conn.endpoint.describe()} failed: "
                f"{result.stderr.decode('utf-8', 'replace').strip() or 'exit ' + str(result.exit_code)}."
            )
        return counted.count


_QUERY_SCRIPT = """set -e
mkdir -p {root}/blobs
cd {root}/blobs
gzip -dc | {{
  n=0
  set --
  while read -r p; do
    for f in "${{p%"${{p#??}}"}}"/"$p"*; do
      [ -f "$f" ] || continue
      set -- "$@" "$f"; n=$((n+1))
    done
    if [ "$n" -ge {batch} ]; then stat -c '%n %s %Y' "$@" || true; set --; n=0; fi
  done
  if [ "$n" -gt 0 ]; then stat -c '%n %s %Y' "$@" || true; fi
}}
"""

_PUSH_SCRIPT = """set -e
cd {root}
trap 'rm -rf {inc}' EXIT
rm -rf {wd}
mkdir -p {inc} {wd}
tar -x -z -p -o -f - -C .
cd {inc}
for d in */; do
  d=${{d%/}}
  [ -d "$d" ] || continue
  mkdir -p "../$d"
  mv -f "$d"/* "../$d/"
done
"""


class _Counting:
    def __init__(self, sink: Sink) -> None:
        write = getattr(sink, "write", None)
        self._write: Callable[[bytes], object] = write if write is not None else sink  # type: ignore[assignment]
        self.count = 0

    def write(self, data: bytes) -> None:
        self.count += len(data)
        self._write(data)


class _TarStream:
    """The push's tar.gz, written on a thread into a pipe whose reading end is the command's stdin."""

    def __init__(
        self,
        snapshot: Snapshot,
        entries: list[SnapshotEntry],
        missing: dict[str, SnapshotEntry],
        incoming: str,
        workdir: str,
        payload: int,
    ) -> None:
        read_fd, write_fd = os.pipe()
        self.reader: BinaryIO = os.fdopen(read_fd, "rb")
        self._writer = os.fdopen(write_fd, "wb")
        self._error: BaseException | None = None
        args = (snapshot, entries, missing, incoming, workdir, 6 if payload < _SMALL_PAYLOAD else 1)
        self._thread = threading.Thread(target=self._write, args=args, name="amlexec-blobsync", daemon=True)
        self._thread.start()

    def _write(
        self,
        snapshot: Snapshot,
        entries: list[SnapshotEntry],
        missing: dict[str, SnapshotEntry],
        incoming: str,
        workdir: str,
        level: int,
    ) -> None:
        try:
            where = snapshot.store.blobs.locate(e.blob for e in missing.values())
            with (
                self._writer,
                gzip.GzipFile(fileobj=self._writer, mode="wb", compresslevel=level, mtime=0) as gz,
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                for name, entry in missing.items():
                    info = tarfile.TarInfo(f"{incoming}/{name}")
                    info.size, info.mode, info.mtime = entry.size, entry.mode, CACHE_MTIME
                    loc = where[entry.blob]
                    with open(loc.path, "rb") as src:
                        src.seek(loc.offset)
                        tar.addfile(info, src)
                for entry in entries:
                    name = _cache_name(entry)
                    link = tarfile.TarInfo(f"{workdir}/{entry.path}")
                    link.type = tarfile.LNKTYPE
                    link.linkname = f"{incoming}/{name}" if name in missing else f"blobs/{name}"
                    link.mtime = CACHE_MTIME
                    tar.addfile(link)
        except BrokenPipeError:
            pass  # the remote side stopped reading: its exit status tells why
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the command failed, and says so
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread by finish()
            self._error = exc

    def finish(self) -> None:
        """Wait for the writer (closing the pipe first ends it if the command stopped reading)."""
        self.reader.close()
        self._thread.join()
        if self._error is not None:
            raise self._error
