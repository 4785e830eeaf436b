"""spark-submit on the head node: the argv (through the one command builder), the wrapper that runs
it detached, and the Spark application id read back from its log.

The wrapper is a few lines of sh around spark-submit. In YARN cluster mode the driver runs in a YARN
container, so its output is not spark-submit's: when spark-submit ends, the wrapper appends the
application's aggregated logs (`yarn logs`) to the run's log on the head node, so the log stays one
byte stream that any process re-attaching reads from the same cursor.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from ..base import RunSpec
from ..commands import SparkOptions, build_command
from .settings import ClusterSettings

# YARN: "Submitted application application_1764577000000_0001"; standalone: "Connected to Spark
# cluster with app ID app-20261201084006-0000" (both INFO lines of spark-submit's own log).
APP_ID = re.compile(rb"\b(application_\d+_\d+|app-\d{14}-\d{4,})\b")
_ERROR_LINE = re.compile(rb"^(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Exit|Interrupt)\b[^\n]*", re.MULTILINE)

ARCHIVE_ALIAS = "amlexec_env"  # where YARN unpacks the environment archive in each container
LOGS_BANNER = "===== aggregated YARN logs of"

# $1 = deploy mode, $2 = yarn CLI, $3 = the run's log on the head node, then spark-submit's argv.
WRAPPER = r"""
mode=$1; yarn=$2; log=$3; shift 3
"$@"
code=$?
if [ "$mode" = cluster ]; then
  app=$(grep -o 'application_[0-9]*_[0-9]*' "$log" | head -n 1)
  if [ -n "$app" ]; then
    i=0
    while [ $i -lt 60 ]; do
      out=$("$yarn" logs -applicationId "$app" -log_files stdout,stderr 2>&1) && [ -n "$out" ] && break
      i=$((i+1)); sleep 1
    done
    echo "LOGS_BANNER $app ====="
    printf '%s\n' "$out"
  fi
fi
exit $code
""".replace("LOGS_BANNER", LOGS_BANNER)


def submit_argv(
    settings: ClusterSettings,
    run: RunSpec,
    python: str,
    *,
    env_archive: str | None = None,
    archives: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """spark-submit's argv for `run`: master and deploy mode of the target, the spark file's
    options, then ours (the environment archive, other `path#alias` archives, `extra` options)."""
    options: list[str] = ["--conf", "spark.yarn.submit.waitAppCompletion=true"] if settings.is_yarn else []
    shipped = list(archives)
    if env_archive:  # the packed environment, unpacked by YARN in every container
        shipped.append(f"{env_archive}#{ARCHIVE_ALIAS}")
        options += ["--conf", f"spark.pyspark.python=./{ARCHIVE_ALIAS}/bin/python"]
        if settings.deploy_mode == "cluster":
            options += ["--conf", f"spark.pyspark.driver.python=./{ARCHIVE_ALIAS}/bin/python"]
    if shipped:  # one --archives: spark-submit keeps only the last of several
        options += ["--archives", ",".join(shipped)]
    spark = SparkOptions(
        master=settings.master,
        deploy_mode=settings.deploy_mode if settings.is_yarn else None,
        submit=settings.submit,
        arguments=(*run.spark_arguments, *options, *extra),
        python=python,
    )
    return build_command(run.framework, python, run.entry_script, run.arguments, spark)


def wrapped(settings: ClusterSettings, log_path: str, argv: Sequence[str]) -> list[str]:
    """`argv` inside the wrapper (aggregated logs appended in YARN cluster mode)."""
    mode = settings.deploy_mode if settings.is_yarn else "client"
    return ["sh", "-c", WRAPPER, "amlexec-spark", mode, settings.yarn, log_path, *argv]


def application_id(data: bytes) -> str | None:
    """The first Spark application id in a piece of spark-submit's log."""
    found = APP_ID.search(data)
    return found.group(1).decode() if found else None


def last_error_line(data: bytes) -> str | None:
    """The last "SomeError: message" line of a Python traceback in a piece of log."""
    if b"Traceback" not in data and b"Error" not in data:
        return None
    lines = _ERROR_LINE.findall(data)
    return lines[-1].decode("utf-8", "replace").strip()[:500] if lines else None


def describe(argv: Sequence[str]) -> str:
    """An argv for the control log."""
    return shlex.join(argv)
