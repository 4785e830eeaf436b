"""Measure snapshot uploads over SSH against `tar c | ssh host tar x`, side by side.

Not a test (pytest does not collect it). Needs the sshd hosts of scripts/infra/sshd.sh (their
AMLEXEC_TEST_SSH_* variables). Run: `.venv/bin/python -m tests.core.transport.measure_upload [FILES MB]`.
A first upload (empty cache) of FILES files totalling MB megabytes of random content, then a
resubmit with one file changed; host folders are removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(files: int = 10_000, megabytes: int = 200) -> None:
    from jupyter_amlexec.core.snapshot import SnapshotStore
    from jupyter_amlexec.core.transport.blobsync import BlobSync
    from jupyter_amlexec.core.transport.ssh import SshConnection
    from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint

    host, port = os.environ["AMLEXEC_TEST_SSH_HOSTS"].split()[0].rsplit(":", 1)
    user, key = os.environ["AMLEXEC_TEST_SSH_USER"], os.environ["AMLEXEC_TEST_SSH_KEY"]
    known = os.environ["AMLEXEC_TEST_SSH_KNOWN_HOSTS"]
    size = megabytes * 1024 * 1024 // files
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HOME"] = tmp
        (Path(tmp) / ".ssh").mkdir()
        (Path(tmp) / ".ssh" / "known_hosts").write_text(Path(known).read_text())
        project = Path(tmp) / "proj"
        for i in range(files):
            folder = project / f"d{i % 100:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i:05d}.bin").write_bytes(os.urandom(size))
        store = SnapshotStore(Path(tmp) / "home")
        started = time.perf_counter()
        snapshot = store.take(project, max_bytes=(megabytes + 10) * 1024 * 1024)
        take = time.perf_counter() - started
        conn = SshConnection(
            resolve_endpoint(SshSettings(f"{host}:{port}", username=user, key_file=key))
        ).connect()
        root = f"~/.amlexec-measure-{os.getpid()}"
        try:
            ssh = ["ssh", "-p", port, "-i", key, "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes"]
            started = time.perf_counter()
            subprocess.run(
                f"tar c -C {project} . | {' '.join(ssh)} {user}@{host} 'mkdir -p {root}/plain && tar x -C {root}/plain'",
                shell=True,
                check=True,
            )
            plain = time.perf_counter() - started
            sync = BlobSync(conn, root=root)
            first = sync.push(snapshot, "runs/first/wd")
            changed = project / "d03" / "f00003.bin"
            changed.write_bytes(os.urandom(size))
            second = sync.push(
                store.take(project, max_bytes=(megabytes + 10) * 1024 * 1024), "runs/second/wd"
            )
        finally:
            conn.run(["sh", "-c", f'rm -rf "$HOME"/{root[2:]}'])
            conn.close()
    print(f"{files} files, {megabytes} MB of random content (snapshot take: {take:.2f} s, not counted below)")
    print(f"tar c | ssh host tar x (OpenSSH)   {plain:6.2f} s")
    print(
        f"BlobSync.push, first upload         {first.seconds:6.2f} s  {first.seconds / plain:5.2f}x  {first}"
    )
    print(
        f"BlobSync.push, 1 file changed       {second.seconds:6.2f} s  sent {second.bytes_sent} B for a {size} B file"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
