"""Workbench project files: what Workbench wrote loads unchanged, what we write Workbench can read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from jupyter_amlexec.core.errors import ConfigError, TargetNotFoundError
from jupyter_amlexec.core.project import ComputeTarget, Project, RunConfiguration, TargetType
from tests.core.conftest import write_config

pytestmark = pytest.mark.usefixtures("isolated")

# --- the examples of shared/notes/workbench-formats.md ------------------------------------------------

LOCAL_TEMPLATE = """\
# aml_config/local.compute  (template style)
type: "local"
pythonLocation: "python"
sparkSubmitLocation: "spark-submit"
nativeSharedDirectory: "~/.azureml/share/"
"""

DOCKER_TEMPLATE = """\
# aml_config/docker.compute  (template style)
type: "localdocker"
baseDockerImage: "microsoft/mmlspark:plus-0.9.9"
sharedVolumes: false
nativeSharedDirectory: "~/.azureml/share/"
"""

GPUVM_ATTACHED = """\
address: gpuvm.example.net
baseDockerImage: microsoft/mmlspark:plus-gpu-0.9.9
nativeSharedDirectory: ~/.azureml/share/
nvidiaDocker: true
password: AzureMlSecret=gpuvm#alice#0f3c5a8e2b7d4c19a6e1f2d3c4b5a697
sharedVolumes: true
type: remotedocker
username: alice
"""

MYHDI_ATTACHED = """\
address: mycluster-ssh.example.net
password: AzureMlSecret=myhdi#sshuser#7b1e0c9d3a4f4e2b8c6d5a4f3e2d1c0b
type: cluster
username: sshuser
yarnDeployMode: cluster
"""

MYVM_ATTACHED = """\
address: 10.0.0.4
password: AzureMlSecret=myvm#bob#1a2b3c4d5e6f47788990aabbccddeeff
pythonLocation: /anaconda/envs/py35/bin/python
type: remote
userManagedEnvironment: true
username: bob
"""

DOCKER_RUNCONFIG_TEMPLATE = """\
ArgumentVector:            # program + args when not given otherwise; $file = selected file
  - "$file"
Target: "docker"           # name of the .compute file
EnvironmentVariables:
  "EXAMPLE_ENV_VAR": "Example Value"
Framework: "PySpark"       # "Python" or "PySpark"
CondaDependenciesFile: "aml_config/conda_dependencies.yml"
SparkDependenciesFile: "aml_config/spark_dependencies.yml"
PrepareEnvironment: false  # manual alternative: az ml experiment prepare --run-configuration <name>
TrackedRun: true           # status, logs, metrics, outputs go to the cloud project
UseSampling: true
# DataSourceSettings:
#   my.dsource:
#     Sampling:
#       Sample: MySampleName
# DataSourceSubstitutions:
#   my.dsource: replacement.dsource
"""

MYHDI_RUNCONFIG_ATTACHED = """\
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

LEGACY_JSON = (
    '{"Description":"Docker run", "ArgumentVector":["$file"], "CondaFile":null, "ManagedEnvironment":true, '
    '"TrackedRun":true, "Target":"docker", "PrepareEnvironment":true, "Framework":"PySpark"}'
)

DATA_SOURCES_RUNCONFIG = """\
ArgumentVector: ["myscript.py", 234, "-v"]
Target: local
Framework: Python
UseSampling: false
DataSourceSettings:
  my.dsource:
    Sampling:
      Sample: MySampleName
DataSourceSubstitutions:
  my.dsource: replacement.dsource
"""

COMPUTE_EXAMPLES = {
    "local": LOCAL_TEMPLATE,
    "docker": DOCKER_TEMPLATE,
    "gpuvm": GPUVM_ATTACHED,
    "myhdi": MYHDI_ATTACHED,
    "myvm": MYVM_ATTACHED,
}
RUNCONFIG_EXAMPLES = {
    "docker": DOCKER_RUNCONFIG_TEMPLATE,
    "myhdi": MYHDI_RUNCONFIG_ATTACHED,
    "legacy": LEGACY_JSON,
    "sampling": DATA_SOURCES_RUNCONFIG,
}


# --- compute files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMPUTE_EXAMPLES))
def test_every_workbench_compute_example_round_trips(tmp_path: Path, name: str) -> None:
    # Given a .compute file exactly as Workbench (or its templates) wrote it
    original = COMPUTE_EXAMPLES[name]
    path = write_config(tmp_path, f"{name}.compute", original)
    # When it is loaded, written back by the project, and loaded again
    target = ComputeTarget.load(path)
    Project(tmp_path).write_target(target)
    again = ComputeTarget.load(path)
    # Then nothing changed: same values, same keys and values in the file (comments aside)
    assert again == target
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(original)


@pytest.mark.parametrize("name", ["gpuvm", "myhdi", "myvm"])
def test_attach_written_compute_files_are_written_back_byte_for_byte(tmp_path: Path, name: str) -> None:
    # Given a file in `az ml computetarget attach` style (flat, alphabetical, unquoted)
    target = ComputeTarget.load(write_config(tmp_path, f"{name}.compute", COMPUTE_EXAMPLES[name]))
    # Then our YAML is the very same text
    assert target.to_yaml() == COMPUTE_EXAMPLES[name]


