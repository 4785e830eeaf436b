"""A Workbench project folder: finding it, and reading/writing the files in aml_config/.

Formats follow ../shared/notes/workbench-formats.md: `<name>.compute` (flat YAML, camelCase keys),
`<name>.runconfig` (YAML, or the older JSON form, PascalCase keys), conda_dependencies.yml and
spark_dependencies.yml. What Workbench wrote loads unchanged and is written back with its own
spelling (aliases, nulls, legacy keys, unknown keys); what we write new is in the style of
`az ml computetarget attach` (flat, alphabetical). Every write is atomic.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from .config_files import dump_json, dump_yaml, load_mapping, write_atomic
from .errors import ConfigError, TargetNotFoundError

log = logging.getLogger(__name__)

TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_CONDA_FILE = "aml_config/conda_dependencies.yml"
DEFAULT_SPARK_FILE = "aml_config/spark_dependencies.yml"
FRAMEWORKS = ("Python", "PySpark")
YARN_DEPLOY_MODES = ("cluster", "client")
BUILTIN_TARGETS = ("local", "docker")
DEFAULT_BASE_IMAGE = "python:3.11-slim"


def default_base_image() -> str:
    """The base image written into new docker targets (override with AMLEXEC_DEFAULT_BASE_IMAGE)."""
    return os.environ.get("AMLEXEC_DEFAULT_BASE_IMAGE") or DEFAULT_BASE_IMAGE


class TargetType(str, Enum):
    LOCAL = "local"
    DOCKER = "docker"  # also read from `localdocker`
    REMOTE_DOCKER = "remotedocker"
    REMOTE = "remote"
    CLUSTER = "cluster"

    def __str__(self) -> str:
        return self.value


# Spellings Workbench used for the same type; the file's spelling is kept and written back.
_TYPE_ALIASES = {"localdocker": TargetType.DOCKER, "virtualmachine": TargetType.REMOTE_DOCKER}
TARGET_TYPE_NAMES = tuple(t.value for t in TargetType) + tuple(_TYPE_ALIASES)
MANAGED_TYPES = (TargetType.DOCKER, TargetType.REMOTE_DOCKER, TargetType.CLUSTER)
REMOTE_TYPES = (TargetType.REMOTE_DOCKER, TargetType.REMOTE, TargetType.CLUSTER)

ErrorFactory = Callable[[str], ConfigError]
Parser = Callable[[object, ErrorFactory], object]


# --- value checkers: each returns the typed value or raises ConfigError naming file, key, value -------


def _error_factory(path: Path | None, key: str, lines: Mapping[str, int]) -> ErrorFactory:
    def error(message: str) -> ConfigError:
        return ConfigError(message, file=path, key=key, line=lines.get(key))

    return error


def _as_bool(value: object, err: ErrorFactory) -> bool:
    if isinstance(value, bool):
        return value
    # YAML 1.1 spellings, in case a file quoted them
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.strip().lower() in ("true", "yes", "on")
    raise err(f"bad value {value!r}; allowed: true or false.")


def _as_str(value: object, err: ErrorFactory) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        if text.strip():
            return text
    raise err(f"bad value {value!r}; allowed: a non-empty text value.")


def _as_positive_float(value: object, err: ErrorFactory, allowed: str = "a positive number") -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not number > 0 or number != number or number == float("inf"):
        raise err(f"bad value {value!r}; allowed: {allowed}.")
    return int(number) if number.is_integer() else number  # `cpus: 2` is written back as 2


def _as_cpus(value: object, err: ErrorFactory) -> float:
    return _as_positive_float(value, err, "a positive number of CPUs such as 2 or 0.5")


def _as_port(value: object, err: ErrorFactory) -> int:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise err(f"bad value {value!r}; allowed: a TCP port number from 1 to 65535.")
    return int(text)


_SIZE = re.compile(r"^\d+(\.\d+)?\s*([bkmg]b?)?$", re.IGNORECASE)


def _as_size(value: object, err: ErrorFactory) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not _SIZE.match(text):
        raise err(
            f"bad value {value!r}; allowed: a size such as 512m or 4g (b, k, m, g), or a number of bytes."
        )
    return text


_GPUS = re.compile(r"^(all|\d+|[A-Za-z0-9_-]+(\s*,\s*[A-Za-z0-9_-]+)*)$")


def _as_gpus(value: object, err: ErrorFactory) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not _GPUS.match(text):
        raise err(f"bad value {value!r}; allowed: all, a number of GPUs (2) or device ids (0,1).")
    return text


def _as_yarn_mode(value: object, err: ErrorFactory) -> str:
    text = _as_str(value, err).strip()
    if text.lower() not in YARN_DEPLOY_MODES:
        raise err(f"bad value {value!r}; allowed: {' or '.join(YARN_DEPLOY_MODES)}.")
    return text.lower()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _as_env_name(value: object, err: ErrorFactory) -> str:
    text = _as_str(value, err).strip()
    if not _ENV_NAME.match(text):
        raise err(f"bad value {value!r}; allowed: an environment variable name such as MY_PASSWORD.")
    return text


def _as_volumes(value: object, err: ErrorFactory) -> tuple[str, ...]:
    allowed = "a list of HOST_PATH_OR_VOLUME:/container/path[:ro|rw] strings"
    if not isinstance(value, (list, tuple)):
        raise err(f"bad value {value!r}; allowed: {allowed}.")
    volumes = []
    for item in value:
        parts = str(item).split(":") if isinstance(item, str) else []
        if not 2 <= len(parts) <= 3 or not parts[0] or not parts[1].startswith("/"):
            raise err(f"bad volume {item!r}; allowed: {allowed}.")
        volumes.append(str(item))
    return tuple(volumes)


def _as_str_list(value: object, err: ErrorFactory) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise err(f"bad item {item!r} in {value!r}; allowed: a list of text or numbers.")
            items.append(str(item))
        return tuple(items)
    raise err(f'bad value {value!r}; allowed: a list such as ["$file", "--lr", 0.1].')


# --- reading files ----------------------------------------------------------------------------------


def _json_key_lines(text: str, keys: Iterable[str]) -> dict[str, int]:
    """Line of each top-level key of a JSON object (first occurrence), for error messages."""
    lines = {}
    for key in keys:
        match = re.search(re.escape(json.dumps(key)) + r"\s*:", text)
        if match:
            lines[key] = text.count("\n", 0, match.start()) + 1
    return lines


def _load_config(path: Path, what: str) -> tuple[dict[str, Any], dict[str, int], str]:
    """(mapping, line of each key, "yaml" | "json"). JSON is parsed as JSON: its errors name the line,
    and a tab-indented JSON file (not valid YAML) still loads."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found.", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (bad byte at offset {exc.start}). Save this {what} file as UTF-8.", file=path
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file: {exc.strerror}.", file=path) from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            try:  # a YAML flow mapping such as {Target: local} is fine too
                yaml_data, lines = load_mapping(path, what=what)
            except ConfigError:
                raise ConfigError(
                    f"not valid JSON ({exc.msg}, column {exc.colno}). Fix the syntax of this {what} file.",
                    file=path,
                    line=exc.lineno,
                ) from exc
            return yaml_data, lines, "yaml"
        if not isinstance(data, dict):  # pragma: no cover - a "{"-text is an object or an error
            raise ConfigError(f"a {what} file must hold a JSON object.", file=path, line=1)
        return data, _json_key_lines(text, data), "json"
    data, lines = load_mapping(path, what=what)
    return data, lines, "yaml"


