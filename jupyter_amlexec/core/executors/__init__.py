"""Which executor runs which target type; executors are imported only when a target needs one.

Heavy transports (docker-py, paramiko) live behind optional extras, so the registry names modules
instead of importing them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from ..errors import TargetUnavailableError
from ..project import ComputeTarget, TargetType
from .base import Executor

_EXECUTORS: dict[TargetType, tuple[str, str]] = {
    TargetType.LOCAL: ("jupyter_amlexec.core.executors.local", "LocalExecutor"),
    TargetType.DOCKER: ("jupyter_amlexec.core.executors.docker", "DockerExecutor"),
}

_NOT_YET = {
    TargetType.REMOTE_DOCKER: "Docker on a remote host over SSH",
    TargetType.REMOTE: "user-managed Python on a remote host over SSH",
    TargetType.CLUSTER: "Spark clusters (spark-submit over SSH, Livy)",
}


def create_executor(target: ComputeTarget, home: Path) -> Executor:
    """An executor for `target`; TargetUnavailableError when its type has no executor here."""
    try:
        module_name, class_name = _EXECUTORS[target.type]
    except KeyError:
        what = _NOT_YET.get(target.type, str(target.type))
        raise TargetUnavailableError(
            f"Target '{target.name}' has type '{target.type}' ({what}), which this version of "
            f"jupyter_amlexec cannot run yet. Run it on a 'local' or 'docker' target meanwhile "
            f"(%%aml_submit -c local / -c docker)."
        ) from None
    module = importlib.import_module(module_name)
    factory = getattr(module, class_name)
    return cast(Executor, factory(target, home))
