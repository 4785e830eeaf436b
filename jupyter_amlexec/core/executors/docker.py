"""The Docker target: one container per run, in an environment image cached by the hash of its spec.

Environment images are built by running the install in a container and committing it, instead of
`docker build`: the host's pip settings and CA bundle (needed behind TLS-intercepting proxies) go in
with put_archive and are deleted before the commit, so they never land in an image layer, and
nothing needs BuildKit. Snapshots go in with put_archive and outputs come back with get_archive, so
the same code works against a remote engine that cannot see local paths.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..environment import conda_only_packages, spark_submit_args
from ..errors import EnvironmentBuildError, TargetUnavailableError
from ..models import EnvironmentSpec, RunStatus
from ..project import ComputeTarget
from ..snapshot import Snapshot
from .base import ControlLog, HandleStatus, LogChunk, PreparedEnv, RunSpec, read_log_chunk
from .pip_forwarding import host_pip_files

log = logging.getLogger(__name__)

RECIPE_VERSION = "amlexec-env-2"
IMAGE_REPOSITORY = "amlexec-env"
WORKDIR = "/amlexec/run"
BUILD_DIR = "/tmp/amlexec-build"
SHARE_MOUNT = "/azureml-share/"
EXIT_PYTHON_MISMATCH = 86
EXIT_CONDA_ONLY = 87
BUILD_LOG_TAIL_LINES = 40
STOP_TIMEOUT_SECONDS = 5

# The install recipe, run in a container of the base image. Arguments come as env variables.
BUILD_SCRIPT = r"""
set -e
cd "$AMLEXEC_BUILD_DIR"
[ -f pip.conf ] && export PIP_CONFIG_FILE="$AMLEXEC_BUILD_DIR/pip.conf"
[ -f ca.crt ] && export PIP_CERT="$AMLEXEC_BUILD_DIR/ca.crt" REQUESTS_CA_BUNDLE="$AMLEXEC_BUILD_DIR/ca.crt"
CONDA=""
for c in micromamba mamba conda; do if command -v "$c" >/dev/null 2>&1; then CONDA="$c"; break; fi; done
if [ -n "$CONDA" ]; then
  echo "Using $CONDA to create the environment from conda_dependencies.yml"
  if [ "$CONDA" = micromamba ]; then micromamba install -y -n base -f environment.yml; else "$CONDA" env update -n base -f environment.yml; fi
else
  if [ -n "$AMLEXEC_CONDA_ONLY" ]; then
    echo "No conda in the base image, and these packages need conda: $AMLEXEC_CONDA_ONLY" >&2
    exit 87
  fi
  PY=$(command -v python3 || command -v python || true)
  if [ -z "$PY" ]; then echo "The base image has no python3" >&2; exit 86; fi
  HAVE=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ -n "$AMLEXEC_PYTHON" ] && [ "$HAVE" != "$AMLEXEC_PYTHON" ] && [ "${HAVE#"$AMLEXEC_PYTHON".}" = "$HAVE" ]; then
    echo "conda_dependencies.yml asks for python $AMLEXEC_PYTHON but the base image has $HAVE" >&2
    exit 86
  fi
  echo "No conda in the base image: creating a venv with $PY ($HAVE) and pip-installing the pip: section"
  "$PY" -m venv /opt/amlexec-env
  /opt/amlexec-env/bin/pip install --no-cache-dir --disable-pip-version-check -q --upgrade pip >/dev/null 2>&1 || true
  if [ -s requirements.txt ]; then /opt/amlexec-env/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt; fi
