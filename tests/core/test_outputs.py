"""Collecting a run's outputs/ into the history: nothing outside the run is touched or stored."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import tempfile
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import AttachmentError, Hint
from jupyter_amlexec.core.history import History
from jupyter_amlexec.core.models import RunStatus
from jupyter_amlexec.core.outputs import collect_directory, collect_tar, resolve_attachment
from tests.conftest import require

MB = 1024 * 1024
BASE_IMAGE = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")


def state(folder: Path) -> dict[bytes, tuple[str, bytes | str]]:
    """Every entry under `folder` (by its name bytes): a file's sha256 and link count, a link's target."""
    found: dict[bytes, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(folder)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, os.fsencode(folder))
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                st = os.stat(path)
                found[rel] = (
                    f"file nlink={st.st_nlink}",
                    hashlib.sha256(Path(os.fsdecode(path)).read_bytes()).digest(),
                )
            else:
                found[rel] = ("dir", b"")
    return found


def host_folder(root: Path) -> Path:
    """A user's own folder, outside any run: what collection must leave exactly as it was."""
    root.mkdir(parents=True)
    (root / "thesis.tex").write_text("my thesis\n")
    (root / "data").mkdir()
    (root / "data" / "big.csv").write_bytes(os.urandom(100_000))
    return root


def test_an_outputs_folder_that_is_a_link_to_a_host_folder_leaves_it_intact(tmp_path: Path) -> None:
    # Given a run whose outputs/ is a link to a folder of the user (os.symlink("/some/dir", "outputs"))
    host = host_folder(tmp_path / "home" / "me")
    before = state(host)
    work = tmp_path / "run" / "work"
    work.mkdir(parents=True)
    (work / "outputs").symlink_to(host)
    lines: list[str] = []
    # When its outputs are collected
    dest = tmp_path / "history" / "outputs"
    collected = collect_directory(work / "outputs", dest, 10 * MB, lines.append)
    # Then nothing is collected, the control log says why, and the host folder is byte for byte intact
    assert collected == []
    assert any("outputs/ is a link to" in line and str(host) in line for line in lines)
    assert state(host) == before
    assert not dest.exists() or list(dest.iterdir()) == []


def test_links_inside_outputs_that_leave_it_are_skipped_and_named(tmp_path: Path) -> None:
    # Given outputs/ holding a real file, links out of it (to a host file, a host folder, up with ..,
    # dangling, a loop) and links to a file inside it
    host = host_folder(tmp_path / "me")
    before = state(host)
    out = tmp_path / "work" / "outputs"
    (out / "sub").mkdir(parents=True)
    (out / "result.txt").write_text("42\n")
    (out / "to_host_file").symlink_to(host / "thesis.tex")
    (out / "to_host_dir").symlink_to(host)
    (out / "sub" / "up_and_out").symlink_to("../../../me/thesis.tex")
    (out / "dangling").symlink_to(tmp_path / "nowhere")
    (out / "loop_a").symlink_to("loop_b")
    (out / "loop_b").symlink_to("loop_a")
    (out / "sub" / "same_result").symlink_to("../result.txt")
    (out / "to_sub").symlink_to("sub")
    os.symlink(os.fsencode(tmp_path) + b"/caf\xe9", os.fsencode(out) + b"/odd_target")
    lines: list[str] = []
    # When they are collected
    dest = tmp_path / "history" / "outputs"
    collected = collect_directory(out, dest, 10 * MB, lines.append)
    # Then only the run's own file is stored, once under its name and once as the inside link's copy,
    # every skipped link is named in the control log, the history holds no link, the host is intact
    assert collected == ["result.txt", "sub/same_result"]
    assert (dest / "sub" / "same_result").read_text() == "42\n"
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    log = "\n".join(lines)
    skipped = (
        "to_host_file",
        "to_host_dir",
        "sub/up_and_out",
        "dangling",
        "loop_a",
        "loop_b",
        "to_sub",
        "odd_target",
    )
    for name in skipped:
        assert f"outputs/{name}: not collected" in log, name
    assert log.encode("utf-8") and "caf\\xe9" in log  # a link target's bytes, escaped in the log
    assert str(host / "thesis.tex") in log
    assert state(host) == before


