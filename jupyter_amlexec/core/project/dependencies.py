"""The top-level keys of conda_dependencies.yml and spark_dependencies.yml: a typo warns with the
closest known key, and a conda file whose keys are all typos is refused (it would build an empty
environment and the run would "complete" without its packages)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from .values import closest_key, unknown_key_warnings

# conda's environment file keys (`conda env create -f`)
CONDA_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
SPARK_KEYS = ("configuration", "repositories", "packages")


def conda_key_warnings(data: Mapping[str, object], path: Path) -> tuple[str, ...]:
    """Warnings for unknown keys; ConfigError when there is no `dependencies` but an unknown key."""
    unknown = [k for k in data if k not in CONDA_KEYS]
    if unknown and "dependencies" not in data:
        key = unknown[0]
        guess = closest_key(key, CONDA_KEYS) or "dependencies"
        raise ConfigError(
            f"unknown key '{key}' and no 'dependencies': this environment would install nothing. "
            f"Did you mean '{guess}'? Rename the key (known keys: {', '.join(CONDA_KEYS)}).",
            file=path,
            key=key,
        )
    return unknown_key_warnings(data, CONDA_KEYS, path)


def spark_key_warnings(data: Mapping[str, object], path: Path) -> tuple[str, ...]:
    """Warnings for keys of spark_dependencies.yml other than configuration/repositories/packages."""
    return unknown_key_warnings(data, SPARK_KEYS, path)
