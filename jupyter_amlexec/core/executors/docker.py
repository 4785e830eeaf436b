"""The Docker target: one container per run, in an environment image cached by the hash of its spec.

The snapshot goes into the run's container through its standard input: the container starts a
tiny `/bin/sh` bootstrap that unpacks a tar from stdin into the working directory and then execs the
image's entrypoint + the run's command. That costs one attach instead of a put_archive (which makes
the engine mount the container and fork an unpacker: ~60 ms of a ~200 ms run). Images without
/bin/sh (distroless) fall back to put_archive. Outputs come back with get_archive, so the same code
works against an engine that cannot see local paths. docker-py is imported lazily (extra `docker`).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config_files import write_atomic
from ..environment import spark_submit_args
from ..errors import ConfigError, EnvironmentBuildError, TargetUnavailableError
from ..models import EnvironmentSpec, RunStatus
from ..project import ComputeTarget
from ..snapshot import Snapshot
from .base import ControlLog, HandleStatus, LogChunk, PreparedEnv, RunSpec, read_log_chunk
from .docker_build import IMAGE_REPOSITORY, RECIPE_VERSION, build_environment_image

log = logging.getLogger(__name__)

WORKDIR = "/azureml-run"
# With sharedVolumes the project itself is mounted at WORKDIR: our own files (the cell script, the
# in-run library) go to this folder inside the container instead, so they never land in the user's
# project and two runs at once never see each other's cell.
RUN_FILES = "/azureml-run-files"
SHARE_MOUNT = "/azureml-share/"
STOP_TIMEOUT_SECONDS = 5
TAG_HASH_CHARS = 24
LIVE_STATES = ("created", "running", "restarting", "paused")
# The run's PID 1: unpack the snapshot tar from stdin (tar, else Python's tarfile), then run "$@"
# (image entrypoint + command) as a child and pass SIGTERM/SIGINT on, so `docker stop` ends the
# script at once (a PID 1 script would ignore SIGTERM); exits with the child's status.
BOOTSTRAP = r"""
run_as=""
into=.
if [ "$1" = --amlexec-user ]; then run_as=$2; shift 2; fi
if [ "$1" = --amlexec-into ]; then into=$2; shift 2; mkdir -p "$into" || exit 125; fi
if command -v tar >/dev/null 2>&1; then tar -C "$into" -xf - || exit 125
else python3 -c 'import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode="r|").extractall(sys.argv[1])' "$into" || exit 125
fi
command -v "$1" >/dev/null 2>&1 || { echo "amlexec: $1 is not in this image (PATH=$PATH)" >&2; exit 127; }
if [ -n "$run_as" ]; then
  chown -R "$run_as" "$into" || exit 125
  set -- python3 -c "$AMLEXEC_DROP" "$run_as" "$@"
