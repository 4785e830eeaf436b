"""The push's own tar writer, read back by tarfile and extracted by GNU tar: every member exact."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from jupyter_amlexec.core.transport.tarstream import RECORD, TarWriter

FILES = {
    "short.txt": (b"hello\n", 0o644),
    "empty": (b"", 0o600),
    "run.sh": (b"#!/bin/sh\necho hi\n", 0o755),
    "naïve – файл.txt": (b"unicode\n", 0o644),
    # longer than ustar's 100-byte name field: split into prefix + name
    "deep/" + "/".join(["folder_with_a_long_name"] * 5) + "/file.bin": (os.urandom(5000), 0o644),
    # no '/' leaves a name part of 100 bytes or less: tarfile's PAX header takes it
    "x" * 150 + ".txt": (b"pax\n", 0o644),
    "exact_block": (b"b" * 512, 0o644),
}
LINKS = {"link_to_short": "short.txt", "d/" + "l" * 120: "run.sh"}


def _archive() -> bytes:
    out = io.BytesIO()
    tar = TarWriter(out.write)
    for name, (data, mode) in FILES.items():
        tar.add_file(name, len(data), mode, 946684800, io.BytesIO(data))
    for name, target in LINKS.items():
        tar.add_hardlink(name, target, 946684800)
    tar.close()
    return out.getvalue()


def test_tarfile_reads_back_every_member_exactly() -> None:
    data = _archive()
    assert len(data) % RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == set(FILES) | set(LINKS)
        for name, (content, mode) in FILES.items():
            member = members[name]
            assert member.isfile() and member.mode == mode and member.mtime == 946684800
            assert tar.extractfile(member).read() == content  # type: ignore[union-attr]
        for name, target in LINKS.items():
            assert members[name].islnk() and members[name].linkname == target


def test_gnu_tar_extracts_the_same_tree(tmp_path: Path) -> None:
    # When GNU tar (as on a host) extracts the stream from stdin
    subprocess.run(["tar", "-x", "-p", "-o", "-f", "-", "-C", str(tmp_path)], input=_archive(), check=True)
    # Then every file has its content and mode, and the hard links share the file
    for name, (content, mode) in FILES.items():
        path = tmp_path / name
        assert path.read_bytes() == content and path.stat().st_mode & 0o7777 == mode
    for name, target in LINKS.items():
        assert (tmp_path / name).stat().st_ino == (tmp_path / target).stat().st_ino
