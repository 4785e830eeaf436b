"""The Docker executor: one container per run, in an environment image cached by the hash of its
spec, on the engine the target names (`dockerHost`; DOCKER_HOST by default). It ties the pieces
together: settings, the engine connection, environment images, the container launcher, handles.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import ConfigError, TargetUnavailableError
from ...models import EnvironmentSpec
from ...project import ComputeTarget
from ...snapshot import Snapshot
from ..base import ControlLog, PreparedEnv, RunSpec
from .container import ContainerSpec, Launcher
from .engine import EngineFactory, connect_engine, engine_errors, engine_unavailable
from .handle import DockerRunHandle
from .image import EnvironmentImages
from .settings import DockerSettings


class DockerExecutor:
    """Runs on a Docker engine: the target's `dockerHost`, else DOCKER_HOST, else the local socket."""

    def __init__(self, target: ComputeTarget, home: Path, *, connect: EngineFactory = connect_engine) -> None:
        self.target = target
        self.home = home
        self.settings = DockerSettings.from_target(target)  # ConfigError here for a bad key
        if not self.settings.base_image:  # refused before a run is recorded
            raise ConfigError(
                "no baseDockerImage: a Docker target runs in an image. Add `baseDockerImage: IMAGE` "
                "(e.g. python:3.11-slim, or an image of your registry).",
                file=self.settings.compute_file,
                key="baseDockerImage",
            )
        self.needs_managed_environment = not self.settings.user_managed_environment
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()
        self.images = EnvironmentImages(self.settings, home, self.client)
        self.launcher = Launcher(self.settings, home)

    @property
    def docker_host(self) -> str:
        return self.settings.docker_host

    def client(self) -> Any:
        """A connected docker-py client; TargetUnavailableError with the fix when no engine answers."""
        with self._lock:
            if self._client is None:
                self._client = self._connected(self.settings)
            return self._client

    def _connected(self, settings: DockerSettings) -> Any:
        try:
            client = self._connect(settings)
            client.ping()
        except TargetUnavailableError:
            raise
        except Exception as exc:
            raise engine_unavailable(settings, exc) from exc
        return client

    def check(self) -> None:
        """The engine answers, and sharedVolumes is only asked of an engine that sees our paths."""
        self.client()
        if self.settings.shared_volumes and not self.settings.engine_is_local:
            raise TargetUnavailableError(
                f"Target '{self.target.name}' has sharedVolumes: true, which bind-mounts the project "
                f"folder and so needs the local Docker engine, but its engine is {self.docker_host}. "
                f"Set sharedVolumes: false in {self.settings.compute_file} (the snapshot is then "
                f"copied into the container)."
            )

    def environment_key(self, env: EnvironmentSpec) -> str:
        """sha256 of (base image id, normalised conda + spark spec, recipe version)."""
        with engine_errors(self.settings):
            return self.images.key(env)

    def image_tag(self, key: str) -> str:
        return self.images.tag(key)

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """The environment image: the cached tag when it exists (nothing built), else a build."""
        with engine_errors(self.settings):
            return self.images.prepare(env, log, force=force, build=build)

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> DockerRunHandle:
        """Create, fill and start the run's container; its log is followed into executor/raw.log."""
        with engine_errors(self.settings):
            return self._start(run, snapshot, log)

    def _start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> DockerRunHandle:
        client = self.client()
        prepared = run.prepared
        image = prepared.image if prepared and prepared.image else self.settings.require_base_image()
        if prepared is not None and "entrypoint" in prepared.details:
            raw_entrypoint = prepared.details["entrypoint"]
            entrypoint = [str(a) for a in raw_entrypoint] if isinstance(raw_entrypoint, list) else []
            user = str(prepared.details.get("user") or "")
        else:
            config = client.images.get(image).attrs.get("Config") or {}
            entrypoint, user = list(config.get("Entrypoint") or []), str(config.get("User") or "")
        kwargs = self.launcher.create_kwargs(run)
        private = run.run_dir / "executor"
        private.mkdir(parents=True, exist_ok=True)
        shown = (prepared.details.get("base_image") if prepared else None) or image
        log(f"Starting a container of {_short(image)} ({shown}) on {self.docker_host}.\n")
        spec = ContainerSpec(image, entrypoint, user, kwargs)
        container = self.launcher.start(client, spec, snapshot, log)
        log(f"Container {container[:12]} started.\n")
        handle = DockerRunHandle(
            client,
            container,
            private,
            self.settings,
            image=image,
            max_output_file_bytes=run.max_output_file_bytes,
        )
        handle.follow_logs()
        return handle

    def attach(self, data: Mapping[str, object]) -> DockerRunHandle:
        """The handle of a run started by another process (a restarted kernel, the CLI)."""
        host = str(data.get("docker_host") or "") or self.docker_host
        keep = data.get("keep_container")
        settings = replace(
            self.settings,
            docker_host=host,
            keep_container=bool(keep) if keep is not None else self.settings.keep_container,
        )
        client = self.client() if host == self.docker_host else self._connected(settings)
        limit = data.get("max_output_file_bytes")
        handle = DockerRunHandle(
            client,
            str(data["container_id"]),
            Path(str(data["private_dir"])),
            settings,
            image=str(data.get("image") or ""),
            max_output_file_bytes=int(limit) if isinstance(limit, (int, float)) else None,
        )
        handle.follow_logs()
        return handle


def _short(image: str) -> str:
    return image[7:19] if image.startswith("sha256:") else image
