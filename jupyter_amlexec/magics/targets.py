"""`%aml_target` and `%aml_runconfig`: one function per verb over the project's aml_config/ files."""

from __future__ import annotations

import shlex
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ..core.errors import ConfigError
from .text import parse, show_table, strip_comment

TARGET_TYPES = ["local", "docker", "localdocker", "remotedocker", "remote", "cluster"]
TARGET_VERBS = ("list", "attach", "show", "detach", "use", "prepare", "init")


@magic_arguments()
@argument("name", help="target name: aml_config/NAME.compute")
@argument("--type", required=True, choices=TARGET_TYPES, help="kind of target")
@argument("--address", help="HOST or HOST:PORT (remote targets)")
@argument("--username", help="SSH user (remote targets)")
@argument("--key", help="SSH private key file (never copied into aml_config/)")
@argument("--password-env", help="NAME of the environment variable holding the password")
@argument(
    "--password",
    nargs="?",
    const="\0prompt",
    help="kept in the keyring, never in aml_config/ (no value: asked for)",
)
@argument("--no-check", action="store_true", help="do not check the target after attaching")
@argument("--base-image", help="baseDockerImage for docker targets")
@argument("--python", help="pythonLocation: the interpreter to run (local/remote)")
@argument("--network-mode", help="Docker network for runs and builds: host, none, bridge, <name>")
@argument("--force", action="store_true", help="replace an existing target of that name")
def target_attach_flags(line: str) -> None:
    """%aml_target attach NAME --type TYPE [...]: write NAME.compute + NAME.runconfig."""


@magic_arguments()
@argument("name")
@argument("--force", action="store_true", help="rebuild even when the environment is cached")
def target_prepare_flags(line: str) -> None:
    """%aml_target prepare RUNCONFIG [--force]: build the environment ahead of the first run."""


@magic_arguments()
@argument("name")
@argument("--target", "-t", required=True)
@argument("--framework", choices=["Python", "PySpark"], default="Python")
@argument("--env", action="append", metavar="NAME=VALUE")
@argument("--force", action="store_true")
def runconfig_create_flags(line: str) -> None:
    """%aml_runconfig create NAME --target T"""


def target_command(session: Any, line: str) -> None:
    """Dispatch `%aml_target VERB ...`; config errors become UsageError with the fix."""
    verb, _, rest = strip_comment(line).strip().partition(" ")
    verbs = {
        "": _target_list,
        "list": _target_list,
        "attach": _target_attach,
        "show": _target_show,
        "detach": _target_detach,
        "use": _target_use,
        "prepare": _target_prepare,
        "init": _target_init,
    }
    if verb not in verbs:
        raise UsageError(
            f"Unknown %aml_target subcommand {verb!r}; use {', '.join(TARGET_VERBS)}. See %aml_target?"
        )
    try:
        verbs[verb](session, rest)
    except ConfigError as exc:
        raise UsageError(exc.explained()) from exc


def one_name(rest: str, verb: str) -> str:
    """The single NAME a verb takes, or a UsageError showing the form."""
    parts = shlex.split(strip_comment(rest))
    if len(parts) != 1:
        raise UsageError(f"%aml_target {verb} takes one target name, e.g. %aml_target {verb} docker")
    return parts[0]


def _target_list(session: Any, rest: str) -> None:
    from ..attaching import check_lines
    from ..display import targets_table

    project = session.project
    words = shlex.split(strip_comment(rest))
    if words not in ([], ["--check"]):
        raise UsageError(
            "%aml_target list takes only --check (check every target: reachable, ready, the fix)."
        )
    show_table(*targets_table(project.targets(), project.run_configurations()))
    _problems(project, ("compute target",))
    if words:
        print("\n".join(check_lines(session, [t.name for t in project.targets()])))


def _problems(project: Any, kinds: tuple[str, ...]) -> None:
    """Files of aml_config/ a listing left out (or read with a warning), each with its message."""
    for problem in project.config_problems():
        if problem.kind in kinds:
            print(f"{problem.severity}: {problem.message}", file=sys.stderr)


def _target_attach(session: Any, rest: str) -> None:
    from ..attaching import attach_from_options, check_lines

    opts = parse(target_attach_flags, rest)
    target, rc = attach_from_options(session.project, opts)
    print(
        f"Attached '{target.name}' ({target.type}): aml_config/{target.name}.compute, aml_config/{rc.name}.runconfig"
    )
    if not opts.no_check:
        print("Check: " + check_lines(session, [target.name])[0])


def _target_show(session: Any, rest: str) -> None:
    print(session.project.target(one_name(rest, "show")).to_yaml(), end="")


def _target_detach(session: Any, rest: str) -> None:
    for path in session.project.detach_target(one_name(rest, "detach")):
        print(f"removed {path.relative_to(session.project.root)}")


def _target_use(session: Any, rest: str) -> None:
    name = one_name(rest, "use")
    session.project.run_configuration(name)  # raises with the known names
    session.default_run_configuration = name
    print(f"%%aml_submit now runs on '{name}' unless told otherwise (-c/-t).")


def _target_prepare(session: Any, rest: str) -> None:
    from ..display import prepared_text

    opts = parse(target_prepare_flags, rest)
    prepared = session.prepare(opts.name, force=opts.force, log=lambda t: print(t, end="", flush=True))
    print(prepared_text(prepared))


def _target_init(session: Any, rest: str) -> None:
    """Write the aml_config/ templates (local and docker pairs, dependency files); never overwrites."""
    if strip_comment(rest).strip():
        raise UsageError("%aml_target init takes no arguments; it writes aml_config/ in this project.")
    project = session.project
    created = project.initialize()
    for path in created:
        print(f"wrote {path.relative_to(project.root)}")
    if not created:
        print(
            f"{project.config_dir.relative_to(project.root)}/ already has every template file; nothing written."
        )


def runconfig_command(session: Any, line: str) -> None:
    """Dispatch `%aml_runconfig list | show NAME | create NAME --target T ...`."""
    verb, _, rest = strip_comment(line).strip().partition(" ")
    project = session.project
    try:
        if verb in ("", "list"):
            rows: list[list[object]] = [
                [rc.name, rc.target, rc.framework] for rc in project.run_configurations()
            ]
            show_table(["name", "target", "framework"], rows)
            _problems(project, ("run configuration", "dependencies"))
        elif verb == "show":
            print(project.run_configuration(rest.strip(), check_target=False).to_text(), end="")
        elif verb == "create":
            _runconfig_create(project, rest)
        else:
            raise UsageError(f"Unknown %aml_runconfig subcommand {verb!r}; use list, show or create.")
    except ConfigError as exc:
        raise UsageError(exc.explained()) from exc


def _runconfig_create(project: Any, rest: str) -> None:
    from ..cli import create_rc_from_options  # the flags are the CLI's; imported when used

    create_rc_from_options(project, parse(runconfig_create_flags, rest))
