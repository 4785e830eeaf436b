"""`amlexec`: Workbench's `az ml` verbs in a terminal, over the same core as the magics.

amlexec computetarget attach|list|show|detach
amlexec runconfiguration create|list|show
amlexec experiment submit|prepare|cancel
amlexec history list|info|last|download|compare|restore
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .attaching import PROMPT, attach_from_options, check_lines, print_problems
from .core.api import Session, parse_env_assignments
from .core.errors import AmlExecError, ConfigError, Hint, set_hint_renderer
from .core.models import RunStatus
from .core.project import TargetType
from .display import compare_table, prepared_text, record_rows, runs_table, targets_table, text_table
from .textfollow import TextFollower

EXIT_USAGE = 2


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


# --- computetarget -------------------------------------------------------------------------------------


def cmd_target_attach(session: Session, a: argparse.Namespace) -> int:
    target, rc = attach_from_options(session.project, a, lambda text: print(text, file=sys.stderr))
    print(
        f"Attached '{target.name}' ({target.type}): wrote aml_config/{target.name}.compute and aml_config/{rc.name}.runconfig"
    )
    if not a.no_check:
        print("Check: " + check_lines(session, [target.name])[0])
    return 0


def cmd_target_list(session: Session, a: argparse.Namespace) -> int:
    targets = session.project.targets()
    if a.output == "json":
        _print_json([t.name for t in targets])
    else:
        print(text_table(*targets_table(targets, session.project.run_configurations())))
    print_problems(session, "compute target")
    if a.check:
        print("\n".join(check_lines(session, [t.name for t in targets])))
    return 0


def cmd_target_show(session: Session, a: argparse.Namespace) -> int:
    target = session.project.target(a.name)
    if a.output == "json":
        _print_json({"name": target.name, **target.to_mapping()})
    else:
        print(target.to_yaml(), end="")
    return 0


def cmd_target_detach(session: Session, a: argparse.Namespace) -> int:
    for path in session.project.detach_target(a.name):
        print(f"removed {path.relative_to(session.project.root)}")
    return 0


# --- runconfiguration -----------------------------------------------------------------------------------


def create_rc_from_options(project: Any, a: argparse.Namespace) -> None:
    """Write a run configuration from parsed flags (the CLI's and `%aml_runconfig create`'s) and say so."""
    rc = project.create_run_configuration(
        a.name,
        a.target,
        framework=a.framework,
        environment_variables=parse_env_assignments(a.env),
        force=a.force,
    )
    print(f"wrote aml_config/{rc.name}.runconfig (target {rc.target})")


def cmd_rc_create(session: Session, a: argparse.Namespace) -> int:
    create_rc_from_options(session.project, a)
    return 0


def cmd_rc_list(session: Session, a: argparse.Namespace) -> int:
    rcs = session.project.run_configurations()
    if a.output == "json":
        _print_json([f"{rc.name}.runconfig" for rc in rcs])
    else:
        print(text_table(["name", "target", "framework"], [[rc.name, rc.target, rc.framework] for rc in rcs]))
    print_problems(session, "run configuration")
    return 0


def cmd_rc_show(session: Session, a: argparse.Namespace) -> int:
    print(session.project.run_configuration(a.name, check_target=False).to_text(), end="")
    return 0


# --- experiment -----------------------------------------------------------------------------------------


def cmd_submit(session: Session, a: argparse.Namespace) -> int:
    run = session.submit(
        script=a.script,
        arguments=a.args,
        run_configuration=a.run_configuration,
        target=a.target,
        experiment=a.experiment,
        env=parse_env_assignments(a.env),
        secret_env=tuple(a.secret_env),
        detach=a.no_wait,
    )
    print(f"RunId: {run.id}", flush=True)
    if a.no_wait:
        print(
            f"Submitted; it runs to its end and is recorded even after this command exits. Follow it with "
            f"`amlexec history info -r {run.id} --follow`; stop it with `amlexec experiment cancel -r {run.id}`."
        )
        return 0
    return _stream(session, run.id)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _stream(session: Session, run_id: str) -> int:
    run = session.run(run_id)
    print("Executing user inputs .....\n===========================\n", flush=True)
    try:
        TextFollower(_write).run(session.history, run_id)
    except KeyboardInterrupt:
        print(
            f"\nStopped following; the run goes on. Re-attach: amlexec history info -r {run_id}; "
            f"stop it: amlexec experiment cancel -r {run_id}",
            file=sys.stderr,
        )
        return 130
    run.wait(raise_on_failure=False)  # this process's follower done: its guardian was told, and exits idle
    record = run.record
    print("\nExecution Details\n=================")
    print(f"RunId: {record.run_id}\nStatus: {record.status.value}")
    if record.duration is not None:
        print(f"Duration: {record.duration}")
    for name, value in record.metrics.items():
        print(f"{name}: {value}")
    if record.status is not RunStatus.COMPLETED:
        if record.error:
            print(f"Error: {record.error}", file=sys.stderr)
        if not session.history.read_log(run_id).strip():
            sys.stderr.write(session.history.read_log(run_id, "control"))
        return record.exit_code if record.exit_code else 1
    return 0


def cmd_prepare(session: Session, a: argparse.Namespace) -> int:
    prepared = session.prepare(
        a.run_configuration, target=a.target, force=a.force, log=lambda t: print(t, end="", flush=True)
    )
    print(prepared_text(prepared))
    return 0


def cmd_cancel(session: Session, a: argparse.Namespace) -> int:
    run = session.run(a.run)
    if run.done:
        print(f"{run.id}: already {run.status.value}; nothing to cancel.")
        return 0
    run.cancel()
    run.wait(timeout=30, raise_on_failure=False)
    print(f"{run.id}: {run.status.value}")
    return 0


# --- history --------------------------------------------------------------------------------------------


def cmd_history_list(session: Session, a: argparse.Namespace) -> int:
    records = session.runs(experiment=a.experiment, target=a.target, status=a.status, limit=a.limit)
    if a.output == "json":
        _print_json([r.to_json() for r in records])
    else:
        print(text_table(*runs_table(records)))
    return 0


def _one(session: Session, run_id: str | None) -> Any:
    if run_id is None:
        return session.last_run()
    return session.run(run_id)


def cmd_history_info(session: Session, a: argparse.Namespace) -> int:
    run = _one(session, getattr(a, "run", None))
    if getattr(a, "follow", False):
        return _stream(session, run.id)
    if getattr(a, "artifact", None):
        name = a.artifact
        if name in ("driver_log", "driver_log.txt", "control_log", "control_log.txt"):
            sys.stdout.write(run.logs(name.split("_")[0]))
        else:
            sys.stdout.buffer.write(_output_file(run, name).read_bytes())
        return 0
    record = run.record
    if a.output == "json":
        _print_json(record.to_json())
    else:
        print(text_table(["field", "value"], record_rows(record)))
    return 0


def _output_file(run: Any, name: str) -> Path:
    """The collected output `name` (`model.pkl` or `outputs/model.pkl`) of the run: only a file of
    its own, by the core's rule (no absolute path, `..` or link out of the run's folder)."""
    from .core.outputs import resolve_attachment

    relative = name if name.startswith("outputs/") else f"outputs/{name.lstrip('/')}"
    path = resolve_attachment(run.outputs_dir.parent, relative)  # AttachmentError when outside
    if not path.is_file():
        raise AmlExecError(
            f"Run {run.id} has no artifact '{name}'. It has: {', '.join(run.record.attachments)}."
        )
    return path


def cmd_history_download(session: Session, a: argparse.Namespace) -> int:
    run = session.run(a.run)
    dest = Path(a.destination)
    pattern = (a.artifact or "*").removeprefix("outputs/")
    if dest.exists() and any(dest.iterdir()) and not a.overwrite:
        clashes = [p for p in run.outputs if (dest / p).exists()]
        if clashes:
            raise AmlExecError(f"{dest} already holds {', '.join(clashes[:5])}; pass --overwrite to replace.")
    files = run.download_outputs(dest, pattern)
    for f in files:
        print(f)
    if not files:
        print(f"No outputs of {run.id} match {pattern!r}.", file=sys.stderr)
    return 0


def cmd_history_compare(session: Session, a: argparse.Namespace) -> int:
    comparison = session.compare(a.runs)
    if a.output == "json":
        _print_json(comparison.to_json(only_differences=a.differences))
    else:
        print(text_table(*compare_table(comparison, only_differences=a.differences)))
        if comparison.files:
            print("\nFiles that differ from the first run's snapshot:")
            for path, how in comparison.files:
                print(f"  {how:8} {path}")
    return 0


def cmd_history_restore(session: Session, a: argparse.Namespace) -> int:
    files = session.restore(a.run, Path(a.destination), overwrite=a.overwrite)
    print(f"Restored {len(files)} file(s) of {a.run} into {a.destination}")
    return 0


# --- parser ---------------------------------------------------------------------------------------------

TARGET_TYPE_CHOICES = [t.value for t in TargetType] + ["localdocker"]


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")


def _verbs(parent: Any, group: str, summary: str) -> Any:
    return parent.add_parser(group, help=summary).add_subparsers(dest="verb", required=True)


def _computetarget_parsers(verbs: Any) -> None:
    ct = _verbs(verbs, "computetarget", "attach, list, show, detach compute targets")
    p = ct.add_parser("attach", help="write <name>.compute + <name>.runconfig")
    p.add_argument(
        "type",
        nargs="?",
        choices=TARGET_TYPE_CHOICES,
        help="target type (Workbench: attach remotedocker|cluster|remote)",
    )
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--type", dest="type_flag", choices=TARGET_TYPE_CHOICES)
    p.add_argument("-a", "--address", help="HOST or HOST:PORT")
    p.add_argument("-u", "--username")
    p.add_argument("-k", "--key", "--private-key-file", dest="key", help="SSH private key file")
    p.add_argument("--password-env", help="name of the environment variable holding the password")
    p.add_argument(
        "--password",
        nargs="?",
        const=PROMPT,
        help="kept in the keyring, never in aml_config/ (without a value: asked for)",
    )
    p.add_argument("--no-check", action="store_true", help="do not check the target after attaching")
    p.add_argument("--base-image", help="baseDockerImage")
    p.add_argument("--python", help="pythonLocation")
    p.add_argument("--network-mode", help="Docker network for runs and builds: host, none, bridge, <name>")
    p.add_argument("--force", action="store_true", help="replace an existing target")
    p.set_defaults(func=cmd_target_attach)
    p = ct.add_parser("list")
    _output(p)
    p.add_argument("--check", action="store_true", help="check every target: reachable, ready, the fix")
    p.set_defaults(func=cmd_target_list)
    p = ct.add_parser("show")
    p.add_argument("-n", "--name", required=True)
    _output(p)
    p.set_defaults(func=cmd_target_show)
    p = ct.add_parser("detach")
    p.add_argument("-n", "--name", required=True)
    p.set_defaults(func=cmd_target_detach)


def _runconfiguration_parsers(verbs: Any) -> None:
    rc = _verbs(verbs, "runconfiguration", "create, list, show run configurations")
    p = rc.add_parser("create")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-t", "--target", required=True)
    p.add_argument("--framework", choices=["Python", "PySpark"], default="Python")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_rc_create)
    p = rc.add_parser("list")
    _output(p)
    p.set_defaults(func=cmd_rc_list)
    p = rc.add_parser("show")
    p.add_argument("-n", "--name", required=True)
    p.set_defaults(func=cmd_rc_show)


def _experiment_parsers(verbs: Any) -> None:
    ex = _verbs(verbs, "experiment", "submit, prepare, cancel runs")
    p = ex.add_parser(
        "submit", help="run SCRIPT ARGS... on a target; streams its log; exits with its exit code"
    )
    p.add_argument("-c", "--run-configuration")
    p.add_argument("-t", "--target")
    p.add_argument(
        "-a",
        "--async",
        dest="no_wait",
        action="store_true",
        help="return at once; the run goes on and is recorded to its end without this command",
    )
    p.add_argument("--experiment")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this shell's environment variable NAME to the run, never stored (repeatable; the "
        "history shows ***)",
    )
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_submit)
    p = ex.add_parser("prepare", help="build the environment of a run configuration ahead of the first run")
    p.add_argument("-c", "--run-configuration")
    p.add_argument("-t", "--target")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")
    p.set_defaults(func=cmd_prepare)
    p = ex.add_parser("cancel")
    p.add_argument("-r", "--run", required=True)
    p.add_argument("-t", "--target", help="ignored (kept for Workbench compatibility)")
    p.set_defaults(func=cmd_cancel)


def _history_parsers(verbs: Any) -> None:
    hi = _verbs(verbs, "history", "list, inspect, download, compare, restore runs")
    p = hi.add_parser("list")
    p.add_argument("--experiment")
    p.add_argument("-t", "--target")
    p.add_argument("--status", choices=[s.value for s in RunStatus])
    p.add_argument("-n", "--limit", type=int, default=50)
    _output(p)
    p.set_defaults(func=cmd_history_list)
    for name in ("info", "last"):
        p = hi.add_parser(name)
        if name == "info":
            p.add_argument("-r", "--run", required=True)
        p.add_argument("-a", "--artifact", help="print this artifact (driver_log, outputs/...) instead")
        p.add_argument(
            "-f", "--follow", action="store_true", help="print the log as it streams until the run ends"
        )
        _output(p)
        p.set_defaults(func=cmd_history_info)
    p = hi.add_parser("download")
    p.add_argument("-r", "--run", required=True)
    p.add_argument("-d", "--destination", required=True)
    p.add_argument("--artifact", help="a glob under outputs/ (default: all)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_history_download)
    p = hi.add_parser("compare")
    p.add_argument("runs", nargs="+")
    p.add_argument("--differences", action="store_true", help="only rows whose values differ")
    _output(p)
    p.set_defaults(func=cmd_history_compare)
    p = hi.add_parser("restore", help="write a run's snapshot into a folder")
    p.add_argument("-r", "--run", required=True)
    p.add_argument("-d", "--destination", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_history_restore)


_GROUPS = {
    "computetarget": _computetarget_parsers,
    "runconfiguration": _runconfiguration_parsers,
    "experiment": _experiment_parsers,
    "history": _history_parsers,
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """`amlexec GROUP VERB ...`: Workbench's verb groups, one function each. Only the groups named in
    `argv` get their verbs (all of them when none is named): each verb's parser costs a CLI start
    ~0.1 ms, and only the chosen group's can ever be used."""
    named = [build for name, build in _GROUPS.items() if argv is not None and name in argv]
    parser = argparse.ArgumentParser(
        prog="amlexec", description="Run scripts on compute targets and keep a run history."
    )
    parser.add_argument(
        "--project", default=None, help="project folder (default: the nearest with aml_config/)"
    )
    verbs = parser.add_subparsers(dest="group", required=True)
    for build in named or _GROUPS.values():
        build(verbs)
    return parser


