"""Which executor runs which target type: found through the entry-point group
`jupyter_amlexec.executors` (name = the `.compute` file's `type`, value = `module:Class`), so a new
target type is a module and a line in pyproject.toml, not an edit here. Executors are imported only
when a target needs one: heavy transports (docker-py, paramiko) live behind optional extras.

The types this package ships are also listed in BUILTIN, the same lines as its pyproject.toml: a
submit to one of them imports no `importlib.metadata` and scans no installed distribution (~20-40 ms
of CPU per CLI process). The group is read for any other type, and to list what is installed.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import cast

from ..errors import TargetUnavailableError
from ..project import ComputeTarget
from .base import Executor

GROUP = "jupyter_amlexec.executors"
BUILTIN = {
    "local": "jupyter_amlexec.core.executors.local:LocalExecutor",
    "docker": "jupyter_amlexec.core.executors.docker:DockerExecutor",
    "remote": "jupyter_amlexec.core.executors.remote:RemoteExecutor",
    "remotedocker": "jupyter_amlexec.core.executors.remotedocker:RemoteDockerExecutor",
    "cluster": "jupyter_amlexec.core.executors.spark:cluster_executor",
}

_PLANNED = {
    "remotedocker": "Docker on a remote host over SSH",
    "remote": "user-managed Python on a remote host over SSH",
    "cluster": "Spark clusters (spark-submit over SSH, Livy)",
}
_found: dict[str, str] | None = None
_lock = threading.Lock()


def executor_types() -> dict[str, str]:
    """Target type -> "module:Class" of every installed executor (read once per process)."""
    from importlib.metadata import entry_points

    global _found
    with _lock:
        if _found is None:
            _found = {**BUILTIN, **{ep.name: ep.value for ep in entry_points(group=GROUP)}}
        return dict(_found)


def create_executor(target: ComputeTarget, home: Path, project_root: Path | None = None) -> Executor:
    """An executor for `target`; TargetUnavailableError when its type has no executor installed.
    `project_root` reaches executors that read project files of their own (an SSH target's
    aml_config/known_hosts) through their `project_root` attribute."""
    kind = str(target.type)
    spec = BUILTIN.get(kind) or executor_types().get(kind)
    if spec is None:
        what = f" ({_PLANNED[kind]})" if kind in _PLANNED else ""
        known = ", ".join(sorted(executor_types())) or "none"
        raise TargetUnavailableError(
            f"Target '{target.name}' has type '{kind}'{what}, which no installed executor runs "
            f"(installed: {known}). Run it on a target of an installed type meanwhile, or install the "
            f"package that provides '{kind}' (entry-point group {GROUP})."
        )
    module_name, _, class_name = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    executor = cast(Executor, factory(target, home))
    if project_root is not None and hasattr(executor, "project_root"):
        executor.project_root = project_root
    return executor