def test_workbench_compute_values_are_read_as_documented(tmp_path: Path) -> None:
    # Given the five example targets of the notes
    loaded = {
        n: ComputeTarget.load(write_config(tmp_path, f"{n}.compute", t)) for n, t in COMPUTE_EXAMPLES.items()
    }
    # Then each key lands in its field
    local, docker, gpu, hdi, vm = (loaded[n] for n in ("local", "docker", "gpuvm", "myhdi", "myvm"))
    assert (
        local.type,
        local.python_location,
        local.spark_submit_location,
        local.native_shared_directory,
    ) == (
        TargetType.LOCAL,
        "python",
        "spark-submit",
        "~/.azureml/share/",
    )
    assert (docker.type, docker.type_alias, docker.base_docker_image, docker.shared_volumes) == (
        TargetType.DOCKER,
        "localdocker",
        "microsoft/mmlspark:plus-0.9.9",
        False,
    )
    assert (gpu.type, gpu.address, gpu.port, gpu.username, gpu.nvidia_docker, gpu.shared_volumes) == (
        TargetType.REMOTE_DOCKER,
        "gpuvm.example.net",
        None,
        "alice",
        True,
        True,
    )
    assert gpu.workbench_secret == "AzureMlSecret=gpuvm#alice#0f3c5a8e2b7d4c19a6e1f2d3c4b5a697"
    assert (hdi.type, hdi.yarn_deploy_mode, hdi.username) == (TargetType.CLUSTER, "cluster", "sshuser")
    assert (vm.type, vm.address, vm.user_managed_environment, vm.python_location) == (
        TargetType.REMOTE,
        "10.0.0.4",
        True,
        "/anaconda/envs/py35/bin/python",
    )


@pytest.mark.parametrize(("spelling", "written"), [("docker", "docker"), ("localdocker", "localdocker")])
def test_docker_and_localdocker_are_one_type_and_keep_their_spelling(
    tmp_path: Path, spelling: str, written: str
) -> None:
    # Given a docker target spelled either way
    target = ComputeTarget.load(write_config(tmp_path, "d.compute", f"type: {spelling}\n"))
    # Then both mean local Docker, and a rewrite keeps the file's word
    assert target.type is TargetType.DOCKER
    changed = replace(target, base_docker_image="img:2")
    assert yaml.safe_load(changed.to_yaml()) == {"type": written, "baseDockerImage": "img:2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cluster: True\naddress: hdi-ssh.example.net\n", TargetType.CLUSTER),
        ("cluster: False\nnative: True\n", TargetType.LOCAL),
        ("native: true\n", TargetType.LOCAL),
        ("cluster: false\nnative: false\nbaseDockerImage: img\n", TargetType.DOCKER),
    ],
)
def test_pre_preview_cluster_and_native_keys_map_to_a_type(
    tmp_path: Path, text: str, expected: TargetType
) -> None:
    # Given a May-Jun 2017 file without `type`
    target = ComputeTarget.load(write_config(tmp_path, "old.compute", text))
    # Then the legacy keys give the type, and a rewrite says it with `type`
    assert target.type is expected
    written = yaml.safe_load(target.to_yaml())
    assert written["type"] == expected.value and "cluster" not in written and "native" not in written


def test_cluster_key_beside_a_type_is_kept_as_an_unknown_key(tmp_path: Path) -> None:
    target = ComputeTarget.load(write_config(tmp_path, "x.compute", "type: local\ncluster: false\n"))
    assert target.type is TargetType.LOCAL and target.extra == {"cluster": False}
    assert yaml.safe_load(target.to_yaml()) == {"type": "local", "cluster": False}


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("vm.example.net", "vm.example.net", None),
        ("127.0.0.2:2222", "127.0.0.2", 2222),
        ("[::1]:22", "::1", 22),
        ("fe80::1", "fe80::1", None),
    ],
)
def test_host_port_address_is_split_and_joined_back(
    tmp_path: Path, address: str, host: str, port: int | None
) -> None:
    # Given an address with or without a port
    path = write_config(tmp_path, "vm.compute", f"type: remote\naddress: '{address}'\nusername: bob\n")
    # When it is loaded
    target = ComputeTarget.load(path)
    # Then host and port are apart, and the file form comes back unchanged
    assert (target.address, target.port) == (host, port)
    assert yaml.safe_load(target.to_yaml())["address"] == address
    # and a new port is written into the address, as Workbench spelled it
    assert yaml.safe_load(replace(target, address="h", port=2200).to_yaml())["address"] == "h:2200"


def test_a_separate_port_key_stays_separate(tmp_path: Path) -> None:
    target = ComputeTarget.load(
        write_config(tmp_path, "vm.compute", "type: remote\naddress: h\nport: 2022\n")
    )
    assert (target.address, target.port) == ("h", 2022)
    assert yaml.safe_load(target.to_yaml()) == {"type": "remote", "address": "h", "port": 2022}


