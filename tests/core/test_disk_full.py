"""A full disk under AMLEXEC_HOME: a clear error, an intact terminal record, and the next run works.

AMLEXEC_HOME lives on an 8 MB tmpfs (mounted here: the tests run as root); the run's own script
fills it to a chosen margin once its snapshot is taken, so each write that must fail fails at the
step under test: collecting outputs, or copying the log into the history.
"""

from __future__ import annotations

import gc
import io
import os
import shutil
import sqlite3
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_amlexec.core.api import Session
from jupyter_amlexec.core.errors import AttachmentError, SnapshotError
from jupyter_amlexec.core.history import History
from jupyter_amlexec.core.models import RunStatus
from jupyter_amlexec.core.outputs import collect_directory, collect_tar
from jupyter_amlexec.core.snapshot import SnapshotStore
from tests.conftest import require

MB = 1024 * 1024

FILL = """
import os, sys
ballast, keep, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
st = os.statvfs(os.path.dirname(ballast))
with open(ballast, "wb") as f:  # leave `keep` bytes free on the history's disk
    f.write(b"\\0" * max(0, st.f_bavail * st.f_frsize - keep))
if what == "log":  # fits once (the raw log), not twice (the history's copy of it)
    sys.stdout.write("line of output\\n" * (keep * 2 // 3 // 15))
elif what == "outputs":  # a hard-linked output is copied into the history, and does not fit
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.bin", "wb") as f:
        f.write(b"m" * (keep * 2 // 3))
    os.link("outputs/model.bin", "outputs/model_copy.bin")
    with open("outputs/metrics.txt", "w") as f:
        f.write("accuracy 0.9\\n")
print("script done")
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs, unmounted afterwards."""
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "root and mount(8) for a small tmpfs")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    require(done.returncode == 0, f"a tmpfs mount ({done.stderr.decode().strip()})")
    try:
        yield mnt
    finally:
        gc.collect()  # the history's connections of ended follower threads
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)  # a connection still open here


def integrity(home: Path) -> list[str]:
    result = []
    for name in ("history.sqlite", "packs.sqlite"):
        with sqlite3.connect(home / name) as db:
            result.append(db.execute("PRAGMA integrity_check").fetchone()[0])
    return result


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def submit_fill(project: Path, home: Path, ballast: Path, keep: int, what: str) -> Session:
    (project / "fill.py").write_text(FILL)
    session = Session.open(project, home)
    run = session.submit(
        script="fill.py", arguments=[str(ballast), str(keep), what], run_configuration="local"
    )
    run.wait(timeout=120, raise_on_failure=False)
    return session


def next_run_works(project: Path, home: Path) -> None:
    (project / "ok.py").write_text(
        textwrap.dedent("""
        import os
        os.makedirs("outputs", exist_ok=True)
        open("outputs/after.txt", "w").write("fine")
        print("after")
        """)
    )
    run = Session.open(project, home).submit(script="ok.py", run_configuration="local").wait(timeout=120)
    assert (run.record.status, run.record.exit_code) == (RunStatus.COMPLETED, 0)
    assert "after" in run.logs() and "outputs/after.txt" in run.record.attachments


def test_disk_full_while_outputs_are_collected(project: Path, small_disk: Path) -> None:
    # Given a run whose hard-linked output does not fit on the history's disk a second time
    home = small_disk / "home"
    session = submit_fill(project, home, small_disk / "ballast", 3 * MB, "outputs")
    record = session.history.last()
    # Then the run is terminal with an error naming the disk and the files not stored, the files that
    # were stored are listed and on disk, and the database is intact
    assert record.status.terminal
    assert "No space left on device" in (record.error or "") and "outputs/model.bin" in (record.error or "")
    listed = sorted(a for a in record.attachments if a.startswith("outputs/"))
    run_dir = session.history.run_dir(record.run_id)
    on_disk = sorted(
        f"outputs/{p.relative_to(run_dir / 'outputs').as_posix()}"
        for p in (run_dir / "outputs").rglob("*")
        if p.is_file()
    )
    assert "outputs/metrics.txt" in listed and listed == on_disk
    assert integrity(home) == ["ok", "ok"]
    # And once space is freed, the next run works
    (small_disk / "ballast").unlink()
    next_run_works(project, home)


def test_disk_full_while_the_history_is_written(project: Path, small_disk: Path) -> None:
    # Given a run whose log fits once on the history's disk but not twice (raw log + history copy)
    home = small_disk / "home"
    session = submit_fill(project, home, small_disk / "ballast", 3 * MB, "log")
    record = session.history.last()
    # Then the run is Failed with an error naming the full disk, the history folder and the fix, the
    # history's copy of the log is whole lines of what the script printed, and the database is intact
    assert record.status is RunStatus.FAILED
    error = record.error or ""
    assert "No space left on device" in error and str(home) in error and "free space" in error.lower()
    assert not error.startswith("OSError")
    log = session.history.read_log(record.run_id)
    assert log == "" or (set(log.splitlines()) <= {"line of output"} and log.endswith("\n"))
    assert integrity(home) == ["ok", "ok"]
    # And once space is freed, the next run works
    (small_disk / "ballast").unlink()
    next_run_works(project, home)


