"""Workbench project files: what Workbench wrote loads unchanged, what we write Workbench can read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from jupyter_amlexec.core.errors import ConfigError, SecretError, TargetNotFoundError
from jupyter_amlexec.core.project import ComputeTarget, Project, RunConfiguration, TargetType
from jupyter_amlexec.core.secrets import redact_environment, resolve_password

WORKBENCH_GPU = """\
address: gpuvm.example.net
baseDockerImage: microsoft/mmlspark:plus-gpu-0.9.9
nativeSharedDirectory: ~/.azureml/share/
nvidiaDocker: true
password: AzureMlSecret=gpuvm#alice#0f3c5a8e2b7d4c19a6e1f2d3c4b5a697
sharedVolumes: true
type: remotedocker
username: alice
"""

TEMPLATE_DOCKER = """\
type: "localdocker"
baseDockerImage: "microsoft/mmlspark:plus-0.9.9"
sharedVolumes: false
nativeSharedDirectory: "~/.azureml/share/"
"""

ATTACH_RUNCONFIG = """\
ArgumentVector:
- $file
CondaDependenciesFile: aml_config/conda_dependencies.yml
EnvironmentVariables: null
Framework: PySpark
PrepareEnvironment: false
SparkDependenciesFile: aml_config/spark_dependencies.yml
Target: myhdi
TrackedRun: true
"""

LEGACY_JSON = '{"Description": "old", "ArgumentVector": ["$file"], "CondaFile": null, "ManagedEnvironment": true, "TrackedRun": true, "Target": "docker", "PrepareEnvironment": true, "Framework": "PySpark"}'


def write(root: Path, name: str, text: str) -> Path:
    path = root / "aml_config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_workbench_compute_files_load_and_round_trip(tmp_path: Path) -> None:
    gpu = ComputeTarget.load(write(tmp_path, "gpuvm.compute", WORKBENCH_GPU))
    assert (gpu.type, gpu.address, gpu.username, gpu.nvidia_docker, gpu.shared_volumes) == (
        TargetType.REMOTE_DOCKER,
        "gpuvm.example.net",
        "alice",
        True,
        True,
    )
    # the cloud secret reference is kept verbatim so writing back loses nothing
    assert yaml.safe_load(gpu.to_yaml()) == yaml.safe_load(WORKBENCH_GPU)
    docker = ComputeTarget.load(write(tmp_path, "docker.compute", TEMPLATE_DOCKER))
    assert docker.type is TargetType.DOCKER and docker.type_alias == "localdocker"
    assert yaml.safe_load(docker.to_yaml())["type"] == "localdocker"


def test_address_with_port_and_legacy_cluster_key(tmp_path: Path) -> None:
    t = ComputeTarget.load(
        write(tmp_path, "vm.compute", "type: remote\naddress: 127.0.0.2:2222\nusername: bob\n")
    )
    assert (t.address, t.port) == ("127.0.0.2", 2222)
    legacy = ComputeTarget.load(write(tmp_path, "old.compute", "cluster: True\naddress: x\n"))
    assert legacy.type is TargetType.CLUSTER


def test_runconfig_defaults_and_json_round_trip(tmp_path: Path) -> None:
    rc = RunConfiguration.load(write(tmp_path, "myhdi.runconfig", ATTACH_RUNCONFIG))
    assert rc.environment_variables == {} and rc.framework == "PySpark" and not rc.prepare_environment
    assert yaml.safe_load(rc.to_text()) == yaml.safe_load(ATTACH_RUNCONFIG)
    legacy = RunConfiguration.load(write(tmp_path, "docker.runconfig", LEGACY_JSON))
    assert legacy.source_format == "json" and legacy.description == "old"
    assert legacy.conda_dependencies_file == "aml_config/conda_dependencies.yml"  # CondaFile: null -> default
    assert json.loads(legacy.to_text())["ManagedEnvironment"] is True  # unknown legacy key kept


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.compute", "type: kubernetes\n", ["a.compute", "line 1", "'type'", "kubernetes", "remotedocker"]),
        ("b.compute", "type: docker\ncpus: lots\n", ["b.compute", "line 2", "'cpus'", "lots", "number"]),
        (
            "c.compute",
            "type: docker\nbaseDockerImage: [unclosed\n",
            ["c.compute", "line 3", "not valid YAML"],
        ),
        (
            "d.runconfig",
            "Target: local\nFramework: R\n",
            ["d.runconfig", "line 2", "'Framework'", "Python or PySpark"],
        ),
        ("e.runconfig", "Framework: Python\n", ["e.runconfig", "'Target'", "missing"]),
        ("f.runconfig", '{"Target": "local",\n "Framework": }', ["f.runconfig", "line 2", "not valid"]),
    ],
)
def test_malformed_files_name_file_line_and_key(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, name, text)
    loader = ComputeTarget.load if name.endswith(".compute") else RunConfiguration.load
    with pytest.raises(ConfigError) as error:
        loader(path)
    for fragment in expected:
        assert fragment in str(error.value)


def test_new_project_gets_builtins_and_initialize_writes_workbench_files(tmp_path: Path) -> None:
    project = Project.find(tmp_path)
    assert [t.name for t in project.targets()] == ["docker", "local"]
    assert not project.config_dir.exists()  # reading creates nothing
    created = {p.name for p in project.initialize()}
    assert created == {
        "local.compute",
        "local.runconfig",
        "docker.compute",
        "docker.runconfig",
        "conda_dependencies.yml",
        "spark_dependencies.yml",
    }
    assert ComputeTarget.load(project.config_dir / "docker.compute").base_docker_image == os.environ.get(
        "AMLEXEC_DEFAULT_BASE_IMAGE", "python:3.11-slim"
    )
    assert Project.find(tmp_path / "aml_config").root == tmp_path.resolve()


def test_attach_detach_and_unknown_target_lists_known(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.attach_target(
        "gpu", "remotedocker", address="h:22", username="ana", key_file="~/.ssh/id", password_env="GPU_PW"
    )
    text = (project.config_dir / "gpu.compute").read_text()
    assert "passwordEnv: GPU_PW" in text and "privateKeyFile: ~/.ssh/id" in text and "password:" not in text
    assert project.run_configuration("gpu").target == "gpu"
    with pytest.raises(ConfigError, match="already exists"):
        project.attach_target("gpu", "docker")
    with pytest.raises(ConfigError, match="--address"):
        project.attach_target("vm", "remote")
    with pytest.raises(TargetNotFoundError) as unknown:
        project.target("tpu")
    assert "docker, gpu, local" in str(unknown.value)
    removed = {p.name for p in project.detach_target("gpu")}
    assert removed == {"gpu.compute", "gpu.runconfig"}


def test_failed_write_leaves_the_old_file_intact(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.attach_target("box", "docker", base_docker_image="img:1")
    before = (project.config_dir / "box.compute").read_text()
    broken = ComputeTarget(name="box", type=TargetType.DOCKER, extra={"bad": object()})
    with pytest.raises(yaml.YAMLError):
        project.write_target(broken)
    assert (project.config_dir / "box.compute").read_text() == before
    assert not [p for p in project.config_dir.iterdir() if p.name.endswith(".tmp")]


def test_secrets_are_resolved_late_and_workbench_secrets_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = ComputeTarget.load(write(tmp_path, "gpuvm.compute", WORKBENCH_GPU))
    with pytest.raises(SecretError, match="cannot be resolved outside Azure") as error:
        resolve_password(gpu)
    assert "passwordEnv" in str(error.value)
    plain = ComputeTarget.from_mapping("vm", {"type": "remote", "password": "hunter2"})
    with pytest.raises(SecretError) as plain_error:
        resolve_password(plain)
    assert "hunter2" not in str(plain_error.value)
    env_target = ComputeTarget.from_mapping("vm", {"type": "remote", "passwordEnv": "VM_PW"})
    with pytest.raises(SecretError, match="VM_PW"):
        resolve_password(env_target)
    monkeypatch.setenv("VM_PW", "s3cret")
    assert resolve_password(env_target) == "s3cret"
    assert redact_environment({"API_TOKEN": "x", "DB_PASSWORD": "y", "LR": "0.1"}) == {
        "API_TOKEN": "***",
        "DB_PASSWORD": "***",
        "LR": "0.1",
    }