@pytest.mark.parametrize("word", ["True", "true", "yes", "on", "'true'"])
def test_yaml_1_1_booleans_are_booleans(tmp_path: Path, word: str) -> None:
    text = f"type: docker\nsharedVolumes: {word}\nnvidiaDocker: {word}\nkeepContainer: {word}\n"
    target = ComputeTarget.load(write_config(tmp_path, "b.compute", text))
    assert (target.shared_volumes, target.nvidia_docker, target.keep_container) == (True, True, True)


def test_absent_and_null_keys_take_defaults_and_nulls_are_written_back(tmp_path: Path) -> None:
    # Given a legacy file with null values
    text = "type: docker\nbaseDockerImage: null\nsharedVolumes: ~\nforwardPipConfig: null\n"
    target = ComputeTarget.load(write_config(tmp_path, "n.compute", text))
    # Then nulls mean the defaults
    assert (target.base_docker_image, target.shared_volumes, target.forward_pip_config) == (None, False, True)
    assert (target.nvidia_docker, target.cpus, target.volumes) == (False, None, ())
    # and the file's nulls are written back as they were
    assert yaml.safe_load(target.to_yaml()) == yaml.safe_load(text)


def test_unknown_compute_keys_are_kept_and_written_back(tmp_path: Path) -> None:
    text = "type: docker\nfutureKey: {nested: [1, 2]}\nanotherOne: x\n"
    target = ComputeTarget.load(write_config(tmp_path, "u.compute", text))
    assert target.extra == {"futureKey": {"nested": [1, 2]}, "anotherOne": "x"}
    assert yaml.safe_load(replace(target, cpus=2.0).to_yaml()) == {**yaml.safe_load(text), "cpus": 2.0}


def test_extension_keys_are_read_and_only_non_defaults_written(tmp_path: Path) -> None:
    # Given every key of ours beyond Workbench's
    text = textwrap.dedent(
        """\
        type: remotedocker
        address: h
        username: u
        networkMode: host
        buildNetworkMode: bridge
        cpus: 1.5
        memory: 4g
        shmSize: 512m
        volumes: ["/data:/data:ro", "cache:/root/.cache"]
        gpus: all
        keepContainer: true
        forwardPipConfig: false
        sparkMaster: spark://127.0.0.1:7077
        passwordEnv: GPU_PW
        passwordKeyring: amlexec/u
        privateKeyFile: ~/.ssh/id_ed25519
        """
    )
    target = ComputeTarget.load(write_config(tmp_path, "x.compute", text))
    # Then each has its field
    assert (target.network_mode, target.build_network_mode, target.cpus, target.memory, target.shm_size) == (
        "host",
        "bridge",
        1.5,
        "4g",
        "512m",
    )
    assert target.volumes == ("/data:/data:ro", "cache:/root/.cache")
    assert (target.gpus, target.keep_container, target.forward_pip_config, target.spark_master) == (
        "all",
        True,
        False,
        "spark://127.0.0.1:7077",
    )
    assert (target.password_env, target.password_keyring, target.key_file) == (
        "GPU_PW",
        "amlexec/u",
        "~/.ssh/id_ed25519",
    )
    assert yaml.safe_load(target.to_yaml()) == yaml.safe_load(text)
    # And a new target with default settings writes none of our keys
    plain = ComputeTarget(name="p", type=TargetType.DOCKER, base_docker_image="img")
    assert plain.to_yaml() == "baseDockerImage: img\ntype: docker\n"


# --- run configurations --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RUNCONFIG_EXAMPLES))
def test_every_workbench_runconfig_example_round_trips(tmp_path: Path, name: str) -> None:
    # Given a .runconfig as Workbench wrote it (template, attach, legacy JSON, docs example)
    original = RUNCONFIG_EXAMPLES[name]
    path = write_config(tmp_path, f"{name}.runconfig", original)
    # When it is loaded and written back
    rc = RunConfiguration.load(path)
    Project(tmp_path).write_run_configuration(rc)
    # Then it loads to the same values and the file holds the same keys and values
    assert RunConfiguration.load(path) == rc
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(original)


def test_attach_written_runconfig_is_written_back_byte_for_byte(tmp_path: Path) -> None:
    rc = RunConfiguration.load(write_config(tmp_path, "myhdi.runconfig", MYHDI_RUNCONFIG_ATTACHED))
    assert rc.to_text() == MYHDI_RUNCONFIG_ATTACHED


