"""The `cluster` target over SSH on real infrastructure: spark-submit on an sshd "head node" to a
Spark standalone master and to a single-node YARN (scripts/infra/spark.sh), client mode."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_amlexec.core.transport.ssh import shared_pool
from tests.core.executors.spark_fixtures import (
    EXTRA_PACKAGE,
    cluster_project,
    master_state,
    setting,
    wait_until,
    yarn_app,
)
from tests.core.transport.conftest import SshHosts


@pytest.fixture(autouse=True)
def _fresh_pool() -> Iterator[None]:
    yield
    shared_pool().close_all()  # each test's HOME (known_hosts) is its own


def test_iris_on_standalone_with_metrics_conf_environment_and_outputs(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    # Given a Workbench-shaped Iris project attached to a standalone cluster through its head node
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    # When the PySpark script is submitted
    run = session.submit(script="iris_spark.py", arguments=["0.05"], run_configuration="sparkvm").wait()
    log = run.logs()
    # Then the model was fit on the CSV of the snapshot and its metrics logged from the driver
    assert run.metrics["Regularization Rate"] == 0.05
    assert float(str(run.metrics["Accuracy"])) > 0.8
    # And the spark file's conf value was visible inside the job
    assert "marker from the spark file: from-spark-dependencies" in log
    # And the conda file's extra pip package was imported on the executors
    assert "executors import tabulate ['" in log
    # And outputs/ came back
    assert (run.outputs_dir / "model.txt").read_text().startswith("accuracy ")
    # And the application id is on the run and the master knows it as finished
    app_id = str(run.record.handle["app_id"])  # type: ignore[index]
    assert app_id.startswith("app-") and f"application id: {app_id}" in log
    assert f"Spark application {app_id}" in run.logs("control")
    finished = {app["id"]: app["state"] for app in master_state()["completedapps"]}
    assert finished.get(app_id) == "FINISHED"


def test_iris_on_yarn_client_mode_known_to_the_resource_manager(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    # Given the Iris project attached to a YARN cluster (client mode: the driver on the head node)
    session = cluster_project(project, ssh_hosts, name="hdi", master="yarn", deploy_mode="client")
    # When it runs
    run = session.submit(script="iris_spark.py", run_configuration="hdi").wait()
    # Then its metrics, the spark file's conf, the executors' package and outputs are all there
    log = run.logs()
    assert float(str(run.metrics["Accuracy"])) > 0.8
    assert "marker from the spark file: from-spark-dependencies" in log
    assert "executors import tabulate ['" in log
    assert (run.outputs_dir / "model.txt").exists()
    # And the YARN application on the run is one the ResourceManager reports as succeeded
    app_id = str(run.record.handle["app_id"])  # type: ignore[index]
    assert app_id.startswith("application_")
    app = yarn_app(app_id)
    assert (app["state"], app["finalStatus"], app["applicationType"]) == ("FINISHED", "SUCCEEDED", "SPARK")
    # And the environment came with the application (--archives), not only from the head node's disk
    assert "--archives" in run.logs("control") and "amlexec_env/bin/python" in run.logs("control")


def test_a_failing_job_is_failed_with_its_traceback(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    # When a job raises in the driver
    run = session.submit(script="fail_spark.py", run_configuration="sparkvm").wait(raise_on_failure=False)
    # Then the run is Failed, with the Python traceback in the log and the exception as its error
    record = run.record
    assert record.status.value == "Failed" and record.exit_code not in (None, 0)
    assert "counted 5" in run.logs()
    assert "Traceback (most recent call last)" in run.logs()
    assert "ValueError: the model would not converge: 5 rows" in str(record.error)


def _wait_for_log(run: object, text: str, timeout: float = 240) -> None:
    wait_until(lambda: text in run.logs(), timeout, f"{text!r} in the log")  # type: ignore[attr-defined]


def test_cancel_kills_the_yarn_application(project: Path, ssh_hosts: SshHosts, ssh_home: Path) -> None:
    session = cluster_project(project, ssh_hosts, name="hdi", master="yarn", deploy_mode="client")
    # Given a long job running on YARN
    run = session.submit(script="long_spark.py", run_configuration="hdi")
    _wait_for_log(run, "tick 4")
    app_id = str(run.record.handle["app_id"])  # type: ignore[index]
    assert yarn_app(app_id)["state"] == "RUNNING"
    # When it is canceled
    run.cancel()
    run.wait(raise_on_failure=False)
    # Then the run is Canceled and the application is gone from YARN (killed, no container left)
    assert run.status.value == "Canceled"
    app = wait_until(
        lambda: (a := yarn_app(app_id))["state"] in ("KILLED", "FINISHED", "FAILED") and a, 60, "end"
    )
    assert app["state"] == "KILLED"
    wait_until(lambda: yarn_app(app_id)["runningContainers"] in (0, -1), 60, "containers gone")


def test_cancel_ends_the_standalone_application(project: Path, ssh_hosts: SshHosts, ssh_home: Path) -> None:
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    run = session.submit(script="long_spark.py", run_configuration="sparkvm")
    _wait_for_log(run, "tick 4")
    app_id = str(run.record.handle["app_id"])  # type: ignore[index]
    assert app_id in {a["id"] for a in master_state()["activeapps"]}
    run.cancel()
    run.wait(raise_on_failure=False)
    assert run.status.value == "Canceled"
    wait_until(lambda: app_id not in {a["id"] for a in master_state()["activeapps"]}, 60, "app gone")
    assert app_id in {a["id"] for a in master_state()["completedapps"]}


def test_a_killed_submitter_leaves_the_run_recorded_to_its_end(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    home = session.history.home
    env = {**os.environ, "AMLEXEC_HOME": str(home), "HOME": str(ssh_home)}
    # Given a CLI following a Spark run
    cli = subprocess.Popen(
        [sys.executable, "-m", "jupyter_amlexec", "experiment", "submit", "-c", "sparkvm", "iris_spark.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout is not None
    run_id = cli.stdout.readline().split()[1]
    wait_until(lambda: "application id:" in session.history.read_log(run_id), 240, "the driver to start")
    # When it is killed outright mid-run
    cli.send_signal(signal.SIGKILL)
    cli.wait()

    # Then the guardian follows the run to its end: Completed, with its metrics and outputs
    def ended() -> str | None:
        row = (
            sqlite3.connect(home / "history.sqlite")
            .execute("SELECT status FROM runs WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return row[0] if row[0] in ("Completed", "Failed", "Canceled") else None

    assert wait_until(ended, 240, "the run's end") == "Completed"
    run = session.run(run_id)
    assert float(str(run.metrics["Accuracy"])) > 0.8
    assert (run.outputs_dir / "model.txt").exists()


def test_yarn_cluster_mode_follows_the_application_and_brings_back_its_log_and_outputs(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    # Given the Iris project on YARN in cluster mode (the driver in a YARN container)
    session = cluster_project(project, ssh_hosts, name="hdi", master="yarn", deploy_mode="cluster")
    # When it runs
    run = session.submit(script="iris_spark.py", arguments=["0.02"], run_configuration="hdi").wait()
    # Then the application's state was the run's detail while it ran
    control = run.logs("control")
    assert "RUNNING on YARN (application_" in control
    # And the driver's output came back from the aggregated logs, metric tags included
    log = run.logs()
    assert "aggregated YARN logs of application_" in log
    assert "marker from the spark file: from-spark-dependencies" in log
    assert run.metrics["Regularization Rate"] == 0.02
    assert float(str(run.metrics["Accuracy"])) > 0.8
    # And outputs/ written in the driver's container were collected
    assert (run.outputs_dir / "model.txt").read_text().startswith("accuracy ")
    app = yarn_app(str(run.record.handle["app_id"]))  # type: ignore[index]
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED")


def test_the_head_node_environment_is_built_once_per_hash_and_reused(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    # Given a conda file with one extra pip package
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    conda = project / "aml_config" / "sparkvm_conda.yml"
    conda.write_text(f"dependencies:\n  - python=3.11\n  - pip:\n    - {EXTRA_PACKAGE}\n")
    lines: list[str] = []
    # When it is prepared (force: built now even if an earlier test built it), then again unchanged
    first = session.prepare("sparkvm", force=True, log=lines.append)
    second = session.prepare("sparkvm", log=lines.append)
    # Then the venv was built once, on the head node, and the second prepare found it
    assert first.built and not second.built
    assert first.env_hash == second.env_hash and first.python == second.python
    assert any("Building environment" in line for line in lines)
    assert any("is ready (cached" in line for line in lines)
    assert str(first.python).startswith(f"/home/{ssh_hosts.user}/.amlexec/envs/")
    assert Path(str(first.python)).parent.parent.joinpath(".amlexec-ready").exists()


def _yarn_state(app_id: str) -> str | None:
    try:  # the ResourceManager may answer 404 for a moment after spark-submit named the id
        return str(yarn_app(app_id)["state"])
    except urllib.error.HTTPError:
        return None


def test_cancel_in_yarn_cluster_mode_kills_the_application(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = cluster_project(project, ssh_hosts, name="hdi", master="yarn", deploy_mode="cluster")
    # Given a long job whose driver runs in a YARN container
    run = session.submit(script="long_spark.py", run_configuration="hdi")
    handle = wait_until(lambda: run.record.handle, 240, "the run's handle")
    app_id = str(handle["app_id"])
    wait_until(lambda: _yarn_state(app_id) == "RUNNING", 240, f"{app_id} RUNNING")
    # When it is canceled
    run.cancel()
    run.wait(raise_on_failure=False)
    # Then the application is killed on YARN, not only the spark-submit that watched it
    assert run.status.value == "Canceled"
    app = wait_until(
        lambda: (a := yarn_app(app_id))["state"] in ("KILLED", "FINISHED", "FAILED") and a, 60, "end"
    )
    assert (app["state"], app["finalStatus"]) == ("KILLED", "KILLED")


def test_framework_python_runs_the_environments_interpreter_on_the_head_node(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    rc = project / "aml_config" / "sparkvm.runconfig"
    rc.write_text(rc.read_text().replace("Framework: PySpark", "Framework: Python"))
    (project / "plain.py").write_text(
        "import sys, tabulate\nprint('plain', sys.executable, tabulate.__version__)\n"
    )
    run = session.submit(script="plain.py", run_configuration="sparkvm").wait()
    assert f"plain /home/{ssh_hosts.user}/.amlexec/envs/" in run.logs()
    assert "spark-submit" not in run.logs("control")


def test_a_workbench_conda_file_builds_on_the_head_node_with_pip(
    project: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    # Given a conda file listing a package under dependencies: (as Workbench samples do), not under pip:
    session = cluster_project(project, ssh_hosts, name="sparkvm", master=setting("AMLEXEC_TEST_SPARK_MASTER"))
    (project / "aml_config" / "sparkvm_conda.yml").write_text(
        f"dependencies:\n  - python=3.11\n  - {EXTRA_PACKAGE}\n"
    )
    lines: list[str] = []
    # When it is prepared, then the head node's venv has it, installed with pip
    prepared = session.prepare("sparkvm", force=True, log=lines.append)
    assert prepared.built and any(EXTRA_PACKAGE in line for line in lines if "Building environment" in line)
    probe = subprocess.run([str(prepared.python), "-c", f"import {EXTRA_PACKAGE}"], capture_output=True)
    assert probe.returncode == 0, probe.stderr
