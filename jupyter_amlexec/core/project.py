"""A Workbench project folder: finding it, and reading/writing the files in aml_config/.

Formats follow ../shared/notes/workbench-formats.md: `<name>.compute` (flat YAML, camelCase keys),
`<name>.runconfig` (YAML, or the older JSON form, PascalCase keys), conda_dependencies.yml and
spark_dependencies.yml. Unknown keys are kept so a round trip loses nothing. Writes are atomic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .config_files import dump_json, dump_yaml, load_mapping, write_atomic
from .errors import ConfigError, TargetNotFoundError

TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_CONDA_FILE = "aml_config/conda_dependencies.yml"
DEFAULT_SPARK_FILE = "aml_config/spark_dependencies.yml"
FRAMEWORKS = ("Python", "PySpark")
BUILTIN_TARGETS = ("local", "docker")


def default_base_image() -> str:
    """The base image written into new docker targets (override with AMLEXEC_DEFAULT_BASE_IMAGE)."""
    return os.environ.get("AMLEXEC_DEFAULT_BASE_IMAGE", "python:3.11-slim")


class TargetType(str, Enum):
    LOCAL = "local"
    DOCKER = "docker"  # also read from `localdocker`
    REMOTE_DOCKER = "remotedocker"
    REMOTE = "remote"
    CLUSTER = "cluster"

    def __str__(self) -> str:
        return self.value


_TYPE_ALIASES = {"localdocker": TargetType.DOCKER, "virtualmachine": TargetType.REMOTE_DOCKER}


# --- value checkers: each returns the typed value or raises ConfigError naming file, key, value ----


def _check(path: Path | None, key: str, lines: Mapping[str, int]) -> Callable[[str], ConfigError]:
    def error(message: str) -> ConfigError:
        return ConfigError(message, file=path, key=key, line=lines.get(key))

    return error


def _as_bool(value: object, err: Callable[[str], ConfigError]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.lower() in ("true", "yes", "on")
    raise err(f"expected true or false, got {value!r}.")


def _as_str(value: object, err: Callable[[str], ConfigError]) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise err(f"expected a text value, got {value!r}.")


def _as_float(value: object, err: Callable[[str], ConfigError]) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise err(f"expected a number, got {value!r}.") from None


def _as_int(value: object, err: Callable[[str], ConfigError]) -> int:
    number = _as_float(value, err)
    if number != int(number):
        raise err(f"expected a whole number, got {value!r}.")
    return int(number)


def _as_str_list(value: object, err: Callable[[str], ConfigError]) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_as_str(v, err) for v in value)
    raise err(f"expected a list, got {value!r}.")


# --- compute targets --------------------------------------------------------------------------------

# file key -> (field, parser); parsers take (value, error factory)
_COMPUTE_KEYS: dict[str, tuple[str, Callable[[object, Callable[[str], ConfigError]], object]]] = {
    "username": ("username", _as_str),
    "passwordEnv": ("password_env", _as_str),
    "passwordKeyring": ("password_keyring", _as_str),
    "privateKeyFile": ("key_file", _as_str),
    "baseDockerImage": ("base_docker_image", _as_str),
    "sharedVolumes": ("shared_volumes", _as_bool),
    "nvidiaDocker": ("nvidia_docker", _as_bool),
    "nativeSharedDirectory": ("native_shared_directory", _as_str),
    "pythonLocation": ("python_location", _as_str),
    "sparkSubmitLocation": ("spark_submit_location", _as_str),
    "userManagedEnvironment": ("user_managed_environment", _as_bool),
    "yarnDeployMode": ("yarn_deploy_mode", _as_str),
    "networkMode": ("network_mode", _as_str),
    "buildNetworkMode": ("build_network_mode", _as_str),
    "cpus": ("cpus", _as_float),
    "memory": ("memory", _as_str),
    "shmSize": ("shm_size", _as_str),
    "volumes": ("volumes", _as_str_list),
    "gpus": ("gpus", _as_str),
    "keepContainer": ("keep_container", _as_bool),
    "forwardPipConfig": ("forward_pip_config", _as_bool),
    "sparkMaster": ("spark_master", _as_str),
    "port": ("port", _as_int),
}


@dataclass(frozen=True)
class ComputeTarget:
    """A `<name>.compute` file, parsed. Unknown keys stay in `extra` so a round trip loses nothing.

    Secrets are never held in plain text here: `password_env` names an environment variable,
    `password_keyring` a keyring entry; `key_file` is a path to a private key (never its content).
    A Workbench `password:` value is kept (in `extra`) only to be written back unchanged.
    """

    name: str
    type: TargetType
    type_alias: str | None = None  # "localdocker" when the file said so (written back as is)
    address: str | None = None  # host, without port
    port: int | None = None  # from "host:port" or `port:`
    username: str | None = None
    password_env: str | None = None  # key `passwordEnv`
    password_keyring: str | None = None  # key `passwordKeyring` ("service" or "service/user")
    key_file: str | None = None  # key `privateKeyFile`
    base_docker_image: str | None = None  # `baseDockerImage`
    shared_volumes: bool = False  # `sharedVolumes`
    nvidia_docker: bool = False  # `nvidiaDocker`
    native_shared_directory: str | None = None  # `nativeSharedDirectory`
    python_location: str | None = None  # `pythonLocation` (None: the current interpreter for local)
    spark_submit_location: str | None = None  # `sparkSubmitLocation`
    user_managed_environment: bool = False  # `userManagedEnvironment`
    yarn_deploy_mode: str | None = None  # `yarnDeployMode`
    # --- our settings beyond Workbench's (lower camelCase like Workbench's keys) ---
    network_mode: str | None = None  # `networkMode`: host | none | bridge | <name>; None = Docker's default
    build_network_mode: str | None = None  # `buildNetworkMode`: network for image builds; None = network_mode
    cpus: float | None = None  # `cpus`
    memory: str | None = None  # `memory` e.g. "4g"
    shm_size: str | None = None  # `shmSize`
    volumes: tuple[str, ...] = ()  # `volumes`: ["/host:/container[:ro]", ...]
    gpus: str | None = None  # `gpus`: "all" | "2" | "0,1" (with nvidiaDocker)
    keep_container: bool = False  # `keepContainer`: keep the container after the run (debugging)
    forward_pip_config: bool = True  # `forwardPipConfig`: pass host pip index/CA settings into builds
    spark_master: str | None = None  # `sparkMaster` for cluster targets
    extra: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ComputeTarget:
        """Parse a .compute file; ConfigError naming file, line and key on bad input."""
        data, lines = load_mapping(path, what="compute target")
        return cls.from_mapping(path.stem, data, path=path, lines=lines)

    @classmethod
    def from_mapping(
        cls,
        name: str,
        data: Mapping[str, object],
        *,
        path: Path | None = None,
        lines: Mapping[str, int] | None = None,
    ) -> ComputeTarget:
        lines = lines or {}
        data = dict(data)
        raw_type = data.pop("type", None)
        legacy_cluster, legacy_native = data.pop("cluster", None), data.pop("native", None)
        if raw_type is None and legacy_cluster is not None:  # May-Jun 2017 files
            raw_type = "cluster" if legacy_cluster else "docker"
        if raw_type is None and legacy_native:
            raw_type = "local"
        err = _check(path, "type", lines)
        if raw_type is None:
            raise err(
                f"missing. Say what this target is: type: one of {', '.join(t.value for t in TargetType)}."
            )
        type_text = _as_str(raw_type, err).strip()
        alias = type_text if type_text in _TYPE_ALIASES else None
        try:
            target_type = _TYPE_ALIASES.get(type_text) or TargetType(type_text)
        except ValueError:
            allowed = ", ".join([t.value for t in TargetType] + ["localdocker"])
            raise err(f"unknown target type {type_text!r}; use one of {allowed}.") from None
        values: dict[str, Any] = {"name": name, "type": target_type, "type_alias": alias}
        address = data.pop("address", None)
        if address is not None:
            host = _as_str(address, _check(path, "address", lines)).strip()
            if re.fullmatch(r"[^:\[\]]+:\d+", host):
                host, port = host.rsplit(":", 1)
                values["port"] = int(port)
            values["address"] = host
        extra: dict[str, object] = {}
        for key, value in data.items():
            if key not in _COMPUTE_KEYS:
                extra[key] = value
                continue
            if value is None:
                continue  # null takes Workbench's default
            field_name, parse = _COMPUTE_KEYS[key]
            values[field_name] = parse(value, _check(path, key, lines))
        values["extra"] = extra
        return cls(**values)

    def to_mapping(self) -> dict[str, object]:
        """Workbench's keys, plus ours when they differ from the default."""
        doc: dict[str, object] = {"type": self.type_alias or self.type.value}
        if self.address is not None:
            doc["address"] = f"{self.address}:{self.port}" if self.port is not None else self.address
        defaults = ComputeTarget(name=self.name, type=self.type)
        for key, (field_name, _parse) in _COMPUTE_KEYS.items():
            if key == "port":
                continue
            value = getattr(self, field_name)
            if value != getattr(defaults, field_name):
                doc[key] = list(value) if isinstance(value, tuple) else value
        doc.update(self.extra)
        return doc

    def to_yaml(self) -> str:
        """Workbench's format: flat mapping, keys sorted alphabetically (as `attach` wrote them)."""
        return dump_yaml(self.to_mapping())

    @property
    def workbench_secret(self) -> str | None:
        """A `password:` value from a Workbench file (a cloud secret reference or a plain literal)."""
        value = self.extra.get("password")
        return str(value) if value is not None else None