def test_runconfig_values_and_workbench_defaults(tmp_path: Path) -> None:
    # Given the template and a minimal hand-written file
    template = RunConfiguration.load(write_config(tmp_path, "docker.runconfig", DOCKER_RUNCONFIG_TEMPLATE))
    minimal = RunConfiguration.load(write_config(tmp_path, "m.runconfig", "Target: local\n"))
    nulls = RunConfiguration.load(
        write_config(
            tmp_path,
            "n.runconfig",
            "Target: local\nFramework: null\nCondaDependenciesFile: null\nSparkDependenciesFile: null\n"
            "EnvironmentVariables: null\nArgumentVector: null\nPrepareEnvironment: null\n",
        )
    )
    # Then the template's values are read
    assert template.argument_vector == ("$file",)
    assert template.environment_variables == {"EXAMPLE_ENV_VAR": "Example Value"}
    assert (template.framework, template.prepare_environment, template.tracked_run) == (
        "PySpark",
        False,
        True,
    )
    # and absent or null keys take Workbench's defaults
    for rc in (minimal, nulls):
        assert rc.argument_vector == ("$file",) and rc.environment_variables == {}
        assert rc.framework == "PySpark"
        assert rc.conda_dependencies_file == "aml_config/conda_dependencies.yml"
        assert rc.spark_dependencies_file == "aml_config/spark_dependencies.yml"
        assert (rc.prepare_environment, rc.tracked_run, rc.use_sampling) == (True, True, True)
        assert (rc.max_snapshot_mb, rc.max_output_file_mb) == (25.0, 512.0)
    # and a minimal file stays minimal when written back
    assert yaml.safe_load(minimal.to_text()) == {"Target": "local"}


def test_legacy_json_runconfig_is_read_and_written_back_as_json(tmp_path: Path) -> None:
    # Given a Sept-2017 JSON runconfig with its legacy keys
    path = write_config(tmp_path, "docker.runconfig", LEGACY_JSON)
    rc = RunConfiguration.load(path)
    # Then the legacy keys are mapped
    assert rc.source_format == "json"
    assert (rc.description, rc.managed_environment) == ("Docker run", True)
    assert rc.conda_dependencies_file == "aml_config/conda_dependencies.yml"  # CondaFile: null -> default
    assert rc.extra == {}
    # When it changes and is written back
    Project(tmp_path).write_run_configuration(
        replace(rc, conda_dependencies_file="env/conda.yml", framework="Python")
    )
    # Then it is still JSON, with the legacy spelling, the file's key order and the new values
    text = path.read_text()
    doc = json.loads(text)
    assert list(doc) == list(json.loads(LEGACY_JSON))
    assert doc["CondaFile"] == "env/conda.yml" and doc["Framework"] == "Python"
    assert "CondaDependenciesFile" not in doc
    assert RunConfiguration.load(path).conda_dependencies_file == "env/conda.yml"


def test_tab_indented_json_runconfig_loads(tmp_path: Path) -> None:
    # JSON allows tabs, YAML does not: a Windows-edited legacy file must still load
    text = '{\n\t"Target": "local",\n\t"Framework": "Python"\n}\n'
    rc = RunConfiguration.load(write_config(tmp_path, "t.runconfig", text))
    assert (rc.target, rc.framework, rc.source_format) == ("local", "Python", "json")


def test_file_argument_and_numbers_in_argument_vector_are_kept(tmp_path: Path) -> None:
    rc = RunConfiguration.load(write_config(tmp_path, "s.runconfig", DATA_SOURCES_RUNCONFIG))
    assert rc.argument_vector == ("myscript.py", "234", "-v")
    assert yaml.safe_load(rc.to_text())["ArgumentVector"] == ["myscript.py", 234, "-v"]
    assert rc.data_source_substitutions == {"my.dsource": "replacement.dsource"}
    assert rc.data_source_settings == {"my.dsource": {"Sampling": {"Sample": "MySampleName"}}}
    assert rc.use_sampling is False


def test_unknown_runconfig_keys_and_our_keys(tmp_path: Path) -> None:
    text = "Target: local\nFutureKey: [1, 2]\nMaxSnapshotSizeMB: 100\nMaxOutputFileSizeMB: 64.5\n"
    rc = RunConfiguration.load(write_config(tmp_path, "u.runconfig", text))
    assert rc.extra == {"FutureKey": [1, 2]}
    assert (rc.max_snapshot_mb, rc.max_output_file_mb) == (100.0, 64.5)
    assert yaml.safe_load(rc.to_text()) == yaml.safe_load(text)
    # our keys are written only when they differ from the default
    new = RunConfiguration(name="n", target="local", framework="Python")
    assert "MaxSnapshotSizeMB" not in new.to_text() and "MaxOutputFileSizeMB" not in new.to_text()
    assert "MaxSnapshotSizeMB: 50.0" in replace(new, max_snapshot_mb=50.0).to_text()


