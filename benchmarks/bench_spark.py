"""A tracked Spark run versus bare spark-submit of the same script on the same cluster, side by side:
over SSH (a standalone master behind the sshd head node of scripts/infra/) and over Livy.

The physical limit over SSH is `ssh head spark-submit ... job.py` on the same (warm) connection with
the same options; over Livy it is a bare POST /batches of the same file polled until success.
Everything else we do (snapshot + delta upload, the run's folder, the detached start, waiting for
the application id, following the log and the state, collecting outputs, history writes) is
overhead. Needs the services of `CLUSTER_DEV_HOLD=1 bash scripts/infra/cluster-dev.sh` (or
scripts/test.sh) and their AMLEXEC_TEST_* variables.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

JOB = """\
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("sum", spark.sparkContext.parallelize(range(1000), 2).sum(), flush=True)
spark.stop()
"""
CONF = {
    "spark.ui.enabled": "false",
    "spark.cores.max": "1",
    "spark.executor.memory": "512m",
    "spark.driver.memory": "512m",
}
HEAD_PYTHON = "/usr/bin/python3"
ROUNDS = int(os.environ.get("AMLEXEC_BENCH_SPARK_ROUNDS", "3"))


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: start the cluster services (scripts/infra/cluster-dev.sh)")
    return value


def _project(root: Path) -> Path:
    """A project with an SSH cluster target (standalone) and a Livy target, the job, the spark file."""
    project = root / "proj"
    config = project / "aml_config"
    config.mkdir(parents=True)
    (project / "job.py").write_text(JOB)
    host, port = _env("AMLEXEC_TEST_SSH_HOSTS").split()[0].rsplit(":", 1)
    ssh = {
        "type": "cluster",
        "address": f"{host}:{port}",
        "username": _env("AMLEXEC_TEST_SSH_USER"),
        "privateKeyFile": _env("AMLEXEC_TEST_SSH_KEY"),
        "sparkMaster": _env("AMLEXEC_TEST_SPARK_MASTER"),
        "sparkSubmitLocation": _env("AMLEXEC_TEST_SPARK_SUBMIT"),
        "pythonLocation": HEAD_PYTHON,
    }
    (config / "ssh.compute").write_text(yaml.safe_dump(ssh))
    (root / "livy-files").mkdir()
    livy = {
        "type": "cluster",
        "livyUrl": _env("AMLEXEC_TEST_LIVY_URL"),
        "livyFilesDir": str(root / "livy-files"),
    }
    (config / "livy.compute").write_text(yaml.safe_dump(livy))
    for name in ("ssh", "livy"):
        rc = {"Target": name, "Framework": "PySpark", "EnvironmentVariables": {"SPARK_LOCAL_IP": "127.0.0.1"}}
        (config / f"{name}.runconfig").write_text(yaml.safe_dump(rc))
    (config / "spark_dependencies.yml").write_text(yaml.safe_dump({"configuration": CONF}))
    return project


def _bare_ssh(conn: object, job_dir: str) -> float:
    confs = " ".join(f"--conf {k}={v}" for k, v in CONF.items())
    command = (
        f"cd {shlex.quote(job_dir)} && SPARK_LOCAL_IP=127.0.0.1 {shlex.quote(_env('AMLEXEC_TEST_SPARK_SUBMIT'))} "
        f"--master {_env('AMLEXEC_TEST_SPARK_MASTER')} --conf spark.pyspark.python={HEAD_PYTHON} {confs} job.py"
    )
    start = time.perf_counter()
    result = conn.run(["sh", "-c", command], timeout=600)  # type: ignore[attr-defined]
    if result.exit_code != 0 or b"sum 499500" not in result.stdout:
        raise RuntimeError(f"bare spark-submit failed: {result.stderr[-500:]!r}")
    return time.perf_counter() - start


def _bare_livy(job: Path) -> float:
    url = _env("AMLEXEC_TEST_LIVY_URL")
    body = json.dumps({"file": str(job), "conf": CONF}).encode()
    request = urllib.request.Request(f"{url}/batches", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Requested-By", "bench")
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        batch = json.load(response)
    while True:
        with urllib.request.urlopen(f"{url}/batches/{batch['id']}/state", timeout=30) as response:
            state = json.load(response)["state"]
        if state in ("success", "dead", "killed"):
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    if state != "success":
        raise RuntimeError(f"bare Livy batch {batch['id']} ended {state}")
    return elapsed


def _row(name: str, ours: list[float], bare: list[float]) -> dict[str, object]:
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    return {
        "name": name,
        "ours_s": ours_s,
        "baseline_s": bare_s,
        "ratio": ours_s / bare_s,
        "overhead_s": ours_s - bare_s,
        "target": f"overhead <= 1.5 s (measured {ours_s - bare_s:+.2f} s)",
    }


def run() -> list[dict[str, object]]:
    from jupyter_amlexec.core.api import Session
    from jupyter_amlexec.core.transport.ssh import shared_pool
    from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint

    root = Path(tempfile.mkdtemp(prefix="amlexec-bench-spark-"))
    old_home = os.environ.get("HOME")
    try:
        (root / "home" / ".ssh").mkdir(parents=True)
        shutil.copy(_env("AMLEXEC_TEST_SSH_KNOWN_HOSTS"), root / "home" / ".ssh" / "known_hosts")
        os.environ["HOME"] = str(root / "home")
        project = _project(root)
        session = Session.open(project, root / "amlexec-home")
        host, port = _env("AMLEXEC_TEST_SSH_HOSTS").split()[0].rsplit(":", 1)
        settings = SshSettings(host, int(port), _env("AMLEXEC_TEST_SSH_USER"), _env("AMLEXEC_TEST_SSH_KEY"))
        conn = shared_pool().get(resolve_endpoint(settings, project=project))
        job_dir = conn.home.rstrip("/") + "/.amlexec-bench"
        conn.run(["sh", "-c", f"mkdir -p {job_dir} && cat > {job_dir}/job.py"], stdin=JOB.encode())
        session.submit(script="job.py", run_configuration="ssh").wait()  # warm: blobs, JVM caches
        results: dict[str, tuple[list[float], list[float]]] = {"ssh": ([], []), "livy": ([], [])}
        for _ in range(ROUNDS):  # interleaved so both sides see the same machine load
            results["ssh"][1].append(_bare_ssh(conn, job_dir))
            start = time.perf_counter()
            session.submit(script="job.py", run_configuration="ssh").wait()
            results["ssh"][0].append(time.perf_counter() - start)
            results["livy"][1].append(_bare_livy(project / "job.py"))
            start = time.perf_counter()
            session.submit(script="job.py", run_configuration="livy").wait()
            results["livy"][0].append(time.perf_counter() - start)
        return [
            _row("spark over SSH: submit -> Completed vs bare ssh spark-submit", *results["ssh"]),
            _row("spark over Livy: submit -> Completed vs bare POST /batches", *results["livy"]),
        ]
    finally:
        shared_pool().close_all()
        if old_home is not None:
            os.environ["HOME"] = old_home
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    for row in run():
        print(
            f"{row['name']}: ours {row['ours_s']:.2f}s, bare {row['baseline_s']:.2f}s, "
            f"ratio {row['ratio']:.2f}, overhead {row['overhead_s']:+.2f} s (target {row['target']})"
        )


if __name__ == "__main__":
    os.environ.setdefault("AMLEXEC_HOME", tempfile.mkdtemp(prefix="amlexec-bench-"))
    main()
