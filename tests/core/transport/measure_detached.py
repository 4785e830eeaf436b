"""Measure a detached remote command (start, poll to the end) against running it over SSH directly.

Not a test (pytest does not collect it). Needs the sshd hosts of scripts/infra/sshd.sh (their
AMLEXEC_TEST_SSH_* variables). Run: `.venv/bin/python -m tests.core.transport.measure_detached`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

ARGV = ["python3", "-c", "print(1)"]


def main(n: int = 20, interval: float = 0.02) -> None:
    from jupyter_amlexec.core.transport.detached import follow, poll, start_detached
    from jupyter_amlexec.core.transport.ssh import SshConnection
    from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint

    host = os.environ["AMLEXEC_TEST_SSH_HOSTS"].split()[0]
    user, key = os.environ["AMLEXEC_TEST_SSH_USER"], os.environ["AMLEXEC_TEST_SSH_KEY"]
    with tempfile.TemporaryDirectory() as home:
        os.environ["HOME"] = home
        (Path(home) / ".ssh").mkdir()
        (Path(home) / ".ssh" / "known_hosts").write_text(
            Path(os.environ["AMLEXEC_TEST_SSH_KNOWN_HOSTS"]).read_text()
        )
        conn = SshConnection(resolve_endpoint(SshSettings(host, username=user, key_file=key))).connect()
        base = f"{conn.home}/.amlexec-measure-{os.getpid()}"
        direct: list[float] = []
        detached: list[float] = []
        followed: list[float] = []
        try:
            for i in range(n):
                started = time.perf_counter()
                conn.run(ARGV)
                direct.append(time.perf_counter() - started)
                started = time.perf_counter()
                proc = start_detached(conn, ARGV, state_dir=f"{base}/{i}")
                while not (state := poll(conn, proc)).finished:
                    time.sleep(interval)
                assert state.log == b"1\n"
                detached.append(time.perf_counter() - started)
                started = time.perf_counter()
                proc = start_detached(conn, ARGV, state_dir=f"{base}/f{i}")
                out = bytearray()
                assert follow(conn, proc, 0, out.extend, interval=interval).exit_code == 0 and out == b"1\n"
                followed.append(time.perf_counter() - started)
        finally:
            conn.run(["rm", "-rf", base])
            conn.close()
    d, m, f = statistics.median(direct), statistics.median(detached), statistics.median(followed)
    print(f"ssh host python3 -c 'print(1)' (our connection)   median {d * 1000:6.1f} ms")
    print(
        f"detached: start + poll every {interval * 1000:.0f} ms to the end  median {m * 1000:6.1f} ms  {m / d:.2f}x"
    )
    print(f"detached: start + follow (one channel)            median {f * 1000:6.1f} ms  {f / d:.2f}x")


if __name__ == "__main__":
    main()