def _same(raw: object, value: object, parse: Parser, default: object) -> bool:
    """Does a raw file value still mean `value`? Then it is written back with its own spelling."""
    if raw is None:
        return value == default
    try:
        return parse(raw, lambda m: ConfigError(m)) == value
    except ConfigError:
        return False


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    return value


def _render(doc: Mapping[str, object], form: str, *, what: str, sort_keys: bool = True) -> str:
    """YAML or JSON text; a value that cannot be written is a ConfigError naming its key."""
    dump: Callable[[Mapping[str, Any]], str] = (
        dump_json if form == "json" else (lambda d: dump_yaml(d, sort_keys=sort_keys))
    )
    try:
        return dump(doc)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        for key, value in doc.items():
            try:
                dump({key: value})
            except (yaml.YAMLError, TypeError, ValueError):
                raise ConfigError(
                    f"cannot write {value!r} into a {what} file: use text, numbers, booleans, lists "
                    f"or mappings.",
                    key=key,
                ) from exc
        raise ConfigError(f"cannot write this {what}: {exc}") from exc


# --- compute targets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """One key of a config file: its spelling, the dataclass field, and how to read the value."""

    key: str
    field: str
    parse: Parser


_COMPUTE_KEYS: tuple[_Key, ...] = (
    # Workbench's keys
    _Key("username", "username", _as_str),
    _Key("baseDockerImage", "base_docker_image", _as_str),
    _Key("sharedVolumes", "shared_volumes", _as_bool),
    _Key("nvidiaDocker", "nvidia_docker", _as_bool),
    _Key("nativeSharedDirectory", "native_shared_directory", _as_str),
    _Key("pythonLocation", "python_location", _as_str),
    _Key("sparkSubmitLocation", "spark_submit_location", _as_str),
    _Key("userManagedEnvironment", "user_managed_environment", _as_bool),
    _Key("yarnDeployMode", "yarn_deploy_mode", _as_yarn_mode),
    # ours
    _Key("port", "port", _as_port),
    _Key("passwordEnv", "password_env", _as_env_name),
    _Key("passwordKeyring", "password_keyring", _as_str),
    _Key("privateKeyFile", "key_file", _as_str),
    _Key("networkMode", "network_mode", _as_str),
    _Key("buildNetworkMode", "build_network_mode", _as_str),
    _Key("cpus", "cpus", _as_cpus),
    _Key("memory", "memory", _as_size),
    _Key("shmSize", "shm_size", _as_size),
    _Key("volumes", "volumes", _as_volumes),
    _Key("gpus", "gpus", _as_gpus),
    _Key("keepContainer", "keep_container", _as_bool),
    _Key("forwardPipConfig", "forward_pip_config", _as_bool),
    _Key("sparkMaster", "spark_master", _as_str),
)
# file key of every field attach_target(**settings) accepts
TARGET_SETTINGS: Mapping[str, str] = {k.field: k.key for k in _COMPUTE_KEYS}

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)$")


