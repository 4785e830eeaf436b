"""The keys of a `cluster` .compute file, validated once when the executor is made.

Workbench's keys: `address`, `username`, `yarnDeployMode`, `sparkSubmitLocation`. Ours:
`sparkMaster` (`yarn` by default, as on HDInsight; `spark://host:port` standalone, `local[N]`),
`hadoopConfDir` (HADOOP_CONF_DIR and YARN_CONF_DIR for spark-submit on the head node, when its login
environment does not set them), `pythonLocation` (the head node's Python that environments are built
from), `yarnLocation` (the `yarn` CLI, for aggregated logs in cluster mode), and `amlexecRoot`. A target
with `livyUrl` runs through Livy instead (livy.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...project import ComputeTarget
from ...transport.blobsync import DEFAULT_ROOT
from ...transport.sshconfig import SshSettings

_MASTER = re.compile(r"yarn|local(\[(\*|\d+)(,\d+)?\])?|spark://[^\s,/]+:\d+(,[^\s,/]+:\d+)*")


@dataclass(frozen=True)
class ClusterSettings:
    """How a cluster is reached and how spark-submit is called on it."""

    ssh: SshSettings
    master: str = "yarn"  # sparkMaster
    deploy_mode: str = "client"  # yarnDeployMode (YARN only; standalone and local run the driver here)
    submit: str = "spark-submit"  # sparkSubmitLocation
    hadoop_conf_dir: str | None = None  # hadoopConfDir
    python: str = "python3"  # pythonLocation: the head node's Python
    yarn: str = "yarn"  # yarnLocation
    root: str = DEFAULT_ROOT  # amlexecRoot

    @property
    def is_yarn(self) -> bool:
        return self.master == "yarn"

    @property
    def address(self) -> str:
        """The head node, for messages."""
        return self.ssh.address

    @classmethod
    def of(cls, target: ComputeTarget) -> ClusterSettings:
        """The target's keys; ConfigError naming the file and key on a bad value."""
        where = Path("aml_config") / f"{target.name}.compute"
        extra = target.extra
        master = str(target.spark_master or "yarn").strip()
        if not _MASTER.fullmatch(master):
            raise ConfigError(
                f"bad value {master!r}; allowed: yarn, spark://HOST:PORT or local[N].",
                file=where,
                key="sparkMaster",
            )
        mode = (target.yarn_deploy_mode or "cluster").lower() if master == "yarn" else "client"
        return cls(
            ssh=SshSettings.from_target(target),
            master=master,
            deploy_mode=mode,
            submit=target.spark_submit_location or "spark-submit",
            hadoop_conf_dir=_text(extra.get("hadoopConfDir")),
            python=target.python_location or "python3",
            yarn=_text(extra.get("yarnLocation")) or "yarn",
            root=_text(extra.get("amlexecRoot")) or DEFAULT_ROOT,
        )


def _text(value: object) -> str | None:
    return str(value).strip() or None if value is not None else None
