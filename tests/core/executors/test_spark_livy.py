"""The `cluster` target through a real Apache Livy server (scripts/infra/spark.sh: Livy 0.7.1 over
Spark 3.5, batches): a run with its whole log, metrics and outputs; cancel (DELETE) keeping the log;
a failing batch; basic auth through a gateway that wants the password (never stored)."""

from __future__ import annotations

import base64
import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jupyter_amlexec.core.api import Session
from tests.core.executors.spark_fixtures import FAILING_JOB, LONG_JOB, setting, wait_until, write_iris

JOB = """\
import os, sys, amlexec_run
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("marker:", spark.conf.get("spark.amlexec.marker"), flush=True)
df = spark.read.csv("file://" + os.path.abspath("iris.csv"), header=True, inferSchema=True)
counts = {r["species"]: r["count"] for r in df.groupBy("species").count().collect()}
amlexec_run.log("rows", df.count())
amlexec_run.log("species", len(counts))
for i in range(int(sys.argv[1])):
    print("numbered line", i)
os.makedirs("outputs", exist_ok=True)
with open("outputs/counts.txt", "w") as f:
    f.write(repr(sorted(counts.items())))
spark.stop()
"""

PASSWORD = "livy-gateway-secret-42"


class Gateway:
    """A basic-auth gateway in front of Livy (what HDInsight's gateway or Knox does): requests without
    the right Authorization header get 401; the others are passed on."""

    def __init__(self, upstream: str) -> None:
        self.seen_requested_by: list[str] = []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                want = "Basic " + base64.b64encode(f"ana:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.end_headers()
                    return
                gateway.seen_requested_by.append(self.headers.get("X-Requested-By", ""))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command)
                for name in ("Content-Type", "X-Requested-By"):
                    if self.headers.get(name):
                        request.add_header(name, self.headers[name])
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, data = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    g = Gateway(setting("AMLEXEC_TEST_LIVY_URL"))
    yield g
    g.close()


def livy_project(project: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Session:
    config = project / "aml_config"
    config.mkdir()
    files = project.parent / "livy-files"
    files.mkdir()
    monkeypatch.setenv("AMLEXEC_TEST_LIVY_PASSWORD", PASSWORD)
    compute = {
        "type": "cluster",
        "livyUrl": url,
        "livyFilesDir": str(files),
        "username": "ana",
        "passwordEnv": "AMLEXEC_TEST_LIVY_PASSWORD",
    }
    (config / "hdi-livy.compute").write_text(yaml.safe_dump(compute))
    rc = {"Target": "hdi-livy", "Framework": "PySpark", "PrepareEnvironment": True}
    (config / "hdi-livy.runconfig").write_text(yaml.safe_dump(rc))
    spark = {"configuration": {"spark.amlexec.marker": "through-livy", "spark.ui.enabled": False}}
    (config / "spark_dependencies.yml").write_text(yaml.safe_dump(spark))
    write_iris(project / "iris.csv")
    (project / "job.py").write_text(JOB)
    (project / "fail.py").write_text(FAILING_JOB)
    (project / "long.py").write_text(LONG_JOB)
    return Session.open(project, project.parent / "amlexec-home")


def test_a_livy_batch_run_with_its_whole_log_metrics_and_outputs(
    project: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cluster reachable only through its HTTPS gateway's Livy, with a password in a variable
    session = livy_project(project, gateway.url, monkeypatch)
    # When a job printing more lines than one log page is submitted
    run = session.submit(script="job.py", arguments=["1500"], run_configuration="hdi-livy").wait()
    # Then every line came once and in order (more than Livy's own log window of 200 lines holds)
    log = run.logs()
    numbered = [int(line.split()[2]) for line in log.splitlines() if line.startswith("numbered line ")]
    assert numbered == list(range(1500))
    assert "marker: through-livy" in log
    # And its metrics and outputs came back
    assert run.metrics == {"rows": 150, "species": 3}
    assert "setosa" in (run.outputs_dir / "counts.txt").read_text()
    # And every request carried X-Requested-By and the password; the password is in no record or log
    assert gateway.seen_requested_by and set(gateway.seen_requested_by) == {"jupyter_amlexec"}
    home = project.parent / "amlexec-home"
    for path in [*home.rglob("*.txt"), *(project / "aml_config").iterdir()]:
        assert PASSWORD not in path.read_text(errors="replace"), path
    assert PASSWORD not in str(run.record.to_json())
    # And the run's folder in livyFilesDir is gone
    assert list((project.parent / "livy-files").iterdir()) == []


def test_a_failing_livy_batch_is_failed_with_its_traceback(
    project: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = livy_project(project, gateway.url, monkeypatch)
    run = session.submit(script="fail.py", run_configuration="hdi-livy").wait(raise_on_failure=False)
    assert run.status.value == "Failed"
    assert "Traceback (most recent call last)" in run.logs()
    assert "ValueError: the model would not converge: 5 rows" in str(run.record.error)


def test_cancel_deletes_the_livy_batch_and_keeps_its_log(
    project: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = livy_project(project, gateway.url, monkeypatch)
    run = session.submit(script="long.py", run_configuration="hdi-livy")
    wait_until(lambda: "tick 4" in run.logs(), 240, "the batch to run")
    batch_id = int(str(run.record.handle["batch_id"]))  # type: ignore[index]
    run.cancel()
    run.wait(raise_on_failure=False)
    assert run.status.value == "Canceled"
    # Livy no longer knows the batch, and the log read before the delete was kept
    request = urllib.request.Request(f"{setting('AMLEXEC_TEST_LIVY_URL')}/batches/{batch_id}")
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(request, timeout=10)
    assert gone.value.code == 404
    assert "LONG STARTED" in run.logs()


def test_a_wrong_password_is_refused_before_anything_runs(
    project: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = livy_project(project, gateway.url, monkeypatch)
    monkeypatch.setenv("AMLEXEC_TEST_LIVY_PASSWORD", "wrong")
    run = session.submit(script="job.py", arguments=["1"], run_configuration="hdi-livy").wait(
        raise_on_failure=False
    )
    assert run.status.value == "Failed"
    assert "401" in str(run.record.error) and "passwordEnv" in str(run.record.error)