fi
cd /
rm -rf "$AMLEXEC_BUILD_DIR"
"""


def _docker() -> Any:
    try:
        import docker
    except ImportError:
        raise TargetUnavailableError(
            "Docker targets need docker-py: pip install 'jupyter_amlexec[docker]'."
        ) from None
    return docker


def _tar(files: Mapping[str, bytes], prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class DockerExecutor:
    """Runs on a Docker engine (DOCKER_HOST or the local socket)."""

    def __init__(self, target: ComputeTarget, home: Path) -> None:
        self.target = target
        self.home = home
        self._client: Any = None
        self._lock = threading.Lock()

    # --- engine ----------------------------------------------------------------------------------

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                docker = _docker()
                try:
                    self._client = docker.from_env(timeout=120)
                    self._client.ping()
                except Exception as exc:
                    self._client = None
                    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
                    raise TargetUnavailableError(
                        f"Target '{self.target.name}': no Docker engine answers at {where} ({exc}). Start "
                        f"Docker (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at a running engine."
                    ) from exc
            return self._client

    def check(self) -> None:
        self.client()

    def _base_image(self) -> str:
        image = self.target.base_docker_image
        if not image:
            raise TargetUnavailableError(
                f"Target '{self.target.name}' has no baseDockerImage in aml_config/{self.target.name}.compute."
            )
        return image

    def _base_image_attrs(self, log: ControlLog) -> dict[str, Any]:
        docker = _docker()
        image = self._base_image()
        client = self.client()
        try:
            return dict(client.images.get(image).attrs)
        except docker.errors.ImageNotFound:
            pass
        log(f"Base image {image} is not on the engine; pulling it ...\n")
        try:
            client.images.pull(image)
            return dict(client.images.get(image).attrs)
        except docker.errors.DockerException as exc:
            raise EnvironmentBuildError(
                f"The base image {image!r} (baseDockerImage in aml_config/{self.target.name}.compute) is not "
                f"on the Docker engine and could not be pulled: {exc}. Build or load it on the engine, or set "
                f"baseDockerImage to an image that exists (`docker images` lists them)."
            ) from exc

    # --- environments --------------------------------------------------------------------------------

    def _needs_build(self, env: EnvironmentSpec) -> bool:
        return not env.is_empty

    def environment_key(self, env: EnvironmentSpec) -> str:
        attrs = self._base_image_attrs(lambda _t: None)
        return env.content_hash(str(attrs["Id"]), RECIPE_VERSION)

    def prepare(self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False) -> PreparedEnv:
        docker = _docker()
        attrs = self._base_image_attrs(log)
        base_id = str(attrs["Id"])
        key = env.content_hash(base_id, RECIPE_VERSION)
        details = {"spark_submit_args": spark_submit_args(env.spark), "base_image": self._base_image()}
        if not self._needs_build(env):
            log(f"No packages to install: running in the base image {self._base_image()} as is.\n")
            return PreparedEnv(env_hash=key, built=False, image=base_id, python="python3", details=details)
        tag = f"{IMAGE_REPOSITORY}:{key[:24]}"
        client = self.client()
        if not force:
            try:
                image = client.images.get(tag)
                return PreparedEnv(
                    env_hash=key, built=False, image=image.id, python="python3", details=details
                )
            except docker.errors.ImageNotFound:
                pass
        log(
            f"Building environment image {tag} from {env.conda_file or 'conda_dependencies.yml'} over {self._base_image()}\n"
        )
        image_id = self._build(env, attrs, tag, log)
        return PreparedEnv(env_hash=key, built=True, image=image_id, python="python3", details=details)

    def _build(self, env: EnvironmentSpec, base: Mapping[str, Any], tag: str, log: ControlLog) -> str:
        client = self.client()
        files: dict[str, bytes] = {"requirements.txt": "\n".join(env.pip_packages).encode() + b"\n"}
        if env.conda is not None:
            files["environment.yml"] = json.dumps(env.conda).encode()  # JSON is YAML
        if self.target.forward_pip_config:
            files.update(host_pip_files())
        config = base.get("Config") or {}
        build_env = {
            "AMLEXEC_BUILD_DIR": BUILD_DIR,
            "AMLEXEC_PYTHON": env.python_version or "",
            "AMLEXEC_CONDA_ONLY": " ".join(conda_only_packages(env)),
        }
        container = client.containers.create(
            str(base["Id"]),
            command=["/bin/sh", "-c", BUILD_SCRIPT],
            environment=build_env,
            network_mode=self.target.build_network_mode or self.target.network_mode,
            labels={"amlexec.build": tag},
            user="0",
        )
        lines: list[str] = []
        try:
            container.put_archive("/", _tar(files, prefix=BUILD_DIR.lstrip("/") + "/"))
            container.start()
            for raw in container.logs(stream=True, follow=True):
                text = raw.decode("utf-8", errors="replace")
                lines.extend(text.splitlines())
                del lines[: -BUILD_LOG_TAIL_LINES * 5]
                log(text)
            code = int(container.wait().get("StatusCode", 1))
            tail = "\n".join(lines[-BUILD_LOG_TAIL_LINES:])
            if code == EXIT_CONDA_ONLY:
                names = ", ".join(conda_only_packages(env))
                raise EnvironmentBuildError(
                    f"{env.conda_file or 'conda_dependencies.yml'} asks for conda packages ({names}) but the base "
                    f"image {self._base_image()} has no conda/mamba/micromamba. Move them to the `pip:` section, "
                    f"or use a base image with conda.",
                    tail,
                )
            if code == EXIT_PYTHON_MISMATCH:
                raise EnvironmentBuildError(
                    f"The environment cannot be built over {self._base_image()}: its Python does not match "
                    f"{env.conda_file or 'conda_dependencies.yml'}. Change `python=` there or the base image.",
                    tail,
                )
            if code != 0:
                raise EnvironmentBuildError(
                    f"Building the environment image failed (exit code {code}).", tail
                )
            changes = [
                "ENV PATH=/opt/amlexec-env/bin:" + _path_of(config),
                "WORKDIR " + (config.get("WorkingDir") or "/"),
                "CMD " + json.dumps(config.get("Cmd") or ["python3"]),
                f"LABEL amlexec.recipe={RECIPE_VERSION}",
            ]
            repository, _, version = tag.partition(":")
            image = container.commit(repository=repository, tag=version, changes=changes)
            log(f"Built {tag} ({image.short_id}).\n")
            return str(image.id)
        finally:
            try:
                container.remove(force=True)
            except Exception:
                logging.getLogger(__name__).warning("could not remove build container %s", container.id)

    # --- runs ------------------------------------------------------------------------------------------

    def start(self, run: RunSpec, snapshot: Snapshot) -> DockerRunHandle:
        docker = _docker()
        client = self.client()
        prepared = run.prepared
        image = prepared.image if prepared and prepared.image else self._base_image()
        env = dict(run.environment_variables)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = ":".join(f"{WORKDIR}/{p}" for p in run.python_path)
        volumes = list(self.target.volumes)
        if self.target.native_shared_directory:
            shared = Path(os.path.expanduser(self.target.native_shared_directory)) / run.project_name
            shared.mkdir(parents=True, exist_ok=True)
            volumes.append(f"{shared}:{SHARE_MOUNT}")
            env["AZUREML_NATIVE_SHARE_DIRECTORY"] = SHARE_MOUNT
        if self.target.shared_volumes:
            volumes.append(f"{run.project_root}:{WORKDIR}")
        if run.framework == "PySpark":
            spark_args = list((prepared.details.get("spark_submit_args") if prepared else None) or [])  # type: ignore[call-overload]
            env.setdefault("PYSPARK_PYTHON", "python3")
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            command = ["spark-submit", "--master", "local[*]", *spark_args, run.entry_script, *run.arguments]
        else:
            command = ["python3", run.entry_script, *run.arguments]
        kwargs: dict[str, Any] = {
            "command": command,
            "working_dir": WORKDIR,
            "environment": env,
            "labels": {"amlexec.run_id": run.run_id, "amlexec.project": run.project_name},
            "volumes": volumes or None,
            "network_mode": self.target.network_mode,
            "shm_size": self.target.shm_size,
            "mem_limit": self.target.memory,
        }
        if self.target.cpus:
            kwargs["nano_cpus"] = int(self.target.cpus * 1e9)
        if self.target.nvidia_docker:
            kwargs["device_requests"] = [_gpu_request(docker, self.target.gpus)]
        try:
            container = client.containers.create(image, **kwargs)
        except docker.errors.APIError as exc:
            raise _start_error(self.target, exc) from exc
        private = run.run_dir / "executor"
        private.mkdir(parents=True, exist_ok=True)
        handle = DockerRunHandle(client, container.id, private)
        try:
            if self.target.shared_volumes:
                container.put_archive(
                    "/",
                    _tar(
                        {p: snapshot.read(p) for p in _inrun_paths(snapshot)},
                        prefix=WORKDIR.lstrip("/") + "/",
                    ),
                )
            else:
                container.put_archive("/", snapshot.tar_bytes(prefix=WORKDIR.lstrip("/") + "/"))
            container.start()
        except docker.errors.APIError as exc:
            handle.cleanup()
            raise _start_error(self.target, exc) from exc
        handle.follow_logs()
        return handle

    def attach(self, data: Mapping[str, object]) -> DockerRunHandle:
        handle = DockerRunHandle(self.client(), str(data["container_id"]), Path(str(data["private_dir"])))
        handle.follow_logs()
        return handle


class DockerRunHandle:
    """One run's container; its log is streamed into a local file that `logs(since)` reads."""

    def __init__(self, client: Any, container_id: str, private_dir: Path) -> None:
        self.client = client
        self.container_id = container_id
        self.private_dir = private_dir
        self.raw_log = private_dir / "raw.log"
        self._cancel_file = private_dir / "canceled"
        self._stream: threading.Thread | None = None
        self._gone = False

    def _container(self) -> Any:
        return self.client.containers.get(self.container_id)

    def follow_logs(self) -> None:
        """Copy the container's whole log (from its start) into raw.log, following it live."""
        self.raw_log.write_bytes(b"")
        self._stream = threading.Thread(
            target=self._copy_logs, name=f"docker-logs-{self.container_id[:12]}", daemon=True
        )
        self._stream.start()

    def _copy_logs(self) -> None:
        try:
            stream = self._container().logs(stream=True, follow=True, stdout=True, stderr=True)
            with open(self.raw_log, "ab") as out:
                for chunk in stream:
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # the container went away: poll() reports it
            log.info("log stream of %s ended: %s", self.container_id[:12], exc)

    def poll(self) -> HandleStatus:
        docker = _docker()
        try:
            state = self._container().attrs["State"]
        except docker.errors.NotFound:
            if self._cancel_file.exists():
                return HandleStatus(RunStatus.CANCELED, error="canceled by the user")
            return HandleStatus(
                RunStatus.FAILED, error=f"the run's container {self.container_id[:12]} is gone"
            )
        if state.get("Status") in ("created", "running", "restarting", "paused"):
            return HandleStatus(RunStatus.RUNNING)
        if self._stream is not None:
            self._stream.join(timeout=10)  # the whole log is in raw.log before the run is called done
        code = int(state.get("ExitCode", -1))
        if self._cancel_file.exists():
            return HandleStatus(RunStatus.CANCELED, exit_code=code, error="canceled by the user")
        if state.get("OOMKilled"):
            return HandleStatus(
                RunStatus.FAILED,
                exit_code=code,
                error="the container ran out of memory (memory limit of the target)",
            )
        if code == 0:
            return HandleStatus(RunStatus.COMPLETED, exit_code=0)
        return HandleStatus(
            RunStatus.FAILED,
            exit_code=code,
            error=state.get("Error") or f"the script exited with code {code}",
        )

    def wait(self, timeout: float) -> HandleStatus:
        try:
            self._container().wait(timeout=max(timeout, 0.05))
        except Exception:  # a read timeout means it is still running
            pass
        return self.poll()

    def logs(self, since: int) -> LogChunk:
        return read_log_chunk(self.raw_log, since)

    def cancel(self) -> None:
        docker = _docker()
        self._cancel_file.write_text("canceled\n")
        try:
            self._container().stop(timeout=STOP_TIMEOUT_SECONDS)  # SIGTERM, then SIGKILL
        except docker.errors.NotFound:
            pass

    def collect_outputs(self, dest: Path, max_file_bytes: int) -> list[str]:
        docker = _docker()
        try:
            stream, _stat = self._container().get_archive(f"{WORKDIR}/outputs")
        except docker.errors.NotFound:
            return []
        spool = self.private_dir / "outputs.tar"
        with open(spool, "wb") as f:
            for chunk in stream:
                f.write(chunk)
        collected = []
        try:
            with tarfile.open(spool) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    rel = member.name.split("/", 1)[1] if "/" in member.name else ""
                    if not rel or rel.startswith("/") or ".." in Path(rel).parts:
                        continue
                    if member.size > max_file_bytes:
                        log.warning(
                            "not collecting outputs/%s: %d bytes, over the %d-byte limit",
                            rel,
                            member.size,
                            max_file_bytes,
                        )
                        continue
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    with open(target, "wb") as out:
                        while chunk := source.read(1024 * 1024):
                            out.write(chunk)
                    collected.append(rel)
        finally:
            spool.unlink(missing_ok=True)
        return sorted(collected)

    def cleanup(self) -> None:
        try:
            self._container().remove(force=True)
        except Exception as exc:
            log.info("container %s already gone: %s", self.container_id[:12], exc)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "docker",
            "container_id": self.container_id,
            "private_dir": str(self.private_dir),
            "docker_host": os.environ.get("DOCKER_HOST"),
        }