def test_new_runconfig_is_written_like_attach_did(tmp_path: Path) -> None:
    rc = RunConfiguration(name="myhdi", target="myhdi", prepare_environment=False)
    assert rc.to_text() == MYHDI_RUNCONFIG_ATTACHED


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "a.compute",
            "type: kubernetes\n",
            ["a.compute", "line 1", "'type'", "kubernetes", "local, docker, remotedocker", "localdocker"],
        ),
        ("b.compute", "type: docker\ncpus: lots\n", ["b.compute", "line 2", "'cpus'", "'lots'", "number"]),
        ("b2.compute", "type: docker\ncpus: -1\n", ["b2.compute", "'cpus'", "-1", "positive"]),
        ("c.compute", "type: docker\nmemory: lots\n", ["'memory'", "'lots'", "512m or 4g"]),
        ("d.compute", "type: docker\ngpus: 'a b'\n", ["'gpus'", "'a b'", "all"]),
        (
            "e.compute",
            "type: cluster\nyarnDeployMode: sometimes\n",
            ["'yarnDeployMode'", "sometimes", "cluster or client"],
        ),
        (
            "f.compute",
            "type: docker\nsharedVolumes: maybe\n",
            ["'sharedVolumes'", "'maybe'", "true or false"],
        ),
        ("g.compute", "type: docker\nvolumes: /data\n", ["'volumes'", "'/data'", "/container/path"]),
        ("h.compute", "type: docker\nvolumes: [data]\n", ["'volumes'", "'data'", "/container/path"]),
        ("i.compute", "type: remote\naddress: h:99999\n", ["'address'", "99999", "1 to 65535"]),
        ("j.compute", "type: remote\nport: ssh\n", ["'port'", "'ssh'", "1 to 65535"]),
        (
            "k.compute",
            "type: remote\npasswordEnv: 'MY PW'\n",
            ["'passwordEnv'", "'MY PW'", "environment variable"],
        ),
        ("l.compute", "baseDockerImage: x\n", ["l.compute", "'type'", "missing", "remotedocker"]),
        (
            "m.compute",
            "type: docker\nbaseDockerImage: [unclosed\n",
            ["m.compute", "line 3", "not valid YAML"],
        ),
        ("n.compute", "- type: docker\n", ["n.compute", "mapping"]),
        ("o.compute", "type: [docker]\n", ["'type'", "['docker']"]),
        (
            "d.runconfig",
            "Target: local\nFramework: R\n",
            ["d.runconfig", "line 2", "'Framework'", "'R'", "Python or PySpark"],
        ),
        ("e.runconfig", "Framework: Python\n", ["e.runconfig", "'Target'", "missing"]),
        ("f.runconfig", '{"Target": "local",\n "Framework": }', ["f.runconfig", "line 2", "not valid JSON"]),
        (
            "g.runconfig",
            "Target: local\nTrackedRun: sometimes\n",
            ["'TrackedRun'", "sometimes", "true or false"],
        ),
        (
            "h.runconfig",
            "Target: local\nArgumentVector: train.py\n",
            ["'ArgumentVector'", "train.py", "list"],
        ),
        ("i.runconfig", "Target: local\nEnvironmentVariables: [A]\n", ["'EnvironmentVariables'", "mapping"]),
        (
            "j.runconfig",
            "Target: local\nMaxSnapshotSizeMB: big\n",
            ["'MaxSnapshotSizeMB'", "'big'", "megabytes"],
        ),
        (
            "k.runconfig",
            "script: train.py\ntarget: local\nframework: python\n",
            ["k.runconfig", "'Target'", "azureml-sdk"],
        ),
        ("l.runconfig", "Target: local\n  Framework: Python\n", ["l.runconfig", "line 2", "not valid YAML"]),
    ],
)
def test_bad_files_name_file_line_key_value_and_the_allowed_values(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    # Given a malformed or wrong-valued file
    path = write_config(tmp_path, name, text)
    loader = ComputeTarget.load if name.endswith(".compute") else RunConfiguration.load
    # When it is loaded
    with pytest.raises(ConfigError) as error:
        loader(path)
    # Then the message says where, what and what is allowed
    message = str(error.value)
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert error.value.file == path


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "bin.compute", b"type: docker\nbaseDockerImage: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        ComputeTarget.load(path)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write_config(tmp_path, "bom.runconfig", "\ufeffTarget: local\nFramework: Python\n")
    assert RunConfiguration.load(path).framework == "Python"


# --- the project ---------------------------------------------------------------------------------------


def test_first_run_needs_no_setup_and_reading_creates_nothing(tmp_path: Path) -> None:
    # Given a folder with no aml_config/ anywhere above it
    project = Project.find(tmp_path)
    # Then it is the project, with built-in local and docker targets and run configurations
    assert project.root == tmp_path.resolve()
    assert [t.name for t in project.targets()] == ["docker", "local"]
    assert [rc.name for rc in project.run_configurations()] == ["docker", "local"]
    local, docker = project.target("local"), project.target("docker")
    assert local.type is TargetType.LOCAL and local.python_location is None  # this interpreter
    assert docker.type is TargetType.DOCKER and docker.base_docker_image == "python:3.11-slim"
    rc = project.run_configuration("docker")
    assert (rc.target, rc.framework, rc.prepare_environment) == ("docker", "Python", True)
    assert project.conda_dependencies(rc) is None and project.spark_dependencies(rc) is None
    # and nothing was written
    assert not project.config_dir.exists()


def test_find_walks_up_to_the_nearest_aml_config(tmp_path: Path) -> None:
    # Given a project with a nested sub-project and a script deep inside
    (tmp_path / "aml_config").mkdir()
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    (deep / "train.py").write_text("")
    inner = tmp_path / "sub"
    (inner / "aml_config").mkdir(parents=True)
    # Then each start finds its nearest project
    assert Project.find(deep).root == tmp_path.resolve()
    assert Project.find(deep / "train.py").root == tmp_path.resolve()
    assert Project.find(tmp_path / "aml_config").root == tmp_path.resolve()
    assert Project.find(inner / "x").root == inner.resolve()


def test_initialize_writes_workbench_files_that_match_the_builtins_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLEXEC_DEFAULT_BASE_IMAGE", "myorg/python:3.12")
    project = Project(tmp_path)
    builtins = ({t.name: t for t in project.targets()}, {r.name: r for r in project.run_configurations()})
    # When aml_config/ is initialized
    created = {p.name for p in project.initialize()}
    # Then the six template files exist and say what the built-ins said
    assert created == {
        "local.compute",
        "local.runconfig",
        "docker.compute",
        "docker.runconfig",
        "conda_dependencies.yml",
        "spark_dependencies.yml",
    }
    assert {t.name: t for t in project.targets()} == builtins[0]
    assert {r.name: r for r in project.run_configurations()} == builtins[1]
    assert project.target("docker").base_docker_image == "myorg/python:3.12"
    text = (project.config_dir / "docker.runconfig").read_text()
    assert "# " in text and 'Target: "docker"' in text  # template style, with comments
    assert yaml.safe_load((project.config_dir / "conda_dependencies.yml").read_text())["dependencies"] == [
        "python=3.11"
    ]
    # When the user edits a file and initialize runs again
    (project.config_dir / "local.compute").write_text("type: local\npythonLocation: python3\n")
    (project.config_dir / "spark_dependencies.yml").unlink()
    assert [p.name for p in project.initialize()] == ["spark_dependencies.yml"]
    # Then the edit is untouched
    assert project.target("local").python_location == "python3"


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.attach_target("box", "docker")
    with pytest.raises(TargetNotFoundError) as target_error:
        project.target("tpu")
    assert "No compute target 'tpu'" in str(target_error.value)
    assert "box, docker, local" in str(target_error.value)
    with pytest.raises(TargetNotFoundError) as rc_error:
        project.run_configuration("nope")
    assert "No run configuration 'nope'" in str(rc_error.value) and "box, docker, local" in str(
        rc_error.value
    )
    with pytest.raises(TargetNotFoundError):
        project.target("../aml_config/box")  # not a name: never a path out of aml_config/


def test_runconfig_whose_target_is_missing(tmp_path: Path) -> None:
    # Given a run configuration pointing at a target that has no .compute file
    project = Project(tmp_path)
    path = write_config(tmp_path, "gpu.runconfig", "Target: gpuvm\nFramework: Python\n")
    # Then loading it says which runconfig, which target, and what exists
    with pytest.raises(TargetNotFoundError) as error:
        project.run_configuration("gpu")
    message = str(error.value)
    assert str(path) in message and "'Target'" in message and "'gpuvm'" in message
    assert "docker, local" in message and error.value.name == "gpuvm"
    # and listing still works (targets are not checked there)
    assert "gpu" in [rc.name for rc in project.run_configurations()]
    assert project.run_configuration("gpu", check_target=False).target == "gpuvm"


def test_attach_writes_a_compute_and_runconfig_pair_in_attach_style(tmp_path: Path) -> None:
    # Given a fresh project
    project = Project(tmp_path)
    # When a remote docker target is attached
    target, rc = project.attach_target(
        "gpu", "remotedocker", address="h:22", username="ana", key_file="~/.ssh/id", password_env="GPU_PW"
    )
    # Then aml_config/ was initialized, and the pair is written as `attach` would
    assert (project.config_dir / "conda_dependencies.yml").is_file()
    assert (project.config_dir / "gpu.compute").read_text() == (
        "address: h:22\n"
        "baseDockerImage: python:3.11-slim\n"
        "passwordEnv: GPU_PW\n"
        "privateKeyFile: ~/.ssh/id\n"
        "type: remotedocker\n"
        "username: ana\n"
    )
    assert yaml.safe_load((project.config_dir / "gpu.runconfig").read_text()) == {
        "ArgumentVector": ["$file"],
        "CondaDependenciesFile": "aml_config/conda_dependencies.yml",
        "EnvironmentVariables": None,
        "Framework": "Python",
        "PrepareEnvironment": True,
        "SparkDependenciesFile": "aml_config/spark_dependencies.yml",
        "Target": "gpu",
        "TrackedRun": True,
    }
    assert (target.port, project.target("gpu")) == (22, target)
    assert project.run_configuration("gpu") == rc


def test_attach_defaults_per_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path)
    monkeypatch.setenv("AMLEXEC_DEFAULT_BASE_IMAGE", "corp/py:3.11")
    docker, docker_rc = project.attach_target("box", "localdocker", cpus=2, volumes=("/d:/d",))
    assert (docker.type, docker.type_alias, docker.base_docker_image) == (
        TargetType.DOCKER,
        "localdocker",
        "corp/py:3.11",
    )
    assert (docker.cpus, docker.volumes, docker_rc.framework) == (2.0, ("/d:/d",), "Python")
    assert "cpus: 2\n" in (project.config_dir / "box.compute").read_text()  # as the user wrote it
    vm, _ = project.attach_target(
        "vm", "remote", address="10.0.0.4", username="bob", python_location="python3"
    )
    assert vm.user_managed_environment and vm.python_location == "python3" and vm.base_docker_image is None
    hdi, hdi_rc = project.attach_target("hdi", TargetType.CLUSTER, address="c-ssh.example.net", username="u")
    assert (hdi.yarn_deploy_mode, hdi_rc.framework) == ("cluster", "PySpark")
    local, _ = project.attach_target("mine", "local", python_location="/usr/bin/python3")
    assert (
        project.config_dir / "mine.compute"
    ).read_text() == "pythonLocation: /usr/bin/python3\ntype: local\n"
    assert local.python_location == "/usr/bin/python3"


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("vm", "remote"), {}, "--address"),
        (("hdi", "cluster"), {"address": "h"}, "--username"),
        (("k8s", "kubernetes"), {}, "kubernetes"),
        (("bad name", "docker"), {}, "cannot name a compute target"),
        (("../x", "docker"), {}, "cannot name"),
        (("box", "docker"), {"turbo": True}, "Unknown target setting 'turbo'"),
        (("box", "docker"), {"cpus": "lots"}, "'cpus'"),
        (("vm", "remote"), {"address": "h", "username": "u", "password": "hunter2"}, "password_env"),
    ],
)
def test_attach_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, args: tuple[str, str], kwargs: dict[str, object], expected: str
) -> None:
    project = Project(tmp_path)
    with pytest.raises(ConfigError) as error:
        project.attach_target(*args, **kwargs)  # type: ignore[arg-type]
    assert expected in str(error.value)
    assert "hunter2" not in str(error.value)
    assert not project.config_dir.exists()