def _split_address(value: object, err: ErrorFactory) -> tuple[str, int | None]:
    """`host`, `host:port` or `[v6]:port` -> (host, port)."""
    text = _as_str(value, err).strip()
    match = _HOST_PORT.match(text)
    if match is None:
        return text.strip("[]") if text.startswith("[") else text, None
    return match["v6"] or match["host"], _as_port(match["port"], err)


def _join_address(host: str, port: int | None) -> str:
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    # the mapping as read: an unchanged value is written back in the file's own spelling
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path) -> ComputeTarget:
        """Parse a .compute file; ConfigError naming file, line, key and value on bad input."""
        data, lines, _form = _load_config(path, "compute target")
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
        """Build from a .compute mapping; absent or null keys take Workbench's defaults."""
        lines = lines or {}
        raw = {str(k): v for k, v in data.items()}
        rest = dict(raw)
        err = _error_factory(path, "type", lines)
        raw_type = rest.pop("type", None)
        if raw_type is None and ("cluster" in rest or "native" in rest):
            # May-Jun 2017 files said `cluster: True` / `native: True` instead of a type
            legacy_cluster = _as_bool(rest.pop("cluster", False), _error_factory(path, "cluster", lines))
            legacy_native = _as_bool(rest.pop("native", False), _error_factory(path, "native", lines))
            raw_type = "cluster" if legacy_cluster else "local" if legacy_native else "docker"
        if raw_type is None:
            raise err(f"missing. Say what this target is: type: one of {', '.join(TARGET_TYPE_NAMES)}.")
        type_text = _as_str(raw_type, err).strip()
        canonical = _TYPE_ALIASES.get(type_text.lower())
        if canonical is None:
            try:
                canonical = TargetType(type_text.lower())
            except ValueError:
                raise err(
                    f"unknown target type {type_text!r}; allowed: {', '.join(TARGET_TYPE_NAMES)}."
                ) from None
        values: dict[str, Any] = {
            "name": name,
            "type": canonical,
            "type_alias": type_text if type_text != canonical.value else None,
            "raw": raw,
        }
        address = rest.pop("address", None)
        if address is not None:
            values["address"], port = _split_address(address, _error_factory(path, "address", lines))
            if port is not None:
                values["port"] = port
        known = {k.key: k for k in _COMPUTE_KEYS}
        extra: dict[str, object] = {}
        for key, value in rest.items():
            spec = known.get(key)
            if spec is None:
                extra[key] = value
            elif value is not None:  # null takes the default
                values[spec.field] = spec.parse(value, _error_factory(path, key, lines))
        values["extra"] = extra
        return cls(**values)

    def to_mapping(self) -> dict[str, object]:
        """The file's keys: those read (in their own spelling when unchanged), plus non-defaults."""
        raw = self.raw
        doc: dict[str, object] = {"type": self.type_alias or self.type.value}
        if self.address is not None:
            with_port = self.port if "port" not in raw else None
            raw_address = raw.get("address")
            if raw_address is not None and _same(
                raw_address, (self.address, with_port), _split_address, None
            ):
                doc["address"] = raw_address
            else:
                doc["address"] = _join_address(self.address, with_port)
        defaults = _DEFAULT_TARGET
        for spec in _COMPUTE_KEYS:
            value = getattr(self, spec.field)
            default = getattr(defaults, spec.field)
            if spec.key == "port" and "port" not in raw and self.address is not None:
                continue  # written as host:port
            if spec.key in raw:
                raw_value = raw[spec.key]
                doc[spec.key] = raw_value if _same(raw_value, value, spec.parse, default) else _plain(value)
            elif value != default:
                doc[spec.key] = _plain(value)
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc

    def to_yaml(self) -> str:
        """Workbench's format: flat mapping, keys sorted alphabetically (as `attach` wrote them)."""
        return _render(self.to_mapping(), "yaml", what="compute target")

    def validated(self) -> ComputeTarget:
        """This target as it would load back from its file: ConfigError naming a bad value."""
        return replace(ComputeTarget.from_mapping(self.name, self.to_mapping()), raw=self.raw)

    @property
    def workbench_secret(self) -> str | None:
        """A `password:` value from a Workbench file (a cloud secret reference or a plain literal)."""
        value = self.extra.get("password")
        return str(value) if value is not None else None

    @property
    def is_managed(self) -> bool:
        """Workbench builds this target's environment from conda_dependencies.yml."""
        return self.type in MANAGED_TYPES and not self.user_managed_environment