def test_hard_links_are_copied_and_the_outside_file_keeps_its_own_inode(tmp_path: Path) -> None:
    # Given an output that is a hard link to a host file, and two outputs hard-linked to each other
    host = host_folder(tmp_path / "me")
    out = tmp_path / "work" / "outputs"
    out.mkdir(parents=True)
    os.link(host / "thesis.tex", out / "thesis_link.tex")
    (out / "a.bin").write_bytes(b"shared")
    os.link(out / "a.bin", out / "b.bin")
    before = state(host)
    # When they are collected
    dest = tmp_path / "history" / "outputs"
    collected = collect_directory(out, dest, 10 * MB, lambda line: None)
    # Then each is a file of the run with its content, none shares the host file's inode, and the
    # host file is untouched: changing it later does not change the history
    assert collected == ["a.bin", "b.bin", "thesis_link.tex"]
    assert (dest / "a.bin").read_bytes() == (dest / "b.bin").read_bytes() == b"shared"
    assert (dest / "thesis_link.tex").stat().st_ino != (host / "thesis.tex").stat().st_ino
    assert state(host) == before
    (host / "thesis.tex").write_text("changed later\n")
    assert (dest / "thesis_link.tex").read_text() == "my thesis\n"


def test_non_utf8_names_are_collected_listed_stored_and_read_back(tmp_path: Path) -> None:
    # Given outputs whose names are not UTF-8 (in a file name and a folder name), beside one whose
    # valid name is exactly what the escape of another gives
    out = tmp_path / "work" / "outputs"
    out.mkdir(parents=True)
    Path(os.fsdecode(os.fsencode(out) + b"/\xff.txt")).write_bytes(b"ff")
    os.mkdir(os.fsencode(out) + b"/d\xe9j\xe0")  # latin-1 'déjà'
    Path(os.fsdecode(os.fsencode(out) + b"/d\xe9j\xe0/r\xc3\xa9sum\xc3\xa9.txt")).write_bytes(b"cv")
    (out / "\\xfe.txt").write_bytes(b"literal")
    Path(os.fsdecode(os.fsencode(out) + b"/\xfe.txt")).write_bytes(b"fe")
    lines: list[str] = []
    # When they are collected and stored as a run's attachments
    history = History(tmp_path / "home")
    record = history.create_run(
        project="p", project_path=str(tmp_path), experiment="e", target="local", target_type="local",
        run_configuration="local", script_name="s.py", arguments=[], environment={}, snapshot_id=None,
    )  # fmt: skip
    run_dir = history.run_dir(record.run_id)
    collected = collect_directory(out, run_dir / "outputs", 10 * MB, lines.append)
    history.set_attachments(record.run_id, [f"outputs/{name}" for name in collected])
    # Then every name is valid UTF-8 (the invalid bytes written \xNN), the clash gets ~2, the control
    # log gives the original bytes, the history lists them, and each reads back with its content
    assert sorted(collected) == sorted(["\\xff.txt", "d\\xe9j\\xe0/résumé.txt", "\\xfe.txt", "\\xfe~2.txt"])
    assert {n.encode("utf-8") for n in collected}  # no surrogate left
    assert any("b'\\xff.txt'" in line for line in lines)
    attachments = history.get(record.run_id).attachments
    assert set(collected) <= {a.removeprefix("outputs/") for a in attachments}
    contents = {name: resolve_attachment(run_dir, f"outputs/{name}").read_bytes() for name in collected}
    assert contents["\\xff.txt"] == b"ff" and contents["d\\xe9j\\xe0/résumé.txt"] == b"cv"
    assert {contents["\\xfe.txt"], contents["\\xfe~2.txt"]} == {b"literal", b"fe"}