def test_attach_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.attach_target("box", "docker", base_docker_image="img:1")
    with pytest.raises(ConfigError, match="already exists"):
        project.attach_target("box", "docker", base_docker_image="img:2")
    assert project.target("box").base_docker_image == "img:1"
    # a hand-written runconfig of that name is protected too
    write_config(tmp_path, "vm.runconfig", "Target: local\n")
    with pytest.raises(ConfigError, match="run configuration 'vm' already exists"):
        project.attach_target("vm", "docker")
    assert not (project.config_dir / "vm.compute").exists()
    # force replaces
    target, _ = project.attach_target("box", "docker", base_docker_image="img:2", force=True)
    assert project.target("box") == target and target.base_docker_image == "img:2"


def test_attach_leaves_no_half_pair_when_the_runconfig_cannot_be_written(tmp_path: Path) -> None:
    # Given something in the way of box.runconfig (a non-empty folder of that name)
    project = Project(tmp_path)
    project.initialize()
    blocker = project.config_dir / "box.runconfig"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    # When attaching box is forced
    with pytest.raises(OSError):
        project.attach_target("box", "docker", force=True)
    # Then no box.compute was left behind, and no temp file either
    assert not (project.config_dir / "box.compute").exists()
    assert not [p for p in project.config_dir.iterdir() if p.name.endswith(".tmp")]


