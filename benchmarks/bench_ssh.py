"""Remote targets over SSH against the bare command on the same host, side by side.

- remote Python: submit -> Completed on a `remote` target vs `ssh host python3 script.py` as typed
  (OpenSSH, a new connection each time: the issue's baseline), and vs the floor, one exec of the same
  script over our warm SSH connection;
- remote Docker (warm, environment cached): a `remotedocker` run vs `ssh host docker run --rm IMG
  python3 -c ...` of the same image, the same two ways;
- a resubmit with 1 of 1,000 files changed: bytes sent vs the changed file's size;
- a first upload of 10k files / 200 MB (empty cache) vs `tar c | ssh host tar x` (OpenSSH).
Needs the sshd hosts of scripts/test.sh (AMLEXEC_TEST_SSH_*, or the defaults it writes under .infra/)
and, for the Docker row, the engine and image of the test command. Medians of interleaved rounds.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROUNDS = 7
REPO = Path(__file__).resolve().parents[1]
SCRIPT = "import sys\nprint('hello from', sys.argv[1])\n"


def _hosts() -> tuple[str, int, str, str, str]:
    infra = REPO / ".infra" / "sshd"
    host, port = os.environ.get("AMLEXEC_TEST_SSH_HOSTS", "127.0.0.2:2222").split()[0].rsplit(":", 1)
    return (
        host,
        int(port),
        os.environ.get("AMLEXEC_TEST_SSH_USER", "amlexec-ssh"),
        os.environ.get("AMLEXEC_TEST_SSH_KEY", str(infra / "client" / "id_plain")),
        os.environ.get("AMLEXEC_TEST_SSH_KNOWN_HOSTS", str(infra / "known_hosts")),
    )


def _session(tmp: Path) -> tuple[Any, Any]:
    from jupyter_amlexec.core.api import Session
    from jupyter_amlexec.core.transport.ssh import shared_pool
    from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint

    host, port, user, key, known = _hosts()
    os.environ["HOME"] = str(tmp)
    (tmp / ".ssh").mkdir()
    (tmp / ".ssh" / "known_hosts").write_text(Path(known).read_text())
    project = tmp / "proj"
    project.mkdir()
    (project / "s.py").write_text(SCRIPT)
    for i in range(20):
        (project / f"module_{i}.py").write_text(f"VALUE = {i}\n" * 50)
    session = Session.open(project, tmp / "home")
    common = {"address": f"{host}:{port}", "username": user, "key_file": key}
    session.project.attach_target("vm", "remote", python_location="python3", **common)
    image = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
    network = os.environ.get("AMLEXEC_TEST_NETWORK_MODE", "host")
    session.project.attach_target(
        "box", "remotedocker", base_docker_image=image, network_mode=network, **common
    )
    conn = shared_pool().get(resolve_endpoint(SshSettings(f"{host}:{port}", username=user, key_file=key)))
    return session, conn


def _compare(label: str, ours: Any, bare: dict[str, Any], target: str) -> list[dict[str, object]]:
    """Medians of interleaved rounds of ours and each bare command; a row per bare command."""
    ours()
    for command in bare.values():
        command()  # warm every one
    mine: list[float] = []
    base: dict[str, list[float]] = {name: [] for name in bare}
    for _ in range(ROUNDS):
        for name, command in bare.items():
            start = time.perf_counter()
            command()
            base[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        ours()
        mine.append(time.perf_counter() - start)
    o = statistics.median(mine)
    rows: list[dict[str, object]] = []
    for i, (name, times) in enumerate(base.items()):
        b = statistics.median(times)
        rows.append(
            {
                "name": f"{label} vs {name}",
                "ours_s": o,
                "baseline_s": b,
                "ratio": o / b,
                "target": target if i == 0 else "(the floor)",
            }
        )
    return rows


def _openssh(*argv: str) -> Any:
    """The command as a user types it: OpenSSH's client, a new connection each time."""
    host, port, user, key, known = _hosts()
    command = [
        "ssh", "-p", str(port), "-i", key, "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", f"{user}@{host}", shlex.join(argv),
    ]  # fmt: skip
    return lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _resubmit_bytes(conn: Any, tmp: Path) -> dict[str, object]:
    from jupyter_amlexec.core.snapshot import SnapshotStore
    from jupyter_amlexec.core.transport.blobsync import BlobSync

    project = tmp / "many"
    for i in range(1000):
        (project / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (project / f"d{i % 10}" / f"f{i}.bin").write_bytes(os.urandom(2000))
    store, sync = SnapshotStore(tmp / "home-many"), BlobSync(conn, "~/.amlexec-bench")
    sync.push(store.take(project), "bench/work")
    changed = project / "d3" / "f3.bin"
    changed.write_bytes(os.urandom(20_000))
    stats = sync.push(store.take(project), "bench/work")
    conn.run(["rm", "-rf", ".amlexec-bench"])
    over = stats.bytes_sent - 20_000
    return {
        "name": f"ssh resubmit, 1 of 1,000 files changed (20 kB): {stats.bytes_sent} bytes sent",
        "ours_s": stats.seconds,
        "baseline_s": None,
        "ratio": None,
        "target": f"file + {over / 1024:.0f} KiB (<= file + 64 KiB)",
    }


UPLOAD_FILES = int(os.environ.get("AMLEXEC_BENCH_UPLOAD_FILES", "10000"))
UPLOAD_MB = int(os.environ.get("AMLEXEC_BENCH_UPLOAD_MB", "200"))
UPLOAD_ROUNDS = 3


def _first_upload(conn: Any, tmp: Path) -> dict[str, object]:
    """A first upload (empty blob cache on the host) of many files vs `tar c | ssh host tar x`."""
    from jupyter_amlexec.core.snapshot import SnapshotStore
    from jupyter_amlexec.core.transport.blobsync import BlobSync

    project, size = tmp / "upload", UPLOAD_MB * 1024 * 1024 // UPLOAD_FILES
    for i in range(UPLOAD_FILES):
        (project / f"d{i % 100:02d}").mkdir(parents=True, exist_ok=True)
        (project / f"d{i % 100:02d}" / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    snapshot = SnapshotStore(tmp / "home-upload").take(project, max_bytes=(UPLOAD_MB + 10) * 1024 * 1024)
    host, port, user, key, known = _hosts()
    ssh = f"ssh -p {port} -i {key} -o UserKnownHostsFile={known} -o BatchMode=yes {user}@{host}"
    plain = f"tar c -C {project} . | {ssh} 'mkdir -p .amlexec-up-plain && tar x -C .amlexec-up-plain'"
    ours_s, bare_s = [], []
    for round_ in range(UPLOAD_ROUNDS):
        conn.run(["rm", "-rf", ".amlexec-up-plain", ".amlexec-up"])
        start = time.perf_counter()
        subprocess.run(plain, shell=True, check=True)
        bare_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        BlobSync(conn, "~/.amlexec-up").push(snapshot, f"runs/r{round_}/work")
        ours_s.append(time.perf_counter() - start)
    conn.run(["rm", "-rf", ".amlexec-up-plain", ".amlexec-up"])
    o, b = statistics.median(ours_s), statistics.median(bare_s)
    return {
        "name": f"ssh first upload, {UPLOAD_FILES} files / {UPLOAD_MB} MB vs `tar c | ssh host tar x`",
        "ours_s": o,
        "baseline_s": b,
        "ratio": o / b,
        "target": "<= 1.2x",
    }


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        home = os.environ.get("HOME")
        try:
            session, conn = _session(Path(tmp))
            python = ["python3", "-c", SCRIPT, "x"]
            rows = _compare(
                "remote python run",
                lambda: session.submit(script="s.py", arguments=["x"], run_configuration="vm").wait(),
                {
                    "`ssh host python3 script.py`": _openssh(*python),
                    "one exec of it on our warm connection": lambda: conn.run(python),
                },
                "<= 1.3x",
            )
            rows.append(_resubmit_bytes(conn, Path(tmp)))
            rows.append(_first_upload(conn, Path(tmp)))
            image = os.environ.get("AMLEXEC_TEST_BASE_IMAGE", "amlexec-test/python:3.11")
            docker = ["docker", "run", "--rm", "--network=host", image, *python]
            rows += _compare(
                "remotedocker warm run",
                lambda: session.submit(script="s.py", arguments=["x"], run_configuration="box").wait(
                    timeout=600
                ),
                {
                    "`ssh host docker run --rm IMG python3 ...`": _openssh(*docker),
                    "one exec of it on our warm connection": lambda: conn.run(docker),
                },
                "<= 1.2x",
            )
            return rows
        finally:
            if home is not None:
                os.environ["HOME"] = home


if __name__ == "__main__":
    for row in run():
        print(row)
