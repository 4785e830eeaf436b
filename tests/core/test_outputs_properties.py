"""Any tar a target hands over: collection stores only regular files inside dest, never raises
anything but AttachmentError, and every stored name is valid UTF-8 and a real file on disk."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_amlexec.core.errors import AttachmentError
from jupyter_amlexec.core.outputs import collect_directory, collect_tar

PARTS = st.sampled_from(["outputs", "..", ".", "", "a", "b", "\udcff", "é", "x\\xff", "/etc", "sub"])
ANY_NAMES = st.lists(PARTS, min_size=1, max_size=4).map("/".join)
NAMES = st.one_of(ANY_NAMES, ANY_NAMES.map(lambda name: f"outputs/{name}"))  # most under outputs/
TYPES = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
)
MEMBERS = st.lists(st.tuples(NAMES, TYPES, NAMES, st.binary(max_size=64)), max_size=12)


def archive(members: list[tuple[str, bytes, str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, errors="surrogateescape") as tar:
        for name, kind, linkname, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = linkname if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buffer.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=MEMBERS, cut=st.one_of(st.none(), st.integers(min_value=0, max_value=4000)))
def test_any_archive_stores_only_regular_files_inside_dest(
    members: list[tuple[str, bytes, str, bytes]], cut: int | None
) -> None:
    data = archive(members)
    if cut is not None:
        data = data[:cut]  # a transfer that broke off
    base = Path(tempfile.mkdtemp(prefix="amlexec-prop-"))
    try:
        dest = base / "run" / "outputs"
        lines: list[str] = []
        try:
            collected = collect_tar(io.BytesIO(data), "outputs", dest, 32, lines.append)
        except AttachmentError as exc:
            collected = list(exc.collected)
        on_disk = sorted(
            os.path.relpath(os.path.join(d, f), dest) for d, _, files in os.walk(dest) for f in files
        )
        assert on_disk == sorted(collected)
        for name in collected:
            name.encode("utf-8")  # valid UTF-8: the history can store it
            assert (dest / name).is_file() and not (dest / name).is_symlink()
        everything = [os.path.join(d, n) for d, dirs, files in os.walk(base) for n in dirs + files]
        assert all(os.path.realpath(p).startswith(str(dest)) or p == str(base / "run") for p in everything)
        assert all(not os.path.islink(p) for p in everything)
        for line in lines:
            line.encode("utf-8")
    finally:
        shutil.rmtree(base)


ENTRY = st.tuples(
    st.lists(st.sampled_from(["a", "b", "\udcff", "é", "x\\xff"]), min_size=1, max_size=3).map("/".join),
    st.sampled_from(["file", "dir", "link", "hardlink", "fifo"]),
    st.sampled_from(["HOST", "HOST/secret.txt", "..", "../..", "a", "a/b", "b", "/etc", "missing", "."]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(ENTRY, max_size=10))
def test_any_outputs_folder_leaves_everything_outside_it_as_it_was(
    entries: list[tuple[str, str, str]],
) -> None:
    base = Path(tempfile.mkdtemp(prefix="amlexec-prop-"))
    try:
        host = base / "host"
        host.mkdir()
        (host / "secret.txt").write_text("mine")
        before = sorted((p.name, p.read_bytes(), p.stat().st_ino) for p in host.iterdir())
        out = base / "work" / "outputs"
        out.mkdir(parents=True)
        for rel, kind, target in entries:
            make(out, rel, kind, target.replace("HOST", str(host)))
        dest = base / "history" / "outputs"
        lines: list[str] = []
        collected = collect_directory(out, dest, 1 << 20, lines.append)
        assert sorted((p.name, p.read_bytes(), p.stat().st_ino) for p in host.iterdir()) == before
        host_inodes = {ino for _, _, ino in before}
        for name in collected:
            name.encode("utf-8")
            assert (dest / name).is_file() and not (dest / name).is_symlink()
            assert (dest / name).stat().st_ino not in host_inodes  # a copy, never the host's own file
        stored = [os.path.join(d, n) for d, dirs, files in os.walk(base / "history") for n in dirs + files]
        assert not any(os.path.islink(p) for p in stored)
        assert all(line.encode("utf-8") for line in lines)
    finally:
        shutil.rmtree(base)


def make(out: Path, rel: str, kind: str, target: str) -> None:
    """One entry of a generated outputs/ folder; a clash with an earlier one is simply not made."""
    parent = out
    for part in rel.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink():
            return  # through a link made earlier: the script writes only into its own outputs/
    path = os.fsencode(out / rel)
    if os.path.lexists(path):
        return  # never write through an earlier link or into an earlier FIFO
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind == "file":
            Path(os.fsdecode(path)).write_bytes(rel.encode("utf-8", "surrogateescape"))
        elif kind == "dir":
            os.mkdir(path)
        elif kind == "link":
            os.symlink(target, path)
        elif kind == "hardlink":
            os.link(target if os.path.isabs(target) else out / target, path, follow_symlinks=False)
        else:
            os.mkfifo(path)
    except OSError:
        pass