def _path_of(config: Mapping[str, Any]) -> str:
    for item in config.get("Env") or []:
        if item.startswith("PATH="):
            return str(item[5:])
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _gpu_request(docker: Any, gpus: str | None) -> Any:
    spec = (gpus or "all").strip()
    if spec == "all":
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    if spec.isdigit():
        return docker.types.DeviceRequest(count=int(spec), capabilities=[["gpu"]])
    return docker.types.DeviceRequest(device_ids=[s.strip() for s in spec.split(",")], capabilities=[["gpu"]])


def _start_error(target: ComputeTarget, exc: Exception) -> TargetUnavailableError:
    text = str(exc)
    if target.nvidia_docker and ("gpu" in text.lower() or "device driver" in text.lower()):
        return TargetUnavailableError(
            f"Target '{target.name}' asks for GPUs (nvidiaDocker: true) but the Docker engine has no GPU "
            f"runtime: {text}. Install the NVIDIA Container Toolkit on the Docker host, or set nvidiaDocker: false."
        )
    if "spark-submit" in text:
        return TargetUnavailableError(
            f"Framework PySpark needs spark-submit (pyspark + Java) in the image of target '{target.name}': {text}. "
            f"Use an image with Spark, or set Framework: Python in the run configuration."
        )
    return TargetUnavailableError(f"Docker could not start the run on target '{target.name}': {text}")


def _inrun_paths(snapshot: Snapshot) -> list[str]:
    return [e.path for e in snapshot.entries if e.path.startswith(".amlexec/")]
