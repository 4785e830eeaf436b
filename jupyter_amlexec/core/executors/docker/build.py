"""Environment images for Docker targets: the recipe, and building one from a base image.

An image is built by running the install recipe in a container of the base image and committing
it, not with `docker build`: the host's pip settings and CA bundle (needed behind TLS-intercepting
proxies) go in with put_archive and are deleted before the commit, so they never land in an image
layer, and nothing needs BuildKit (which would try to pull its frontend). The recipe uses
conda/mamba/micromamba when the base image has one; otherwise it makes a venv at ENV_PREFIX with the
image's python3 (its major.minor must match the conda file's `python=`), which still sees the base
image's own packages (a .pth file), and pip-installs the `pip:` section. Parameters reach the
recipe as files, never as container environment variables, because those would be committed into
the image.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import tarfile
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ...environment import pip_requirements
from ...errors import EnvironmentBuildError
from ...models import EnvironmentSpec
from ..base import ControlLog
from .pip_forwarding import host_pip_files

log = logging.getLogger(__name__)

RECIPE_VERSION = "amlexec-env-5"  # bump when the recipe changes: every environment is rebuilt
IMAGE_REPOSITORY = "amlexec-env"
ENV_PREFIX = "/opt/amlexec-env"
BUILD_DIR = "/tmp/amlexec-build"
BUILD_NAME_PREFIX = "amlexec-build-"  # build containers are named so; tests look for leftovers by it
BUILD_LABEL = "amlexec.build"  # value: the tag being built
# A build container is "created" only for the moment between its create and start: one older than
# this was left by a process that died there, a younger one may be another process's build.
STALE_CREATED_SECONDS = 120.0
BUILD_LOG_TAIL_LINES = 40
EXIT_PYTHON_MISMATCH = 86
EXIT_CONDA_ONLY = 87
BASE_PYTHON_MARKER = "amlexec: base image python "

# The install recipe, run by /bin/sh in a container of the base image (as root).
RECIPE = r"""
set -e
B=/tmp/amlexec-build
cd "$B"
. ./args.sh
[ -f pip.conf ] && export PIP_CONFIG_FILE="$B/pip.conf"
[ -f ca.crt ] && export PIP_CERT="$B/ca.crt" REQUESTS_CA_BUNDLE="$B/ca.crt" SSL_CERT_FILE="$B/ca.crt"
CONDA=""
for c in micromamba mamba conda; do if command -v "$c" >/dev/null 2>&1; then CONDA="$c"; break; fi; done
if [ -n "$CONDA" ]; then
  echo "Using $CONDA from the base image for the conda file"
  if [ "$CONDA" = micromamba ]; then micromamba install -y -n base -f environment.yml
  else "$CONDA" env update -n base -f environment.yml; fi
  "$CONDA" clean -a -y >/dev/null 2>&1 || true
