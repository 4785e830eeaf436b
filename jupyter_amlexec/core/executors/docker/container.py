"""A run's container: its create arguments from the settings and the run, and its start with the
snapshot sent in.

The snapshot goes in through the container's standard input: the container starts a tiny `/bin/sh`
bootstrap that unpacks a tar from stdin into the working directory and then execs the image's
entrypoint + the run's command. That costs one attach instead of a put_archive (which makes the
engine mount the container and fork an unpacker: ~60 ms of a ~200 ms run). Images without /bin/sh
(distroless) fall back to put_archive. Neither needs the engine to see this machine's paths.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...errors import ConfigError, TargetUnavailableError
from ...snapshot import Snapshot
from ..base import ControlLog, RunSpec
from ..commands import Framework, SparkOptions, build_command
from .engine import docker_module
from .settings import DockerSettings

log = logging.getLogger(__name__)

WORKDIR = "/azureml-run"
# With sharedVolumes the project itself is mounted at WORKDIR: our own files (the cell script, the
# in-run library) go to this folder inside the container instead, so they never land in the user's
# project and two runs at once never see each other's cell.
RUN_FILES = "/azureml-run-files"
SHARE_MOUNT = "/azureml-share/"
# The run's PID 1: unpack the snapshot tar from stdin (tar, else Python's tarfile), then run "$@"
# (image entrypoint + command) as a child and pass SIGTERM/SIGINT on, so `docker stop` ends the
# script at once (a PID 1 script would ignore SIGTERM); exits with the child's status. The shell's own
# job notice ("Terminated", "Killed") is kept out of the run's log: the run's status says who ended it.
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
  wait "$child" 2>/dev/null
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
# On every container we make: the amlexec home whose history it belongs to, so that a shared engine's
# containers can be told apart by owner (clean-up of leftovers, tests on a shared engine).
HOME_LABEL = "amlexec.home"
# Engine messages that point at one of the target's settings: (words in the message, key, attribute)
_SETTING_ERRORS = (
    (("network",), "networkMode", "network_mode"),
    (("nanocpus", "cpus", "range of cpus"), "cpus", "cpus"),
    (("shm",), "shmSize", "shm_size"),
    (("memory",), "memory", "memory"),
    (("invalid volume", "mount", "bind source", "invalid mode"), "volumes", "volumes"),
)


class _NoShell(Exception):
    """The image has no /bin/sh for the stdin bootstrap."""


@dataclass(frozen=True)
class ContainerSpec:
    """What a run's container is made of: the image, its own entrypoint and user, create arguments."""

    image: str
    entrypoint: list[str]
    user: str
    kwargs: Mapping[str, Any]


def home_label(home: Path) -> dict[str, str]:
    """The label naming the amlexec home a container belongs to."""
    return {HOME_LABEL: str(Path(home).resolve())}


class HostFolders(Protocol):
    """Folders of the machine the engine runs on (bind sources): this one, or an SSH host."""

    def make(self, path: str) -> str:
        """`path` (`~` = the home there) as an absolute path there, created if missing."""
        ...

    def host_path(self, path: str, spec: str, compute_file: Path) -> str:
        """A `volumes` source as an absolute path there; ConfigError for one only this machine has."""
        ...


class LocalFolders:
    """The local engine's host is this machine."""

    def make(self, path: str) -> str:
        folder = Path(os.path.expanduser(path))
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def host_path(self, path: str, spec: str, compute_file: Path) -> str:
        return path


