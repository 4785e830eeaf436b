"""conda_dependencies.yml / spark_dependencies.yml -> the EnvironmentSpec a managed target builds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from jupyter_amlexec.core.environment import (
    environment_from,
    load_environment,
    pip_only_supported,
    spark_submit_args,
)
from jupyter_amlexec.core.errors import ConfigError
from jupyter_amlexec.core.models import EnvironmentSpec
from jupyter_amlexec.core.project import Project
from tests.core.conftest import write_config

pytestmark = pytest.mark.usefixtures("isolated")

CONDA_EXAMPLE = """\
name: project_environment
channels:
  - conda-forge
dependencies:
  - python=3.5.2
  - scikit-learn
  - ipykernel=4.6.1
  - pip:
    - matplotlib
    - azure-storage
    - https://wheels.example.net/mylib-1.0-py3-none-any.whl
"""

SPARK_EXAMPLE = """\
configuration:
  "spark.app.name": "Classifying Iris"
  "spark.yarn.maxAppAttempts": 1
  "spark.executor.instances": 5
repositories:
  - "https://maven.example.net/maven"
packages:
  - group: "com.microsoft.ml.spark"
    artifact: "mmlspark_2.11"
    version: "0.7.91"
"""


def project_with(
    tmp_path: Path, conda: str | None = CONDA_EXAMPLE, spark: str | None = SPARK_EXAMPLE
) -> Project:
    project = Project(tmp_path)
    project.initialize()
    if conda is not None:
        write_config(tmp_path, "conda_dependencies.yml", conda)
    if spark is not None:
        write_config(tmp_path, "spark_dependencies.yml", spark)
    return project


def test_the_workbench_conda_example_becomes_a_spec(tmp_path: Path) -> None:
    # Given the conda file of the notes and a Python run configuration
    project = project_with(tmp_path)
    rc = project.run_configuration("docker")
    # When its environment is loaded
    spec = load_environment(project, rc)
    # Then python, conda packages, pip packages and channels are apart
    assert spec.python_version == "3.5"
    assert spec.conda_packages == ("ipykernel=4.6.1", "scikit-learn")
    assert spec.pip_packages == (
        "matplotlib",
        "azure-storage",
        "https://wheels.example.net/mylib-1.0-py3-none-any.whl",
    )
    assert spec.channels == ("conda-forge",)
    assert spec.conda_file == "aml_config/conda_dependencies.yml"
    assert spec.conda is not None and spec.conda["name"] == "project_environment"
    # and the spark file does not count for Framework: Python
    assert (spec.spark, spec.spark_file) == (None, None)


@pytest.mark.parametrize(
    ("python", "version"),
    [
        ("python=3.5.2", "3.5"),
        ("python=3.11", "3.11"),
        ("python==3.11.4", "3.11"),
        ("python>=3.8", "3.8"),
        ("python 3.9.*", "3.9"),
        ("python = 3.10", "3.10"),
        ("python~=3.12.1", "3.12"),
        ("conda-forge::python=3.10.2", "3.10"),
        ("python", None),
    ],
)
def test_python_version_is_normalised_to_major_minor(python: str, version: str | None) -> None:
    spec = environment_from({"dependencies": [python, "numpy"]}, None)
    assert spec.python_version == version
    assert spec.conda_packages == ("numpy",)


def test_spark_file_counts_only_for_pyspark(tmp_path: Path) -> None:
    # Given a PySpark run configuration
    project = project_with(tmp_path)
    rc = replace(project.run_configuration("docker"), framework="PySpark")
    # When its environment is loaded
    spec = load_environment(project, rc)
    # Then the spark file is part of it, normalised
    assert spec.spark == {
        "configuration": {
            "spark.app.name": "Classifying Iris",
            "spark.yarn.maxAppAttempts": "1",
            "spark.executor.instances": "5",
        },
        "packages": ["com.microsoft.ml.spark:mmlspark_2.11:0.7.91"],
        "repositories": ["https://maven.example.net/maven"],
    }
    assert spec.spark_file == "aml_config/spark_dependencies.yml"
    # and it changes the environment's hash
    python = load_environment(project, replace(rc, framework="Python"))
    assert spec.content_hash() != python.content_hash()


def test_spark_submit_args(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    spec = load_environment(project, replace(project.run_configuration("docker"), framework="PySpark"))
    expected = [
        "--conf",
        "spark.app.name=Classifying Iris",
        "--conf",
        "spark.executor.instances=5",
        "--conf",
        "spark.yarn.maxAppAttempts=1",
        "--packages",
        "com.microsoft.ml.spark:mmlspark_2.11:0.7.91",
        "--repositories",
        "https://maven.example.net/maven",
    ]
    assert spark_submit_args(spec.spark) == expected
    assert spark_submit_args(spec) == expected
    assert spark_submit_args(None) == [] and spark_submit_args(EnvironmentSpec(conda=None)) == []


def test_spark_values_and_several_packages() -> None:
    spark = {
        "configuration": {"spark.dynamicAllocation.enabled": True, "spark.unset": None},
        "packages": [
            {"group": "g", "artifact": "a", "version": 1},
            "databricks:spark-sklearn:0.2.0",
        ],
        "repositories": ["https://r1", "https://r2"],
    }
    spec = environment_from(None, spark)
    assert spark_submit_args(spec) == [
        "--conf",
        "spark.dynamicAllocation.enabled=true",
        "--packages",
        "g:a:1,databricks:spark-sklearn:0.2.0",
        "--repositories",
        "https://r1,https://r2",
    ]


def test_an_empty_spark_template_gives_no_options(tmp_path: Path) -> None:
    # Given the spark file initialize() wrote (lists only commented out)
    project = project_with(tmp_path, spark=None)
    spec = load_environment(project, replace(project.run_configuration("docker"), framework="PySpark"))
    assert spark_submit_args(spec) == ["--conf", "spark.app.name=amlexec"]


def test_order_comments_and_whitespace_do_not_change_the_hash() -> None:
    a = environment_from(
        {"dependencies": ["python=3.11", "numpy=1.26", "scipy", {"pip": ["requests"]}]}, None
    )
    b = environment_from(
        {"name": "other", "dependencies": ["scipy", {"pip": ["requests "]}, "numpy = 1.26", "python=3.11"]},
        None,
    )
    c = environment_from(
        {"dependencies": ["python=3.11", "numpy=1.27", "scipy", {"pip": ["requests"]}]}, None
    )
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()


def test_comments_in_the_file_do_not_change_the_hash(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    rc = project.run_configuration("docker")
    before = load_environment(project, rc).content_hash()
    commented = "# my environment\n" + CONDA_EXAMPLE.replace(
        "  - scikit-learn\n", "  - scikit-learn   # ML\n"
    )
    write_config(tmp_path, "conda_dependencies.yml", commented)
    assert load_environment(project, rc).content_hash() == before


def test_pip_only_supported_names_what_needs_conda() -> None:
    spec = environment_from(
        {"dependencies": ["python=3.11", "pip>=23", "pip", "numpy", "conda-forge::gdal=3.8", {"pip": ["x"]}]},
        None,
    )
    assert pip_only_supported(spec) == ["conda-forge::gdal=3.8", "numpy"]
    assert pip_only_supported(environment_from({"dependencies": ["python=3.11", {"pip": ["x"]}]}, None)) == []


def test_builtin_docker_on_a_fresh_folder_has_an_empty_environment(tmp_path: Path) -> None:
    # Given a folder with no aml_config/ (first run)
    project = Project.find(tmp_path)
    spec = load_environment(project, project.run_configuration("docker"))
    # Then nothing needs building: the base image is used as is
    assert spec.is_empty and spec.conda is None and spec.python_version is None


def test_a_missing_referenced_file_names_it_and_the_key(tmp_path: Path) -> None:
    # Given a runconfig pointing at dependency files that do not exist
    project = project_with(tmp_path)
    path = write_config(
        tmp_path,
        "big.runconfig",
        "Target: docker\nFramework: PySpark\nCondaDependenciesFile: Config/conda.yml\n"
        "SparkDependenciesFile: Config/hdi_spark_dependencies.yml\n",
    )
    rc = project.run_configuration("big")
    # Then loading its environment names the file and the key
    with pytest.raises(ConfigError) as conda_error:
        load_environment(project, rc)
    assert "Config/conda.yml" in str(conda_error.value)
    assert "'CondaDependenciesFile'" in str(conda_error.value) and str(path) in str(conda_error.value)
    (tmp_path / "Config").mkdir()
    (tmp_path / "Config" / "conda.yml").write_text("dependencies: [python=3.11]\n")
    with pytest.raises(ConfigError) as spark_error:
        load_environment(project, rc)
    assert "Config/hdi_spark_dependencies.yml" in str(spark_error.value)
    assert "'SparkDependenciesFile'" in str(spark_error.value)
    # and a deleted template file named by a written runconfig is an error too
    (project.config_dir / "conda_dependencies.yml").unlink()
    with pytest.raises(ConfigError, match="conda_dependencies.yml"):
        load_environment(project, project.run_configuration("docker"))


def test_windows_separators_in_the_path_are_accepted(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    write_config(
        tmp_path, "w.runconfig", "Target: docker\nCondaDependenciesFile: aml_config\\conda_dependencies.yml\n"
    )
    assert load_environment(project, project.run_configuration("w")).python_version == "3.5"


@pytest.mark.parametrize(
    ("conda", "expected"),
    [
        (
            "dependencies:\n  - python=3.11\n  - [numpy\n",
            ["conda_dependencies.yml", "line", "not valid YAML"],
        ),
        ("dependencies: numpy\n", ["'dependencies'", "'numpy'", "list"]),
        ("dependencies:\n  - pip: requests\n", ["'pip'", "'requests'", "list"]),
        ("dependencies:\n  - {numpy: 1}\n", ["'dependencies'", "numpy", "conda spec"]),
        ("channels: conda-forge\n", ["'channels'", "conda-forge", "list"]),
    ],
)
def test_malformed_conda_file_names_file_key_and_line(
    tmp_path: Path, conda: str, expected: list[str]
) -> None:
    project = project_with(tmp_path, conda=conda)
    with pytest.raises(ConfigError) as error:
        load_environment(project, project.run_configuration("docker"))
    for fragment in expected:
        assert fragment in str(error.value), (fragment, str(error.value))
    assert "conda_dependencies.yml" in str(error.value)


@pytest.mark.parametrize(
    ("spark", "expected"),
    [
        ("configuration: [a]\n", ["'configuration'", "mapping"]),
        ("packages:\n  - group: g\n    artifact: a\n", ["'packages'", "version missing"]),
        ("packages:\n  - just-a-name\n", ["'packages'", "just-a-name", "group:artifact:version"]),
        ("repositories: https://r\n", ["'repositories'", "https://r", "list"]),
        ("configuration:\n  a: 1\n b: 2\n", ["spark_dependencies.yml", "line", "not valid YAML"]),
    ],
)
def test_malformed_spark_file_names_file_and_key(tmp_path: Path, spark: str, expected: list[str]) -> None:
    project = project_with(tmp_path, spark=spark)
    rc = replace(project.run_configuration("docker"), framework="PySpark")
    with pytest.raises(ConfigError) as error:
        load_environment(project, rc)
    for fragment in expected:
        assert fragment in str(error.value), (fragment, str(error.value))
    assert "spark_dependencies.yml" in str(error.value)
