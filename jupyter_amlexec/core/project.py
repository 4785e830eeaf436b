"""A Workbench project folder: finding it, and reading/writing the files in aml_config/.

Formats follow ../shared/notes/workbench-formats.md: `<name>.compute` (flat YAML, camelCase keys),
`<name>.runconfig` (YAML, or the older JSON form, PascalCase keys), conda_dependencies.yml and
spark_dependencies.yml. Unknown keys are kept so a round trip loses nothing. Writes are atomic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class TargetType(str, Enum):
    LOCAL = "local"
    DOCKER = "docker"                 # also read from `localdocker`
    REMOTE_DOCKER = "remotedocker"
    REMOTE = "remote"
    CLUSTER = "cluster"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ComputeTarget:
    """A `<name>.compute` file, parsed. Unknown keys stay in `extra` so a round trip loses nothing.

    Secrets are never held in plain text here: `password_env` names an environment variable,
    `password_keyring` a keyring entry; `key_file` is a path to a private key (never its content).
    """

    name: str
    type: TargetType
    type_alias: str | None = None               # "localdocker" when the file said so (written back as is)
    address: str | None = None                  # host, without port
    port: int | None = None                     # from "host:port" or `port:`
    username: str | None = None
    password_env: str | None = None             # key `passwordEnv`
    password_keyring: str | None = None         # key `passwordKeyring` ("service" or "service/user")
    key_file: str | None = None                 # key `privateKeyFile`
    base_docker_image: str | None = None        # `baseDockerImage`
    shared_volumes: bool = False                # `sharedVolumes`
    nvidia_docker: bool = False                 # `nvidiaDocker`
    native_shared_directory: str | None = None  # `nativeSharedDirectory`
    python_location: str | None = None          # `pythonLocation` (None: the current interpreter for local)
    spark_submit_location: str | None = None    # `sparkSubmitLocation`
    user_managed_environment: bool = False      # `userManagedEnvironment`
    yarn_deploy_mode: str | None = None         # `yarnDeployMode`
    # --- our settings beyond Workbench's (lower camelCase like Workbench's keys) ---
    network_mode: str | None = None             # `networkMode`: host | none | bridge | <name>; None = Docker's default
    build_network_mode: str | None = None       # `buildNetworkMode`: network for image builds; None = network_mode
    cpus: float | None = None                   # `cpus`
    memory: str | None = None                   # `memory` e.g. "4g"
    shm_size: str | None = None                 # `shmSize`
    volumes: tuple[str, ...] = ()               # `volumes`: ["/host:/container[:ro]", ...]
    gpus: str | None = None                     # `gpus`: "all" | "2" | "0,1" (with nvidiaDocker)
    keep_container: bool = False                # `keepContainer`: keep the container after the run (debugging)
    forward_pip_config: bool = True             # `forwardPipConfig`: pass host pip index/CA settings into builds
    spark_master: str | None = None             # `sparkMaster` for cluster targets
    extra: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ComputeTarget:
        """Parse a .compute file; ConfigError naming file, line and key on bad input."""
        raise NotImplementedError

    def to_yaml(self) -> str:
        """Workbench's format: flat mapping, keys sorted alphabetically (as `attach` wrote them)."""
        raise NotImplementedError


@dataclass(frozen=True)
class RunConfiguration:
    """A `<name>.runconfig` file, parsed, with Workbench defaults applied to absent/null keys."""

    name: str
    target: str
    argument_vector: tuple[str, ...] = ("$file",)
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    framework: str = "PySpark"                   # Workbench's default when absent; "Python" | "PySpark"
    conda_dependencies_file: str = "aml_config/conda_dependencies.yml"
    spark_dependencies_file: str = "aml_config/spark_dependencies.yml"
    prepare_environment: bool = True
    tracked_run: bool = True
    use_sampling: bool = True
    data_source_settings: Mapping[str, object] = field(default_factory=dict)
    data_source_substitutions: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    # --- ours ---
    max_snapshot_mb: float = 25.0                # `MaxSnapshotSizeMB`
    max_output_file_mb: float = 512.0            # `MaxOutputFileSizeMB`
    source_format: str = "yaml"                  # "yaml" | "json" (legacy); written back in the same form
    extra: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunConfiguration:
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError


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
        raise NotImplementedError