# --- run configurations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfiguration:
    """A `<name>.runconfig` file, parsed, with Workbench defaults applied to absent/null keys."""

    name: str
    target: str
    argument_vector: tuple[str, ...] = ("$file",)
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    framework: str = "PySpark"  # Workbench's default when absent; "Python" | "PySpark"
    conda_dependencies_file: str = DEFAULT_CONDA_FILE
    spark_dependencies_file: str = DEFAULT_SPARK_FILE
    prepare_environment: bool = True
    tracked_run: bool = True
    use_sampling: bool = True
    data_source_settings: Mapping[str, object] = field(default_factory=dict)
    data_source_substitutions: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    # --- ours ---
    max_snapshot_mb: float = 25.0  # `MaxSnapshotSizeMB`
    max_output_file_mb: float = 512.0  # `MaxOutputFileSizeMB`
    source_format: str = "yaml"  # "yaml" | "json" (legacy); written back in the same form
    extra: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunConfiguration:
        data, lines = load_mapping(path, what="run configuration")
        text_start = path.read_text(encoding="utf-8").lstrip()[:1]
        return cls.from_mapping(
            path.stem, data, path=path, lines=lines, source_format="json" if text_start == "{" else "yaml"
        )

    @classmethod
    def from_mapping(
        cls,
        name: str,
        data: Mapping[str, object],
        *,
        path: Path | None = None,
        lines: Mapping[str, int] | None = None,
        source_format: str = "yaml",
    ) -> RunConfiguration:
        lines = lines or {}
        data = dict(data)
        values: dict[str, Any] = {"name": name, "source_format": source_format}

        def take(key: str) -> tuple[object, Callable[[str], ConfigError]]:
            return data.pop(key, None), _check(path, key, lines)

        target, err = take("Target")
        if target is None:
            raise err("missing. Name the compute target (a .compute file in aml_config/) this runs on.")
        values["target"] = _as_str(target, err)
        vector, err = take("ArgumentVector")
        if vector is not None:
            values["argument_vector"] = _as_str_list(vector, err)
        env, err = take("EnvironmentVariables")
        if env is not None:
            if not isinstance(env, dict):
                raise err(f"expected a mapping of NAME: value, got {env!r}.")
            values["environment_variables"] = {
                str(k): "" if v is None else _as_str(v, err) for k, v in env.items()
            }
        framework, err = take("Framework")
        if framework is not None:
            text = _as_str(framework, err)
            match = [f for f in FRAMEWORKS if f.lower() == text.lower()]
            if not match:
                raise err(f"unknown framework {text!r}; use Python or PySpark.")
            values["framework"] = match[0]
        conda, err = take("CondaDependenciesFile")
        legacy_conda, legacy_err = take("CondaFile")
        if conda is not None:
            values["conda_dependencies_file"] = _as_str(conda, err)
        elif legacy_conda is not None:
            values["conda_dependencies_file"] = _as_str(legacy_conda, legacy_err)
        spark, err = take("SparkDependenciesFile")
        if spark is not None:
            values["spark_dependencies_file"] = _as_str(spark, err)
        for key, field_name in (
            ("PrepareEnvironment", "prepare_environment"),
            ("TrackedRun", "tracked_run"),
            ("UseSampling", "use_sampling"),
        ):
            value, err = take(key)
            if value is not None:
                values[field_name] = _as_bool(value, err)
        for key, field_name in (
            ("DataSourceSettings", "data_source_settings"),
            ("DataSourceSubstitutions", "data_source_substitutions"),
        ):
            value, err = take(key)
            if value is not None:
                if not isinstance(value, dict):
                    raise err(f"expected a mapping, got {value!r}.")
                values[field_name] = value
        description, err = take("Description")
        if description is not None:
            values["description"] = _as_str(description, err)
        for key, field_name in (
            ("MaxSnapshotSizeMB", "max_snapshot_mb"),
            ("MaxOutputFileSizeMB", "max_output_file_mb"),
        ):
            value, err = take(key)
            if value is not None:
                number = _as_float(value, err)
                if number <= 0:
                    raise err(f"must be a positive number of megabytes, got {value!r}.")
                values[field_name] = number
        values["extra"] = data
        return cls(**values)

    def to_mapping(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "ArgumentVector": list(self.argument_vector),
            "Target": self.target,
            "EnvironmentVariables": dict(self.environment_variables) or None,
            "Framework": self.framework,
            "CondaDependenciesFile": self.conda_dependencies_file,
            "SparkDependenciesFile": self.spark_dependencies_file,
            "PrepareEnvironment": self.prepare_environment,
            "TrackedRun": self.tracked_run,
        }
        if not self.use_sampling:
            doc["UseSampling"] = False
        if self.data_source_settings:
            doc["DataSourceSettings"] = dict(self.data_source_settings)
        if self.data_source_substitutions:
            doc["DataSourceSubstitutions"] = dict(self.data_source_substitutions)
        if self.description is not None:
            doc["Description"] = self.description
        if self.max_snapshot_mb != 25.0:
            doc["MaxSnapshotSizeMB"] = self.max_snapshot_mb
        if self.max_output_file_mb != 512.0:
            doc["MaxOutputFileSizeMB"] = self.max_output_file_mb
        doc.update(self.extra)
        return doc

    def to_text(self) -> str:
        return dump_json(self.to_mapping()) if self.source_format == "json" else dump_yaml(self.to_mapping())


