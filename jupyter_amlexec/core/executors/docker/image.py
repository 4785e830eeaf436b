"""Environment images: the base image, the cache key of an environment over it, and the cached
`amlexec-env:<hash>` image built once (one build at a time per amlexec home) and reused.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...config_files import write_atomic
from ...environment import spark_submit_args
from ...errors import EnvironmentBuildError
from ...models import EnvironmentSpec
from ..base import ControlLog, PreparedEnv
from .build import IMAGE_REPOSITORY, RECIPE_VERSION, build_environment_image
from .container import home_label
from .engine import docker_module
from .settings import DockerSettings

log = logging.getLogger(__name__)

TAG_HASH_CHARS = 24


class EnvironmentImages:
    """The environment images of one target on its engine (`client` connects on first use)."""

    def __init__(self, settings: DockerSettings, home: Path, client: Callable[[], Any]) -> None:
        self.settings = settings
        self.home = home
        self.client = client

    def base_image_attrs(self, log_to: ControlLog) -> dict[str, Any]:
        """The base image's inspect data; pulled when missing; EnvironmentBuildError naming it otherwise."""
        docker = docker_module()
        image = self.settings.require_base_image()
        client = self.client()
        try:
            return dict(client.images.get(image).attrs)
        except docker.errors.ImageNotFound:
            pass
        log_to(f"Base image {image} is not on the Docker engine; pulling it ...\n")
        try:
            client.images.pull(image)
            return dict(client.images.get(image).attrs)
        except docker.errors.DockerException as exc:
            raise EnvironmentBuildError(
                f"The base image {image!r} (baseDockerImage in {self.settings.compute_file}) is not on "
                f"the Docker engine and could not be pulled: {exc}. Build or load it on the engine "
                f"(`docker images` lists what is there), or set baseDockerImage to an image that exists."
            ) from exc

    def key(self, env: EnvironmentSpec, base_id: str | None = None) -> str:
        """sha256 of (base image id, normalised conda + spark spec, recipe version)."""
        if base_id is None:
            base_id = str(self.base_image_attrs(lambda _text: None)["Id"])
        return env.content_hash(base_id, RECIPE_VERSION)

    def tag(self, key: str) -> str:
        return f"{IMAGE_REPOSITORY}:{key[:TAG_HASH_CHARS]}"

    def prepare(self, env: EnvironmentSpec, log_to: ControlLog, *, force: bool, build: bool) -> PreparedEnv:
        """The environment image: the cached tag when it exists (nothing built), else a build."""
        attrs = self.base_image_attrs(log_to)
        base_id = str(attrs["Id"])
        key = self.key(env, base_id)
        config = attrs.get("Config") or {}
        details: dict[str, object] = {
            "base_image": self.settings.require_base_image(),
            "spark_submit_args": spark_submit_args(env.spark),
            "entrypoint": list(config.get("Entrypoint") or []),
            "user": str(config.get("User") or ""),
        }
        if env.is_empty and self._base_python_matches(env, base_id):
            log_to(f"No packages to install: running in the base image {details['base_image']} as it is.\n")
            return PreparedEnv(env_hash=key, built=False, image=base_id, python="python3", details=details)
        tag = self.tag(key)
        ready = None if force else self._cached(tag, key, details)
        if ready is not None:
            return ready
        with _build_lock(self.home / "locks" / f"{key[:TAG_HASH_CHARS]}.lock", tag, log_to):
            # another kernel may have built it while this one waited: that build is as good as ours
            ready = None if force else self._cached(tag, key, details)
            if ready is not None:
                return ready
            if not build:
                error = EnvironmentBuildError(
                    f"The environment of target '{self.settings.target_name}' is not prepared on this "
                    f"Docker engine (no image {tag}), and the run configuration says PrepareEnvironment: "
                    f"false. Prepare it once, or set PrepareEnvironment: true to build it as part of the "
                    f"run."
                )
                raise error.with_hint("target.prepare", self.settings.target_name)
            image_id = self._build(env, attrs, tag, log_to)
            return PreparedEnv(env_hash=key, built=True, image=image_id, python="python3", details=details)

    def _cached(self, tag: str, key: str, details: dict[str, object]) -> PreparedEnv | None:
        try:
            image = self.client().images.get(tag)
        except docker_module().errors.ImageNotFound:
            return None
        return PreparedEnv(env_hash=key, built=False, image=image.id, python="python3", details=details)

    def _build(self, env: EnvironmentSpec, attrs: Mapping[str, Any], tag: str, log_to: ControlLog) -> str:
        s = self.settings
        base = s.require_base_image()
        log_to(f"Building environment image {tag} from {env.conda_file or 'the conda file'} over {base}\n")
        return build_environment_image(
            self.client(),
            base=attrs,
            base_name=base,
            env=env,
            tag=tag,
            network_mode=s.build_network_mode or s.network_mode,
            forward_pip_config=s.forward_pip_config,
            target_name=s.target_name,
            log_to=log_to,
            labels=home_label(self.home),
        )

    def _base_python_matches(self, env: EnvironmentSpec, base_id: str) -> bool:
        """Whether the base image's python3 is the `python=` the conda file asks for (no ask: yes).

        Asked once per base image (a short container run) and remembered under the amlexec home:
        a conda file that only pins Python must not run silently on another version."""
        if not env.python_version:
            return True
        cache = self.home / "docker-base-python.json"
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        version = known.get(base_id)
        if version is None:
            try:
                raw = self.client().containers.run(
                    base_id,
                    ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                    entrypoint=[],
                    remove=True,
                    network_mode="none",
                    labels=home_label(self.home),
                )
                version = raw.decode().strip()
            except Exception as exc:  # no python3 at all: let the build recipe say so
                log.info("could not ask %s for its python: %s", base_id[:19], exc)
                return False
            known[base_id] = version
            write_atomic(cache, json.dumps(known))
        return bool(version == env.python_version or version.startswith(env.python_version + "."))


@contextmanager
def _build_lock(path: Path, tag: str, log_to: ControlLog) -> Iterator[None]:
    """One build of an environment at a time per amlexec home: three cells started together build
    it once (the others then find the image). Waiting calls `log_to`, so a cancel can end the wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                log_to("" if told else f"Waiting for another build of {tag} to finish...\n")
                told = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
