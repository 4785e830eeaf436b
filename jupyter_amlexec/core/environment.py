"""From a run configuration's dependency files to an EnvironmentSpec (whose hash names the image).

conda_dependencies.yml is the spec. Where no conda exists in the target image, the python version +
the `pip:` section are realised in a venv, and the conda packages go through `pip_requirements`
(conda_pip.py: PyPI names, pip version syntax; what only conda has is named, not guessed).
spark_dependencies.yml counts only for Framework: PySpark, and becomes spark-submit options.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .models import EnvironmentSpec
from .project import Project, RunConfiguration

if TYPE_CHECKING:
    from .conda_pip import CondaAsPip

# `python=3.11`, `python==3.11.4`, `python>=3.8`, `python 3.9.*`, `python~=3.10` (conda or pip style)
_PYTHON_SPEC = re.compile(r"^python\s*(?:==|=|>=|~=|\s)\s*(\d+)(?:\.(\d+))?")
_NAME = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)")
_NOT_PACKAGES = ("python", "pip")


def load_environment(project: Project, rc: RunConfiguration) -> EnvironmentSpec:
    """The environment `rc` asks for: its conda file, plus its spark file when Framework is PySpark.

    A file the runconfig points at that does not exist -> ConfigError naming it and the key.
    """
    conda = project.conda_dependencies(rc)
    spark = project.spark_dependencies(rc) if rc.framework == "PySpark" else None
    return environment_from(
        conda,
        spark,
        conda_file=rc.conda_dependencies_file,
        spark_file=rc.spark_dependencies_file if rc.framework == "PySpark" else None,
        root=project.root,
    )


def package_name(spec: str) -> str:
    """`conda-forge::numpy>=1.2` -> `numpy` (lower case), for comparisons."""
    match = _NAME.match(spec.strip())
    return match.group(1).lower() if match else spec.strip().lower()


def _normalised_spec(spec: str) -> str:
    """Whitespace is not meaning: `numpy  = 1.2` and `numpy=1.2` are one spec (a lone space is
    conda's version separator, `numpy 1.2`, and stays)."""
    text = re.sub(r"\s*(==|>=|<=|!=|~=|=|<|>|,)\s*", r"\1", spec.strip())
    return re.sub(r"\s+", " ", text)


def environment_from(
    conda: Mapping[str, Any] | None,
    spark: Mapping[str, Any] | None,
    *,
    conda_file: str | None = None,
    spark_file: str | None = None,
    root: Path | None = None,
) -> EnvironmentSpec:
    """An EnvironmentSpec from parsed dependency files (None: that file is not used)."""
    python_version: str | None = None
    conda_packages: list[str] = []
    pip_packages: list[str] = []
    channels: list[str] = []
    where = root / conda_file if root is not None and conda_file else None
    if conda:
        python_version, conda_packages, pip_packages = _conda_dependencies(conda.get("dependencies"), where)
        raw_channels = conda.get("channels") or []
        if not isinstance(raw_channels, list):
            raise ConfigError(
                f"bad value {raw_channels!r}; allowed: a list of channel names.", file=where, key="channels"
            )
        channels = [str(c).strip() for c in raw_channels if c is not None]
    spark_doc = None
    if spark is not None:
        spark_where = root / spark_file if root is not None and spark_file else None
        spark_doc = normalised_spark(spark, path=spark_where)
    return EnvironmentSpec(
        conda=dict(conda) if conda else None,
        spark=spark_doc,
        conda_file=conda_file,
        spark_file=spark_file,
        python_version=python_version,
        conda_packages=tuple(sorted(dict.fromkeys(conda_packages))),
        pip_packages=tuple(pip_packages),
        channels=tuple(channels),
    )


def _conda_dependencies(deps: object, where: Path | None) -> tuple[str | None, list[str], list[str]]:
    """`dependencies:` -> (python version, conda specs but python/pip, the `pip:` section)."""
    python_version: str | None = None
    conda_packages: list[str] = []
    pip_packages: list[str] = []
    if not isinstance(deps, list):
        if not deps:
            return None, [], []
        raise ConfigError(
            f"bad value {deps!r}; allowed: a list of package specs (python=3.11, numpy, - pip: [...]).",
            file=where,
            key="dependencies",
        )
    for dep in deps:
        if isinstance(dep, dict) and "pip" in dep:
            pip = dep.get("pip") or []
            if not isinstance(pip, list):
                raise ConfigError(
                    f"bad value {pip!r}; allowed: a list of pip requirements.", file=where, key="pip"
                )
            pip_packages.extend(_normalised_spec(str(p)) for p in pip if p is not None)
        elif isinstance(dep, (str, int, float)) and not isinstance(dep, bool):
            spec = _normalised_spec(str(dep))
            name = package_name(spec)
            match = _PYTHON_SPEC.match(spec.split("::", 1)[-1])
            if name == "python":
                if match:
                    python_version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
            elif name != "pip":
                conda_packages.append(spec)
        elif dep is not None:
            raise ConfigError(
                f"bad dependency {dep!r}; allowed: a conda spec such as numpy=1.26, or `- pip:` with a list.",
                file=where,
                key="dependencies",
            )
    return python_version, conda_packages, pip_packages


def pip_only_supported(spec: EnvironmentSpec) -> list[str]:
    """The conda packages a venv + pip cannot provide (every conda spec but python and pip): what a
    target without conda must refuse, naming them."""
    return [p for p in spec.conda_packages if package_name(p) not in _NOT_PACKAGES]


def pip_requirements(spec: EnvironmentSpec) -> CondaAsPip:
    """What a venv build over an image without conda installs: the conda packages translated for pip
    (`conda_as_pip`), then the `pip:` section as written.

    Contract for the build recipe: write `requirements` to requirements.txt; print every `notes` line
    into the build log (what was renamed or dropped); when `conda_only` is not empty, refuse the
    build before installing anything, naming those specs and the conda file (or use conda when the
    image has it). `python`/`pip` specs are not in it: the recipe checks the python version itself.
    """
    from .conda_pip import CondaAsPip, conda_as_pip  # only builds without conda need it: not on every submit

    translated = conda_as_pip(spec.conda_packages)
    return CondaAsPip(
        requirements=translated.requirements + spec.pip_packages,
        notes=translated.notes,
        conda_only=translated.conda_only,
    )


def __getattr__(name: str) -> Any:
    """`CondaAsPip` and `conda_as_pip` are importable from here too, loaded when first asked for."""
    if name in ("CondaAsPip", "conda_as_pip"):
        from . import conda_pip

        return getattr(conda_pip, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _spark_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # Spark reads lower-case booleans
    return str(value)


def _spark_paths(spark: Mapping[str, Any], key: str, what: str, path: Path | None) -> list[str]:
    """Our `jars` / `pyFiles` keys: paths relative to the run's folder (files of the snapshot), paths
    on the cluster's nodes, or URLs spark-submit can fetch (hdfs://, local:/...)."""
    value = spark.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f"bad value {value!r}; allowed: a list of {what} (project-relative paths or URLs).",
            file=path,
            key=key,
        )
    for entry in value:
        if "," in entry:
            raise ConfigError(
                f"bad entry {entry!r}: spark-submit separates {what} with commas, so a name cannot "
                f"hold one; rename the file.",
                file=path,
                key=key,
            )
        if entry.strip().startswith("../") or "/../" in entry:
            raise ConfigError(
                f"bad entry {entry!r}: it leaves the project, and only project files travel with a "
                f"run. Move the file into the project and name it relative to the project folder.",
                file=path,
                key=key,
            )
    return [v.strip() for v in value]


def normalised_spark(spark: Mapping[str, Any], *, path: Path | None = None) -> dict[str, Any]:
    """spark_dependencies.yml -> {configuration: {k: str}, packages: ["g:a:v"], repositories: [url],
    jars: [path], pyFiles: [path]}."""
    configuration = spark.get("configuration") or {}
    packages = spark.get("packages") or []
    repositories = spark.get("repositories") or []
    if not isinstance(configuration, Mapping):
        raise ConfigError(
            f"bad value {configuration!r}; allowed: a mapping of Spark property: value.",
            file=path,
            key="configuration",
        )
    if not isinstance(packages, list):
        raise ConfigError(
            f"bad value {packages!r}; allowed: a list of {{group, artifact, version}}.",
            file=path,
            key="packages",
        )
    if not isinstance(repositories, list):
        raise ConfigError(
            f"bad value {repositories!r}; allowed: a list of Maven repository URLs.",
            file=path,
            key="repositories",
        )
    coords = []
    for p in packages:
        if isinstance(p, Mapping):
            missing = [k for k in ("group", "artifact", "version") if p.get(k) is None]
            if missing:
                raise ConfigError(
                    f"bad package {dict(p)!r}: {', '.join(missing)} missing; allowed: group, artifact "
                    f"and version.",
                    file=path,
                    key="packages",
                )
            coords.append(f"{p['group']}:{p['artifact']}:{p['version']}")
        elif isinstance(p, str) and len(p.split(":")) == 3 and all(p.split(":")):
            coords.append(p.strip())
        else:
            raise ConfigError(
                f"bad package {p!r}; allowed: {{group, artifact, version}} or 'group:artifact:version'.",
                file=path,
                key="packages",
            )
    doc: dict[str, Any] = {
        "configuration": {str(k): _spark_value(v) for k, v in configuration.items() if v is not None},
        "packages": coords,
        "repositories": [str(r).strip() for r in repositories if r is not None],
    }
    # present only when given: a spark file without them keeps its environment hash (cached images)
    for key, what in (("jars", "jar files"), ("pyFiles", ".py, .zip or .egg files")):
        if spark.get(key) is not None:
            doc[key] = _spark_paths(spark, key, what, path)
    return doc


def spark_submit_args(spark: Mapping[str, Any] | EnvironmentSpec | None) -> list[str]:
    """spark-submit options for a normalised spark spec (or an EnvironmentSpec): `--conf k=v` for each
    property, then `--packages g:a:v,...`, `--repositories url,...`, `--jars a,b`, `--py-files x,y`."""
    doc: Mapping[str, Any] | None = spark.spark if isinstance(spark, EnvironmentSpec) else spark
    if not doc:
        return []
    args: list[str] = []
    for key, value in sorted(dict(doc.get("configuration") or {}).items()):
        args += ["--conf", f"{key}={value}"]
    if doc.get("packages"):
        args += ["--packages", ",".join(str(p) for p in doc["packages"])]
    if doc.get("repositories"):
        args += ["--repositories", ",".join(str(r) for r in doc["repositories"])]
    if doc.get("jars"):
        args += ["--jars", ",".join(str(j) for j in doc["jars"])]
    if doc.get("pyFiles"):
        args += ["--py-files", ",".join(str(f) for f in doc["pyFiles"])]
    return args