def test_detach_removes_the_target_and_the_runconfigs_that_use_it(tmp_path: Path) -> None:
    # Given a target with two run configurations, and one of another target
    project = Project(tmp_path)
    project.attach_target("vm", "remote", address="h", username="u")
    project.create_run_configuration("vm-spark", "vm", framework="PySpark")
    project.create_run_configuration("other", "local")
    # When it is detached
    removed = project.detach_target("vm")
    # Then exactly its files are gone, and returned
    assert sorted(p.name for p in removed) == ["vm-spark.runconfig", "vm.compute", "vm.runconfig"]
    assert all(not p.exists() for p in removed)
    assert (project.config_dir / "other.runconfig").is_file()
    assert project.target_names() == ["docker", "local"]
    with pytest.raises(TargetNotFoundError, match="'vm'"):
        project.detach_target("vm")


def test_create_run_configuration(tmp_path: Path) -> None:
    project = Project(tmp_path)
    rc = project.create_run_configuration(
        "train", "docker", environment_variables={"LR": "0.1"}, argument_vector=["train.py", "--lr", "0.1"]
    )
    text = (project.config_dir / "train.runconfig").read_text()
    assert yaml.safe_load(text) == {
        "ArgumentVector": ["train.py", "--lr", "0.1"],
        "CondaDependenciesFile": "aml_config/conda_dependencies.yml",
        "EnvironmentVariables": {"LR": "0.1"},
        "Framework": "Python",
        "PrepareEnvironment": True,
        "SparkDependenciesFile": "aml_config/spark_dependencies.yml",
        "Target": "docker",
        "TrackedRun": True,
    }
    assert project.run_configuration("train") == rc
    with pytest.raises(TargetNotFoundError, match="'gpu'"):
        project.create_run_configuration("x", "gpu")
    with pytest.raises(ConfigError, match="already exists"):
        project.create_run_configuration("train", "local")
    with pytest.raises(ConfigError, match="Unknown run configuration field.*colour"):
        project.create_run_configuration("y", "local", colour="blue")
    with pytest.raises(ConfigError, match="'Framework'.*'R'.*Python or PySpark"):
        project.create_run_configuration("z", "local", framework="R")
    assert not (project.config_dir / "z.runconfig").exists()
    assert project.create_run_configuration("train", "local", force=True).target == "local"