# --- the project -------------------------------------------------------------------------------------

LOCAL_COMPUTE_TEMPLATE = """\
# The user's own Python (Workbench's "local" target). pythonLocation: the interpreter to run;
# leave it out to use the interpreter of the kernel or CLI that submits.
type: "local"
nativeSharedDirectory: "~/.azureml/share/"
"""

DOCKER_COMPUTE_TEMPLATE = """\
# The local Docker engine. The run's environment is built from conda_dependencies.yml over
# baseDockerImage, once, and cached by the hash of both.
type: "docker"
baseDockerImage: "{image}"
sharedVolumes: false
nativeSharedDirectory: "~/.azureml/share/"
"""

RUNCONFIG_TEMPLATE = """\
# Program + arguments when none are given (when you submit a script, it and its arguments are used).
ArgumentVector:
  - "$file"
Target: "{target}"
EnvironmentVariables:
  "EXAMPLE_ENV_VAR": "Example Value"
Framework: "Python"                     # "Python" or "PySpark"
CondaDependenciesFile: "aml_config/conda_dependencies.yml"
SparkDependenciesFile: "aml_config/spark_dependencies.yml"
PrepareEnvironment: true                # build the environment as part of the run when it is missing
TrackedRun: true
"""

CONDA_TEMPLATE = """\
# The run environment for managed targets (docker, remotedocker, cluster); not used by "local".
# The environment is built once and reused while this file is unchanged.
name: project_environment
dependencies:
  - python=3.11
  # - pip:
  #   - requests
"""

