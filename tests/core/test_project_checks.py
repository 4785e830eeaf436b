"""What a user sees about odd or bad files in aml_config/: typos are named with the closest known key,
one unreadable file never hides the others, and a write that fails leaves the folder as it was."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from jupyter_amlexec.core.environment import load_environment
from jupyter_amlexec.core.errors import AmlExecError, ConfigError
from jupyter_amlexec.core.project import ComputeTarget, Project, RunConfiguration
from tests.conftest import require
from tests.core.conftest import write_config

pytestmark = pytest.mark.usefixtures("isolated")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content (what a user would compare before/after)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- unknown keys ------------------------------------------------------------------------------------


def test_a_typo_in_a_compute_file_warns_with_the_closest_key_and_round_trips(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a docker target whose image key is misspelt
    text = "type: docker\nbaseDockerImag: python:3.11-slim\n"
    path = write_config(tmp_path, "docker.compute", text)
    # When it is loaded
    with caplog.at_level(logging.WARNING):
        target = ComputeTarget.load(path)
    # Then the warning names the file, the key and what was meant, on the object and in the log
    expected = f"unknown key 'baseDockerImag' in {path}; did you mean 'baseDockerImage'?"
    assert len(target.warnings) == 1 and target.warnings[0].startswith(expected)
    assert expected in caplog.text
    # and the key is written back untouched
    assert target.base_docker_image is None
    assert yaml.safe_load(target.to_yaml()) == yaml.safe_load(text)


def test_every_key_an_executor_reads_loads_without_a_warning(tmp_path: Path) -> None:
    # Given the cluster target files of the README's Spark section, with every key the executors read
    livy = "type: cluster\nlivyUrl: https://h/livy\nlivyFilesDir: /srv/livy\n"
    ssh = (
        "type: cluster\naddress: head:22\nusername: u\nyarnLocation: /opt/yarn\nhadoopConfDir: /etc/hadoop\n"
        "yarnResourceManager: http://rm:8088\namlexecRoot: ~/.x\n"
    )
    # Then they load without an "unknown key" warning
    for name, text in (("livy.compute", livy), ("hdi.compute", ssh)):
        assert ComputeTarget.load(write_config(tmp_path, name, text)).warnings == ()


def test_a_typo_in_a_runconfig_warns_and_a_clean_file_does_not(tmp_path: Path) -> None:
    typo = RunConfiguration.load(write_config(tmp_path, "a.runconfig", "Target: local\nTragetTypo: docker\n"))
    clean = RunConfiguration.load(write_config(tmp_path, "b.runconfig", "Target: local\nFramework: Python\n"))
    assert [w.split(";")[0] for w in typo.warnings] == [
        f"unknown key 'TragetTypo' in {tmp_path / 'aml_config' / 'a.runconfig'}"
    ]
    assert "did you mean 'Target'?" in typo.warnings[0]
    assert clean.warnings == ()
    assert yaml.safe_load(typo.to_text())["TragetTypo"] == "docker"


def test_a_key_far_from_every_known_one_lists_the_known_keys(tmp_path: Path) -> None:
    target = ComputeTarget.load(write_config(tmp_path, "l.compute", "type: local\nzzz: 1\n"))
    assert "unknown key 'zzz'" in target.warnings[0] and "known keys: address," in target.warnings[0]


def test_workbench_keys_we_do_not_use_do_not_warn(tmp_path: Path) -> None:
    # Given a target as `az ml computetarget attach` wrote it (password is a cloud secret reference)
    text = "address: vm.example.net\npassword: AzureMlSecret=vm#u#0f3c\ntype: remotedocker\nusername: u\n"
    assert ComputeTarget.load(write_config(tmp_path, "vm.compute", text)).warnings == ()


def test_a_conda_file_with_only_a_typo_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    # Given a conda file whose `dependencies` is misspelt (it would build an empty environment)
    project = Project(tmp_path)
    project.initialize()
    path = write_config(tmp_path, "conda_dependencies.yml", "name: e\ndependncies:\n  - scikit-learn\n")
    # When the docker run configuration's environment is loaded
    with pytest.raises(ConfigError) as error:
        load_environment(project, project.run_configuration("docker"))
    # Then the error names the file, the key and the fix
    assert error.value.file == path and error.value.key == "dependncies"
    assert "Did you mean 'dependencies'?" in str(error.value)


def test_an_extra_key_in_conda_and_spark_files_is_a_warning(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.initialize()
    write_config(tmp_path, "conda_dependencies.yml", "dependencies: [numpy]\nchanels: [conda-forge]\n")
    write_config(tmp_path, "spark_dependencies.yml", "configuration: {}\npackagse: []\n")
    rc = project.run_configuration("docker")
    assert load_environment(project, rc).conda_packages == ("numpy",)
    warnings = project.dependency_warnings(rc, spark=True)
    assert [w.split(";")[1].strip() for w in warnings] == [
        "did you mean 'channels'? (kept as is, not used)",
        "did you mean 'packages'? (kept as is, not used)",
    ]


# --- listings that survive one bad file --------------------------------------------------------------

SDK_RUNCONFIG = """\
script: train.py
arguments: [--lr, 0.1]
target: docker
framework: python
autoPrepareEnvironment: true
environment:
  environmentVariables:
    EXAMPLE_ENV_VAR: EXAMPLE_VALUE
  python:
    userManagedDependencies: false
    condaDependenciesFile: aml_config/conda_dependencies.yml
  docker:
    enabled: true
    baseImage: mcr.microsoft.com/azureml/base:0.2.1