else
  if [ -n "$CONDA_ONLY" ]; then
    echo "The base image has no conda, mamba or micromamba, and these packages need conda: $CONDA_ONLY" >&2
    exit 87
  fi
  PY=$(command -v python3 || command -v python || true)
  if [ -z "$PY" ]; then echo "${MARKER}none"; echo "The base image has no python3." >&2; exit 86; fi
  HAVE=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  echo "${MARKER}$HAVE"
  case "$HAVE." in
    "$WANT_PYTHON".*) ;;
    *) if [ -n "$WANT_PYTHON" ]; then
         echo "The conda file asks for python $WANT_PYTHON; the base image has python $HAVE." >&2
         exit 86
       fi ;;
  esac
  echo "No conda in the base image: a venv at $PREFIX with $PY ($HAVE), then pip install of the pip: section"
  if [ -s pip-notes.txt ]; then
    echo "The conda file's dependencies: are installed with pip (no conda here):"
    sed 's/^/  /' pip-notes.txt
  fi
  "$PY" -m venv "$PREFIX"
  # the venv's own packages first, then the base image's (pyspark, numpy... already in the image)
  SITE=$("$PREFIX/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' > "$SITE/_amlexec_base_image.pth"
  if [ -s requirements.txt ]; then
    "$PREFIX/bin/pip" install --no-cache-dir --disable-pip-version-check --progress-bar off -r requirements.txt
  fi
fi
cd /
rm -rf "$B"
"""


class _Lines:
    """Turns a byte stream into whole lines for the control log (a partial line waits for its end)."""

    def __init__(self, sink: ControlLog) -> None:
        self.sink = sink
        self.pending = b""
        self.tail: list[str] = []

    def feed(self, data: bytes) -> None:
        self.pending += data
        *complete, self.pending = self.pending.split(b"\n")
        for raw in complete:
            self._emit(raw.decode("utf-8", errors="replace"))

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending.decode("utf-8", errors="replace"))
            self.pending = b""

    def _emit(self, line: str) -> None:
        self.tail.append(line)
        del self.tail[: -BUILD_LOG_TAIL_LINES * 4]
        self.sink(line + "\n")

    def last(self) -> str:
        return "\n".join(self.tail[-BUILD_LOG_TAIL_LINES:])


def _tar(files: Mapping[str, bytes], prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(content)
            info.mode = 0o600 if name in ("ca.crt", "pip.conf") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def recipe_files(env: EnvironmentSpec, *, forward_pip_config: bool) -> dict[str, bytes]:
    """The build directory's files: parameters, requirements, conda file, host pip settings."""
    as_pip = pip_requirements(env)  # without conda: the conda packages through pip where it can
    args = {
        "WANT_PYTHON": env.python_version or "",
        "CONDA_ONLY": " ".join(as_pip.conda_only),
        "PREFIX": ENV_PREFIX,
        "MARKER": BASE_PYTHON_MARKER,
    }
    notes = [
        f"conda package {spec}: through pip" for spec in env.conda_packages if spec not in as_pip.conda_only
    ]
    files = {
        "args.sh": "".join(f"{k}={_sh_quote(v)}\n" for k, v in args.items()).encode(),
        "requirements.txt": "".join(p + "\n" for p in as_pip.requirements).encode(),
        "pip-notes.txt": "".join(line + "\n" for line in (*notes, *as_pip.notes)).encode(),
    }
    if env.conda is not None:
        files["environment.yml"] = json.dumps(env.conda).encode()  # JSON is YAML
    if forward_pip_config:
        files.update(host_pip_files())
    return files


def build_environment_image(
    client: Any,
    *,
    base: Mapping[str, Any],
    base_name: str,
    env: EnvironmentSpec,
    tag: str,
    network_mode: str | None,
    forward_pip_config: bool,
    target_name: str,
    log_to: ControlLog,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Build `tag` from the base image's attrs; returns the new image id. EnvironmentBuildError on failure."""
    import docker

    config = base.get("Config") or {}
    previous = _image_id(client, tag)
    # Only a base image with an ENTRYPOINT gets it overridden (then restored by the commit): the
    # commit cannot reset an entrypoint to none.
    override = {"entrypoint": ["/bin/sh", "-c", RECIPE], "command": []} if config.get("Entrypoint") else {}
    _remove_stale_build_containers(client, tag)
    container = client.containers.create(
        str(base["Id"]),
        **(override or {"command": ["/bin/sh", "-c", RECIPE]}),
        network_mode=network_mode,
        name=BUILD_NAME_PREFIX + tag.replace(":", "-").replace("/", "-") + "-" + secrets.token_hex(3),
        labels={**(labels or {}), BUILD_LABEL: tag},
        user="0",
        working_dir="/",
    )
    lines = _Lines(log_to)
    try:
        container.put_archive(
            "/",
            _tar(recipe_files(env, forward_pip_config=forward_pip_config), BUILD_DIR.lstrip("/") + "/"),
        )
        container.start()
        for chunk in container.logs(stream=True, follow=True):
            lines.feed(chunk)
        lines.close()
        code = int(container.wait().get("StatusCode", 1))
        if code != 0:
            raise _build_failure(code, env, lines, tag, base_name, target_name)
        changes = _commit_changes(config, tag, entrypoint=bool(override))
        repository, _, version = tag.rpartition(":")
        image = container.commit(repository=repository, tag=version, changes=changes)
        log_to(f"Built {tag} ({image.short_id}).\n")
    except docker.errors.APIError as exc:
        raise EnvironmentBuildError(
            f"The Docker engine refused to build {tag} over {base_name}: {exc}", lines.last()
        ) from exc
    finally:
        try:
            container.remove(force=True)
        except Exception as exc:  # already gone; nothing else to undo
            log.warning("could not remove build container %s: %s", container.id[:12], exc)
    if previous and previous != image.id:
        _remove_if_unused(client, previous)
    return str(image.id)


def _commit_changes(config: Mapping[str, Any], tag: str, *, entrypoint: bool) -> list[str]:
    """The commit's Dockerfile lines: the base image's own settings restored, the env's PATH first."""
    changes = [f"ENTRYPOINT {json.dumps(config['Entrypoint'])}"] if entrypoint else []
    return changes + [
        f"ENV PATH={ENV_PREFIX}/bin:{_path_of(config)}",
        "WORKDIR " + (config.get("WorkingDir") or "/"),
        "USER " + (config.get("User") or "0"),
        "CMD " + json.dumps(config.get("Cmd") or ["python3"]),
        f"LABEL amlexec.recipe={RECIPE_VERSION} amlexec.environment={tag}",
    ]


def _build_failure(
    code: int, env: EnvironmentSpec, lines: _Lines, tag: str, base_name: str, target_name: str
) -> EnvironmentBuildError:
    """The error for a build that exited with `code`, naming what to change, with the log tail."""
    tail = lines.last()
    conda_file = env.conda_file or "aml_config/conda_dependencies.yml"
    if code == EXIT_CONDA_ONLY:
        names = ", ".join(pip_requirements(env).conda_only)
        return EnvironmentBuildError(
            f"{conda_file} asks for packages only conda has ({names}) but the base image {base_name} "
            f"(baseDockerImage in aml_config/{target_name}.compute) has no conda, mamba or micromamba "
            f"(the file's other dependencies would have been installed with pip). Remove them, or use "
            f"a base image with conda.",
            tail,
        )
    if code == EXIT_PYTHON_MISMATCH:
        have = _base_python(lines.tail)
        return EnvironmentBuildError(
            f"{conda_file} asks for python {env.python_version} but the base image {base_name} "
            f"(baseDockerImage in aml_config/{target_name}.compute) has python {have}. Change `python=` "
            f"in {conda_file} to {have}, or set baseDockerImage to an image with python "
            f"{env.python_version}.",
            tail,
        )
    return EnvironmentBuildError(
        f"Building the environment image {tag} over {base_name} failed (exit code {code}); "
        f"see the build log tail below. Fix {conda_file} and prepare again.",
        tail,
    )


def _remove_stale_build_containers(client: Any, tag: str) -> None:
    """Build containers of this tag left by a process that died mid-build (its kernel was killed).

    Only ended ones, and ones created but never started: a running one may be another user's build
    of the same tag on a shared engine (the build lock is per amlexec home, not per engine)."""
    label = f"{BUILD_LABEL}={tag}"
    try:
        stale = [
            c
            for status in ("exited", "dead", "created")
            for c in client.containers.list(all=True, filters={"label": label, "status": status})
            if status != "created" or _age_seconds(c) > STALE_CREATED_SECONDS
        ]
    except Exception as exc:
        log.info("could not list old build containers of %s: %s", tag, exc)
        return
    for container in stale:
        try:
            container.remove(force=True)
            log.info("removed build container %s left by an interrupted build", container.name)
        except Exception as exc:
            log.info("could not remove old build container %s: %s", container.name, exc)


def _age_seconds(container: Any) -> float:
    """Seconds since the container was created (0 when the engine's timestamp can't be read)."""
    created = container.attrs.get("Created")
    try:
        if isinstance(created, (int, float)):  # the list API's epoch seconds
            return time.time() - float(created)
        # inspect's RFC 3339 with nanoseconds: seconds precision is enough here
        stamp = datetime.strptime(str(created)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return time.time() - stamp.timestamp()
    except ValueError:
        return 0.0


def _image_id(client: Any, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except Exception:
        return None


def _remove_if_unused(client: Any, image_id: str) -> None:
    """A forced rebuild leaves the old image untagged: drop it unless a container still uses it."""
    try:
        client.images.remove(image_id, noprune=False)
    except Exception as exc:
        log.info("kept the previous environment image %s: %s", image_id[:19], exc)


def _base_python(lines: list[str]) -> str:
    for line in reversed(lines):
        if line.startswith(BASE_PYTHON_MARKER):
            return line[len(BASE_PYTHON_MARKER) :].strip()
    return "unknown"


def _path_of(config: Mapping[str, Any]) -> str:
    for item in config.get("Env") or []:
        if item.startswith("PATH="):
            return str(item[5:])
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