class Launcher:
    """Creates and starts the containers of one target's runs."""

    def __init__(self, settings: DockerSettings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self.host_folders: HostFolders = LocalFolders()  # a remote engine's host has its own

    def create_kwargs(self, run: RunSpec) -> dict[str, Any]:
        """The container's command, environment, labels, mounts and limits for `run`."""
        s = self.settings
        env = dict(run.environment_variables)
        env.setdefault("AMLEXEC_RUN_ID", run.run_id)
        env["PYTHONUNBUFFERED"] = "1"
        if run.python_path:
            env["PYTHONPATH"] = ":".join(
                WORKDIR if p in ("", ".") else self._absolute(p.strip("/")) for p in run.python_path
            )
        volumes = [self._bind(spec, run.project_root) for spec in s.volumes]
        if s.native_shared_directory:
            shared = self.host_folders.make(f"{s.native_shared_directory.rstrip('/')}/{run.project_name}")
            volumes.append(f"{shared}:{SHARE_MOUNT}")
            env["AZUREML_NATIVE_SHARE_DIRECTORY"] = SHARE_MOUNT
        if s.shared_volumes:
            volumes.append(f"{run.project_root}:{WORKDIR}")
        kwargs: dict[str, Any] = {
            "command": self._command(run, env),
            "working_dir": WORKDIR,
            "environment": env,
            "labels": {
                "amlexec.run_id": run.run_id,
                "amlexec.project": run.project_name,
                "amlexec.target": s.target_name,
                **home_label(self.home),
            },
            "volumes": volumes or None,
            "network_mode": s.network_mode,
            "shm_size": s.shm_size,
            "mem_limit": s.memory,
        }
        if s.cpus:
            kwargs["nano_cpus"] = int(s.cpus * 1e9)
        if s.nvidia_docker:
            kwargs["device_requests"] = [_gpu_request(docker_module(), s.gpus)]
        return kwargs

    def _command(self, run: RunSpec, env: dict[str, str]) -> list[str]:
        """python3 SCRIPT ARGS, or spark-submit in local mode with the spark_dependencies options."""
        prepared = run.prepared
        python = (prepared.python if prepared else None) or "python3"
        script = self._in_container(run.entry_script)
        spark = None
        if Framework.of(run.framework) is Framework.PYSPARK:
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            env.setdefault("PYSPARK_PYTHON", python)
            spark_args = run.spark_arguments
            raw = prepared.details.get("spark_submit_args") if prepared else None
            if not spark_args and isinstance(raw, list):  # a RunSpec made before spark_arguments
                spark_args = tuple(str(a) for a in raw)
            spark = SparkOptions(master="local[*]", arguments=tuple(spark_args), python=python)
        return build_command(run.framework, python, script, run.arguments, spark)

    def _bind(self, spec: str, project_root: Path) -> str:
        """A `volumes` entry as Docker needs it: a host path (`~` expanded, relative to the project
        folder) that must exist on a local engine (else Docker would make an empty root-owned folder),
        or a plain name (a named Docker volume) as it is."""
        host, _, rest = spec.partition(":")
        if not (host.startswith(("/", "~", ".")) or "/" in host):
            return spec
        if not self.settings.engine_is_local:
            return f"{self.host_folders.host_path(host, spec, self.settings.compute_file)}:{rest}"
        path = Path(os.path.expanduser(host))
        if not path.is_absolute():
            path = project_root / path
        if self.settings.engine_is_local and not path.exists():
            raise ConfigError(
                f"the volume {spec!r} mounts {path}, which does not exist. Create it, or fix the path "
                f"(a relative path is taken from the project folder; a plain name is a Docker volume).",
                file=self.settings.compute_file,
                key="volumes",
            )
        return f"{path.resolve()}:{rest}"

    def _absolute(self, path: str) -> str:
        placed = self._in_container(path)
        return placed if placed.startswith("/") else f"{WORKDIR}/{placed}"

    def _in_container(self, path: str) -> str:
        """Where a snapshot path is inside the container: our own files (.amlexec/) live in RUN_FILES
        when the project is mounted; everything else is relative to the working directory."""
        if self.settings.shared_volumes and path.startswith(".amlexec/"):
            return f"{RUN_FILES}/{path}"
        return path

    def start(self, client: Any, spec: ContainerSpec, snapshot: Snapshot, log_to: ControlLog) -> str:
        """Create the container, send the snapshot in and start it; its id."""
        docker = docker_module()
        try:
            payload, files = self._payload(snapshot)
            log_to(f"Sending the snapshot ({_files_and_size(files, len(payload))}) through stdin.\n")
            return self._start_with_stdin(client, spec, payload)
        except _NoShell:
            unpack_to = RUN_FILES if self.settings.shared_volumes else WORKDIR
            payload, files = self._payload(snapshot, unpack_to.lstrip("/") + "/")
            log_to(
                f"The image has no /bin/sh: copying the snapshot ({_files_and_size(files, len(payload))}).\n"
            )
            return self._start_with_put_archive(client, spec.image, spec.kwargs, payload)
        except docker.errors.APIError as exc:
            raise start_error(self.settings, exc) from exc

    def _payload(self, snapshot: Snapshot, prefix: str = "") -> tuple[bytes, int]:
        """The snapshot as a tar and its number of files; with sharedVolumes only our in-run files
        (the project is mounted)."""
        buffer = io.BytesIO()
        if not self.settings.shared_volumes:
            snapshot.write_tar(buffer, prefix=prefix)
            return buffer.getvalue(), len(snapshot.entries)
        ours = [e for e in snapshot.entries if e.path.startswith(".amlexec/")]
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for entry in ours:
                info = tarfile.TarInfo(prefix + entry.path)
                info.size, info.mode = entry.size, entry.mode
                tar.addfile(info, io.BytesIO(snapshot.read(entry.path)))
        return buffer.getvalue(), len(ours)

    def _start_with_stdin(self, client: Any, spec: ContainerSpec, payload: bytes) -> str:
        docker = docker_module()
        kwargs, user = spec.kwargs, spec.user
        args = dict(kwargs)
        args["command"] = [*spec.entrypoint, *kwargs["command"]]
        if self.settings.shared_volumes:  # the project is mounted: unpack our files beside it
            args["command"] = ["--amlexec-into", RUN_FILES, *args["command"]]
        if user not in ROOT_USERS:  # unpack as root, run as the image's user
            args["command"] = ["--amlexec-user", user, *args["command"]]
            args["user"] = "0"
            args["environment"] = {**kwargs["environment"], "AMLEXEC_DROP": DROP_PRIVILEGES}
        container = _create_container(
            client,
            spec.image,
            args,
            entrypoint=["/bin/sh", "-c", BOOTSTRAP, "amlexec-bootstrap"],
            stdin_open=True,
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
            remove_quietly(client, container)
            raise
        return container

    def _start_with_put_archive(
        self, client: Any, image: str, kwargs: Mapping[str, Any], payload: bytes
    ) -> str:
        docker = docker_module()
        try:
            container = _create_container(client, image, kwargs)
        except docker.errors.APIError as exc:
            raise start_error(self.settings, exc) from exc
        try:
            client.api.put_archive(container, "/", payload)
            client.api.start(container)
        except BaseException as exc:
            remove_quietly(client, container)
            if isinstance(exc, docker.errors.APIError):
                raise start_error(self.settings, exc) from exc
            raise
        return container


def _files_and_size(files: int, size: int) -> str:
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{max(size / 1e3, 1):.0f} kB"
    return f"{files} file{'s' if files != 1 else ''}, {shown}"


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


def _create_container(client: Any, image: str, kwargs: Mapping[str, Any], **extra: Any) -> str:
    """Create a container from the high-level argument names of `create_kwargs`; its id.

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


def remove_quietly(client: Any, container_id: str) -> None:
    """Remove a container we made, whatever state it is in; a failure is only logged."""
    try:
        client.api.remove_container(container_id, force=True)
    except Exception as exc:
        log.warning("could not remove container %s: %s", container_id[:12], exc)


def _gpu_request(docker: Any, gpus: str | None) -> Any:
    spec = (gpus or "all").strip()
    if spec == "all":
        return docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    if spec.isdigit():
        return docker.types.DeviceRequest(count=int(spec), capabilities=[["gpu"]])
    return docker.types.DeviceRequest(device_ids=[s.strip() for s in spec.split(",")], capabilities=[["gpu"]])


def start_error(settings: DockerSettings, exc: Exception) -> TargetUnavailableError:
    """The engine's refusal to create/start a container, pointing at the setting to change."""
    text, name, file = str(exc), settings.target_name, settings.compute_file
    if settings.nvidia_docker and ("gpu" in text.lower() or "device driver" in text.lower()):
        return TargetUnavailableError(
            f"Target '{name}' asks for GPUs (nvidiaDocker: true) but the Docker engine has no GPU "
            f"runtime: {text}. Install the NVIDIA Container Toolkit on the Docker host, or set "
            f"nvidiaDocker: false in {file}."
        )
    if "spark-submit" in text:
        return TargetUnavailableError(
            f"Framework PySpark needs spark-submit (pyspark + Java) in the image of target '{name}': "
            f"{text}. Use an image with Spark, or set Framework: Python in the run configuration."
        )
    lowered = text.lower()
    for words, key, value in _SETTING_ERRORS:
        shown = getattr(settings, value)
        if shown not in (None, "", ()) and any(word in lowered for word in words):  # only a setting made
            return TargetUnavailableError(
                f"Docker refused the `{key}: {shown}` setting of target '{name}': {text}. Fix `{key}` "
                f"in {file} (or remove it to use Docker's default)."
            )
    return TargetUnavailableError(f"Docker could not start the run on target '{name}': {text}")
