"""The Spark cluster target (`type: cluster`, Workbench's HDInsight target): spark-submit on a head
node over SSH (YARN, standalone or local[N]), or a Livy endpoint over HTTP(S) (`livyUrl`). One
concept a module: settings (the .compute keys), submit (argv, application ids), yarn (the
ResourceManager), headenv (the environment on the head node), clustermode and bootstrap (YARN
cluster mode, Livy), executor (over SSH), livy.
"""

from __future__ import annotations

from pathlib import Path

from ...project import ComputeTarget
from .executor import ClusterExecutor, ClusterRunHandle
from .livy import LivyExecutor, LivyRunHandle
from .settings import ClusterSettings

__all__ = [
    "ClusterExecutor",
    "ClusterRunHandle",
    "ClusterSettings",
    "LivyExecutor",
    "LivyRunHandle",
    "cluster_executor",
]


def cluster_executor(target: ComputeTarget, home: Path) -> ClusterExecutor | LivyExecutor:
    """The executor of a `cluster` target: Livy when the .compute file has `livyUrl`, else SSH."""
    if target.extra.get("livyUrl"):
        return LivyExecutor(target, home)
    return ClusterExecutor(target, home)
