"""YARN cluster mode: the driver runs in a YARN container, not in the run's folder on the head node.

The run's folder (snapshot + in-run API) travels as an archive (`--archives snapshot.tgz#amlexec_snapshot`),
unpacked by YARN in the driver's container; a small bootstrap (the application's main file) sets
the run's environment variables from a file inside that archive (never on a command line), enters
the unpacked snapshot, runs the entry script, and at the end copies its outputs/ to the run's
`cluster-outputs` folder on the head node, from which the executor collects them. That folder is
reached by path from the driver's node: the nodes must share the head node's file system for it
(one machine here; on HDInsight set `amlexecRoot` to a path every node mounts).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace

from ...errors import TargetUnavailableError
from ...transport.ssh import SshConnection
from ..base import RunSpec
from .bootstrap import MAIN, SETTINGS_FILE, run_settings

SNAPSHOT_ALIAS = "amlexec_snapshot"


def outputs_dir(root: str, run_id: str) -> str:
    """Where the driver leaves a copy of its outputs/ on the shared file system."""
    return f"{root}/runs/{run_id}/cluster-outputs"


def prepare(
    conn: SshConnection, run: RunSpec, work: str, run_dir: str
) -> tuple[RunSpec, list[str], list[str]]:
    """The run as cluster mode submits it: the bootstrap as main file, the entry script its first
    argument; returns it with the archives to ship and the extra spark-submit options."""
    root = run_dir.rsplit("/runs/", 1)[0]
    out = outputs_dir(root, run.run_id)
    settings = run_settings(dict(run.environment_variables), list(run.python_path), run.entry_script, out)
    main = f"{run_dir}/cluster/amlexec_main.py"
    archive = f"{run_dir}/cluster/snapshot.tgz"
    script = "\n".join(
        [
            "set -e",
            f"mkdir -p {shlex.quote(run_dir)}/cluster {shlex.quote(out)}",
            f"chmod 1777 {shlex.quote(out)}",  # the container's user writes there
            f"cat > {shlex.quote(work)}/{SETTINGS_FILE}",
            f"printf '%s' {shlex.quote(MAIN)} > {shlex.quote(main)}",
            f"tar -czf {shlex.quote(archive)} -C {shlex.quote(work)} .",
            f"chmod 600 {shlex.quote(work)}/{SETTINGS_FILE} {shlex.quote(archive)}",
        ]
    )
    result = conn.run(["sh", "-c", script], stdin=json.dumps(settings).encode())
    if result.exit_code != 0:
        raise TargetUnavailableError(
            f"Could not pack the run for YARN cluster mode in {run_dir} on {conn.endpoint.describe()}: "
            f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}"
        )
    changed = replace(run, entry_script=main, arguments=(SNAPSHOT_ALIAS, *run.arguments))
    return changed, [f"{archive}#{SNAPSHOT_ALIAS}"], []