_DEFAULT_TARGET = ComputeTarget(name="", type=TargetType.LOCAL)


# --- run configurations ------------------------------------------------------------------------------


def _as_framework(value: object, err: ErrorFactory) -> str:
    text = _as_str(value, err).strip()
    for framework in FRAMEWORKS:
        if framework.lower() == text.lower():
            return framework
    raise err(f"unknown framework {text!r}; allowed: {' or '.join(FRAMEWORKS)}.")


def _env_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_environment(value: object, err: ErrorFactory) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise err(f"bad value {value!r}; allowed: a mapping of NAME: value.")
    env = {}
    for name, item in value.items():
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise err(f"bad value {item!r} for {name}; allowed: text or a number.")
        env[str(name)] = _env_value(item)
    return env


def _as_mapping(value: object, err: ErrorFactory) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise err(f"bad value {value!r}; allowed: a mapping.")
    return {str(k): v for k, v in value.items()}


def _as_substitutions(value: object, err: ErrorFactory) -> dict[str, str]:
    mapping = _as_mapping(value, err)
    for source, target in mapping.items():
        if not isinstance(target, str):
            raise err(f"bad value {target!r} for {source}; allowed: a mapping of a.dsource: b.dsource.")
    return {k: str(v) for k, v in mapping.items()}


def _as_megabytes(value: object, err: ErrorFactory) -> float:
    return _as_positive_float(value, err, "a positive number of megabytes")


@dataclass(frozen=True)
class _RcKey:
    keys: tuple[str, ...]  # spellings, the current one first (legacy JSON files used the others)
    field: str
    parse: Parser
    written_new: bool = False  # always written into new files (as `attach` did)