def test_a_run_whose_log_fills_the_disk_ends_terminal_and_the_next_run_works(
    project: Path, small_disk: Path
) -> None:
    # The part of the history-write case that holds today: terminal record, intact database, recovery
    home = small_disk / "home"
    session = submit_fill(project, home, small_disk / "ballast", 3 * MB, "log")
    record = session.history.last()
    assert record.status is RunStatus.FAILED and "No space left on device" in (record.error or "")
    assert integrity(home) == ["ok", "ok"]
    (small_disk / "ballast").unlink()
    next_run_works(project, home)


def test_disk_full_at_submit_is_a_snapshot_error_and_records_nothing(project: Path, small_disk: Path) -> None:
    # Given a history whose disk is full before a submit of a project with new files
    home = small_disk / "home"
    (project / "train.py").write_text("print('hi')\n")
    History(home)
    (small_disk / "ballast").write_bytes(b"\0" * free_bytes(small_disk))
    (project / "data.py").write_bytes(os.urandom(200_000))
    # When it is submitted, then a SnapshotError names the home and the fix, and no run is recorded
    with pytest.raises(SnapshotError, match="No space left on device") as error:
        Session.open(project, home).submit(script="train.py", run_configuration="local")
    assert str(home) in str(error.value) and "Free space" in str(error.value)
    assert History(home).count() == 0
    assert integrity(home)[0] == "ok"
    # And once space is freed, a run works
    (small_disk / "ballast").unlink()
    next_run_works(project, home)


def test_collection_into_a_full_disk_stores_what_fits_and_names_the_rest(
    tmp_path: Path, small_disk: Path
) -> None:
    # Given outputs (a hard-linked 2 MB file, which must be copied, and small files, which are moved)
    # being collected into a history with 1 MB free
    source = small_disk / "work" / "outputs"
    source.mkdir(parents=True)
    (source / "big.bin").write_bytes(b"b" * 2 * MB)
    os.link(source / "big.bin", source / "big_again.bin")
    for i in range(3):
        (source / f"small{i}.txt").write_text(f"{i}\n")
    (small_disk / "ballast").write_bytes(b"\0" * (free_bytes(small_disk) - MB))
    dest = small_disk / "runs" / "r1" / "outputs"
    lines: list[str] = []
    # When they are collected, then the small ones are stored, the big ones named, nothing half written
    with pytest.raises(AttachmentError, match="No space left on device") as error:
        collect_directory(source, dest, 10 * MB, lines.append)
    assert error.value.collected == ("small0.txt", "small1.txt", "small2.txt")
    assert "outputs/big.bin" in str(error.value) and "outputs/big_again.bin" in str(error.value)
    assert sorted(p.name for p in dest.iterdir()) == ["small0.txt", "small1.txt", "small2.txt"]
    assert sum(1 for line in lines if "not stored (No space left on device" in line) == 2
    # And once space is freed, collecting again brings the rest
    (small_disk / "ballast").unlink()
    assert collect_directory(source, dest, 10 * MB, lines.append) == ["big.bin", "big_again.bin"]
    assert (dest / "big_again.bin").read_bytes() == b"b" * 2 * MB


def test_a_tar_stream_into_a_full_disk_stores_what_fits(small_disk: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, size in [("outputs/a.txt", 10), ("outputs/huge.bin", 3 * MB), ("outputs/z.txt", 10)]:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"x" * size))
    (small_disk / "ballast").write_bytes(b"\0" * (free_bytes(small_disk) - MB))
    dest = small_disk / "outputs"
    with pytest.raises(AttachmentError, match="huge.bin") as error:
        collect_tar(io.BytesIO(buffer.getvalue()), "outputs", dest, 10 * MB, lambda line: None)
    assert error.value.collected == ("a.txt", "z.txt")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "z.txt"]


def test_a_full_store_fails_the_snapshot_cleanly(tmp_path: Path, small_disk: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "a.py").write_text("a\n")
    (root / "weights.bin").write_bytes(os.urandom(2 * MB))
    store = SnapshotStore(small_disk / "home")
    store.take(root)
    (root / "weights.bin").write_bytes(os.urandom(2 * MB))
    (small_disk / "ballast").write_bytes(b"\0" * (free_bytes(small_disk) - MB))
    with pytest.raises(SnapshotError, match="No space left on device"):
        store.take(root)
    assert not [p for p in (small_disk / "home").rglob(".incoming-*")]
    (small_disk / "ballast").unlink()
    assert store.take(root).read("weights.bin") == (root / "weights.bin").read_bytes()