def test_files_over_the_cap_fifos_and_sockets_are_skipped_and_named(tmp_path: Path) -> None:
    out = tmp_path / "work" / "outputs"
    out.mkdir(parents=True)
    (out / "small.txt").write_bytes(b"x" * 1000)
    (out / "huge.bin").write_bytes(b"x" * 1001)
    os.mkfifo(out / "pipe")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(out / "sock"))
    lines: list[str] = []
    try:
        collected = collect_directory(out, tmp_path / "dest", 1000, lines.append)
    finally:
        server.close()
    assert collected == ["small.txt"]
    log = "\n".join(lines)
    assert "outputs/huge.bin: not collected, 1001 bytes is over the 1000-byte limit" in log
    assert "outputs/pipe: not collected" in log and "outputs/sock: not collected" in log


def test_a_collection_moves_only_the_run_s_own_files_and_keeps_modes_and_folders(tmp_path: Path) -> None:
    out = tmp_path / "work" / "outputs"
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "b" / "deep.txt").write_text("deep")
    (out / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(out / "run.sh", 0o755)
    collected = collect_directory(out, tmp_path / "dest", MB, lambda line: None)
    assert collected == ["a/b/deep.txt", "run.sh"]
    assert (tmp_path / "dest" / "a" / "b" / "deep.txt").read_text() == "deep"
    assert os.stat(tmp_path / "dest" / "run.sh").st_mode & 0o777 == 0o755
    assert collect_directory(tmp_path / "missing", tmp_path / "dest2", MB, lambda line: None) == []


def test_outputs_on_another_file_system_are_copied(tmp_path: Path) -> None:
    # Given outputs/ on another file system than the history (a rename cannot cross it)
    require(os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != tmp_path.stat().st_dev, "/dev/shm")
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="amlexec-outputs-") as other:
        out = Path(other) / "outputs"
        (out / "sub").mkdir(parents=True)
        for i in range(50):
            (out / "sub" / f"f{i}.txt").write_text(f"{i}\n")
        # When they are collected, then every file arrives whole
        collected = collect_directory(out, tmp_path / "dest", MB, lambda line: None)
        assert collected == sorted(f"sub/f{i}.txt" for i in range(50))
        assert all((tmp_path / "dest" / "sub" / f"f{i}.txt").read_text() == f"{i}\n" for i in range(50))


# --- tar streams (Docker's get_archive, later ssh tar) ----------------------------------------------------


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def hostile_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        add(tar, "outputs", type=tarfile.DIRTYPE, mode=0o755)
        add(tar, "outputs/ok.txt", b"ok\n")
        add(tar, "outputs/sub/deep.txt", b"deep\n")
        add(tar, "/etc/evil", b"absolute\n")
        add(tar, "outputs/../escape.txt", b"dotdot\n")
        add(tar, "../escape2.txt", b"dotdot\n")
        add(tar, "elsewhere/x.txt", b"not under outputs\n")
        add(tar, "outputs/sym_abs", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add(tar, "outputs/sub/sym_up", type=tarfile.SYMTYPE, linkname="../../secret")
        add(tar, "outputs/sym_in", type=tarfile.SYMTYPE, linkname="sub/deep.txt")
        add(tar, "outputs/hard_in", type=tarfile.LNKTYPE, linkname="outputs/ok.txt")
        add(tar, "outputs/hard_out", type=tarfile.LNKTYPE, linkname="etc/passwd")
        add(tar, "outputs/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add(tar, "outputs/fifo", type=tarfile.FIFOTYPE)
        add(tar, "outputs/\udcff.bin", b"ff\n")  # the raw byte 0xff in a GNU tar name
        add(tar, "outputs/big.bin", b"b" * 5000)
        add(tar, "outputs/sym_in", b"replaced\n")  # a later member of the same name wins on disk
    return buffer.getvalue()


def chunks(data: bytes, size: int = 7000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_a_hostile_tar_stores_only_regular_files_inside_outputs(tmp_path: Path) -> None:
    # Given a target's archive of outputs/ with absolute names, '..', links out, devices and FIFOs
    dest = tmp_path / "run" / "outputs"
    lines: list[str] = []
    # When it is collected from a stream of chunks, as docker-py hands it over
    collected = collect_tar(chunks(hostile_tar()), "outputs", dest, 4096, lines.append)
    # Then only the run's regular files are stored (links inside as copies), nothing lands outside
    # dest, and each skipped member is named
    assert collected == ["\\xff.bin", "hard_in", "ok.txt", "sub/deep.txt", "sym_in"]
    assert (dest / "hard_in").read_bytes() == b"ok\n"
    assert (dest / "sym_in").read_bytes() == b"replaced\n"
    assert (dest / "\\xff.bin").read_bytes() == b"ff\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if not p.is_dir()) == [
        f"run/outputs/{name}" for name in collected
    ]
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))
    log = "\n".join(lines)
    for name in ("/etc/evil", "outputs/../escape.txt", "../escape2.txt", "elsewhere/x.txt"):
        assert f"{name} in the outputs archive: not collected" in log, name
    for name in ("sym_abs", "sub/sym_up", "hard_out", "dev", "fifo", "big.bin"):
        assert f"outputs/{name}: not collected" in log, name


