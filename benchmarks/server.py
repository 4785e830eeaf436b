"""The REST API through a real jupyter server: runs pages over 100k runs, log-follow latency, and
50 followers of one live run.

Usage: .venv/bin/python benchmarks/server.py   (AMLEXEC_BENCH_RUNS=100000 by default)

1. GET runs, a page of 50, filtered and sorted by a metric, at the first, middle (the worst case:
   farthest from both ends of the metric index) and last offset: p50/p95 of 40 requests each,
   measured from the client (HTTP, auth, handler, core query, JSON). Target p95 <= 50 ms.
2. Follow latency: a run prints its own clock every 100 ms; a client following the SSE route
   subtracts it from its clock on arrival. Target p95 <= 300 ms.
3. 50 clients follow one live run over SSE; the run's own duration (start to end, as recorded)
   against the same run with no follower. Target <= 1.05x.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).parent))
from bench_history import PAGE, RUNS, _fill  # noqa: E402

TOKEN = "amlexec-bench-token"
ROUNDS = 40
FOLLOWERS = 50
HEADERS = {"Authorization": f"token {TOKEN}"}
CLOCK = (
    "import time\nfor i in range(30):\n    print(f'T {time.time():.6f}', flush=True)\n    time.sleep(0.1)\n"
)
CHATTY = (
    "import time\nfor i in range(400):\n    print('line', i, 'x' * 100, flush=True)\n"
    "    if i % 4 == 0:\n        time.sleep(0.01)\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(root: Path, home: Path) -> Iterator[str]:
    """A real `jupyter server` with our extension and token auth; stopped (by its PID) afterwards."""
    port = _free_port()
    log = open(root.parent / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            '--ServerApp.jpserver_extensions={"jupyter_amlexec": True}',
            "--ServerApp.log_level=WARN",
        ],
        env={**os.environ, "AMLEXEC_HOME": str(home), "JUPYTER_CONFIG_DIR": str(root.parent / "cfg")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/jupyter-amlexec/api/"
    try:
        for _ in range(300):
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(url + "runs?limit=1", headers=HEADERS, timeout=5).ok:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("jupyter server did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _core_seconds(history: Any, params: dict[str, Any]) -> float:
    """The same page straight from the core, in this process: what the server adds is the rest."""
    filters = {k: params[k] for k in ("experiment", "status") if k in params}
    order = {
        "order_by": params.get("order_by", "created_utc"),
        "limit": PAGE,
        "offset": params.get("offset", 0),
    }
    history.query(**filters, **order)
    times = []
    for _ in range(ROUNDS // 4):
        start = time.perf_counter()
        history.query(**filters, **order)
        history.count(**filters)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_pages(url: str, history: Any) -> list[str]:
    session = requests.Session()
    session.headers.update(HEADERS)
    out = []
    base = {"experiment": "vision", "status": "Completed", "order_by": "metric:loss", "limit": PAGE}
    total = session.get(url + "runs", params=base).json()["total"]
    cases = [
        ("newest 50, no filter", {"limit": PAGE}),
        (f"2 filters, by metric, first page ({total} match)", base),
        ("2 filters, by metric, middle page", {**base, "offset": total // 2 - PAGE // 2}),
        ("2 filters, by metric, last page", {**base, "offset": total - PAGE}),
        (
            "no filter, by metric, middle page (worst case)",
            {"order_by": "metric:Accuracy", "limit": PAGE, "offset": RUNS // 2},
        ),
    ]
    for name, params in cases:
        session.get(url + "runs", params=params).raise_for_status()  # warm the page cache
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            resp = session.get(url + "runs", params=params)
            resp.json()
            times.append(time.perf_counter() - start)
            assert resp.status_code == 200 and len(resp.json()["runs"]) == PAGE
        core = _core_seconds(history, params)
        out.append(
            f"GET runs {RUNS // 1000}k: {name:<52} p50 {statistics.median(times) * 1000:6.1f} ms"
            f"  p95 {_pct(times, 0.95) * 1000:6.1f} ms  core alone {core * 1000:6.1f} ms  (target p95 <= 50 ms)"
        )
    return out


def _submit(url: str, script: str) -> str:
    resp = requests.post(url + "runs", headers=HEADERS, json={"script": script}, timeout=60)
    resp.raise_for_status()
    return str(resp.json()["id"])


def _events(url: str, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with requests.get(url + f"runs/{run_id}/events", headers=HEADERS, stream=True, timeout=300) as resp:
        name = None
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                yield name, json.loads(line[6:])


def bench_follow_latency(url: str) -> list[str]:
    run_id = _submit(url, "proj/clock.py")
    lags = []
    for name, data in _events(url, run_id):
        if name == "log" and data["source"] == "driver":
            now = time.time()
            lags += [now - float(line[2:]) for line in data["text"].splitlines() if line.startswith("T ")]
    return [
        f"follow latency print -> SSE client ({len(lags)} lines): p50 {statistics.median(lags) * 1000:.0f} ms"
        f"  p95 {_pct(lags, 0.95) * 1000:.0f} ms  max {max(lags) * 1000:.0f} ms  (target p95 <= 300 ms)"
    ]


def _run_seconds(url: str, run_id: str) -> float:
    for _ in range(600):
        run = requests.get(url + f"runs/{run_id}", headers=HEADERS, timeout=30).json()
        if run["done"]:
            start, end = (datetime.fromisoformat(run[k]) for k in ("start_time_utc", "end_time_utc"))
            return (end - start).total_seconds()
        time.sleep(0.1)
    raise RuntimeError(f"run {run_id} did not end")


def _followed_run(url: str, followers: int) -> float:
    run_id = _submit(url, "proj/chatty.py")
    received = [0] * followers

    def follow(i: int) -> None:
        for name, _data in _events(url, run_id):
            received[i] += name == "log"

    threads = [threading.Thread(target=follow, args=(i,)) for i in range(followers)]
    for t in threads:
        t.start()
    seconds = _run_seconds(url, run_id)
    for t in threads:
        t.join(120)
    assert all(received), "every follower got log events"
    return seconds


def bench_followers(url: str) -> list[str]:
    alone, crowd = [], []
    for _ in range(3):  # interleaved, so a noisy neighbour hits both alike
        alone.append(_followed_run(url, 0))
        crowd.append(_followed_run(url, FOLLOWERS))
    a, c = statistics.median(alone), statistics.median(crowd)
    return [
        f"run time alone {a:.2f} s vs with {FOLLOWERS} SSE followers {c:.2f} s: {c / a:.3f}x  (target <= 1.05x)"
    ]


def main() -> int:
    from jupyter_amlexec.core.history import History

    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "root", Path(tmp) / "home"
        (root / "proj").mkdir(parents=True)
        (root / "proj" / "clock.py").write_text(CLOCK)
        (root / "proj" / "chatty.py").write_text(CHATTY)
        start = time.perf_counter()
        history = History(home)
        _fill(history.db_path, RUNS)
        print(f"setup: {RUNS} runs in the history in {time.perf_counter() - start:.1f} s")
        with jupyter_server(root, home) as url:
            for line in bench_pages(url, history) + bench_follow_latency(url) + bench_followers(url):
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
