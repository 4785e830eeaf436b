"""Content-addressed snapshots: what goes in, what is stored once, what comes back out."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from jupyter_amlexec.core.errors import SnapshotError
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
    blobs_before = sum(1 for _ in (tmp_path / "h" / "blobs").rglob("*") if _.is_file())
    target.write_text("v = 'changed'\n")
    third = store.take(root)
    assert third.id != first.id and store.cache_hits == 19
    blobs_after = sum(1 for _ in (tmp_path / "h" / "blobs").rglob("*") if _.is_file())
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
