"""The one error hierarchy of jupyter_amlexec: every failure a user can see is an AmlExecError.

Each error's message says what is wrong (file, key, value) and what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar


@dataclass(frozen=True)
class Hint:
    """The command that fixes an error, by verb, so each adapter spells it its own way: the magics
    as `%aml_target prepare docker`, the CLI as `amlexec experiment prepare -c docker`.

    Verbs: "target.attach", "target.prepare", "target.list", "runconfig.list", "project.init", "runs.list",
    "submit" (args: run configuration, script)."""

    verb: str
    args: tuple[str, ...] = ()


HintRenderer = Callable[[Hint], str]
_renderer: list[HintRenderer] = []


def set_hint_renderer(renderer: HintRenderer) -> None:
    """The adapter in use (magics, CLI) says how its commands are written."""
    _renderer[:] = [renderer]


def render_hint(hint: Hint | None) -> str:
    """The hint in the syntax of the adapter in use; "" without a hint or an adapter."""
    if hint is None or not _renderer:
        return ""
    return _renderer[0](hint)


_E = TypeVar("_E", bound="AmlExecError")


class AmlExecError(Exception):
    """Root of every error raised on purpose by jupyter_amlexec; `hint` names the fixing command."""

    hint: Hint | None = None

    def with_hint(self: _E, verb: str, *args: str) -> _E:
        """This error, carrying the command that fixes it."""
        self.hint = Hint(verb, tuple(args))
        return self

    def explained(self) -> str:
        """The message, then the fixing command in the current adapter's syntax."""
        fix = render_hint(self.hint)
        return f"{self}\n  To fix: {fix}" if fix else str(self)

    def _render_traceback_(self) -> list[str]:
        """IPython shows our errors as their message: the stack is noise to a notebook user."""
        return [f"{type(self).__name__}: {self.explained()}"]


class ConfigError(AmlExecError):
    """A project file (aml_config/...) or an argument is malformed or names something unknown."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f", line {line}"
            if key is not None:
                where += f", key '{key}'"
            where += ": "
        elif key is not None:
            where = f"'{key}': "
        super().__init__(where + message)
        self.file = file
        self.key = key
        self.line = line


class TargetNotFoundError(ConfigError):
    """A run configuration or compute target name has no file in aml_config/."""

    def __init__(self, name: str, known: Sequence[str], project: Path, kind: str = "compute target") -> None:
        listed = ", ".join(sorted(known)) or "none yet: attach one"
        super().__init__(f"No {kind} '{name}' in {project / 'aml_config'}. Known: {listed}.")
        self.name = name
        self.known = tuple(known)
        self.hint = Hint("target.attach", (name,)) if kind == "compute target" else Hint("runconfig.list")


class SecretError(ConfigError):
    """A secret cannot be resolved (unset variable, Workbench cloud secret, plain-text password)."""


class TargetUnavailableError(AmlExecError):
    """The target exists in config but cannot be reached (no Docker engine, SSH refused, ...)."""


class TransportError(TargetUnavailableError):
    """The connection to a target failed or dropped (refused, reset, timed out): worth a retry, and
    no verdict on the work over there, which goes on without us."""


class HostKeyError(TargetUnavailableError):
    """An SSH host's key is unknown or differs from the one on record: never retried, never
    accepted silently (the message says how to check and trust it)."""


class SnapshotError(AmlExecError):
    """The project cannot be snapshotted (over the size cap, unreadable file, missing entry script)."""


class AttachmentError(AmlExecError):
    """A run's output cannot be stored in the history (disk full, read-only home), or an attachment
    name reaches outside the run's own files (`..`, an absolute path, a link leaving runs/<id>/).

    `collected` holds the outputs stored before a collection stopped, so the caller can still list
    what did arrive.
    """

    def __init__(self, message: str, collected: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.collected = tuple(collected)


class EnvironmentBuildError(AmlExecError):
    """Building the run environment failed; carries the tail of the build log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        text = message if not log_tail else f"{message}\n--- build log (tail) ---\n{log_tail}"
        super().__init__(text)
        self.log_tail = log_tail


class RunCanceledError(AmlExecError):
    """Raised inside the follower to stop preparing a run that was canceled meanwhile."""


class HistoryError(AmlExecError):
    """The run history store cannot be opened or written (permissions, corrupt database)."""


class RunNotFoundError(AmlExecError):
    """No run with this id in the history."""

    def __init__(self, run_id: str, home: Path | None = None) -> None:
        where = f" in {home}" if home is not None else ""
        super().__init__(f"No run '{run_id}'{where}.")
        self.run_id = run_id
        self.hint = Hint("runs.list")


class RunFailedError(AmlExecError):
    """A waited-for run ended Failed or Canceled; the message carries the log tail."""

    def __init__(
        self, run_id: str, status: str, exit_code: int | None, error: str | None, log_tail: str
    ) -> None:
        code = f" (exit code {exit_code})" if exit_code is not None else ""
        detail = f": {error}" if error else ""
        tail = f"\n--- log (tail) ---\n{log_tail}" if log_tail else ""
        super().__init__(f"Run {run_id} {status}{code}{detail}{tail}")
        self.run_id = run_id
        self.status = status
        self.exit_code = exit_code
        self.error = error
        self.log_tail = log_tail