history:
  outputCollection: true
"""


def test_a_sample_with_sdk_runconfigs_still_lists_its_targets_and_names_each_bad_file(tmp_path: Path) -> None:
    # Given a sample whose .compute files are Workbench's but whose runconfigs are azureml-sdk ones
    write_config(tmp_path, "docker.compute", "type: localdocker\nbaseDockerImage: img:1\n")
    write_config(tmp_path, "gpu.compute", "type: docker\nbaseDockerImage: img:gpu\nnvidiaDocker: true\n")
    sdk = write_config(tmp_path, "docker.runconfig", SDK_RUNCONFIG)
    write_config(tmp_path, "gpu.runconfig", "Target: gpu\nFramework: Python\n")
    project = Project(tmp_path)
    # When the targets and run configurations are listed
    targets = {t.name: t for t in project.targets()}
    rcs = [rc.name for rc in project.run_configurations()]
    problems = project.config_problems()
    # Then every readable file is listed and the unreadable one is named with its error and the fix
    assert targets["docker"].base_docker_image == "img:1" and targets["gpu"].nvidia_docker
    assert rcs == ["gpu", "local"]
    assert [(p.file, p.severity) for p in problems] == [(sdk, "error")]
    message = problems[0].message
    assert "azureml-sdk" in message
    assert "ArgumentVector: [train.py, --lr, '0.1']" in message and "Target: docker" in message
    assert "environment.docker.baseImage 'mcr.microsoft.com/azureml/base:0.2.1' -> baseDockerImage" in message


def test_the_cli_lists_such_a_sample(tmp_path: Path) -> None:
    # Given the same sample, and a user in a terminal
    write_config(tmp_path, "docker.compute", "type: localdocker\nbaseDockerImage: img:1\n")
    write_config(tmp_path, "docker.runconfig", SDK_RUNCONFIG)

    def amlexec(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jupyter_amlexec", *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    # When the targets (as a table and as JSON) and the run configurations are listed
    table, targets = amlexec("computetarget", "list"), amlexec("computetarget", "list", "-o", "json")
    rcs = amlexec("runconfiguration", "list", "-o", "json")
    # Then each list comes, without the file that cannot be read
    assert table.returncode == 0 and "img:1" in table.stdout, table.stderr
    assert targets.returncode == 0 and json.loads(targets.stdout) == ["docker", "local"], targets.stderr
    assert rcs.returncode == 0 and json.loads(rcs.stdout) == ["local.runconfig"], rcs.stderr


def test_a_broken_compute_file_is_left_out_and_named(tmp_path: Path) -> None:
    bad = write_config(tmp_path, "vm.compute", "type: remotedocker\naddress: [not, a, host]\n")
    write_config(tmp_path, "box.compute", "type: docker\nbaseDockerImag: x\n")
    project = Project(tmp_path)
    assert [t.name for t in project.targets()] == ["box", "docker", "local"]
    problems = {(p.file.name, p.severity): p.message for p in project.config_problems()}
    assert set(problems) == {("vm.compute", "error"), ("box.compute", "warning")}
    assert str(bad) in problems[("vm.compute", "error")] and "'address'" in problems[("vm.compute", "error")]
    # the target itself still says what is wrong when asked for by name
    with pytest.raises(ConfigError, match="'address'"):
        project.target("vm")


# --- writes that fail leave aml_config/ as it was ----------------------------------------------------


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """Make `folder` refuse changes even for root (chattr +i), and always undo it."""
    require(shutil.which("chattr") is not None, "chattr (e2fsprogs)")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    require(done.returncode == 0, f"chattr +i on {folder} ({done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@contextmanager
def read_only_mount(folder: Path) -> Iterator[None]:
    """Bind-mount `folder` over itself read-only (EROFS, also for root), and always unmount it."""
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    require(done.returncode == 0, f"a bind mount (root with CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
        require(ro.returncode == 0, f"a read-only remount: {ro.stderr.strip()}")
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


READ_ONLY = {"immutable": immutable, "read-only mount": read_only_mount}


@pytest.mark.parametrize("how", sorted(READ_ONLY))
def test_attach_into_a_read_only_aml_config_names_the_folder_and_the_fix(tmp_path: Path, how: str) -> None:
    # Given an aml_config/ that cannot be written, even by root
    project = Project(tmp_path)
    project.initialize()
    before = snapshot(project.config_dir)
    with READ_ONLY[how](project.config_dir):
        # When a target is attached
        with pytest.raises(AmlExecError) as error:
            project.attach_target("box", "docker", base_docker_image="img:1")
        after = snapshot(project.config_dir)
    # Then it is a ConfigError naming the folder and the fix, and nothing changed
    assert isinstance(error.value, ConfigError)
    assert str(project.config_dir) in str(error.value) and "Make " in str(error.value)
    assert "writable" in str(error.value)
    assert after == before


def test_detach_from_a_read_only_aml_config_removes_nothing_and_says_why(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.attach_target("box", "docker", base_docker_image="img:1")
    before = snapshot(project.config_dir)
    with immutable(project.config_dir):
        with pytest.raises(ConfigError, match="cannot remove box.*writable"):
            project.detach_target("box")
        assert snapshot(project.config_dir) == before


def test_a_first_attach_that_fails_leaves_no_template_files(tmp_path: Path) -> None:
    # Given a project without aml_config/ where box.runconfig cannot be written (a folder is in the way)
    project = Project(tmp_path)
    blocker = tmp_path / "aml_config" / "box.runconfig"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("x")
    before = snapshot(project.config_dir)
    # When box is attached
    with pytest.raises(ConfigError, match="box.runconfig") as error:
        project.attach_target("box", "docker", force=True)
    # Then the message says what is in the way, and aml_config/ holds exactly what it held
    assert "Remove what is in the way" in str(error.value)
    assert snapshot(project.config_dir) == before


def test_values_no_program_can_receive_are_refused_at_load(tmp_path: Path) -> None:
    # Given values the run's process start would fail on (found by tests/core/test_config_properties.py)
    nul = write_config(tmp_path, "n.compute", 'type: local\npythonLocation: "py\\0thon"\n')
    eq = write_config(tmp_path, "e.runconfig", 'Target: local\nEnvironmentVariables: {"A=B": "1"}\n')
    # Then each is a ConfigError naming the file and the key, before any run is recorded
    with pytest.raises(ConfigError, match="'pythonLocation'.*NUL") as error:
        ComputeTarget.load(nul)
    assert error.value.file == nul
    with pytest.raises(ConfigError, match="'EnvironmentVariables'.*'A=B'"):
        RunConfiguration.load(eq)


def test_a_value_with_a_unicode_line_break_round_trips_exactly(tmp_path: Path) -> None:
    # Given a JSON-form target whose unknown key holds a NEL (YAML would read it back as a space)
    path = write_config(tmp_path, "t.compute", '{"type": "local", "note": "a\\u0085b", "name": "Zoë"}')
    target = ComputeTarget.load(path)
    # When it is written back and read again
    path.write_text(target.to_yaml(), encoding="utf-8")
    # Then the value is the same character for character
    assert ComputeTarget.load(path).extra == {"note": "a\x85b", "name": "Zoë"}


def test_a_listing_says_each_warning_once_through_config_problems(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a target with a typo
    write_config(tmp_path, "box.compute", "type: docker\nbaseDockerImag: x\n")
    project = Project(tmp_path)
    # When a listing is made and its problems shown (what `computetarget list` does)
    with caplog.at_level(logging.WARNING):
        listed = [t.name for t in project.targets()]
        problems = [p.message for p in project.config_problems()]
    # Then the warning comes once, from config_problems, not also from the log
    assert "box" in listed and len(problems) == 1 and "baseDockerImag" in problems[0]
    assert "baseDockerImag" not in caplog.text
    # while loading the target for a run logs it (an adapter that shows nothing else still warns)
    with caplog.at_level(logging.WARNING):
        project.target("box")
    assert "did you mean 'baseDockerImage'?" in caplog.text


def test_config_problems_name_a_broken_dependency_file(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.initialize()
    conda = write_config(tmp_path, "conda_dependencies.yml", "dependencies: [numpy\n")
    problems = project.config_problems()
    assert [(p.file.name, p.kind, p.severity) for p in problems] == [
        ("conda_dependencies.yml", "dependencies", "error")
    ]
    assert str(conda) in problems[0].message and "not valid YAML" in problems[0].message
    assert [t.name for t in project.targets()] == ["docker", "local"]  # the listing is unaffected


def test_create_run_configuration_refuses_a_bad_field_value_by_its_key(tmp_path: Path) -> None:
    # found by the property tests: argument_vector=None / 3 raised TypeError
    project = Project(tmp_path)
    project.initialize()
    before = snapshot(project.config_dir)
    with pytest.raises(ConfigError, match="'ArgumentVector'.*a list"):
        project.create_run_configuration("r", "local", argument_vector=3)
    assert project.create_run_configuration("s", "local", argument_vector=None).argument_vector == ("$file",)
    assert snapshot(project.config_dir) == {
        **before,
        "s.runconfig": (project.config_dir / "s.runconfig").read_bytes(),
    }
