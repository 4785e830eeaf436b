"""The keys of a Docker `.compute` file that the Docker executor reads, as one typed, validated value.

`ComputeTarget` parses the common keys; this adds what only Docker means (the engine address) and
the cross-key rules, once, when the executor is made. A remote Docker engine is configuration over
the same code: `dockerHost` (tcp://, ssh://, unix://) or the address of a `remotedocker` target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...errors import ConfigError, TargetUnavailableError
from ...project import ComputeTarget, TargetType

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DOCKER_HOST_KEY = "dockerHost"
_HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://", "npipe://")
# fields that are the ComputeTarget's own, under the same name and already parsed there
_SAME_AS_TARGET = (
    "network_mode",
    "build_network_mode",
    "cpus",
    "memory",
    "shm_size",
    "gpus",
    "nvidia_docker",
    "keep_container",
    "shared_volumes",
    "native_shared_directory",
    "forward_pip_config",
    "user_managed_environment",
)
_HOST_FORM = re.compile(r"^(unix|npipe)://.+|^(tcp|ssh|https?)://[^\s/]+(/.*)?$")


@dataclass(frozen=True)
class DockerSettings:
    """What a run on a Docker engine is made of: where the engine is, the image, limits, mounts."""

    target_name: str
    docker_host: str
    base_image: str | None = None
    network_mode: str | None = None
    build_network_mode: str | None = None
    cpus: float | None = None
    memory: str | None = None
    shm_size: str | None = None
    volumes: tuple[str, ...] = ()
    gpus: str | None = None
    nvidia_docker: bool = False
    keep_container: bool = False
    shared_volumes: bool = False
    native_shared_directory: str | None = None
    forward_pip_config: bool = True
    user_managed_environment: bool = False

    KEYS: ClassVar[Mapping[str, str]] = {
        "dockerHost": "engine address (unix://, tcp://, ssh://); default DOCKER_HOST, else the local socket",
        "baseDockerImage": "image the environment is built over",
        "networkMode": "network of run containers (host, none, bridge, a network name)",
        "buildNetworkMode": "network of environment builds (default networkMode)",
        "cpus": "CPU limit, e.g. 2 or 0.5",
        "memory": "memory limit, e.g. 512m or 4g",
        "shmSize": "size of /dev/shm, e.g. 1g",
        "volumes": "HOST_PATH_OR_VOLUME:/container/path[:ro]",
        "gpus": "all, a count or device ids (with nvidiaDocker: true)",
        "keepContainer": "keep the container after the run",
        "sharedVolumes": "mount the project as the working directory",
        "forwardPipConfig": "pass the host's pip index and CA bundle into builds",
    }

    @classmethod
    def from_target(cls, target: ComputeTarget) -> DockerSettings:
        """The settings of `target`; ConfigError naming the file and key of a bad value."""
        return cls(
            target_name=target.name,
            docker_host=_docker_host(target),
            base_image=target.base_docker_image or os.environ.get("AMLEXEC_DEFAULT_BASE_IMAGE") or None,
            volumes=tuple(target.volumes),
            **{name: getattr(target, name) for name in _SAME_AS_TARGET},
        )

    @property
    def compute_file(self) -> Path:
        """The file a user edits to change these settings (named in every error about them)."""
        return Path("aml_config") / f"{self.target_name}.compute"

    @property
    def engine_is_local(self) -> bool:
        """Whether the engine sees this machine's paths (bind mounts, sharedVolumes)."""
        return self.docker_host.startswith("unix://")

    def require_base_image(self) -> str:
        """The base image; TargetUnavailableError saying where to set it when there is none."""
        if not self.base_image:
            raise TargetUnavailableError(
                f"Target '{self.target_name}' has no baseDockerImage: add `baseDockerImage: IMAGE` to "
                f"{self.compute_file}."
            )
        return self.base_image


def _docker_host(target: ComputeTarget) -> str:
    """`dockerHost` from the file; for `remotedocker` its address over SSH; else DOCKER_HOST."""
    file = Path("aml_config") / f"{target.name}.compute"
    raw = target.extra.get(DOCKER_HOST_KEY)
    if raw is not None:
        text = str(raw).strip() if isinstance(raw, str) else ""
        if not _HOST_FORM.match(text):
            raise ConfigError(
                f"bad value {raw!r}; allowed: an engine address starting with "
                f"{', '.join(_HOST_SCHEMES)} (e.g. unix:///var/run/docker.sock or tcp://127.0.0.1:2375), "
                f"or remove the key to use DOCKER_HOST.",
                file=file,
                key=DOCKER_HOST_KEY,
            )
        return text
    if target.type is TargetType.REMOTE_DOCKER and target.address:
        user = f"{target.username}@" if target.username else ""
        port = f":{target.port}" if target.port else ""
        return f"ssh://{user}{target.address}{port}"
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
