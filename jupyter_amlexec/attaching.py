"""Attaching and checking targets from parsed flags: shared by the CLI and `%aml_target`, so both
take Workbench's flags alike (`--password` included) and report a target's check the same way."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .core.errors import AmlExecError, ConfigError
from .core.secrets import store_in_keyring

PROMPT = "\0prompt"  # `--password` given without a value: ask for it


def attach_password(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, str]:
    """Workbench's `--password P`: P goes into the keyring, the .compute names the entry. A value
    on the command line stays in shell history, so say so; `--password` alone prompts."""
    given = getattr(a, "password", None)
    if given is None:
        return {}
    if given == PROMPT:
        given = getpass.getpass(f"Password for {a.username or ''}@{a.address or a.name}: ")
    else:
        warn(
            "warning: a password given as a flag value stays in your shell (or notebook) history; "
            "next time pass --password without a value to be asked for it, or --password-env VAR."
        )
    if not given:
        raise ConfigError("--password: no password given.", key="password")
    return {"password_keyring": store_in_keyring(a.name, a.username, given)}


def attach_from_options(
    project: Any, a: argparse.Namespace, warn: Callable[[str], None] = print
) -> tuple[Any, Any]:
    """Attach a target from parsed flags; the CLI and `%aml_target attach` name them alike."""
    secret = attach_password(a, warn)
    target, rc = project.attach_target(
        a.name,
        a.type,
        address=a.address,
        username=a.username,
        key_file=a.key,
        password_env=a.password_env,
        base_docker_image=a.base_image,
        python_location=a.python,
        force=a.force,
        network_mode=a.network_mode,
        **secret,
    )
    return target, rc


def print_problems(session: Any, kind: str) -> None:
    """After a listing: each file of that kind that could not be read, or was read with a warning."""
    for problem in session.project.config_problems():
        if problem.kind == kind or (kind == "run configuration" and problem.kind == "dependencies"):
            print(f"{problem.severity}: {problem.message}", file=sys.stderr)


def check_lines(session: Any, names: Sequence[str]) -> list[str]:
    """One line per target: reachable and ready, or what is wrong and how to fix it."""
    lines = []
    for name in names:
        try:
            session.check(name)
            lines.append(f"{name}: ok")
        except AmlExecError as exc:
            lines.append(f"{name}: {exc.explained()}")
    return lines