def test_a_tar_whose_outputs_is_a_link_collects_nothing(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        add(tar, "outputs", type=tarfile.SYMTYPE, linkname="/etc")
    lines: list[str] = []
    assert collect_tar(io.BytesIO(buffer.getvalue()), "outputs", tmp_path / "d", MB, lines.append) == []
    assert any("outputs/ is a link to /etc" in line for line in lines)


def test_a_truncated_tar_raises_and_keeps_what_arrived(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        add(tar, "outputs/first.txt", b"1" * 600)
        add(tar, "outputs/second.txt", b"2" * 100_000)
    cut = buffer.getvalue()[:5000]
    with pytest.raises(AttachmentError, match="malformed or ended early") as error:
        collect_tar(chunks(cut), "outputs", tmp_path / "d", MB, lambda line: None)
    assert error.value.collected == ("first.txt",)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["first.txt"]  # no partial second file


def test_a_large_tar_streams_without_being_held_in_memory(tmp_path: Path) -> None:
    # Given a 64 MB output file in an archive generated on the fly, in 1 MB chunks
    size = 64 * MB
    info = tarfile.TarInfo("outputs/model.bin")
    info.size = size

    def stream() -> Iterator[bytes]:
        yield info.tobuf()
        block = b"\x01" * MB
        for _ in range(size // MB):
            yield block
        yield b"\0" * (2 * tarfile.BLOCKSIZE + tarfile.RECORDSIZE)

    # When it is collected, then it arrives whole while Python never held more than a few chunks
    tracemalloc.start()
    try:
        collected = collect_tar(stream(), "outputs", tmp_path / "d", 2 * size, lambda line: None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert collected == ["model.bin"]
    assert (tmp_path / "d" / "model.bin").stat().st_size == size
    assert peak < 16 * MB, peak  # a quarter of the file: other threads of the test process allocate too


CONTAINER_SCRIPT = r"""
import os
os.makedirs("/w/outputs/sub")
open("/w/outputs/ok.txt", "w").write("ok")
os.symlink("/etc/hostname", "/w/outputs/host_link")
os.symlink("ok.txt", "/w/outputs/in_link")
os.link("/w/outputs/ok.txt", "/w/outputs/hard")
open(b"/w/outputs/\xff.bin", "wb").write(b"ff")
os.mkfifo("/w/outputs/fifo")
os.symlink("/etc", "/w/linked_outputs")
"""


@pytest.fixture
def container() -> Iterator[Any]:
    """A finished container of the test image whose outputs hold links out, a hard link, a FIFO and a
    non-UTF-8 name (removed afterwards)."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.images.get(BASE_IMAGE)
    except Exception as exc:  # noqa: BLE001 - no docker-py, no engine or no test image
        require(False, f"a Docker engine with {BASE_IMAGE} ({exc})")
    made = client.containers.create(
        BASE_IMAGE,
        ["python3", "-c", CONTAINER_SCRIPT],
        labels={"amlexec.test": "outputs"},
        network_mode="none",
    )
    try:
        made.start()
        assert made.wait(timeout=60)["StatusCode"] == 0
        yield made
    finally:
        made.remove(force=True)


def test_a_real_docker_archive_of_outputs_is_collected_safely(container: Any, tmp_path: Path) -> None:
    # Given the archive the Docker engine hands over for a container's outputs/
    stream, _ = container.client.api.get_archive(container.id, "/w/outputs")
    lines: list[str] = []
    # When it is collected, then its regular files (hard link and inside link as copies) are stored
    # under UTF-8 names, and the link out and the FIFO are named and skipped
    collected = collect_tar(stream, "outputs", tmp_path / "d", MB, lines.append)
    assert collected == ["\\xff.bin", "hard", "in_link", "ok.txt"]
    assert [(tmp_path / "d" / n).read_bytes() for n in collected] == [b"ff", b"ok", b"ok", b"ok"]
    log = "\n".join(lines)
    assert "outputs/host_link: not collected" in log and "outputs/fifo: not collected" in log
    # And an outputs/ that is itself a link to /etc gives nothing
    stream, _ = container.client.api.get_archive(container.id, "/w/linked_outputs")
    assert collect_tar(stream, "linked_outputs", tmp_path / "e", MB, lines.append) == []
    assert "outputs/ is a link to /etc" in lines[-1]


# --- reading attachments ---------------------------------------------------------------------------------


def test_attachments_are_read_only_from_the_run_s_own_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "p_1"
    (run_dir / "outputs" / "sub").mkdir(parents=True)
    (run_dir / "driver_log.txt").write_text("log")
    (run_dir / "outputs" / "sub" / "m.txt").write_text("m")
    (run_dir / "outputs" / "etc").symlink_to("/etc")
    (run_dir / "outputs" / "alias.txt").symlink_to("sub/m.txt")
    (tmp_path / "runs" / "p_2").mkdir()
    (tmp_path / "runs" / "p_2" / "secret.txt").write_text("other run")
    # Names of the run's files resolve inside it, through links that stay inside
    assert resolve_attachment(run_dir, "driver_log.txt").read_text() == "log"
    assert resolve_attachment(run_dir, "outputs/sub/m.txt").read_text() == "m"
    assert resolve_attachment(run_dir, "outputs/alias.txt").read_text() == "m"
    # Everything that leaves it is refused with a message naming the path and what is allowed
    for name in (
        "/etc/hostname",
        "../p_2/secret.txt",
        "outputs/../../p_2/secret.txt",
        "outputs/etc/hostname",
        "",
    ):
        with pytest.raises(AttachmentError) as error:
            resolve_attachment(run_dir, name)
        message = str(error.value)
        assert (
            repr(name) in message
            and "outputs/<file>" in message
            and error.value.hint == Hint("run.show", ("p_1",))
        )


# --- end to end, through a real local run -----------------------------------------------------------------


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text))


def test_a_local_run_whose_outputs_link_to_a_host_folder_leaves_it_intact(
    project: Path, home: Path, tmp_path: Path
) -> None:
    host = host_folder(tmp_path / "me")
    before = state(host)
    write(project, "link.py", f"import os\nos.symlink({str(host)!r}, 'outputs')\n")
    run = Session.open(project, home).submit(script="link.py", run_configuration="local").wait()
    assert run.record.status is RunStatus.COMPLETED
    assert state(host) == before
    assert run.outputs == []
    assert "outputs/ is a link to" in run.logs("control")


def test_a_local_run_with_a_non_utf8_output_name_completes_and_lists_it(project: Path, home: Path) -> None:
    write(
        project,
        "names.py",
        """
        import os
        os.makedirs("outputs", exist_ok=True)
        with open(b"outputs/\\xff.txt", "wb") as f:
            f.write(b"ff")
        """,
    )
    run = Session.open(project, home).submit(script="names.py", run_configuration="local").wait()
    assert (run.record.status, run.record.exit_code) == (RunStatus.COMPLETED, 0)
    assert "outputs/\\xff.txt" in run.record.attachments
    assert run.outputs == ["\\xff.txt"]
    assert resolve_attachment(run.outputs_dir.parent, "outputs/\\xff.txt").read_bytes() == b"ff"