_CLI_HINTS = {
    "target.attach": "amlexec computetarget attach TYPE -n {0} ...",
    "target.prepare": "amlexec experiment prepare -c {0}",
    "target.list": "amlexec computetarget list",
    "runconfig.list": "amlexec runconfiguration list",
    "project.init": "amlexec computetarget attach ... (writes aml_config/)",
    "runs.list": "amlexec history list",
    "run.show": "amlexec history info -r {0}",
    "submit": "amlexec experiment submit -c {0} {1}",
}


def cli_hint(hint: Hint) -> str:
    """A core error's fixing command, written as an amlexec command line."""
    return _CLI_HINTS.get(hint.verb, hint.verb).format(*hint.args, *[""] * 3).strip()


def main(argv: Sequence[str] | None = None) -> int:
    set_hint_renderer(cli_hint)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is cmd_target_attach:
        args.type = args.type_flag or args.type
        if args.type is None:
            parser.error("computetarget attach needs a type: local|docker|remotedocker|remote|cluster")
    try:
        session = Session.open(Path(args.project) if args.project else None)
        code = int(args.func(session, args))
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except BrokenPipeError:  # `amlexec ... | head -1`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConfigError as exc:
        print(f"amlexec: error: {exc.explained()}", file=sys.stderr)
        return EXIT_USAGE
    except AmlExecError as exc:
        print(f"amlexec: error: {exc.explained()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
