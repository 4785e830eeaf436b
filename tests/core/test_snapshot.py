"""Content-addressed snapshots: what goes in, what is stored once, what comes back out."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.blobstore import PACK_LIMIT
from jupyter_amlexec.core.errors import SnapshotError
from jupyter_amlexec.core.models import RunStatus
from jupyter_amlexec.core.snapshot import SnapshotStore


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def paths(snapshot) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.path for e in snapshot.entries]


def test_ignore_rules_and_always_skipped_folders(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tree(
        root,
        {
            "a.py": "a",
            "data/big.csv": "x",
            "keep.csv": "k",
            ".git/HEAD": "g",
            "outputs/o.txt": "o",
            "sub/outputs/kept.txt": "s",
            "__pycache__/a.pyc": "c",
            ".gitignore": "*.csv\n!keep.csv\n",
            "sub/.gitignore": "secret.txt\n",
            "sub/secret.txt": "s",
        },
    )
    snap = SnapshotStore(tmp_path / "h").take(root)
    assert paths(snap) == [".gitignore", "a.py", "keep.csv", "sub/.gitignore", "sub/outputs/kept.txt"]
    # .amlignore takes precedence over .gitignore
    tree(root, {".amlignore": "a.py\n"})
    assert "data/big.csv" in paths(SnapshotStore(tmp_path / "h").take(root))
    assert "a.py" not in paths(SnapshotStore(tmp_path / "h").take(root))


def test_size_cap_names_the_largest_files(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tree(root, {"small.py": "x", "model.bin": "m" * 3_000_000, "data.parquet": "d" * 2_000_000})
    with pytest.raises(SnapshotError) as error:
        SnapshotStore(tmp_path / "h").take(root, max_bytes=1_000_000)
    message = str(error.value)
    assert (
        message.index("model.bin") < message.index("data.parquet")
        and ".amlignore" in message
        and "MaxSnapshotSizeMB" in message
    )


def test_unchanged_files_are_not_reread_and_blobs_stored_once(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tree(root, {f"m{i}.py": f"v = {i}\n" for i in range(20)})
    store = SnapshotStore(tmp_path / "h")
    first = store.take(root)
    # Change one file's content but keep its size, mtime and inode: the cache trusts the stat
    target = root / "m3.py"
    st = target.stat()
    with open(target, "r+") as f:
        f.write("v = 9\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = store.take(root)
    assert store.cache_hits == 20 and second.id == first.id
    # A real edit (new mtime) is noticed, and only its blob is new
    blobs_before = store.blobs.count()
    target.write_text("v = 'changed'\n")
    third = store.take(root)
    assert third.id != first.id and store.cache_hits == 19
    blobs_after = store.blobs.count()
    assert blobs_after == blobs_before + 1
    assert store.diff(first.id, third.id) == [("m3.py", "changed")]


def test_extra_files_materialize_tar_and_restore(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tree(root, {"run.sh": "echo hi\n", "pkg/mod.py": "X = 1\n"})
    os.chmod(root / "run.sh", 0o755)
    store = SnapshotStore(tmp_path / "h")
    snap = store.take(root, extra_files={".amlexec/cell.py": b"print(1)\n"}, entry_script=".amlexec/cell.py")
    out = tmp_path / "m"
    snap.materialize(out)
    assert (out / ".amlexec/cell.py").read_text() == "print(1)\n" and os.access(out / "run.sh", os.X_OK)
    buffer = io.BytesIO()
    snap.write_tar(buffer, prefix="w/")
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        names = tar.getnames()
    assert sorted(names) == [
        "w/.amlexec/cell.py",
        "w/pkg/mod.py",
        "w/run.sh",
    ]
    # restore writes the project files only, and refuses to clobber changed files
    dest = tmp_path / "restored"
    assert sorted(store.restore(snap.id, dest)) == ["pkg/mod.py", "run.sh"]
    (dest / "run.sh").write_text("changed\n")
    with pytest.raises(SnapshotError, match="run.sh"):
        store.restore(snap.id, dest)
    store.restore(snap.id, dest, overwrite=True)
    assert (dest / "run.sh").read_text() == "echo hi\n"


def test_missing_entry_script_and_unknown_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tree(root, {"a.py": "a"})
    store = SnapshotStore(tmp_path / "h")
    with pytest.raises(SnapshotError, match="train.py"):
        store.take(root, entry_script="train.py")
    with pytest.raises(SnapshotError, match="No snapshot"):
        store.get("0" * 64)


def test_small_files_packed_large_files_loose_and_both_come_back(tmp_path: Path) -> None:
    root = tmp_path / "p"
    big = os.urandom(PACK_LIMIT + 10)
    tree(root, {f"src/m{i}.py": f"x = {i}\n" for i in range(50)})
    (root / "data.bin").write_bytes(big)
    (root / "empty.txt").write_bytes(b"")
    store = SnapshotStore(tmp_path / "h")
    snap = store.take(root)
    # one pack for the 52 small blobs, one loose file for the large one
    assert len(list((tmp_path / "h" / "packs").glob("*.pack"))) == 1
    assert [p.name for p in (tmp_path / "h" / "blobs").rglob("*") if p.is_file()] == [
        hashlib.sha256(big).hexdigest()
    ]
    out = tmp_path / "out"
    snap.materialize(out)
    assert (out / "data.bin").read_bytes() == big and (out / "empty.txt").read_bytes() == b""
    assert [(out / f"src/m{i}.py").read_text() for i in range(50)] == [f"x = {i}\n" for i in range(50)]
    buffer = io.BytesIO()
    snap.write_tar(buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        member = tar.extractfile("src/m7.py")
        assert member is not None and member.read() == b"x = 7\n"
        member = tar.extractfile("data.bin")
        assert member is not None and member.read() == big
    assert snap.read("src/m49.py") == b"x = 49\n"


def test_the_same_content_elsewhere_is_not_stored_again(tmp_path: Path) -> None:
    files = {f"m{i}.py": f"v = {i}\n" for i in range(30)}
    tree(tmp_path / "a", files)
    tree(tmp_path / "b", {**files, "new.py": "n = 1\n"})  # another project: its stat cache is empty
    store = SnapshotStore(tmp_path / "h")
    store.take(tmp_path / "a")
    before = store.blobs.count()
    packs_before = len(list((tmp_path / "h" / "packs").glob("*.pack")))
    store.take(tmp_path / "b")
    assert store.blobs.count() == before + 1
    # a second session wrote a pack holding only the new file
    packs = sorted((tmp_path / "h" / "packs").glob("*.pack"), key=lambda p: p.stat().st_size)
    assert len(packs) == packs_before + 1 and packs[0].stat().st_size == len("n = 1\n")


def test_a_file_gone_before_its_read_is_skipped_by_take_and_an_error_for_a_plain_writer(
    tmp_path: Path,
) -> None:
    # Given a file the walk saw and that is gone when read (the race of a busy project folder)
    root = tmp_path / "p"
    tree(root, {"a.py": "a\n", "big.bin": "b" * (PACK_LIMIT + 1)})
    store = SnapshotStore(tmp_path / "h")
    files = [(str(root / "a.py"), 2), (str(root / "gone.py"), 1), (str(root / "gone.bin"), PACK_LIMIT + 1)]
    # A writer asked to store it without a callback raises, naming it, and leaves nothing half written
    with pytest.raises(SnapshotError, match="gone.py"), store.blobs.writer() as writer:
        writer.add_files(files)
    leftovers = [p for p in (tmp_path / "h").rglob("*") if p.is_file() and p.suffix != ".sqlite"]
    assert leftovers == [] and store.blobs.count() == 0
    # With a callback (what take() uses) the unreadable ones are reported, the others stored
    reported: dict[int, str] = {}
    with store.blobs.writer() as writer:
        results = writer.add_files(files, reported.__setitem__)
    assert sorted(reported) == [1, 2] and all("No such file" in r for r in reported.values())
    assert results[0][0] == hashlib.sha256(b"a\n").hexdigest() and results[1] == results[2] == ("", -1)


def special_files(root: Path) -> socket.socket:
    """A FIFO, a socket, a character device and a dangling link: nothing a snapshot can read."""
    os.mkfifo(root / "pipe")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "server.sock"))
    if os.geteuid() == 0:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / "dangling.py").symlink_to(root / "nowhere.py")
    os.mkfifo(os.fsencode(root) + b"/fifo\xff")  # a name that is not UTF-8
    return server


def test_symlink_loops_and_special_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a project with link loops (`ln -s . loop`, a -> b -> a, a link to itself), a FIFO, a
    # socket, a device and a dangling link beside its real files
    root = tmp_path / "p"
    tree(root, {"train.py": "print(1)\n", "pkg/mod.py": "X = 1\n"})
    (root / "loop").symlink_to(".")
    (root / "pkg" / "a").symlink_to("b")
    (root / "pkg" / "b").symlink_to("a")
    (root / "me").symlink_to("me")
    (root / "alias.py").symlink_to("train.py")
    server = special_files(root)
    try:
        # When it is snapshotted
        with caplog.at_level(logging.WARNING, logger="jupyter_amlexec.core.snapshot"):
            snap = SnapshotStore(tmp_path / "h").take(root, entry_script="train.py")
    finally:
        server.close()
    # Then the real files (and the link to one) are in it, and every skipped path is on the snapshot
    # with its reason and named in a warning
    assert paths(snap) == ["alias.py", "pkg/mod.py", "train.py"]
    skipped = dict(snap.skipped)
    expected = {"loop", "pkg/a", "pkg/b", "me", "pipe", "server.sock", "dangling.py", "fifo\\xff"}
    expected |= {"null"} if os.geteuid() == 0 else set()
    assert set(skipped) == expected
    assert skipped["pkg/a"] == skipped["me"] == "a link loop"
    assert "links to folders are not followed" in skipped["loop"] and "not a regular file" in skipped["pipe"]
    assert "dangling" in skipped["dangling.py"]
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert all(f"snapshot skips {name}:" in warned for name in expected)


def test_a_project_with_a_symlink_loop_runs(project: Path, home: Path) -> None:
    # Given a project where a user made `ln -s . loop` and a -> b -> a
    (project / "train.py").write_text("print('trained')\n")
    (project / "loop").symlink_to(".")
    (project / "a").symlink_to("b")
    (project / "b").symlink_to("a")
    # When it is submitted, then the run completes and its control log is not a traceback
    run = Session.open(project, home).submit(script="train.py", run_configuration="local").wait()
    assert run.record.status is RunStatus.COMPLETED
    assert "trained" in run.logs()


def test_unreadable_files_and_folders_are_skipped_for_a_user_without_permission(tmp_path: Path) -> None:
    # Given a project with a file, a large file, a folder and an ignore file its user may not read
    # (taken as an unprivileged user: root reads everything, whatever the mode bits say)
    base = Path(tempfile.mkdtemp(prefix="amlexec-unreadable-"))
    try:
        os.chmod(base, 0o755)
        root = base / "p"
        tree(root, {"ok.py": "ok\n", "secret.py": "s\n", "locked/inside.py": "i\n", "sub/.gitignore": "x\n"})
        (root / "weights.bin").write_bytes(b"w" * (PACK_LIMIT + 10))
        (base / "h").mkdir(mode=0o777)
        os.chmod(base / "h", 0o777)
        for name, mode in [("secret.py", 0), ("weights.bin", 0), ("locked", 0), ("sub/.gitignore", 0)]:
            os.chmod(root / name, mode)
        # When it is snapshotted
        result = take_as_unprivileged_user(base / "h", root)
    finally:
        os.chmod(base / "p" / "locked", 0o755)
        shutil.rmtree(base)
    # Then the readable files are in it and each unreadable one is skipped with its reason
    assert result["paths"] == ["ok.py"]
    skipped = dict(result["skipped"])
    assert set(skipped) == {"secret.py", "weights.bin", "locked/", "sub/.gitignore"}
    assert all("Permission denied" in reason for reason in skipped.values())


def take_as_unprivileged_user(home: Path, root: Path) -> dict[str, Any]:
    """SnapshotStore.take in a forked child that dropped to `nobody` when we are root."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            snap = SnapshotStore(home).take(root)
            doc = {"paths": paths(snap), "skipped": snap.skipped}
            os.write(write_end, json.dumps(doc).encode())
            code = 0
        except BaseException as exc:  # reported to the parent through the pipe
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    doc = json.loads(data)
    assert os.waitstatus_to_exitcode(status) == 0, doc
    return doc


def test_concurrent_snapshots_from_several_processes_all_read_back(tmp_path: Path) -> None:
    shared = {f"common/c{i}.py": f"c = {i}\n" for i in range(200)}
    for n in range(4):
        tree(tmp_path / f"p{n}", {**shared, f"own{n}.py": f"own = {n}\n"})
    code = (
        "import sys\nfrom pathlib import Path\nfrom jupyter_amlexec.core.snapshot import SnapshotStore\n"
        "print(SnapshotStore(Path(sys.argv[1])).take(Path(sys.argv[2])).id)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "h"), str(tmp_path / f"p{n}")], stdout=subprocess.PIPE
        )
        for n in range(4)
    ]
    ids = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    store = SnapshotStore(tmp_path / "h")
    for n, snapshot_id in enumerate(ids):
        out = tmp_path / f"out{n}"
        store.get(snapshot_id).materialize(out)
        assert (out / f"own{n}.py").read_text() == f"own = {n}\n"
        assert (out / "common/c199.py").read_text() == "c = 199\n"
    assert store.blobs.count() >= 204
