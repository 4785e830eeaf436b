"""Compute targets: a `<name>.compute` file (flat YAML, camelCase keys) <-> a frozen ComputeTarget."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .files import _load_config, _plain, _render, _same
from .values import (
    ErrorFactory,
    Parser,
    _as_bool,
    _as_cpus,
    _as_env_name,
    _as_gpus,
    _as_port,
    _as_size,
    _as_str,
    _as_volumes,
    _as_yarn_mode,
    _error_factory,
    unknown_key_warnings,
)

log = logging.getLogger(__name__)

BUILTIN_TARGETS = ("local", "docker")


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
# Every key a .compute file may hold without a warning: ours, Workbench's (`password` is a cloud secret
# reference kept only to be written back; `cluster`/`native` are the May-Jun 2017 type flags), and the
# keys read by an executor's own settings (add them here when an executor reads a new key).
# Keys that executors read from `extra` with their own settings types (documented in the README).
EXECUTOR_KEYS = (
    "dockerHost",
    "amlexecRoot",
    "hadoopConfDir",
    "livyUrl",
    "livyFilesDir",
    "yarnLocation",
    "yarnResourceManager",
)
COMPUTE_KEY_NAMES: tuple[str, ...] = (
    "type",
    "address",
    "password",
    "cluster",
    "native",
    *(k.key for k in _COMPUTE_KEYS),
    *EXECUTOR_KEYS,
)

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


def _parse_type(
    rest: dict[str, object], path: Path | None, lines: Mapping[str, int]
) -> tuple[TargetType, str]:
    """Pop `type` (or the legacy `cluster:`/`native:` flags) -> (type, the file's spelling)."""
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
    return canonical, type_text


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
    # what is odd but not wrong in the file (unknown keys, with the closest known one); also logged
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def load(cls, path: Path, *, quiet: bool = False) -> ComputeTarget:
        """Parse a .compute file; ConfigError naming file, line, key and value on bad input.
        Warnings (unknown keys) are in `warnings`, and logged unless `quiet`."""
        data, lines, _form = _load_config(path, "compute target")
        return cls.from_mapping(path.stem, data, path=path, lines=lines, quiet=quiet)

    @classmethod
    def from_mapping(
        cls,
        name: str,
        data: Mapping[str, object],
        *,
        path: Path | None = None,
        lines: Mapping[str, int] | None = None,
        quiet: bool = False,
    ) -> ComputeTarget:
        """Build from a .compute mapping; absent or null keys take Workbench's defaults.

        An unknown key is kept in `extra` and named in `warnings` (with the closest known key),
        logged unless `quiet` (a copy being re-validated says nothing new).
        """
        lines = lines or {}
        raw = {str(k): v for k, v in data.items()}
        rest = dict(raw)
        canonical, type_text = _parse_type(rest, path, lines)
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
        values["warnings"] = unknown_key_warnings(extra, COMPUTE_KEY_NAMES, path)
        for warning in () if quiet else values["warnings"]:
            log.warning("%s", warning)
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
        again = ComputeTarget.from_mapping(self.name, self.to_mapping(), quiet=True)
        return replace(again, raw=self.raw, warnings=self.warnings)

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
