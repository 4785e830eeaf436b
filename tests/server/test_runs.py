"""Runs over REST on the local target: submit, follow to Completed, metrics, artifacts, cancel,
paging and sorting by a metric, and path escapes refused. Every answer is checked against the spec."""

from __future__ import annotations

import http.client
import os
import threading
import time
from pathlib import Path
from typing import Any

import requests

from .conftest import Api

TRAIN = """\
import os, sys, amlexec_run
print("training with", sys.argv[1:], flush=True)
amlexec_run.log("acc", float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
amlexec_run.log("acc", 0.9)
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/model.txt", "w").write("weights")
open("outputs/sub/notes.txt", "w").write("notes")
print("done training")
"""
LONG = "import time\nprint('long run started', flush=True)\ntime.sleep(120)\n"


def submit(api: Api, project: Path, script: str, text: str, *args: str) -> dict[str, Any]:
    (project / script).write_text(text)
    rel = project.relative_to(api.server.root).as_posix()
    resp = api.post("runs", json={"script": f"{rel}/{script}", "arguments": list(args)})
    assert resp.status_code == 201, resp.text
    run: dict[str, Any] = resp.json()
    return run


def follow(api: Api, run_id: str, cursor: str | None = None) -> list[tuple[str, Any]]:
    params = {"cursor": cursor} if cursor else {}
    return list(api.events("GET", f"runs/{run_id}/events", params=params))


def test_submit_then_follow_the_log_to_completed(api: Api, project_dir: Path) -> None:
    # Given a script that prints, logs a metric twice and writes outputs
    run = submit(api, project_dir, "train.py", TRAIN, "0.25")
    assert run["status"] in ("Queued", "Preparing", "Starting", "Running")
    # When a client follows its events
    events = follow(api, run["id"])
    # Then it sees the printed lines, both metric values and the statuses up to Completed, then end
    text = "".join(d["text"] for n, d in events if n == "log" and d["source"] == "driver")
    assert "training with ['0.25']" in text and "done training" in text
    assert "amlexec" not in text.split("training with")[1]  # metric tags are not log text
    assert [d["value"] for n, d in events if n == "metric"] == [0.25, 0.9]
    statuses = [d["status"] for n, d in events if n == "status"]
    assert statuses[-1] == "Completed" and events[-1][0] == "end"
    # And the run, its metrics and its log read back the same
    record = api.get(f"runs/{run['id']}").json()
    assert (record["status"], record["exit_code"], record["metrics"]["acc"]) == ("Completed", 0, 0.9)
    series = api.get(f"runs/{run['id']}/metrics").json()
    assert [m["value"] for m in series["acc"]] == [0.25, 0.9]
    log = api.get(f"runs/{run['id']}/log").json()
    assert "done training" in log["text"] and log["done"]
    assert api.get(f"runs/{run['id']}/log", params={"cursor": log["cursor"]}).json()["text"] == ""


def test_follow_resumes_after_a_cursor_without_repeating(api: Api, project_dir: Path) -> None:
    # Given a finished run followed once
    run = submit(api, project_dir, "train.py", TRAIN)
    first = follow(api, run["id"])
    logs = [d for n, d in first if n == "log" and d["source"] == "driver"]
    # When a client resumes from the cursor of the first driver chunk
    again = follow(api, run["id"], logs[0]["cursor"])
    # Then it gets only what came after that chunk
    rest = "".join(d["text"] for n, d in again if n == "log" and d["source"] == "driver")
    assert rest == "".join(d["text"] for d in logs[1:])


def test_artifacts_list_and_download(api: Api, project_dir: Path) -> None:
    # Given a completed run that wrote two output files
    run = submit(api, project_dir, "train.py", TRAIN)
    follow(api, run["id"])
    # When the client lists and downloads them
    listing = api.get(f"runs/{run['id']}/artifacts").json()["artifacts"]
    # Then both are there, with sizes, and download byte for byte
    assert [(a["path"], a["size"]) for a in listing] == [("model.txt", 7), ("sub/notes.txt", 5)]
    resp = api.get(f"runs/{run['id']}/artifacts/sub/notes.txt")
    assert resp.status_code == 200 and resp.content == b"notes"