def test_dependency_files_are_returned_as_parsed(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.initialize()
    write_config(tmp_path, "conda_dependencies.yml", "name: e\ndependencies:\n  - python=3.5.2\n")
    rc = project.run_configuration("docker")
    assert project.conda_dependencies(rc) == {"name": "e", "dependencies": ["python=3.5.2"]}
    assert project.spark_dependencies(rc) == {
        "configuration": {"spark.app.name": "amlexec"},
        "repositories": None,
        "packages": None,
    }


def test_a_missing_dependency_file_the_runconfig_names_is_an_error(tmp_path: Path) -> None:
    project = Project(tmp_path)
    path = write_config(tmp_path, "r.runconfig", "Target: docker\nCondaDependenciesFile: env/conda.yml\n")
    rc = project.run_configuration("r")
    with pytest.raises(ConfigError) as error:
        project.conda_dependencies(rc)
    assert str(path) in str(error.value) and "'CondaDependenciesFile'" in str(error.value)
    assert "env/conda.yml" in str(error.value)


def test_project_settings_from_azureml_project_json(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert project.settings.id is None
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "project.json").write_text(
        '{"Id":"6a1a2b3c-0000-4000-8000-000000000001","Scope":"/subscriptions/s/resourceGroups/rg/providers/'
        'Microsoft.MachineLearningExperimentation/accounts/a/workspaces/w/projects/myIris"}'
    )
    settings = project.settings
    assert settings.id == "6a1a2b3c-0000-4000-8000-000000000001"
    assert settings.project_name == "myIris"


# --- atomic writes -------------------------------------------------------------------------------------


def _temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_an_unwritable_value_is_refused_before_touching_the_file(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.attach_target("box", "docker", base_docker_image="img:1")
    before = (project.config_dir / "box.compute").read_text()
    broken = replace(project.target("box"), extra={"bad": object()})
    with pytest.raises(ConfigError, match="'bad'"):
        project.write_target(broken)
    assert (project.config_dir / "box.compute").read_text() == before
    assert _temp_files(project.config_dir) == []
    rc = replace(project.run_configuration("box"), environment_variables={"A": object()})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        project.write_run_configuration(rc)
    assert _temp_files(project.config_dir) == []


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    # Given a target file, and a process whose files may not grow past 300 bytes
    project = Project(tmp_path)
    project.attach_target("box", "docker", base_docker_image="img:1")
    before = (project.config_dir / "box.compute").read_text()
    script = textwrap.dedent(
        f"""
        import resource, signal
        from dataclasses import replace
        from pathlib import Path
        from jupyter_amlexec.core.project import Project
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))
        project = Project(Path({str(tmp_path)!r}))
        target = replace(project.target("box"), extra={{"note": "x" * 5000}})
        try:
            project.write_target(target)
        except OSError as exc:
            print("failed:", exc.strerror)
        """
    )
    # When it writes a 5 kB target
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    # Then the write failed part-way, the old file is intact, and no temp file is left
    assert "failed: File too large" in result.stdout, result.stderr
    assert (project.config_dir / "box.compute").read_text() == before
    assert _temp_files(project.config_dir) == []


def test_a_failed_rename_leaves_no_temp_file(tmp_path: Path) -> None:
    # Given a folder where the run configuration file should go
    project = Project(tmp_path)
    project.initialize()
    (project.config_dir / "r.runconfig").mkdir()
    (project.config_dir / "r.runconfig" / "x").write_text("")
    # When writing it fails at the rename
    with pytest.raises(OSError):
        project.write_run_configuration(RunConfiguration(name="r", target="local"))
    # Then nothing was left behind
    assert _temp_files(project.config_dir) == []


def test_bad_values_built_in_code_are_refused_with_the_key(tmp_path: Path) -> None:
    project = Project(tmp_path)
    with pytest.raises(ConfigError, match="'cpus'"):
        project.write_target(ComputeTarget(name="t", type=TargetType.DOCKER, cpus=-2.0))
    with pytest.raises(ConfigError, match="'Framework'"):
        project.write_run_configuration(RunConfiguration(name="r", target="local", framework="R"))
    with pytest.raises(ConfigError, match="cannot name"):
        project.write_target(ComputeTarget(name="a/b", type=TargetType.LOCAL))
    assert not project.config_dir.exists()


def test_environment_variable_values_keep_their_meaning(tmp_path: Path) -> None:
    text = "Target: local\nEnvironmentVariables:\n  FLAG: true\n  N: 3\n  EMPTY:\n"
    rc = RunConfiguration.load(write_config(tmp_path, "e.runconfig", text))
    assert rc.environment_variables == {"FLAG": "true", "N": "3", "EMPTY": ""}
    assert yaml.safe_load(rc.to_text()) == yaml.safe_load(text)
