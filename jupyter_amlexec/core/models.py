"""Value objects shared by every part of the core: run status, metrics, run events, environment spec.

They are frozen so a listener on another thread can keep them without copying.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class RunStatus(str, Enum):
    """Life cycle of a run; the last three are terminal and a terminal status never changes."""

    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Metric:
    """One logged value. Repeated logs of one name form a series ordered by `step`.

    kind: "scalar" (number or string), "list" (list of numbers), "row" (dict of columns),
    "image" (value = artifact path under outputs/), "file" (value = artifact path).
    """

    name: str
    value: object
    kind: str = "scalar"
    step: int = 0
    logged_utc: str = ""


# --- events: what listeners (widget, CLI printer, magic) receive while a run is followed -----------


@dataclass(frozen=True)
class RunEvent:
    run_id: str
    time: float = field(default_factory=time.time, compare=False)


@dataclass(frozen=True)
class StatusEvent(RunEvent):
    """The run entered `status`. `detail` says why or what (e.g. "building image ...", the error)."""

    status: RunStatus = RunStatus.QUEUED
    detail: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class LogEvent(RunEvent):
    """Log text as it streams. source "driver" = the script's stdout/stderr; "control" = our own
    messages and the environment build log (the Preparing phase)."""

    text: str = ""
    source: str = "driver"
    cursor: str = ""  # where a follower of the history resumes right after this text ("" unknown)


@dataclass(frozen=True)
class MetricEvent(RunEvent):
    metric: Metric = field(default_factory=lambda: Metric(name="", value=None))


@dataclass(frozen=True)
class OutputsEvent(RunEvent):
    """outputs/ was collected; `files` are paths relative to the run's outputs/ folder."""

    files: tuple[str, ...] = ()


# --- environment -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentSpec:
    """What a managed target must realise before a run: the normalised conda file (+ spark file).

    The hash names the cached environment (image tag); equal specs share one environment.
    """

    conda: Mapping[str, object] | None  # parsed conda_dependencies.yml (None: none used)
    spark: Mapping[str, object] | None = None  # parsed spark_dependencies.yml when Framework is PySpark
    conda_file: str | None = None  # project-relative path, for messages
    spark_file: str | None = None
    python_version: str | None = None  # "3.11" from `python=3.11.*` in the conda file
    conda_packages: tuple[str, ...] = ()  # conda specs other than python/pip
    pip_packages: tuple[str, ...] = ()  # the `pip:` section
    channels: tuple[str, ...] = ()

    def content_hash(self, *salt: str) -> str:
        """Stable hash of the normalised spec plus `salt` (e.g. base image id, recipe version)."""
        doc = {
            "python": self.python_version,
            "conda": sorted(self.conda_packages),
            "pip": list(self.pip_packages),
            "channels": list(self.channels),
            "spark": self.spark,
            "salt": list(salt),
        }
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def is_empty(self) -> bool:
        """True when nothing must be installed (use the base image / interpreter as is)."""
        return not (self.conda_packages or self.pip_packages)
