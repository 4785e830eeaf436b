"""One command builder for every executor: (framework, interpreter, script, arguments, spark options)
-> argv. Local, Docker, remote and cluster targets differ in where the argv runs, not in its shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError


class Framework(str, Enum):
    """A run configuration's `Framework`: plain Python, or PySpark through spark-submit."""

    PYTHON = "Python"
    PYSPARK = "PySpark"

    @classmethod
    def of(cls, value: str | Framework) -> Framework:
        """The member for a Workbench spelling (any case); ValueError names the allowed ones."""
        if isinstance(value, Framework):
            return value
        for member in cls:
            if member.value.lower() == str(value).strip().lower():
                return member
        raise ValueError(f"unknown Framework {value!r}; allowed: Python or PySpark")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SparkOptions:
    """How spark-submit is called: master, deploy mode, and the options from spark_dependencies.yml."""

    master: str = "local[*]"
    deploy_mode: str | None = None  # "client" | "cluster" (YARN); None: spark-submit's default
    submit: str = "spark-submit"  # sparkSubmitLocation, or spark-submit on the PATH
    arguments: tuple[str, ...] = ()  # --conf/--packages/--repositories/--jars/--py-files ...
    python: str | None = None  # spark.pyspark.python for driver and executors


def build_command(
    framework: Framework | str,
    interpreter: str,
    entry_script: str,
    arguments: Sequence[str],
    spark: SparkOptions | None = None,
) -> list[str]:
    """The argv that runs `entry_script` with `arguments`: `interpreter script args` for Python,
    `spark-submit --master M [--deploy-mode D] [options] script args` for PySpark."""
    if Framework.of(framework) is Framework.PYTHON:
        return [interpreter, entry_script, *arguments]
    spark = spark or SparkOptions(python=interpreter)
    argv = [spark.submit, "--master", spark.master]
    if spark.deploy_mode:
        argv += ["--deploy-mode", spark.deploy_mode]
    python = spark.python or interpreter
    if python:
        argv += [
            "--conf",
            f"spark.pyspark.python={python}",
            "--conf",
            f"spark.pyspark.driver.python={python}",
        ]
    return [*argv, *spark.arguments, entry_script, *arguments]


# Linux: one exec argument or environment string may hold at most 32 pages (MAX_ARG_STRLEN).
MAX_ARG_BYTES = 32 * 4096


def check_exec_size(arguments: Sequence[str], env: Mapping[str, str]) -> None:
    """Refuse, before anything is recorded, an argument or variable too large for exec."""
    for what, text in [
        *((f"argument {a[:40]!r}...", a) for a in arguments),
        *((f"variable {k}", f"{k}={v}") for k, v in env.items()),
    ]:
        size = len(text.encode("utf-8", "surrogateescape"))
        if size >= MAX_ARG_BYTES:
            raise ConfigError(
                f"The {what} is {size} bytes; a process argument or environment variable can hold at most "
                f"{MAX_ARG_BYTES - 1}. Put the value into a file of the project and pass its name instead."
            )
