"""The Spark infrastructure that scripts/infra/spark.sh starts works for real, as a user would check it.

A standalone master + worker (pyspark 4.x), a single-node YARN (MiniYARNCluster) and an Apache Livy
server (batches) on loopback: jobs run and their results are read back from the driver's output, YARN
applications are seen, killed and their logs read through the ResourceManager and the `yarn` CLI,
Livy batches succeed, page their log and are deleted. The Spark executor's own tests build on these.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

pytestmark = pytest.mark.spark

SUM_OF_SQUARES = sum(x * x for x in range(1000))  # what the small job prints

SMALL_JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("infra-small").getOrCreate()
sc = spark.sparkContext
total = sc.parallelize(range(1000), 2).map(lambda x: x * x).sum()
print("RESULT", total, sc.applicationId, flush=True)
spark.stop()
"""

# Keeps calling into Spark, so it ends as soon as its JVM does (a sleeping Python driver would not).
LONG_JOB = """
import os, sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("infra-long").getOrCreate()
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
print("LONG STARTED", flush=True)
for _ in range(600):
    spark.range(10).count()
    time.sleep(0.5)
"""

SMALL_RESOURCES = [
    "--driver-memory",
    "512m",
    "--conf",
    "spark.executor.memory=512m",
    "--conf",
    "spark.ui.showConsoleProgress=false",
]


def setting(name: str) -> str:
    value = os.environ.get(name, "")
    require(bool(value), f"{name} (exported by scripts/infra/spark.sh)")
    return value


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def send_json(method: str, url: str, body: Mapping[str, object] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Requested-By", "amlexec-tests")  # Livy's CSRF guard wants it on writes
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def spark_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=setting("AMLEXEC_TEST_SPARK_HOME"),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=setting("AMLEXEC_TEST_SPARK_PYTHON"),
    )
    env.update(extra)
    return env


