"""A `cluster` .compute file's keys: what loads, and bad values refused naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_amlexec.core.errors import ConfigError
from jupyter_amlexec.core.executors import create_executor
from jupyter_amlexec.core.executors.spark import ClusterExecutor, LivyExecutor
from jupyter_amlexec.core.project import ComputeTarget


def _target(tmp_path: Path, text: str) -> ComputeTarget:
    path = tmp_path / "aml_config" / "myhdi.compute"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return ComputeTarget.load(path)


def test_a_workbench_attach_file_is_yarn_cluster_mode_over_ssh(tmp_path: Path) -> None:
    # the file `az ml computetarget attach cluster` wrote
    target = _target(
        tmp_path,
        "address: mycluster-ssh.example.net\ntype: cluster\nusername: sshuser\nyarnDeployMode: cluster\n",
    )
    executor = create_executor(target, tmp_path / "home")
    assert isinstance(executor, ClusterExecutor)
    s = executor.settings
    assert (s.master, s.deploy_mode, s.submit, s.ssh.username) == (
        "yarn",
        "cluster",
        "spark-submit",
        "sshuser",
    )


def test_standalone_runs_its_driver_on_the_head_node_whatever_yarn_deploy_mode_says(tmp_path: Path) -> None:
    target = _target(
        tmp_path, "type: cluster\naddress: h\nsparkMaster: spark://h:7077\nyarnDeployMode: cluster\n"
    )
    assert ClusterExecutor(target, tmp_path).settings.deploy_mode == "client"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("type: cluster\naddress: h\nsparkMaster: mesos://h:5050\n", "sparkMaster"),
        ("type: cluster\nsparkMaster: yarn\n", "address"),
        ("type: cluster\nlivyUrl: ftp://h/livy\nlivyFilesDir: /x\n", "livyUrl"),
        ("type: cluster\nlivyUrl: https://h/livy\n", "livyFilesDir"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_executor(_target(tmp_path, text), tmp_path / "home")
    assert key in str(err.value) and "myhdi.compute" in str(err.value)


def test_a_livy_url_makes_it_a_livy_target(tmp_path: Path) -> None:
    target = _target(
        tmp_path, "type: cluster\nlivyUrl: https://gw.example.net/livy\nlivyFilesDir: /share/livy\n"
    )
    assert isinstance(create_executor(target, tmp_path / "home"), LivyExecutor)