_RC_KEYS: tuple[_RcKey, ...] = (
    _RcKey(("ArgumentVector",), "argument_vector", _as_str_list, True),
    _RcKey(("Target",), "target", _as_str, True),
    _RcKey(("EnvironmentVariables",), "environment_variables", _as_environment, True),
    _RcKey(("Framework",), "framework", _as_framework, True),
    _RcKey(("CondaDependenciesFile", "CondaFile"), "conda_dependencies_file", _as_str, True),
    _RcKey(("SparkDependenciesFile",), "spark_dependencies_file", _as_str, True),
    _RcKey(("PrepareEnvironment",), "prepare_environment", _as_bool, True),
    _RcKey(("TrackedRun",), "tracked_run", _as_bool, True),
    _RcKey(("UseSampling",), "use_sampling", _as_bool),
    _RcKey(("DataSourceSettings",), "data_source_settings", _as_mapping),
    _RcKey(("DataSourceSubstitutions",), "data_source_substitutions", _as_substitutions),
    _RcKey(("Description",), "description", _as_str),
    _RcKey(("ManagedEnvironment",), "managed_environment", _as_bool),
    _RcKey(("MaxSnapshotSizeMB",), "max_snapshot_mb", _as_megabytes),
    _RcKey(("MaxOutputFileSizeMB",), "max_output_file_mb", _as_megabytes),
)
_SDK_KEYS = ("script", "target", "framework", "arguments", "environment", "history")


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
    # legacy JSON `ManagedEnvironment` (None: not said; false = the user manages the environment)
    managed_environment: bool | None = None
    # the mapping as read: an unchanged value is written back in the file's own spelling
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path) -> RunConfiguration:
        """Parse a .runconfig (YAML or legacy JSON); ConfigError naming file, line, key and value."""
        data, lines, form = _load_config(path, "run configuration")
        return cls.from_mapping(path.stem, data, path=path, lines=lines, source_format=form)

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
        """Build from a .runconfig mapping; absent or null keys take Workbench's defaults."""
        lines = lines or {}
        raw = {str(k): v for k, v in data.items()}
        rest = dict(raw)
        values: dict[str, Any] = {"name": name, "source_format": source_format, "raw": raw}
        for spec in _RC_KEYS:
            found = [(k, rest.pop(k)) for k in spec.keys if k in rest]
            for key, value in found:  # the current spelling wins over a legacy one
                if value is not None:
                    values[spec.field] = spec.parse(value, _error_factory(path, key, lines))
                    break
        if "target" not in values:
            hint = ""
            if any(k in raw for k in _SDK_KEYS):
                hint = (
                    " This looks like an azureml-sdk (2018+) run configuration (camelCase keys), "
                    "not a Workbench one."
                )
            raise _error_factory(path, "Target", lines)(
                "missing. Name the compute target (a .compute file in aml_config/) this runs on, "
                f"e.g. Target: local.{hint}"
            )
        values["extra"] = rest
        return cls(**values)

    def to_mapping(self) -> dict[str, object]:
        """The file's keys: those read (own spelling when unchanged), plus non-defaults; a new
        configuration gets the keys `attach` wrote."""
        raw = self.raw
        defaults = _DEFAULT_RUNCONFIG
        doc: dict[str, object] = {}
        for spec in _RC_KEYS:
            value = getattr(self, spec.field)
            default = getattr(defaults, spec.field)
            present = [k for k in spec.keys if k in raw]
            if present:
                for key in present:
                    same = _same(raw[key], value, spec.parse, default)
                    doc[key] = raw[key] if same else self._file_value(spec, value)
            elif spec.written_new and not raw or value != default:
                doc[spec.keys[0]] = self._file_value(spec, value)
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        if raw:  # keep the file's key order (JSON is written in it; YAML is sorted anyway)
            order = {k: i for i, k in enumerate(raw)}
            doc = dict(sorted(doc.items(), key=lambda kv: order.get(kv[0], len(order))))
        return doc

    @staticmethod
    def _file_value(spec: _RcKey, value: object) -> object:
        if spec.field == "environment_variables":
            return dict(value) or None  # type: ignore[call-overload]
        return _plain(value)

    def to_text(self) -> str:
        """YAML in Workbench's PascalCase form, or JSON when the file was JSON (Sept-2017 builds)."""
        return _render(self.to_mapping(), self.source_format, what="run configuration")

    def validated(self) -> RunConfiguration:
        """This configuration as it would load back from its file: ConfigError naming a bad value."""
        again = RunConfiguration.from_mapping(self.name, self.to_mapping(), source_format=self.source_format)
        return replace(again, raw=self.raw)


