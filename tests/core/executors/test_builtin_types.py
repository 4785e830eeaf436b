"""The executor types this package ships are found without reading entry points, and the table that
says so matches what the installed package declares (so neither can drift from the other)."""

from __future__ import annotations

from importlib.metadata import entry_points

from jupyter_amlexec.core.executors import BUILTIN, GROUP, executor_types


def test_builtin_types_are_the_ones_the_package_declares() -> None:
    declared = {
        ep.name: ep.value
        for ep in entry_points(group=GROUP)
        if ep.dist is not None and ep.dist.name.replace("-", "_") == "jupyter_amlexec"
    }
    assert declared == BUILTIN


def test_every_builtin_type_is_listed_as_installed() -> None:
    assert set(BUILTIN) <= set(executor_types())