def spark_submit(
    args: list[str], env: Mapping[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    argv = [setting("AMLEXEC_TEST_SPARK_SUBMIT"), *SMALL_RESOURCES, *args]
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)


def application_id(output: str) -> str:
    found = re.findall(r"application_\d+_\d+", output)
    assert found, f"no YARN application id in spark-submit's output:\n{output[-3000:]}"
    return found[-1]


# ------------------------------------------------------------------------------ standalone


def test_standalone_job_result_is_read_back_from_the_driver(tmp_path: Path) -> None:
    # Given the small job and the standalone master
    master = setting("AMLEXEC_TEST_SPARK_MASTER")
    job = tmp_path / "small.py"
    job.write_text(SMALL_JOB)
    # When it is submitted to the master (client mode: the driver's output is spark-submit's)
    done = spark_submit(["--master", master, "--total-executor-cores", "1", str(job)], spark_env())
    # Then it printed the right result under a standalone application id ...
    assert done.returncode == 0, done.stderr[-3000:]
    match = re.search(r"^RESULT (\d+) (\S+)$", done.stdout, re.MULTILINE)
    assert match, done.stdout
    assert int(match.group(1)) == SUM_OF_SQUARES
    app_id = match.group(2)
    assert app_id.startswith("app-")
    # ... and the master lists that application as finished, with its worker alive
    state = get_json(setting("AMLEXEC_TEST_SPARK_MASTER_WEBUI") + "/json/")
    assert [w["state"] for w in state["workers"]] == ["ALIVE"]
    finished = {app["id"]: app["state"] for app in state["completedapps"]}
    assert finished.get(app_id) == "FINISHED"


# ------------------------------------------------------------------------------------ YARN


def yarn_env() -> dict[str, str]:
    return spark_env(HADOOP_CONF_DIR=setting("AMLEXEC_TEST_HADOOP_CONF_DIR"))


def yarn_app(app_id: str) -> dict[str, Any]:
    app: dict[str, Any] = get_json(f"{setting('AMLEXEC_TEST_YARN_RM_URL')}/ws/v1/cluster/apps/{app_id}")[
        "app"
    ]
    return app


def yarn_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HADOOP_CONF_DIR=setting("AMLEXEC_TEST_HADOOP_CONF_DIR"))
    return subprocess.run(
        [setting("AMLEXEC_TEST_YARN"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_yarn_client_mode_job_succeeds_and_is_known_to_the_resource_manager(tmp_path: Path) -> None:
    # Given the small job
    job = tmp_path / "small.py"
    job.write_text(SMALL_JOB)
    # When it runs on YARN in client mode (the driver here, executors in YARN containers)
    done = spark_submit(
        ["--master", "yarn", "--deploy-mode", "client", "--num-executors", "1", str(job)], yarn_env()
    )
    # Then the driver printed the result under a YARN application id ...
    assert done.returncode == 0, done.stderr[-3000:]
    match = re.search(r"^RESULT (\d+) (application_\d+_\d+)$", done.stdout, re.MULTILINE)
    assert match, done.stdout
    assert int(match.group(1)) == SUM_OF_SQUARES
    # ... which the ResourceManager reports as a finished, successful Spark application
    app = yarn_app(match.group(2))
    assert (app["state"], app["finalStatus"], app["applicationType"]) == ("FINISHED", "SUCCEEDED", "SPARK")


def test_yarn_cluster_mode_driver_output_is_in_its_aggregated_logs(tmp_path: Path) -> None:
    # Given the small job
    job = tmp_path / "small.py"
    job.write_text(SMALL_JOB)
    # When it runs on YARN in cluster mode (the driver inside the application master's container)
    done = spark_submit(
        [
            "--master",
            "yarn",
            "--deploy-mode",
            "cluster",
            "--num-executors",
            "1",
            "--conf",
            f"spark.pyspark.python={setting('AMLEXEC_TEST_SPARK_PYTHON')}",
            str(job),
        ],
        yarn_env(),
    )
    # Then spark-submit reports success and the ResourceManager agrees
    assert done.returncode == 0, done.stderr[-3000:]
    app_id = application_id(done.stderr)
    app = yarn_app(app_id)
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED")
    # And the driver's stdout is read back from the aggregated logs with `yarn logs`
    wait_until(
        lambda: yarn_app(app_id).get("logAggregationStatus") == "SUCCEEDED",
        60,
        "log aggregation of " + app_id,
    )
    logs = yarn_cli("logs", "-applicationId", app_id, "-log_files", "stdout")
    assert logs.returncode == 0, logs.stderr[-3000:]
    assert f"RESULT {SUM_OF_SQUARES} {app_id}" in logs.stdout
    # And `yarn application -status` knows it too (the CLI an SSH head node has)
    status = yarn_cli("application", "-status", app_id)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "Final-State : SUCCEEDED" in status.stdout


def test_yarn_application_is_killed_through_the_resource_manager_rest_api(tmp_path: Path) -> None:
    # Given a long job submitted in cluster mode without waiting for it
    job = tmp_path / "long.py"
    job.write_text(LONG_JOB)
    done = spark_submit(
        [
            "--master",
            "yarn",
            "--deploy-mode",
            "cluster",
            "--num-executors",
            "1",
            "--conf",
            "spark.yarn.submit.waitAppCompletion=false",
            "--conf",
            f"spark.pyspark.python={setting('AMLEXEC_TEST_SPARK_PYTHON')}",
            str(job),
        ],
        yarn_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    app_id = application_id(done.stderr)
    rm = setting("AMLEXEC_TEST_YARN_RM_URL")
    wait_until(lambda: yarn_app(app_id)["state"] == "RUNNING", 90, f"{app_id} RUNNING")
    # When it is killed with PUT /ws/v1/cluster/apps/{id}/state (what `yarn application -kill` does)
    code, body = send_json("PUT", f"{rm}/ws/v1/cluster/apps/{app_id}/state", {"state": "KILLED"})
    assert code in (200, 202), body
    # Then the ResourceManager shows it KILLED and nothing of it is left running
    app = wait_until(lambda: (a := yarn_app(app_id))["state"] == "KILLED" and a, 60, f"{app_id} KILLED")
    assert app["finalStatus"] == "KILLED"
    assert get_json(f"{rm}/ws/v1/cluster/apps/{app_id}/state") == {"state": "KILLED"}
    wait_until(lambda: yarn_app(app_id)["runningContainers"] in (0, -1), 30, f"{app_id} containers gone")


# ------------------------------------------------------------------------------------ Livy


def livy(path: str) -> str:
    return setting("AMLEXEC_TEST_LIVY_URL") + path


def livy_batch_state(batch_id: int) -> str:
    code, body = send_json("GET", livy(f"/batches/{batch_id}/state"))
    return str(body["state"]) if code == 200 else f"HTTP {code}"


def test_livy_batch_succeeds_and_its_log_pages(tmp_path: Path) -> None:
    # Given the small job as a file on the local file system
    job = tmp_path / "small.py"
    job.write_text(SMALL_JOB)
    # When it is posted as a batch
    code, batch = send_json("POST", livy("/batches"), {"file": str(job), "name": f"infra-{tmp_path.name}"})
    assert code == 201, batch
    batch_id = batch["id"]
    # Then it reaches success
    final = wait_until(
        lambda: (s := livy_batch_state(batch_id)) in ("success", "dead", "killed") and s, 120, "batch end"
    )
    assert final == "success"
    # And its log can be read page by page, in order, without gaps, and holds the driver's output
    first = send_json("GET", livy(f"/batches/{batch_id}/log?from=0&size=10"))[1]
    total = first["total"]
    assert first["from"] == 0 and len(first["log"]) == 10 < total
    lines = list(first["log"])
    while len(lines) < total:
        page = send_json("GET", livy(f"/batches/{batch_id}/log?from={len(lines)}&size=10"))[1]
        assert page["from"] == len(lines) and page["log"], page
        lines += page["log"]
    whole = send_json("GET", livy(f"/batches/{batch_id}/log?from=0&size={total}"))[1]["log"]
    assert lines == whole
    assert any(line.startswith(f"RESULT {SUM_OF_SQUARES} local-") for line in lines), lines


def test_livy_delete_kills_a_long_batch(tmp_path: Path) -> None:
    # Given a long batch whose Python driver has started
    job = tmp_path / "long.py"
    job.write_text(LONG_JOB)
    pid_file = tmp_path / "driver.pid"
    code, batch = send_json("POST", livy("/batches"), {"file": str(job), "args": [str(pid_file)]})
    assert code == 201, batch
    batch_id = batch["id"]
    wait_until(pid_file.exists, 120, "the batch's driver to start")
    driver_pid = int(pid_file.read_text())
    assert livy_batch_state(batch_id) == "running"
    # When it is deleted
    code, body = send_json("DELETE", livy(f"/batches/{batch_id}"))
    # Then Livy forgets it and its driver process ends
    assert (code, body) == (200, {"msg": "deleted"})
    assert livy_batch_state(batch_id) == "HTTP 404"

    def driver_gone() -> bool:
        try:  # a zombie counts as gone: the machine's PID 1 may not reap orphans
            stat = Path(f"/proc/{driver_pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    wait_until(driver_gone, 30, f"driver pid {driver_pid} to end")