fi
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || exit "$status"
done
"""
# For images with a USER: the bootstrap unpacks as root, hands the folder over, then this drops to
# that user (name or uid, optional :group) and execs the command. Python, as every run image has it.
DROP_PRIVILEGES = r"""
import grp, os, pwd, sys
spec, argv = sys.argv[1], sys.argv[2:]
name, _, group = spec.partition(":")
entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
gid = (int(group) if group.isdigit() else grp.getgrnam(group).gr_gid) if group else entry.pw_gid
os.setgroups(os.getgrouplist(entry.pw_name, gid))
os.setgid(gid)
os.setuid(entry.pw_uid)
os.environ["HOME"] = entry.pw_dir
os.environ.pop("AMLEXEC_DROP", None)
os.execvp(argv[0], argv)
"""
ROOT_USERS = ("", "root", "0", "root:root", "0:0")


def _docker() -> Any:
    """docker-py, or the error that says how to install it."""
    try:
        import docker
    except ImportError:
        raise TargetUnavailableError(
            "Docker targets need docker-py, which is not installed: pip install 'jupyter_amlexec[docker]'."
        ) from None
    return docker


def _connect(docker_host: str | None) -> Any:
    docker = _docker()
    if docker_host:
        return docker.DockerClient(base_url=docker_host, timeout=120)
    return docker.from_env(timeout=120)


class DockerExecutor:
    """Runs on a Docker engine: DOCKER_HOST when set, else the local socket."""

    def __init__(self, target: ComputeTarget, home: Path) -> None:
        self.target = target
        self.settings = target
        self.needs_managed_environment = True
        self.home = home
        self._client: Any = None
        self._lock = threading.Lock()

    # --- engine ------------------------------------------------------------------------------

    @property
    def docker_host(self) -> str:
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def client(self) -> Any:
        """A connected docker-py client; TargetUnavailableError with the fix when no engine answers."""
        with self._lock:
            if self._client is None:
                try:
                    client = _connect(None)
                    client.ping()
                except TargetUnavailableError:
                    raise
                except Exception as exc:
                    raise TargetUnavailableError(
                        f"Target '{self.target.name}': no Docker engine answers at {self.docker_host} ({exc}). "
                        f"Start Docker (e.g. `sudo systemctl start docker`), or point DOCKER_HOST at a "
                        f"running engine."
                    ) from exc
                self._client = client
            return self._client

    def check(self) -> None:
        self.client()
        if self.target.shared_volumes and not self.docker_host.startswith("unix://"):
            raise TargetUnavailableError(
                f"Target '{self.target.name}' has sharedVolumes: true, which bind-mounts the project "
                f"folder and so needs the local Docker engine, but DOCKER_HOST is {self.docker_host}. "
                f"Set sharedVolumes: false in aml_config/{self.target.name}.compute (the snapshot is "
                f"then copied into the container)."
            )

    def _base_image(self) -> str:
        image = self.target.base_docker_image or os.environ.get("AMLEXEC_DEFAULT_BASE_IMAGE")
        if not image:
            raise TargetUnavailableError(
                f"Target '{self.target.name}' has no baseDockerImage: add `baseDockerImage: IMAGE` to "
                f"aml_config/{self.target.name}.compute."
            )
        return image

    def _base_image_attrs(self, log_to: ControlLog) -> dict[str, Any]:
        """The base image's inspect data; pulled when missing; EnvironmentBuildError naming it otherwise."""
        docker = _docker()
        image = self._base_image()
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
                f"The base image {image!r} (baseDockerImage in aml_config/{self.target.name}.compute) is "
                f"not on the Docker engine and could not be pulled: {exc}. Build or load it on the engine "
                f"(`docker images` lists what is there), or set baseDockerImage to an image that exists."
            ) from exc

    # --- environments --------------------------------------------------------------------------

    def _key(self, env: EnvironmentSpec, base_id: str) -> str:
        return env.content_hash(base_id, RECIPE_VERSION)

    def environment_key(self, env: EnvironmentSpec) -> str:
        """sha256 of (base image id, normalised conda + spark spec, recipe version)."""
        return self._key(env, str(self._base_image_attrs(lambda _text: None)["Id"]))

    def image_tag(self, key: str) -> str:
        return f"{IMAGE_REPOSITORY}:{key[:TAG_HASH_CHARS]}"

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """The environment image: the cached tag when it exists (nothing built), else a build."""
        docker = _docker()
        attrs = self._base_image_attrs(log)
        base_id = str(attrs["Id"])
        key = self._key(env, base_id)
        details: dict[str, object] = {
            "base_image": self._base_image(),
            "spark_submit_args": spark_submit_args(env.spark),
            "entrypoint": list((attrs.get("Config") or {}).get("Entrypoint") or []),
            "user": str((attrs.get("Config") or {}).get("User") or ""),
        }
        if env.is_empty and self._base_python_matches(env, base_id):
            log(f"No packages to install: running in the base image {self._base_image()} as it is.\n")
            return PreparedEnv(env_hash=key, built=False, image=base_id, python="python3", details=details)
        tag = self.image_tag(key)
        client = self.client()

        def cached() -> PreparedEnv | None:
            try:
                image = client.images.get(tag)
            except docker.errors.ImageNotFound:
                return None
            return PreparedEnv(env_hash=key, built=False, image=image.id, python="python3", details=details)

        ready = None if force else cached()
        if ready is not None:
            return ready
        with _build_lock(self.home / "locks" / f"{key[:TAG_HASH_CHARS]}.lock", tag, log):
            # another kernel may have built it while this one waited: that build is as good as ours
            ready = None if force else cached()
            if ready is not None:
                return ready
            return self._build(env, attrs, tag, key, details, log, build=build)

    def _build(
        self,
        env: EnvironmentSpec,
        attrs: Mapping[str, Any],
        tag: str,
        key: str,
        details: dict[str, object],
        log: ControlLog,
        *,
        build: bool,
    ) -> PreparedEnv:
        client = self.client()
        if not build:
            raise EnvironmentBuildError(
                f"The environment of target '{self.target.name}' is not prepared on this Docker engine "
                f"(no image {tag}), and the run configuration says PrepareEnvironment: false. Prepare it "
                f"once with `%aml_target prepare {self.target.name}` (or `amlexec experiment prepare`), "
                f"or set PrepareEnvironment: true to build it as part of the run."
            )
        log(
            f"Building environment image {tag} from {env.conda_file or 'the conda file'} over "
            f"{self._base_image()}\n"
        )
        image_id = build_environment_image(
            client,
            base=attrs,
            base_name=self._base_image(),
            env=env,
            tag=tag,
            network_mode=self.target.build_network_mode or self.target.network_mode,
            forward_pip_config=self.target.forward_pip_config,
            target_name=self.target.name,
            log_to=log,
        )
        return PreparedEnv(env_hash=key, built=True, image=image_id, python="python3", details=details)

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
                )
                version = raw.decode().strip()
            except Exception as exc:  # no python3 at all: let the build recipe say so
                log.info("could not ask %s for its python: %s", base_id[:19], exc)
                return False
            known[base_id] = version
            write_atomic(cache, json.dumps(known))
        return bool(version == env.python_version or version.startswith(env.python_version + "."))

    # --- runs ----------------------------------------------------------------------------------

    def _command(self, run: RunSpec, env: dict[str, str]) -> list[str]:
        prepared = run.prepared
        if run.framework == "PySpark":
            raw = prepared.details.get("spark_submit_args") if prepared else None
            spark_args = [str(a) for a in raw] if isinstance(raw, list) else []
            env.setdefault("PYSPARK_PYTHON", "python3")
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            return [
                "spark-submit",
                "--master",
                "local[*]",
                *spark_args,
                self._in_container(run.entry_script),
                *run.arguments,
            ]
        return ["python3", self._in_container(run.entry_script), *run.arguments]

    def _bind(self, spec: str, project_root: Path) -> str:
        """A `volumes` entry as Docker needs it: a host path (`~` expanded, relative to the project
        folder) that must exist on a local engine (else Docker would make an empty root-owned folder),
        or a plain name (a named Docker volume) as it is."""
        host, _, rest = spec.partition(":")
        if not (host.startswith(("/", "~", ".")) or "/" in host):
            return spec
        path = Path(os.path.expanduser(host))
        if not path.is_absolute():
            path = project_root / path
        if self.docker_host.startswith("unix://") and not path.exists():
            raise ConfigError(
                f"the volume {spec!r} mounts {path}, which does not exist. Create it, or fix the path "
                f"(a relative path is taken from the project folder; a plain name is a Docker volume).",
                file=Path("aml_config") / f"{self.target.name}.compute",
                key="volumes",
            )
        return f"{path.resolve()}:{rest}"

    def _absolute(self, path: str) -> str:
        placed = self._in_container(path)
        return placed if placed.startswith("/") else f"{WORKDIR}/{placed}"

    def _in_container(self, path: str) -> str:
        """Where a snapshot path is inside the container: our own files (.amlexec/) live in RUN_FILES
        when the project is mounted; everything else is relative to the working directory."""
        if self.target.shared_volumes and path.startswith(".amlexec/"):
            return f"{RUN_FILES}/{path}"
        return path

    def _create_kwargs(self, run: RunSpec) -> dict[str, Any]:
        env = dict(run.environment_variables)
        env.setdefault("AMLEXEC_RUN_ID", run.run_id)
        env["PYTHONUNBUFFERED"] = "1"
        if run.python_path:
            env["PYTHONPATH"] = ":".join(
                WORKDIR if p in ("", ".") else self._absolute(p.strip("/")) for p in run.python_path
            )
        volumes = [self._bind(spec, run.project_root) for spec in self.target.volumes]
        if self.target.native_shared_directory:
            shared = Path(os.path.expanduser(self.target.native_shared_directory)) / run.project_name
            shared.mkdir(parents=True, exist_ok=True)
            volumes.append(f"{shared}:{SHARE_MOUNT}")
            env["AZUREML_NATIVE_SHARE_DIRECTORY"] = SHARE_MOUNT
        if self.target.shared_volumes:
            volumes.append(f"{run.project_root}:{WORKDIR}")
        command = self._command(run, env)
        kwargs: dict[str, Any] = {
            "command": command,
            "working_dir": WORKDIR,
            "environment": env,
            "labels": {
                "amlexec.run_id": run.run_id,
                "amlexec.project": run.project_name,
                "amlexec.target": self.target.name,
            },
            "volumes": volumes or None,
            "network_mode": self.target.network_mode,
            "shm_size": self.target.shm_size,
            "mem_limit": self.target.memory,
        }
        if self.target.cpus:
            kwargs["nano_cpus"] = int(self.target.cpus * 1e9)
        if self.target.nvidia_docker:
            kwargs["device_requests"] = [_gpu_request(_docker(), self.target.gpus)]
        return kwargs

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> DockerRunHandle:
        """Create, fill and start the run's container; its log is followed into executor/raw.log."""
        docker = _docker()
        client = self.client()
        prepared = run.prepared
        image = prepared.image if prepared and prepared.image else self._base_image()
        if prepared is not None and "entrypoint" in prepared.details:
            raw_entrypoint = prepared.details["entrypoint"]
            entrypoint = [str(a) for a in raw_entrypoint] if isinstance(raw_entrypoint, list) else []
            user = str(prepared.details.get("user") or "")
        else:
            config = client.images.get(image).attrs.get("Config") or {}
            entrypoint, user = list(config.get("Entrypoint") or []), str(config.get("User") or "")
        kwargs = self._create_kwargs(run)
        private = run.run_dir / "executor"
        private.mkdir(parents=True, exist_ok=True)
        try:
            container = self._start_with_stdin(
                client, image, entrypoint, user, kwargs, self._payload(snapshot)
            )
        except _NoShell:
            unpack_to = RUN_FILES if self.target.shared_volumes else WORKDIR
            container = self._start_with_put_archive(
                client, image, kwargs, self._payload(snapshot, unpack_to.lstrip("/") + "/")
            )
        except docker.errors.APIError as exc:
            raise _start_error(self.target, exc) from exc
        handle = DockerRunHandle(
            client,
            container,
            private,
            image=image,
            docker_host=os.environ.get("DOCKER_HOST"),
            keep_container=self.target.keep_container,
        )
        handle.follow_logs()
        return handle

    def _payload(self, snapshot: Snapshot, prefix: str = "") -> bytes:
        """The snapshot as a tar; with sharedVolumes only our in-run files (the project is mounted)."""
        buffer = io.BytesIO()
        if not self.target.shared_volumes:
            snapshot.write_tar(buffer, prefix=prefix)
            return buffer.getvalue()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for entry in snapshot.entries:
                if entry.path.startswith(".amlexec/"):
                    info = tarfile.TarInfo(prefix + entry.path)
                    info.size, info.mode = entry.size, entry.mode
                    tar.addfile(info, io.BytesIO(snapshot.read(entry.path)))
        return buffer.getvalue()

    def _start_with_stdin(
        self,
        client: Any,
        image: str,
        entrypoint: list[str],
        user: str,
        kwargs: Mapping[str, Any],
        payload: bytes,
    ) -> str:
        docker = _docker()
        args = dict(kwargs)
        args["command"] = [*entrypoint, *kwargs["command"]]
        if self.target.shared_volumes:  # the project is mounted: unpack our files beside it
            args["command"] = ["--amlexec-into", RUN_FILES, *args["command"]]
        if user not in ROOT_USERS:  # unpack as root, run as the image's user
            args["command"] = ["--amlexec-user", user, *args["command"]]
            args["user"] = "0"
            args["environment"] = {**kwargs["environment"], "AMLEXEC_DROP": DROP_PRIVILEGES}
        container = _create_container(
            client, image, args, entrypoint=["/bin/sh", "-c", BOOTSTRAP, "amlexec-bootstrap"], stdin_open=True
        )
        try:
            sock = client.api.attach_socket(container, params={"stdin": 1, "stream": 1})
            try:
                client.api.start(container)
            except docker.errors.APIError as exc:
                if "/bin/sh" in str(exc) and "no such file" in str(exc).lower():
                    raise _NoShell() from exc
                raise
            _send_and_close(sock, payload)
        except BaseException:
            _remove_quietly(client, container)
            raise
        return container

    def _start_with_put_archive(
        self, client: Any, image: str, kwargs: Mapping[str, Any], payload: bytes
    ) -> str:
        docker = _docker()
        log.info("image %s has no /bin/sh: copying the snapshot with put_archive", image)
        try:
            container = _create_container(client, image, kwargs)
        except docker.errors.APIError as exc:
            raise _start_error(self.target, exc) from exc
        try:
            client.api.put_archive(container, "/", payload)
            client.api.start(container)
        except BaseException as exc:
            _remove_quietly(client, container)
            if isinstance(exc, docker.errors.APIError):
                raise _start_error(self.target, exc) from exc
            raise
        return container

    def attach(self, data: Mapping[str, object]) -> DockerRunHandle:
        """The handle of a run started by another process (a restarted kernel, the CLI)."""
        host = data.get("docker_host")
        client = _connect(str(host)) if host else self.client()
        handle = DockerRunHandle(
            client,
            str(data["container_id"]),
            Path(str(data["private_dir"])),
            image=str(data.get("image") or ""),
            docker_host=str(host) if host else None,
            keep_container=bool(data.get("keep_container", self.target.keep_container)),
        )
        handle.follow_logs()
        return handle


