"""Snapshot transfer by delta to a real sshd host: bytes counted, the work dir checked file by file."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_amlexec.core.snapshot import Snapshot, SnapshotStore
from jupyter_amlexec.core.transport.blobsync import BlobSync
from jupyter_amlexec.core.transport.ssh import SshConnection
from tests.core.transport.conftest import SshHosts, endpoint_for
from tests.core.transport.test_ssh import known_line
from tests.tcpproxy import TcpProxy

Connect = Callable[..., SshConnection]
KIB = 1024


def remote_tree(conn: SshConnection, folder: str) -> dict[str, tuple[str, int]]:
    """path -> (sha256, mode) of every file under a folder of the host, as the host sees them."""
    script = (
        f'cd {folder} && find . -type f -exec sha256sum {{}} + && find . -type f -exec stat -c "%a %n" {{}} +'
    )
    lines = conn.run(["sh", "-c", script]).text().splitlines()
    digests = {
        line[66:].removeprefix("./"): line[:64] for line in lines if len(line) > 66 and line[64:66] == "  "
    }
    modes = {}
    for line in lines:
        mode, _, name = line.partition(" ")
        if mode.isdigit() and name.startswith("./"):
            modes[name[2:]] = int(mode, 8)
    return {path: (digest, modes[path]) for path, digest in digests.items()}


def expected_tree(snapshot: Snapshot) -> dict[str, tuple[str, int]]:
    return {e.path: (e.blob, e.mode) for e in snapshot.entries}


def make_project(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / "src" / f"pkg{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"module_{i:04d}.py").write_text(
            f"# module {i}\n" + f"VALUE_{i} = {i * 7}\n" * (1 + i % 40)
        )


def test_a_resubmit_with_one_changed_file_sends_about_that_file(
    ssh_home: Path, ssh_hosts: SshHosts, tmp_path: Path, remote_dir: str
) -> None:
    # Given a project of 1,000 files already pushed once to the host, through a proxy that counts
    project, store = tmp_path / "proj", SnapshotStore(tmp_path / "amlexec-home")
    make_project(project, 1000)
    host, port = ssh_hosts.hosts[0]
    with TcpProxy((host, port)) as proxy:
        known = ssh_home / ".ssh" / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {known_line(ssh_hosts, 0).split(' ', 1)[1]}\n")
        conn = SshConnection(endpoint_for(ssh_hosts, 0, address=f"127.0.0.1:{proxy.port}")).connect()
        sync = BlobSync(conn, root=remote_dir)
        first = sync.push(store.take(project), "runs/one/wd")
        assert (first.blobs_sent, first.blobs_reused) == (1000, 0)
        # When one file changes (20 KB of new content) and the project is pushed again
        changed = project / "src" / "pkg3" / "module_0003.py"
        changed.write_text(
            "".join(f"NEW_{i} = {hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(256))
        )
        size = changed.stat().st_size
        before = proxy.bytes_up
        second = sync.push(store.take(project), "runs/two/wd")
        on_the_wire = proxy.bytes_up - before
        conn.close()
    # Then only that blob travelled: the bytes written to the channel are its size plus < 64 KiB,
    # and so are the bytes that crossed the TCP connection (SSH framing included)
    assert (second.blobs_sent, second.blobs_reused, second.blob_bytes_sent) == (1, 999, size)
    assert second.round_trips == 1  # the first push showed what the host holds: not asked again
    assert second.bytes_sent <= size + 64 * KIB, second
    assert on_the_wire <= size + 64 * KIB, on_the_wire
    print(
        f"\nresubmit 1 of 1000 changed ({size} B): {second.bytes_sent} B to the channel, {on_the_wire} B on the wire"
    )


def test_the_work_dir_on_the_host_equals_the_snapshot(
    connect: Connect, tmp_path: Path, remote_dir: str
) -> None:
    # Given a project with odd names, an executable, an empty file, deep folders and a binary file
    project = tmp_path / "proj"
    (project / "a b" / "deep" / "er").mkdir(parents=True)
    (project / "a b" / "deep" / "er" / "naïve – файл.txt").write_text("unicode\n")
    (project / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (project / "run.sh").chmod(0o755)
    (project / "empty").write_bytes(b"")
    (project / "data.bin").write_bytes(bytes(range(256)) * 4096)
    (project / "same1.txt").write_text("same\n")
    (project / "same2.txt").write_text("same\n")
    (project / "same2.txt").chmod(0o600)
    (project / "same3.txt").write_text("same\n")
    snapshot = SnapshotStore(tmp_path / "amlexec-home").take(project)
    conn = connect(0)
    # When it is pushed
    stats = BlobSync(conn, root=remote_dir).push(snapshot, "runs/x/wd")
    # Then the host's work dir holds exactly those files, contents and modes
    assert remote_tree(conn, f"{remote_dir}/runs/x/wd") == expected_tree(snapshot)
    # seven files, three of one content: once per mode in the cache (hard links share a mode)
    assert (stats.blobs_sent, len(snapshot.entries)) == (6, 7)
    # and the host runs the script from there
    assert conn.run(["sh", "-c", f"cd {remote_dir}/runs/x/wd && ./run.sh"]).text() == "hi\n"


def test_a_cached_blob_a_run_wrote_into_is_sent_again(
    connect: Connect, tmp_path: Path, remote_dir: str
) -> None:
    # Given a pushed snapshot whose working copy a run then modified in place (same inode as the cache)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text("print('train')\n")
    snapshot = SnapshotStore(tmp_path / "amlexec-home").take(project)
    conn = connect(0)
    sync = BlobSync(conn, root=remote_dir)
    sync.push(snapshot, "runs/a/wd")
    conn.run(["sh", "-c", f"echo tampered >> {remote_dir}/runs/a/wd/train.py"])
    # When the same snapshot is pushed again, then the damaged cache entry is replaced
    stats = sync.push(snapshot, "runs/b/wd")
    assert stats.blobs_sent == 1
    assert remote_tree(conn, f"{remote_dir}/runs/b/wd") == expected_tree(snapshot)


def test_a_repeated_push_replaces_the_work_dir(connect: Connect, tmp_path: Path, remote_dir: str) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "keep.py").write_text("1\n")
    (project / "gone.py").write_text("2\n")
    store = SnapshotStore(tmp_path / "amlexec-home")
    conn = connect(0)
    sync = BlobSync(conn, root=remote_dir)
    sync.push(store.take(project), "runs/r/wd")
    (project / "gone.py").unlink()
    second = store.take(project)
    stats = sync.push(second, "runs/r/wd")
    assert stats.blobs_sent == 0
    assert remote_tree(conn, f"{remote_dir}/runs/r/wd") == expected_tree(second)


def test_a_folder_of_the_host_streams_back_as_a_tar(connect: Connect, remote_dir: str) -> None:
    # Given a run that wrote outputs/ on the host
    conn = connect(0)
    outputs = f"{remote_dir}/runs/o/outputs"
    conn.run(
        [
            "sh",
            "-c",
            f"mkdir -p {outputs}/sub && echo m > {outputs}/model.txt && head -c 300000 /dev/urandom > {outputs}/sub/w.bin",
        ]
    )
    expected = conn.run(["sh", "-c", f"sha256sum < {outputs}/sub/w.bin"]).text().split()[0]
    # When it is streamed back into a local file object
    sink = io.BytesIO()
    received = BlobSync(conn, root=remote_dir).pull_folder("runs/o/outputs", sink)
    # Then it is a tar of exactly what the run wrote, relative to the folder
    assert received == len(sink.getvalue()) > 300000
    with tarfile.open(fileobj=io.BytesIO(sink.getvalue())) as tar:
        files = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        assert set(files) == {"model.txt", "sub/w.bin"}
        assert tar.extractfile(files["model.txt"]).read() == b"m\n"  # type: ignore[union-attr]
        assert hashlib.sha256(tar.extractfile(files["sub/w.bin"]).read()).hexdigest() == expected  # type: ignore[union-attr]
    # and a folder the run never made is None, with nothing written
    empty = io.BytesIO()
    assert BlobSync(conn, root=remote_dir).pull_folder("runs/o/nothing", empty) is None
    assert empty.getvalue() == b""


@pytest.mark.parametrize(
    "removed", [("blobs", "runs"), ("",)], ids=["the blob cache emptied", "the whole amlexec root removed"]
)
def test_a_push_after_the_host_lost_its_files_sends_everything_again(
    connect: Connect, tmp_path: Path, remote_dir: str, removed: tuple[str, ...]
) -> None:
    # Given a snapshot pushed once (this process now knows the host holds its blobs)
    project = tmp_path / "proj"
    make_project(project, 30)
    snapshot = SnapshotStore(tmp_path / "amlexec-home").take(project)
    conn = connect(0)
    sync = BlobSync(conn, root=remote_dir)
    sync.push(snapshot, "runs/a/wd")
    # When someone removes files of the host behind its back and the snapshot is pushed again
    conn.run(["sh", "-c", "rm -rf " + " ".join(f'"$HOME"/{remote_dir[2:]}/{part}' for part in removed)])
    stats = sync.push(snapshot, "runs/b/wd")
    # Then the push noticed, asked the host, and sent every blob: root, cache and work dir are whole
    assert (stats.blobs_sent, stats.round_trips) == (30, 2)
    assert remote_tree(conn, f"{remote_dir}/runs/b/wd") == expected_tree(snapshot)