SPARK_TEMPLATE = """\
# Spark settings for runs with Framework: PySpark.
configuration:
  "spark.app.name": "amlexec"
repositories: []
packages: []
"""


@dataclass(frozen=True)
class Project:
    """A folder holding aml_config/ (or, for a first run, the current folder with built-in defaults)."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_dir(self) -> Path:
        return self.root / "aml_config"

    @classmethod
    def find(cls, start: Path) -> Project:
        """Nearest folder at or above `start` holding aml_config/; else `start` itself."""
        start = Path(start).resolve()
        for folder in (start, *start.parents):
            if (folder / "aml_config").is_dir():
                return cls(folder)
        return cls(start)

    # --- reading --------------------------------------------------------------------------------

    def _builtin_target(self, name: str) -> ComputeTarget:
        if name == "local":
            return ComputeTarget(name="local", type=TargetType.LOCAL)
        return ComputeTarget(name="docker", type=TargetType.DOCKER, base_docker_image=default_base_image())

    def _builtin_run_configuration(self, name: str) -> RunConfiguration:
        return RunConfiguration(name=name, target=name, framework="Python", prepare_environment=True)

    def targets(self) -> list[ComputeTarget]:
        found = {p.stem: ComputeTarget.load(p) for p in sorted(self.config_dir.glob("*.compute"))}
        for name in BUILTIN_TARGETS:
            found.setdefault(name, self._builtin_target(name))
        return sorted(found.values(), key=lambda t: t.name)

    def target_names(self) -> list[str]:
        names = {p.stem for p in self.config_dir.glob("*.compute")} | set(BUILTIN_TARGETS)
        return sorted(names)

    def target(self, name: str) -> ComputeTarget:
        path = self.config_dir / f"{name}.compute"
        if path.is_file():
            return ComputeTarget.load(path)
        if name in BUILTIN_TARGETS:
            return self._builtin_target(name)
        raise TargetNotFoundError(name, self.target_names(), self.root)

    def run_configuration_names(self) -> list[str]:
        names = {p.stem for p in self.config_dir.glob("*.runconfig")} | set(BUILTIN_TARGETS)
        return sorted(names)

    def run_configurations(self) -> list[RunConfiguration]:
        return [self.run_configuration(n, check_target=False) for n in self.run_configuration_names()]

    def run_configuration(self, name: str, *, check_target: bool = True) -> RunConfiguration:
        path = self.config_dir / f"{name}.runconfig"
        if path.is_file():
            rc = RunConfiguration.load(path)
        elif name in BUILTIN_TARGETS:
            rc = self._builtin_run_configuration(name)
        else:
            raise TargetNotFoundError(
                name, self.run_configuration_names(), self.root, kind="run configuration"
            )
        if check_target:
            self.target(rc.target)
        return rc

    def read_dependencies(self, relative: str, *, key: str, runconfig: str) -> Mapping[str, Any] | None:
        """A parsed dependency file, None when a default-named file is absent."""
        path = self.root / relative
        if not path.is_file():
            if relative in (DEFAULT_CONDA_FILE, DEFAULT_SPARK_FILE):
                return None
            raise ConfigError(
                f"points at {relative}, which does not exist in {self.root}. Create it or fix the path.",
                file=self.config_dir / f"{runconfig}.runconfig",
                key=key,
            )
        data, _lines = load_mapping(path, what="dependencies")
        return data

    # --- writing --------------------------------------------------------------------------------

    def initialize(self) -> list[Path]:
        """Create aml_config/ with local + docker pairs and both dependency files; never overwrites."""
        files = {
            "local.compute": LOCAL_COMPUTE_TEMPLATE,
            "local.runconfig": RUNCONFIG_TEMPLATE.format(target="local"),
            "docker.compute": DOCKER_COMPUTE_TEMPLATE.format(image=default_base_image()),
            "docker.runconfig": RUNCONFIG_TEMPLATE.format(target="docker"),
            "conda_dependencies.yml": CONDA_TEMPLATE,
            "spark_dependencies.yml": SPARK_TEMPLATE,
        }
        created = []
        for name, text in files.items():
            path = self.config_dir / name
            if not path.exists():
                write_atomic(path, text)
                created.append(path)
        return created

    def write_target(self, target: ComputeTarget) -> Path:
        _check_name(target.name, "compute target")
        self.initialize()
        path = self.config_dir / f"{target.name}.compute"
        write_atomic(path, target.to_yaml())
        return path

    def write_run_configuration(self, rc: RunConfiguration) -> Path:
        _check_name(rc.name, "run configuration")
        self.initialize()
        path = self.config_dir / f"{rc.name}.runconfig"
        write_atomic(path, rc.to_text())
        return path

    def attach_target(
        self,
        name: str,
        type: str | TargetType,
        *,
        address: str | None = None,
        username: str | None = None,
        key_file: str | None = None,
        password_env: str | None = None,
        base_docker_image: str | None = None,
        python_location: str | None = None,
        force: bool = False,
        **settings: Any,
    ) -> tuple[ComputeTarget, RunConfiguration]:
        """Write a `<name>.compute` + `<name>.runconfig` pair, like `az ml computetarget attach`."""
        _check_name(name, "compute target")
        if (self.config_dir / f"{name}.compute").exists() and not force:
            raise ConfigError(
                f"A compute target '{name}' already exists in {self.config_dir}. Detach it first, or "
                f"pass --force to replace it."
            )
        doc: dict[str, object] = {"type": str(type.value if isinstance(type, TargetType) else type)}
        if address:
            doc["address"] = address
        for key, value in (
            ("username", username),
            ("privateKeyFile", key_file),
            ("passwordEnv", password_env),
            ("baseDockerImage", base_docker_image),
            ("pythonLocation", python_location),
        ):
            if value is not None:
                doc[key] = value
        by_field = {field_name: key for key, (field_name, _p) in _COMPUTE_KEYS.items()}
        for field_name, value in settings.items():
            if value is None:
                continue
            if field_name not in by_field:
                raise ConfigError(
                    f"Unknown target setting '{field_name}'. Known: {', '.join(sorted(by_field))}."
                )
            doc[by_field[field_name]] = list(value) if isinstance(value, tuple) else value
        target = ComputeTarget.from_mapping(name, doc)
        if target.type in (TargetType.DOCKER, TargetType.REMOTE_DOCKER) and target.base_docker_image is None:
            target = replace(target, base_docker_image=default_base_image())
        remote = target.type in (TargetType.REMOTE_DOCKER, TargetType.REMOTE, TargetType.CLUSTER)
        if remote and not (target.address and target.username):
            raise ConfigError(
                f"A '{target.type}' target needs --address HOST[:PORT] and --username USER.",
                key="address",
            )
        if target.type is TargetType.REMOTE:
            target = replace(target, user_managed_environment=True)
        if target.type is TargetType.CLUSTER and target.yarn_deploy_mode is None:
            target = replace(target, yarn_deploy_mode="cluster")
        rc = RunConfiguration(
            name=name,
            target=name,
            framework="PySpark" if target.type is TargetType.CLUSTER else "Python",
            prepare_environment=True,
        )
        self.write_target(target)
        self.write_run_configuration(rc)
        return target, rc

    def detach_target(self, name: str) -> list[Path]:
        """Remove a target and the run configurations that use it; returns the removed files."""
        path = self.config_dir / f"{name}.compute"
        if not path.is_file():
            raise TargetNotFoundError(name, [p.stem for p in self.config_dir.glob("*.compute")], self.root)
        removed = [path]
        for rc_path in sorted(self.config_dir.glob("*.runconfig")):
            try:
                uses = RunConfiguration.load(rc_path).target == name
            except ConfigError:
                uses = False
            if uses:
                removed.append(rc_path)
        for p in removed:
            p.unlink()
        return removed

    def create_run_configuration(self, name: str, target: str, **fields_: Any) -> RunConfiguration:
        self.target(target)
        if (self.config_dir / f"{name}.runconfig").exists() and not fields_.pop("force", False):
            raise ConfigError(
                f"A run configuration '{name}' already exists in {self.config_dir}; pass --force to replace it."
            )
        fields_.pop("force", None)
        fields_.setdefault("framework", "Python")
        rc = RunConfiguration(name=name, target=target, **fields_)
        self.write_run_configuration(rc)
        return rc


def _check_name(name: str, what: str) -> None:
    if not TARGET_NAME.match(name):
        raise ConfigError(
            f"'{name}' cannot name a {what}: use letters, digits, '_', '-' or '.', starting with a letter or digit."
        )
