"""The conda file's environment on a cluster's head node: a venv with the `pip:` section, built once
per environment hash under `<amlexecRoot>/envs/<hash>` and reused while nothing changes.

The driver runs its Python; executors get it through `spark.pyspark.python`. On YARN the venv is
also packed once (`env.tar.gz` beside it) and shipped with `--archives`, so YARN containers on other
nodes unpack their own copy (the venv links to the head node's base Python, so the nodes need the
same base Python at the same path, as HDInsight's nodes have). Standalone workers and `local[N]` use
the venv's path as is: a file system shared with the head node is assumed there. pip on the head
node uses the head node's own pip configuration (index, CA); nothing of this machine's is sent.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from ...environment import pip_requirements
from ...errors import EnvironmentBuildError
from ...models import EnvironmentSpec
from ...transport.ssh import SshConnection
from ..base import ControlLog, PreparedEnv

READY = ".amlexec-ready"

# $1 = base python, $2 = env dir, $3 = wanted python version ("" = any), then pip specs.
RECIPE = r"""
set -e
py=$1; d=$2; want=$3; shift 3
have=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$have." in
  "$want".*|.) ;;
  *) if [ -n "$want" ]; then
       echo "The conda file asks for python $want; $py on the head node is python $have." >&2
       exit 86
     fi ;;
esac
b="$d.build.$$"
rm -rf "$b"
trap 'rm -rf "$b"' EXIT
echo "A venv with $py ($have) at $d"
"$py" -m venv --system-site-packages "$b"
if [ $# -gt 0 ]; then
  "$b/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$@"
fi
mkdir -p "$(dirname "$d")"
if mv -T "$b" "$d" 2>/dev/null; then
  touch "$d/.amlexec-ready"
else
  echo "Built at the same time by another run: that one is used."
fi
"""


# $1 = env dir: its archive beside it, made once (YARN ships it with --archives).
PACK = r"""
d=$1; a="$d.tar.gz"
[ -f "$a" ] && exit 0
tar -czf "$a.tmp.$$" -C "$d" . && mv -f "$a.tmp.$$" "$a"
"""


def environment_hash(env: EnvironmentSpec, python: str) -> str:
    """The key of the venv: the conda file's python and packages (not the spark file), the base Python."""
    return replace(env, spark=None).content_hash("head-node-venv-1", python)[:16]


def is_empty(env: EnvironmentSpec) -> bool:
    return not env.pip_packages and not env.conda_packages


def ensure_environment(
    conn: SshConnection,
    env: EnvironmentSpec,
    *,
    root: str,
    python: str,
    pack: bool,
    log: ControlLog,
    force: bool = False,
    build: bool = True,
    target_name: str = "",
) -> PreparedEnv:
    """The venv of `env` on the head node (built now when missing, or when `force`)."""
    key = environment_hash(env, python)
    where = f"{root}/envs/{key}"
    if is_empty(env):
        return PreparedEnv(env_hash=f"head:{python}", python=python)
    as_pip = pip_requirements(env)  # the Docker build's rule: conda packages through pip where it can
    if as_pip.conda_only:
        raise EnvironmentBuildError(
            f"The conda file {env.conda_file or ''} lists packages only conda has: "
            f"{', '.join(as_pip.conda_only)}. Remove them (the head node's environment is a venv; the "
            f"file's other dependencies are installed with pip).",
            log_tail="",
        )
    ready = conn.run(["sh", "-c", f"test -f {shlex.quote(where)}/{READY}"]).exit_code == 0
    details = {"archive": f"{root}/envs/{key}.tar.gz" if pack else None, "dir": where}
    if ready and not force:
        log(f"Environment {key} on {conn.endpoint.describe()} is ready (cached at {where}).")
        _pack(conn, where, pack, log)
        return PreparedEnv(env_hash=key, python=f"{where}/bin/python", details=details)
    if not build:
        raise EnvironmentBuildError(
            f"The environment {key} is not prepared on {conn.endpoint.describe()} and the run "
            f"configuration says PrepareEnvironment: false. Prepare it first, or set "
            f"PrepareEnvironment: true.",
            log_tail="",
        ).with_hint("target.prepare", target_name)
    if force:
        conn.run(["rm", "-rf", where, f"{where}.tar.gz"])
    _build(conn, as_pip.requirements, as_pip.notes, key, where, python, env.python_version, log)
    _pack(conn, where, pack, log)
    return PreparedEnv(env_hash=key, built=True, python=f"{where}/bin/python", details=details)


def _build(
    conn: SshConnection,
    requirements: tuple[str, ...],
    notes: tuple[str, ...],
    key: str,
    where: str,
    python: str,
    python_version: str | None,
    log: ControlLog,
) -> None:
    """The venv at `where`: built in a folder of its own, then renamed into place (a concurrent build
    of the same hash loses the rename and leaves the winner's)."""
    log(f"Building environment {key} on {conn.endpoint.describe()}: {', '.join(requirements)}")
    for note in notes:
        log(f"  {note}")
    argv = ["sh", "-c", RECIPE, "amlexec-env", python, where, python_version or "", *requirements]
    result = conn.run(argv, timeout=1800)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    for line in output.splitlines():
        log(line)
    if result.exit_code != 0:
        raise EnvironmentBuildError(
            f"Building the environment {key} on {conn.endpoint.describe()} failed (exit "
            f"{result.exit_code}); the build log is in the run's control log.",
            log_tail="\n".join(output.splitlines()[-40:]),
        )


def _pack(conn: SshConnection, where: str, pack: bool, log: ControlLog) -> None:
    """The venv's archive for --archives, once (an environment first built for standalone has none)."""
    if not pack:
        return
    result = conn.run(["sh", "-c", PACK, "amlexec-pack", where], timeout=600)
    if result.exit_code != 0:
        raise EnvironmentBuildError(
            f"Packing the environment {where} on {conn.endpoint.describe()} for YARN failed: "
            f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}",
            log_tail="",
        )