class _NoShell(Exception):
    """The image has no /bin/sh for the stdin bootstrap."""


def _send_and_close(sock: Any, payload: bytes) -> None:
    """Write the snapshot tar to the container's stdin, then end stdin (the bootstrap sees EOF)."""
    raw = getattr(sock, "_sock", sock)
    try:
        raw.sendall(payload)
        if hasattr(raw, "shutdown_write"):  # an SSH channel
            raw.shutdown_write()
        else:
            raw.shutdown(socket.SHUT_WR)
    finally:
        sock.close()


@contextmanager
def _build_lock(path: Path, tag: str, log: ControlLog) -> Iterator[None]:
    """One build of an environment at a time per amlexec home: three cells started together build
    it once (the others then find the image). Waiting calls `log`, so a cancel can end the wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                log("" if told else f"Waiting for another build of {tag} to finish...\n")
                told = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create_container(client: Any, image: str, kwargs: Mapping[str, Any], **extra: Any) -> str:
    """Create a container from the high-level argument names of `_create_kwargs`; its id.

    The low-level call: docker-py's `containers.create` inspects the new container once more, a
    round trip on every run that nothing here needs."""
    api = client.api
    host_config = api.create_host_config(
        binds=list(kwargs.get("volumes") or []) or None,
        network_mode=kwargs.get("network_mode"),
        shm_size=kwargs.get("shm_size"),
        mem_limit=kwargs.get("mem_limit"),
        nano_cpus=kwargs.get("nano_cpus"),
        device_requests=kwargs.get("device_requests"),
    )
    created = api.create_container(
        image,
        command=kwargs.get("command"),
        working_dir=kwargs.get("working_dir"),
        environment=kwargs.get("environment"),
        labels=kwargs.get("labels"),
        user=kwargs.get("user"),
        host_config=host_config,
        **extra,
    )
    return str(created["Id"])


def _remove_quietly(client: Any, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True)
    except Exception as exc:
        log.warning("could not remove container %s: %s", container_id[:12], exc)


class DockerRunHandle:
    """One run's container; its log is streamed into a local file that `logs(since)` reads."""

    def __init__(
        self,
        client: Any,
        container_id: str,
        private_dir: Path,
        *,
        image: str = "",
        docker_host: str | None = None,
        keep_container: bool = False,
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.private_dir = private_dir
        self.image = image
        self.docker_host = docker_host
        self.keep_container = keep_container
        self.raw_log = private_dir / "raw.log"
        self._cancel_file = private_dir / "canceled"
        self._stream: threading.Thread | None = None

    def follow_logs(self) -> None:
        """Copy the container's whole log (from its start) into raw.log, following it live.

        Re-attaching copies from the start again, so byte offsets stay those of the first copy.
        """
        self.private_dir.mkdir(parents=True, exist_ok=True)
        self.raw_log.write_bytes(b"")
        self._stream = threading.Thread(
            target=self._copy_logs, name=f"docker-logs-{self.container_id[:12]}", daemon=True
        )
        self._stream.start()

    def _copy_logs(self) -> None:
        try:
            stream = self.client.api.logs(
                self.container_id, stream=True, follow=True, stdout=True, stderr=True
            )
            with open(self.raw_log, "ab") as out:
                for chunk in stream:
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # the container went away: poll() reports it
            log.info("log stream of %s ended: %s", self.container_id[:12], exc)

    def poll(self) -> HandleStatus:
        docker = _docker()
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
        except docker.errors.NotFound:
            if self._cancel_file.exists():
                return HandleStatus(RunStatus.CANCELED, error="canceled by the user")
            return HandleStatus(
                RunStatus.FAILED, error=f"the run's container {self.container_id[:12]} is gone"
            )
        if state.get("Status") in LIVE_STATES:
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
                error="the container ran out of memory (raise `memory` in the target's .compute file)",
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
            result = self.client.api.wait(self.container_id, timeout=max(timeout, 0.05))
        except Exception:  # a read timeout: still running (or gone: poll says which)
            return self.poll()
        if result.get("StatusCode") == 0 and not self._cancel_file.exists():
            # exited cleanly: nothing to learn from an inspect (OOM kills exit non-zero)
            if self._stream is not None:
                self._stream.join(timeout=10)
            return HandleStatus(RunStatus.COMPLETED, exit_code=0)
        return self.poll()

    def logs(self, cursor: str) -> LogChunk:
        return read_log_chunk(self.raw_log, cursor)

    def cancel(self) -> None:
        """Stop the container (SIGTERM, SIGKILL after a few seconds); a finished run is left as it is."""
        docker = _docker()
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
            if state.get("Status") not in LIVE_STATES:
                return
            self._cancel_file.write_text("canceled\n")
            self.client.api.stop(self.container_id, timeout=STOP_TIMEOUT_SECONDS)
        except docker.errors.NotFound:
            pass

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """Copy outputs/ out of the container (files over max_file_bytes are skipped and logged)."""
        docker = _docker()
        try:
            stream, _stat = self.client.api.get_archive(self.container_id, f"{WORKDIR}/outputs")
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
                    rel = member.name.split("/", 1)[1] if "/" in member.name else ""
                    if not member.isfile() or not rel or rel.startswith("/") or ".." in Path(rel).parts:
                        continue
                    if member.size > max_file_bytes:
                        log(
                            f"Not collecting outputs/{rel}: {member.size} bytes, over the {max_file_bytes}-byte limit."
                        )
                        continue
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "wb") as out:
                        while chunk := source.read(1024 * 1024):
                            out.write(chunk)
                    collected.append(rel)
        finally:
            spool.unlink(missing_ok=True)
        return sorted(collected)

    def cleanup(self) -> None:
        """Remove the container, unless the target keeps them for debugging (keepContainer)."""
        if self.keep_container:
            log.info("keeping container %s (keepContainer: true)", self.container_id[:12])
            return
        try:
            self.client.api.remove_container(self.container_id, force=True)
        except Exception as exc:
            log.info("container %s already gone: %s", self.container_id[:12], exc)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "docker",
            "container_id": self.container_id,
            "image": self.image,
            "workdir": WORKDIR,
            "private_dir": str(self.private_dir),
            "docker_host": self.docker_host,
            "keep_container": self.keep_container,
        }


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
            f"runtime: {text}. Install the NVIDIA Container Toolkit on the Docker host, or set "
            f"nvidiaDocker: false in aml_config/{target.name}.compute."
        )
    if "spark-submit" in text:
        return TargetUnavailableError(
            f"Framework PySpark needs spark-submit (pyspark + Java) in the image of target '{target.name}': "
            f"{text}. Use an image with Spark, or set Framework: Python in the run configuration."
        )
    lowered = text.lower()
    for words, key, value in _SETTING_ERRORS:
        shown = getattr(target, value)
        if shown not in (None, "", ()) and any(word in lowered for word in words):  # only a setting made
            return TargetUnavailableError(
                f"Docker refused the `{key}: {shown}` setting of target '{target.name}': {text}. Fix `{key}` "
                f"in aml_config/{target.name}.compute (or remove it to use Docker's default)."
            )
    return TargetUnavailableError(f"Docker could not start the run on target '{target.name}': {text}")


# Engine messages that point at one of the target's settings: (words in the message, key, attribute)
_SETTING_ERRORS = (
    (("network",), "networkMode", "network_mode"),
    (("nanocpus", "cpus", "range of cpus"), "cpus", "cpus"),
    (("shm",), "shmSize", "shm_size"),
    (("memory",), "memory", "memory"),
    (("invalid volume", "mount", "bind source", "invalid mode"), "volumes", "volumes"),
)
