"""The files `initialize()` writes into a new aml_config/ (our words, Workbench's layout), which are
also the built-in `local` and `docker` configurations of a project without aml_config/."""

from __future__ import annotations

import os

DEFAULT_BASE_IMAGE = "python:3.11-slim"


def default_base_image() -> str:
    """The base image written into new docker targets (override with AMLEXEC_DEFAULT_BASE_IMAGE)."""
    return os.environ.get("AMLEXEC_DEFAULT_BASE_IMAGE") or DEFAULT_BASE_IMAGE


LOCAL_COMPUTE_TEMPLATE = """\
# Your own Python, on a private copy of the project (Workbench's "local" target).
type: "local"
# pythonLocation: the interpreter to run; leave it out to use the one of the kernel or CLI that submits.
# pythonLocation: "python3"
# nativeSharedDirectory: a folder kept across runs, given to scripts as AZUREML_NATIVE_SHARE_DIRECTORY.
# nativeSharedDirectory: "~/.azureml/share/"
"""

DOCKER_COMPUTE_TEMPLATE = """\
# The local Docker engine. The run environment is built from conda_dependencies.yml on top of
# baseDockerImage, once, and reused while neither changes.
type: "docker"
baseDockerImage: "{image}"
# sharedVolumes: mount the project instead of copying it in (off: works with any Docker host).
sharedVolumes: false
# nvidiaDocker: true             # GPUs (Linux hosts with the NVIDIA container toolkit)
# nativeSharedDirectory: "~/.azureml/share/"
"""

RUNCONFIG_TEMPLATE = """\
# Program + arguments when none are given; $file is the script you submit.
ArgumentVector:
  - "$file"
# Target: the .compute file (without extension) this runs on.
Target: "{target}"
EnvironmentVariables:
  # "EXAMPLE_ENV_VAR": "Example Value"
Framework: "Python"                 # "Python" or "PySpark"
CondaDependenciesFile: "aml_config/conda_dependencies.yml"
SparkDependenciesFile: "aml_config/spark_dependencies.yml"
PrepareEnvironment: true            # build the environment as part of the run when it is missing
TrackedRun: true                    # record the run in the run history
UseSampling: true
# DataSourceSettings:
#   my.dsource:
#     Sampling:
#       Sample: MySampleName
# DataSourceSubstitutions:
#   my.dsource: replacement.dsource
"""

CONDA_TEMPLATE = """\
# The run environment of managed targets (docker, remotedocker, cluster); "local" uses your own Python.
# It is built once and reused while this file is unchanged.
name: project_environment
dependencies:
  - python=3.11
  # Packages from pip (they install in any image, with or without conda):
  # - pip:
  #   - scikit-learn
  #   - matplotlib
"""

SPARK_TEMPLATE = """\
# Spark settings for runs with Framework: PySpark (passed to spark-submit).
configuration:
  "spark.app.name": "amlexec"
  # "spark.executor.memory": "2g"
repositories:
  # - "https://my.maven.repo/maven"
packages:
  # - group: "com.example"
  #   artifact: "library_2.12"
  #   version: "1.0.0"
"""


def _template_files() -> dict[str, str]:
    return {
        "local.compute": LOCAL_COMPUTE_TEMPLATE,
        "local.runconfig": RUNCONFIG_TEMPLATE.format(target="local"),
        "docker.compute": DOCKER_COMPUTE_TEMPLATE.format(image=default_base_image()),
        "docker.runconfig": RUNCONFIG_TEMPLATE.format(target="docker"),
        "conda_dependencies.yml": CONDA_TEMPLATE,
        "spark_dependencies.yml": SPARK_TEMPLATE,
    }


def _builtin_mapping(file_name: str) -> dict[str, object]:
    """What a built-in file of `_template_files()` reads as, without parsing its YAML: every submit of a
    project without aml_config/ needs two, and PyYAML's import costs a CLI start ~10 ms. A test keeps
    these equal to the parsed templates."""
    kind, _, suffix = file_name.partition(".")
    if suffix == "runconfig":
        return {
            "ArgumentVector": ["$file"],
            "Target": kind,
            "EnvironmentVariables": None,
            "Framework": "Python",
            "CondaDependenciesFile": "aml_config/conda_dependencies.yml",
            "SparkDependenciesFile": "aml_config/spark_dependencies.yml",
            "PrepareEnvironment": True,
            "TrackedRun": True,
            "UseSampling": True,
        }
    if file_name == "docker.compute":
        return {"type": "docker", "baseDockerImage": default_base_image(), "sharedVolumes": False}
    if file_name == "local.compute":
        return {"type": "local"}
    raise KeyError(file_name)
