"""TarWriter: a tar stream of files and hard links, written with ustar headers made here.

A snapshot push is one tar of up to tens of thousands of members. tarfile builds each header
through TarInfo (a PAX header, a copy of the info, field by field): ~50 µs a member, over a second
of CPU for a 10k-file first upload — more than `tar c` takes for the whole stream. A ustar header
is 512 bytes of fixed fields; it is built here in a few µs. A member ustar cannot hold (a name
that does not split into its 100 + 155 byte fields, a file of 8 GiB or more) gets tarfile's PAX
header instead, so every member is written exactly, as GNU tar and tarfile read it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK  # what tarfile and GNU tar pad a stream to
_MAX_USTAR_SIZE = 8**11 - 1
_COPY_CHUNK = 1024 * 1024


class TarWriter:
    """Writes members to `write` as they are added; `close()` writes the end of the archive."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._written = 0

    def _emit(self, data: bytes) -> None:
        self._write(data)
        self._written += len(data)

    def add_file(self, name: str, size: int, mode: int, mtime: int, source: BinaryIO) -> None:
        """A regular file of `size` bytes read from `source` (at its current position)."""
        self._emit(_header(name, size, mode, mtime, tarfile.REGTYPE, ""))
        left = size
        while left:
            chunk = source.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError(f"{name}: the source ended {left} bytes early")
            self._emit(chunk)
            left -= len(chunk)
        if size % BLOCK:
            self._emit(bytes(BLOCK - size % BLOCK))

    def add_hardlink(self, name: str, target: str, mtime: int) -> None:
        """A hard link `name` to the archive member (or existing file) `target`."""
        self._emit(_header(name, 0, 0o644, mtime, tarfile.LNKTYPE, target))

    def close(self) -> None:
        """Two zero blocks end the archive; the stream is padded to a whole record."""
        end = self._written + 2 * BLOCK
        self._emit(bytes(2 * BLOCK + (-end) % RECORD))


def _header(name: str, size: int, mode: int, mtime: int, kind: bytes, linkname: str) -> bytes:
    """The member's header: ustar when its fields can hold it, else tarfile's PAX header."""
    raw_name = name.encode("utf-8", "surrogateescape")
    raw_link = linkname.encode("utf-8", "surrogateescape")
    split = _split_name(raw_name)
    if split is None or len(raw_link) > 100 or size > _MAX_USTAR_SIZE:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime, info.type, info.linkname = size, mode, mtime, kind, linkname
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    prefix, short = split
    fields = b"".join(
        [
            short.ljust(100, b"\0"),
            b"%07o\0" % (mode & 0o7777),
            b"0000000\0",  # uid
            b"0000000\0",  # gid
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b"        ",  # the checksum, counted as spaces
            kind,
            raw_link.ljust(100, b"\0"),
            b"ustar\x0000",
            bytes(64),  # user and group names
            b"0000000\0" * 2,  # device numbers
            prefix.ljust(155, b"\0"),
            bytes(12),
        ]
    )
    checksum = b"%06o\0 " % sum(fields)
    return fields[:148] + checksum + fields[156:]


def _split_name(raw: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) fields for a path: the name up to 100 bytes, the prefix (at a '/') up to 155."""
    if len(raw) <= 100:
        return b"", raw
    cut = raw.find(b"/", len(raw) - 101)  # the first '/' that leaves at most 100 bytes after it
    if cut <= 0 or cut > 155:
        return None
    return raw[:cut], raw[cut + 1 :]