_DEFAULT_RUNCONFIG = RunConfiguration(name="", target="")
RUNCONFIG_FIELDS = tuple(
    f.name for f in fields(RunConfiguration) if f.name not in ("name", "target", "raw", "source_format")
)


# --- project identity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectSettings:
    """`.azureml/project.json` of a Workbench project: its id (GUID) and cloud scope, if any."""

    id: str | None = None  # `Id`
    scope: str | None = None  # `Scope`: /subscriptions/.../projects/<name>
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def project_name(self) -> str | None:
        """The Workbench project name, the last part of the scope."""
        if self.scope and "/projects/" in self.scope:
            return self.scope.rstrip("/").rsplit("/", 1)[-1]
        return None


# --- templates (our words, Workbench's layout) --------------------------------------------------------

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


def _parse_template(text: str) -> dict[str, object]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


class _RunConfigTargetMissing(TargetNotFoundError):
    """A run configuration names a compute target that has no file (and is not built in)."""

    def __init__(self, rc: RunConfiguration, path: Path | None, known: Sequence[str], project: Path) -> None:
        where = path if path is not None else f"built-in run configuration '{rc.name}'"
        hint = ", ".join(sorted(known))
        ConfigError.__init__(
            self,
            f"Run configuration '{rc.name}' ({where}, key 'Target') names compute target '{rc.target}', "
            f"which has no file in {project / 'aml_config'}. Known targets: {hint}. Attach it "
            f"(%aml_target attach {rc.target} ...) or fix Target.",
            file=path,
            key="Target",
        )
        self.name = rc.target
        self.known = tuple(known)


