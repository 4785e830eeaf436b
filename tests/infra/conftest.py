"""Tests of the test infrastructure itself (scripts/infra/): services started by scripts/test.sh."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spark: needs the Spark/YARN/Livy services of scripts/infra/spark.sh")
