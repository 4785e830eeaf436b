"""From a run configuration's dependency files to an EnvironmentSpec (whose hash names the image).

conda_dependencies.yml is the spec. Where no conda exists in the target image, the python version +
the `pip:` section are realised in a venv; `conda_only_packages` names what that cannot install.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .models import EnvironmentSpec
from .project import Project, RunConfiguration

_PYTHON_SPEC = re.compile(r"^python\s*(?:==|=|>=|~=)?\s*(\d+)(?:\.(\d+))?")
_NOT_PACKAGES = ("python", "pip")


def load_environment(project: Project, rc: RunConfiguration) -> EnvironmentSpec:
    conda = project.read_dependencies(
        rc.conda_dependencies_file, key="CondaDependenciesFile", runconfig=rc.name
    )
    spark = None
    if rc.framework == "PySpark":
        spark = project.read_dependencies(
            rc.spark_dependencies_file, key="SparkDependenciesFile", runconfig=rc.name
        )
    return environment_from(
        conda,
        spark,
        conda_file=rc.conda_dependencies_file,
        spark_file=rc.spark_dependencies_file,
        root=project.root,
    )


def environment_from(
    conda: Mapping[str, Any] | None,
    spark: Mapping[str, Any] | None,
    *,
    conda_file: str | None = None,
    spark_file: str | None = None,
    root: Any = None,
) -> EnvironmentSpec:
    python_version: str | None = None
    conda_packages: list[str] = []
    pip_packages: list[str] = []
    channels: list[str] = []
    where = root / conda_file if root is not None and conda_file else None
    if conda:
        deps = conda.get("dependencies") or []
        if not isinstance(deps, list):
            raise ConfigError(
                "`dependencies` must be a list of package specs.", file=where, key="dependencies"
            )
        for dep in deps:
            if isinstance(dep, dict) and "pip" in dep:
                pip = dep.get("pip") or []
                if not isinstance(pip, list):
                    raise ConfigError(
                        "the `pip:` entry must hold a list of pip requirements.", file=where, key="pip"
                    )
                pip_packages.extend(str(p).strip() for p in pip if p is not None)
            elif isinstance(dep, (str, int, float)):
                spec = str(dep).strip()
                match = _PYTHON_SPEC.match(spec)
                if match and spec.split("=")[0].split(">")[0].strip() == "python":
                    python_version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
                elif spec.split("=")[0].strip() != "pip":
                    conda_packages.append(spec)
            else:
                raise ConfigError(f"cannot read the dependency {dep!r}.", file=where, key="dependencies")
        raw_channels = conda.get("channels") or []
        channels = [str(c) for c in raw_channels] if isinstance(raw_channels, list) else []
    spark_doc = _normalised_spark(spark) if spark is not None else None
    return EnvironmentSpec(
        conda=dict(conda) if conda else None,
        spark=spark_doc,
        conda_file=conda_file,
        spark_file=spark_file,
        python_version=python_version,
        conda_packages=tuple(conda_packages),
        pip_packages=tuple(pip_packages),
        channels=tuple(channels),
    )


def conda_only_packages(spec: EnvironmentSpec) -> list[str]:
    """Packages that only conda can install (every conda spec but python and pip)."""
    return [p for p in spec.conda_packages if re.split(r"[=<>~ ]", p, maxsplit=1)[0] not in _NOT_PACKAGES]


def _normalised_spark(spark: Mapping[str, Any]) -> dict[str, Any]:
    configuration = spark.get("configuration") or {}
    packages = spark.get("packages") or []
    repositories = spark.get("repositories") or []
    if not isinstance(configuration, dict):
        raise ConfigError("`configuration` must map Spark properties to values.", key="configuration")
    coords = []
    for p in packages:
        if isinstance(p, dict):
            try:
                coords.append(f"{p['group']}:{p['artifact']}:{p['version']}")
            except KeyError as missing:
                raise ConfigError(
                    f"a package needs group, artifact and version; {missing} is missing in {p!r}.",
                    key="packages",
                ) from None
        else:
            coords.append(str(p))
    return {
        "configuration": {str(k): str(v) for k, v in configuration.items()},
        "packages": coords,
        "repositories": [str(r) for r in repositories],
    }


def spark_submit_args(spark: Mapping[str, Any] | None) -> list[str]:
    """spark-submit options for a normalised spark spec: --conf k=v, --packages, --repositories."""
    if not spark:
        return []
    args: list[str] = []
    for key, value in sorted(dict(spark.get("configuration") or {}).items()):
        args += ["--conf", f"{key}={value}"]
    if spark.get("packages"):
        args += ["--packages", ",".join(spark["packages"])]
    if spark.get("repositories"):
        args += ["--repositories", ",".join(spark["repositories"])]
    return args