def test_artifact_paths_cannot_leave_the_run_folder(api: Api, project_dir: Path, tmp_path: Path) -> None:
    # Given a completed run, a secret file beside the history, and a symlink planted in outputs/
    run = submit(api, project_dir, "train.py", TRAIN)
    follow(api, run["id"])
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    outputs = api.server.home / "runs" / run["id"] / "outputs"
    (outputs / "link.txt").symlink_to(secret)
    (outputs / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    # When a client asks for paths outside outputs/
    for bad in (
        "%2E%2E/driver_log.txt",  # encoded: a client library would fold a literal '..' itself
        "..%2F..%2Fhistory.sqlite",
        "sub/%2E%2E/%2E%2E/control_log.txt",
        "%2Fetc%2Fpasswd",
        "link.txt",
        "linkdir/secret.txt",
    ):
        resp = api.get(f"runs/{run['id']}/artifacts/{bad}")
        # Then each is refused with a 4xx and a message, never the file
        assert 400 <= resp.status_code < 500, (bad, resp.status_code)
        assert "message" in resp.json() and b"do not serve" not in resp.content
    # And a literal '..' sent as is (no client-side folding) is refused too
    conn = http.client.HTTPConnection(api.server.url.split("//")[1].rstrip("/"), timeout=30)
    conn.request(
        "GET", f"/jupyter-amlexec/api/runs/{run['id']}/artifacts/../driver_log.txt", headers=api.headers()
    )
    raw = conn.getresponse()
    assert 400 <= raw.status < 500 and b"Running" not in raw.read()
    conn.close()
    # And the listing shows no symlink
    listing = api.get(f"runs/{run['id']}/artifacts").json()["artifacts"]
    assert {a["path"] for a in listing} == {"model.txt", "sub/notes.txt"}


def test_project_paths_are_confined_to_the_root(api: Api, project_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("print('should never run')")
    (project_dir / "escape").symlink_to(tmp_path, target_is_directory=True)
    rel = project_dir.relative_to(api.server.root).as_posix()
    for path in ("..", "../..", "/etc", str(tmp_path), f"{rel}/escape"):
        resp = api.get("targets", params={"path": path})
        assert resp.status_code == 403, (path, resp.status_code, resp.text)
        assert api.get("runs", params={"path": path}).status_code == 403
    for script in ("../outside.py", str(outside), f"{rel}/escape/outside.py"):
        resp = api.post("runs", json={"script": script})
        assert resp.status_code == 403, (script, resp.text)
    assert api.get("targets", params={"path": f"{rel}/nowhere"}).status_code == 404


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for the user's purposes
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_cancel_a_long_run_ends_its_process(api: Api, project_dir: Path, server: Any) -> None:
    # Given a long run that has started
    run = submit(api, project_dir, "long.py", LONG)
    for name, data in api.events("GET", f"runs/{run['id']}/events"):
        if name == "log" and "long run started" in data["text"]:
            break
    from jupyter_amlexec.core.history import History

    pid = int(History(server.home).get(run["id"]).handle["pid"])
    assert _pid_alive(pid)
    # When the client cancels it
    resp = api.post(f"runs/{run['id']}/cancel")
    assert resp.status_code == 202
    # Then the run ends Canceled and its process is gone
    events = follow(api, run["id"])
    assert [d["status"] for n, d in events if n == "status"][-1] == "Canceled"
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid)
    # And cancelling again is harmless
    assert api.post(f"runs/{run['id']}/cancel").json()["status"] == "Canceled"


def test_rerun_runs_the_same_snapshot(api: Api, project_dir: Path) -> None:
    run = submit(api, project_dir, "train.py", TRAIN, "0.1")
    follow(api, run["id"])
    (project_dir / "train.py").write_text("raise SystemExit('edited after the run')")
    resp = api.post(f"runs/{run['id']}/rerun")
    assert resp.status_code == 201
    again = resp.json()
    assert again["id"] != run["id"] and again["arguments"] == ["0.1"]
    follow(api, again["id"])
    assert api.get(f"runs/{again['id']}").json()["status"] == "Completed"


def test_runs_filter_sort_by_metric_and_page(api: Api, project_dir: Path) -> None:
    # Given three runs of one project with different final accuracies
    script = "import sys, amlexec_run\namlexec_run.log('score', float(sys.argv[1]))\n"
    ids = []
    for value in ("0.3", "0.7", "0.5"):
        run = submit(api, project_dir, "score.py", script, value)
        follow(api, run["id"])
        ids.append(run["id"])
    rel = project_dir.relative_to(api.server.root).as_posix()
    # When the client asks for them sorted by the metric, two a page
    query = {"path": rel, "order_by": "metric:score", "limit": "2", "metric_names": "true"}
    first = api.get("runs", params=query).json()
    second = api.get("runs", params={**query, "offset": "2"}).json()
    # Then the pages are in metric order and say how many there are
    assert [r["metrics"]["score"] for r in first["runs"] + second["runs"]] == [0.7, 0.5, 0.3]
    assert first["total"] == 3 and first["metric_names"] == ["score"]
    ascending = api.get("runs", params={**query, "descending": "false", "limit": "1"}).json()
    assert ascending["runs"][0]["id"] == ids[0]
    # And filters narrow the list; a bad filter value is a 400 with a message
    assert api.get("runs", params={"path": rel, "status": "completed"}).json()["total"] == 3
    assert api.get("runs", params={"path": rel, "status": "failed"}).json()["runs"] == []
    assert api.get("runs", params={"path": rel, "script": "sc*"}).json()["total"] == 3
    for bad in ({"status": "nope"}, {"limit": "0"}, {"order_by": "colour"}, {"offset": "x"}):
        resp = api.get("runs", params={"path": rel, **bad})
        assert resp.status_code == 400 and resp.json()["message"], bad


def test_unknown_run_and_bad_cursor_are_json_errors(api: Api, project_dir: Path) -> None:
    run = submit(api, project_dir, "train.py", TRAIN)
    follow(api, run["id"])
    # A malformed cursor is refused before any stream starts; an unknown run is a 404
    bad = api.get(f"runs/{run['id']}/events", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and "cursor" in bad.json()["message"]
    for path in ("runs/nope_1", "runs/nope_1/log", "runs/nope_1/metrics", "runs/nope_1/artifacts"):
        resp = api.get(path)
        assert resp.status_code == 404 and "nope_1" in resp.json()["message"], path
    assert api.post("runs/nope_1/cancel").status_code == 404
    # The log tail is the end of the log, and its cursor reads on from the end
    tail = api.get(f"runs/{run['id']}/log", params={"tail_bytes": "13"}).json()
    assert tail["text"] == "done training\n"[-13:]
    assert api.get(f"runs/{run['id']}/log", params={"cursor": tail["cursor"]}).json()["text"] == ""


def test_many_followers_of_one_live_run_each_get_the_whole_log_once(api: Api, project_dir: Path) -> None:
    # Given a run that prints 200 numbered lines over a second or so
    script = "import time\nfor i in range(200):\n    print('line', i, flush=True)\n    time.sleep(0.005)\n"
    run = submit(api, project_dir, "lines.py", script)
    # When eight clients follow it at once (they share one reader on the server)
    results: list[list[tuple[str, Any]]] = [[] for _ in range(8)]

    def one(i: int) -> None:
        results[i] = follow(api, run["id"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then each saw every line exactly once, in order, and the run's end
    expected = "".join(f"line {i}\n" for i in range(200))
    for events in results:
        assert "".join(d["text"] for n, d in events if n == "log" and d["source"] == "driver") == expected
        assert [d["status"] for n, d in events if n == "status"][-1] == "Completed"
    # And a client resuming from a step cursor mid-way gets the rest, nothing twice
    with requests.get(
        api.url(f"runs/{run['id']}/events"), headers=api.headers(), stream=True, timeout=60
    ) as resp:
        ids = [line[4:] for line in resp.iter_lines(decode_unicode=True) if line.startswith("id: ")]
    assert len(ids) >= 1
    middle = ids[len(ids) // 2]
    rest = follow(api, run["id"], middle)
    first = follow(api, run["id"])
    cut = [n for n, _ in first]
    assert rest and len(rest) < len(first) and cut[-1] == "end"
    seen = "".join(d["text"] for n, d in first if n == "log" and d["source"] == "driver")
    tail = "".join(d["text"] for n, d in rest if n == "log" and d["source"] == "driver")
    assert seen.endswith(tail)