# --- the project -------------------------------------------------------------------------------------


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
        start = Path(start).expanduser().resolve()
        if start.is_file():
            start = start.parent
        for folder in (start, *start.parents):
            if (folder / "aml_config").is_dir():
                return cls(folder)
        return cls(start)

    @property
    def settings(self) -> ProjectSettings:
        """The Workbench project identity from .azureml/project.json (empty when there is none)."""
        path = self.root / ".azureml" / "project.json"
        if not path.is_file():
            return ProjectSettings()
        data, lines, _form = _load_config(path, "project settings")
        rest = dict(data)
        identity = rest.pop("Id", None)
        scope = rest.pop("Scope", None)
        return ProjectSettings(
            id=None if identity is None else _as_str(identity, _error_factory(path, "Id", lines)),
            scope=None if scope is None else _as_str(scope, _error_factory(path, "Scope", lines)),
            extra=rest,
        )

    # --- reading --------------------------------------------------------------------------------

    def _builtin_target(self, name: str) -> ComputeTarget:
        """What initialize() would write, without writing it (zero set-up for a first run)."""
        return ComputeTarget.from_mapping(name, _parse_template(_template_files()[f"{name}.compute"]))

    def _builtin_run_configuration(self, name: str) -> RunConfiguration:
        rc = RunConfiguration.from_mapping(name, _parse_template(_template_files()[f"{name}.runconfig"]))
        return replace(rc, raw={})  # built in, not read from a file

    def _files(self, suffix: str) -> dict[str, Path]:
        if not self.config_dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.config_dir.glob(f"*{suffix}")) if p.is_file()}

    def target_names(self) -> list[str]:
        return sorted(set(self._files(".compute")) | set(BUILTIN_TARGETS))

    def targets(self) -> list[ComputeTarget]:
        """Every target: the .compute files, plus built-in local/docker when they have no file."""
        return [self.target(name) for name in self.target_names()]

    def target(self, name: str) -> ComputeTarget:
        """The target `name`; TargetNotFoundError listing the known ones."""
        path = self.config_dir / f"{name}.compute"
        if TARGET_NAME.match(name) and path.is_file():
            return ComputeTarget.load(path)
        if name in BUILTIN_TARGETS:
            return self._builtin_target(name)
        raise TargetNotFoundError(name, self.target_names(), self.root)

    def run_configuration_names(self) -> list[str]:
        return sorted(set(self._files(".runconfig")) | set(BUILTIN_TARGETS))

    def run_configurations(self) -> list[RunConfiguration]:
        """Every run configuration (files + built-ins); their targets are not checked."""
        return [self.run_configuration(n, check_target=False) for n in self.run_configuration_names()]

    def run_configuration_path(self, name: str) -> Path:
        return self.config_dir / f"{name}.runconfig"

    def run_configuration(self, name: str, *, check_target: bool = True) -> RunConfiguration:
        """The run configuration `name`; TargetNotFoundError if it, or (check_target) its Target, is unknown."""
        path = self.run_configuration_path(name)
        from_file = TARGET_NAME.match(name) is not None and path.is_file()
        if from_file:
            rc = RunConfiguration.load(path)
        elif name in BUILTIN_TARGETS:
            rc = self._builtin_run_configuration(name)
        else:
            raise TargetNotFoundError(
                name, self.run_configuration_names(), self.root, kind="run configuration"
            )
        if check_target and rc.target not in self.target_names():
            raise _RunConfigTargetMissing(rc, path if from_file else None, self.target_names(), self.root)
        return rc

    def dependency_path(self, relative: str) -> Path:
        """A runconfig's dependency file path (project-relative, Windows separators accepted)."""
        return self.root / relative.replace("\\", "/")

    def _dependencies(
        self, rc: RunConfiguration, relative: str, key: str, default: str
    ) -> dict[str, Any] | None:
        path = self.dependency_path(relative)
        if not path.is_file():
            # A default implied by an absent/null key (built-ins, minimal files) means "nothing".
            said = any(rc.raw.get(k) is not None for spec in _RC_KEYS if key in spec.keys for k in spec.keys)
            if not said and relative == default:
                return None
            rc_path = self.run_configuration_path(rc.name)
            raise ConfigError(
                f"points at {relative}, which does not exist in {self.root}. Create it "
                f"(%aml_target init writes a template) or fix {key}.",
                file=rc_path if rc_path.is_file() else None,
                key=key,
                line=None,
            )
        data, _lines, _form = _load_config(path, "dependencies")
        return data

    def conda_dependencies(self, rc: RunConfiguration) -> dict[str, Any] | None:
        """conda_dependencies.yml of `rc`, parsed as is; None when a default-named file is absent."""
        return self._dependencies(rc, rc.conda_dependencies_file, "CondaDependenciesFile", DEFAULT_CONDA_FILE)

    def spark_dependencies(self, rc: RunConfiguration) -> dict[str, Any] | None:
        """spark_dependencies.yml of `rc`, parsed as is; None when a default-named file is absent."""
        return self._dependencies(rc, rc.spark_dependencies_file, "SparkDependenciesFile", DEFAULT_SPARK_FILE)

    # --- writing --------------------------------------------------------------------------------

    def initialize(self) -> list[Path]:
        """Create aml_config/ with local + docker pairs and both dependency files; never overwrites."""
        created = []
        for name, text in _template_files().items():
            path = self.config_dir / name
            if not path.exists():
                write_atomic(path, text)
                created.append(path)
        if created:
            log.info("initialized %s: %s", self.config_dir, ", ".join(p.name for p in created))
        return created

    def write_target(self, target: ComputeTarget) -> Path:
        """Write `<name>.compute` atomically (initializing aml_config/ first)."""
        _check_name(target.name, "compute target")
        text = target.validated().to_yaml()
        self.initialize()
        path = self.config_dir / f"{target.name}.compute"
        write_atomic(path, text)
        return path

    def write_run_configuration(self, rc: RunConfiguration) -> Path:
        """Write `<name>.runconfig` atomically, YAML or JSON as it was read."""
        _check_name(rc.name, "run configuration")
        text = rc.validated().to_text()
        self.initialize()
        path = self.run_configuration_path(rc.name)
        write_atomic(path, text)
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
        compute_path = self.config_dir / f"{name}.compute"
        rc_path = self.run_configuration_path(name)
        if not force:
            for path, what in ((compute_path, "compute target"), (rc_path, "run configuration")):
                if path.exists():
                    raise ConfigError(
                        f"A {what} '{name}' already exists ({path}). Detach it first, or pass "
                        f"--force (force=True) to replace it."
                    )
        if "password" in settings:
            raise ConfigError(
                "Passwords are never written into aml_config/: pass password_env='VAR' (the environment "
                "variable holding it), a passwordKeyring entry, or key_file (an SSH key).",
                key="password",
            )
        doc: dict[str, object] = {"type": type.value if isinstance(type, TargetType) else type}
        for key, value in (
            ("address", address),
            ("username", username),
            ("privateKeyFile", key_file),
            ("passwordEnv", password_env),
            ("baseDockerImage", base_docker_image),
            ("pythonLocation", python_location),
        ):
            if value is not None:
                doc[key] = value
        for field_name, value in settings.items():
            if field_name not in TARGET_SETTINGS:
                raise ConfigError(
                    f"Unknown target setting '{field_name}'. Known: {', '.join(sorted(TARGET_SETTINGS))}."
                )
            if value is not None:
                doc[TARGET_SETTINGS[field_name]] = _plain(value)
        target = ComputeTarget.from_mapping(name, doc)
        if target.type in (TargetType.DOCKER, TargetType.REMOTE_DOCKER) and target.base_docker_image is None:
            target = replace(target, base_docker_image=default_base_image())
        if target.type in REMOTE_TYPES and not (target.address and target.username):
            raise ConfigError(
                f"A '{target.type}' target needs an address (--address HOST[:PORT]) and a user "
                f"(--username USER).",
                key="address",
            )
        if target.type is TargetType.REMOTE:
            target = replace(target, user_managed_environment=True)
        if target.type is TargetType.CLUSTER and target.yarn_deploy_mode is None:
            target = replace(target, yarn_deploy_mode="cluster")
        target = replace(target, raw={})  # a new file: attach's style
        rc = RunConfiguration(
            name=name,
            target=name,
            framework="PySpark" if target.type is TargetType.CLUSTER else "Python",
            prepare_environment=True,
        )
        rc_text = rc.validated().to_text()
        old_compute = compute_path.read_bytes() if compute_path.is_file() else None
        self.write_target(target)
        try:
            self.initialize()
            write_atomic(rc_path, rc_text)
        except BaseException:
            # never leave half a pair: put the old .compute back (or remove the new one)
            if old_compute is None:
                compute_path.unlink(missing_ok=True)
            else:
                write_atomic(compute_path, old_compute.decode("utf-8"))
            raise
        log.info("attached %s target %s", target.type, name)
        return target, rc

    def detach_target(self, name: str) -> list[Path]:
        """Remove a target and the run configurations that use it; returns the removed files."""
        path = self.config_dir / f"{name}.compute"
        if not (TARGET_NAME.match(name) and path.is_file()):
            raise TargetNotFoundError(name, sorted(self._files(".compute")), self.root)
        removed = [path]
        for rc_path in self._files(".runconfig").values():
            try:
                uses = RunConfiguration.load(rc_path).target == name
            except ConfigError as exc:
                log.warning("detach %s: skipped unreadable %s (%s)", name, rc_path, exc)
                uses = False
            if uses:
                removed.append(rc_path)
        for p in removed:
            p.unlink()
        log.info("detached %s: removed %s", name, ", ".join(p.name for p in removed))
        return removed

    def create_run_configuration(self, name: str, target: str, **fields_: Any) -> RunConfiguration:
        """Write a new `<name>.runconfig` for `target` (`az ml runconfiguration create`).

        fields_: RunConfiguration fields (framework defaults to Python); force=True replaces a file.
        """
        force = bool(fields_.pop("force", False))
        unknown = sorted(set(fields_) - set(RUNCONFIG_FIELDS))
        if unknown:
            raise ConfigError(
                f"Unknown run configuration field(s) {', '.join(unknown)}. Known: {', '.join(RUNCONFIG_FIELDS)}."
            )
        _check_name(name, "run configuration")
        self.target(target)  # TargetNotFoundError lists the known ones
        path = self.run_configuration_path(name)
        if path.exists() and not force:
            raise ConfigError(
                f"A run configuration '{name}' already exists ({path}); pass --force (force=True) to replace it."
            )
        fields_.setdefault("framework", "Python")
        for key in ("argument_vector",):
            if key in fields_:
                fields_[key] = tuple(fields_[key])
        if fields_.get("environment_variables") is None:
            fields_.pop("environment_variables", None)
        rc = RunConfiguration(name=name, target=target, **fields_).validated()
        self.write_run_configuration(rc)
        return rc


def _check_name(name: str, what: str) -> None:
    if not TARGET_NAME.match(name):
        raise ConfigError(
            f"{name!r} cannot name a {what}: use letters, digits, '_', '-' or '.', starting with a "
            f"letter or digit (it becomes a file name in aml_config/)."
        )
