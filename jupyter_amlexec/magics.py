"""IPython magics: %aml_target, %aml_runconfig, %%aml_submit / %aml_submit, %aml_runs, %aml_run.

Thin: each magic parses its line, calls the core Session, and renders. A blocking submit follows the
run from the main thread (printing log text as it arrives, or driving the live widget), and raises
RunFailedError when the run fails, so notebook runners (nbclient, papermill) stop there.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import HTML, display

from .core.errors import AmlExecError, ConfigError, RunFailedError

TARGET_TYPES = ["local", "docker", "localdocker", "remotedocker", "remote", "cluster"]
AWAIT_POLL_SECONDS = 1.0
_SUBMIT_CELL = re.compile(r"%%aml_submit(?=\s|$)(.*)$")
_SUBMIT_LINE = re.compile(r"%aml_submit\s(.*)$")  # a cell that is only `%aml_submit SCRIPT ARGS`


def install_awaiting_submit(ipython: Any) -> None:
    """In a kernel, let `%%aml_submit` cells await their run (see aml_submit_async)."""
    if _ipykernel_dispatches_while_awaiting() and getattr(ipython, "kernel", None) is not None:
        transforms = ipython.input_transformers_cleanup
        if _awaiting_submit_cells not in transforms:
            transforms.append(_awaiting_submit_cells)


def uninstall_awaiting_submit(ipython: Any) -> None:
    transforms = getattr(ipython, "input_transformers_cleanup", [])
    if _awaiting_submit_cells in transforms:
        transforms.remove(_awaiting_submit_cells)


def _awaiting_submit_cells(lines: list[str]) -> list[str]:
    """An IPython cleanup transform: a `%%aml_submit ...` cell, or a cell that is only one
    `%aml_submit SCRIPT ...` line, becomes `await <the async magic>`.

    Left alone: other cells, `...?` (help), and shells with autoawait turned off."""
    code = [line for line in lines if line.strip()]
    if not code or code[0].rstrip().endswith("?"):
        return lines
    first = code[0].rstrip("\r\n")
    cell: str | None = None
    match = _SUBMIT_CELL.match(first)
    if match is not None:
        cell = "".join(lines[lines.index(code[0]) + 1 :])
    elif len(code) == 1:
        match = _SUBMIT_LINE.match(first.strip())
    ip = _ipython()
    if match is None or ip is None or not getattr(ip, "autoawait", False):
        return lines
    line = match.group(1).strip()
    return [
        f"await get_ipython().magics_manager.registry['AmlExecMagics'].aml_submit_async({line!r}, {cell!r})\n"
    ]


@contextmanager
def _shown_live(view: Any) -> Iterator[None]:
    """Display a RunWidget and follow the run in it; afterwards write the final state from this
    (the cell's) thread and update the display, so a saved notebook's HTML fallback is final too."""
    shown = display(view, display_id=True)
    try:
        view.start()
        yield
    finally:
        view.finish()
        if shown is not None:
            shown.update(view)


async def _until_done(run: Any) -> None:
    """Await the end of a run without holding the kernel: woken by its terminal status event (the
    kernel's loop runs while the cell awaits), re-checked every AWAIT_POLL_SECONDS for a run that
    another process follows."""
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def on_event(event: Any) -> None:  # on the follower's thread
        status = getattr(event, "status", None)
        if status is not None and getattr(status, "terminal", False):
            loop.call_soon_threadsafe(ended.set)

    unsubscribe = run.subscribe(on_event)
    try:
        while not run.done:
            try:
                await asyncio.wait_for(ended.wait(), AWAIT_POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
    finally:
        unsubscribe()


def _ipykernel_dispatches_while_awaiting() -> bool:
    """ipykernel 7 dispatches comm messages while a cell awaits; older ones queue them."""
    kernel_module = sys.modules.get("ipykernel")  # imported already in a kernel: no import here
    try:
        return int(str(getattr(kernel_module, "__version__", "0")).split(".")[0]) >= 7
    except ValueError:
        return False


def _in_kernel() -> bool:
    """True in a Jupyter kernel with comms (where widgets render), False in a terminal IPython."""
    ip = _ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _ipython() -> Any:
    from IPython import get_ipython

    return get_ipython()


@magics_class
class AmlExecMagics(Magics):
    """The magics of jupyter_amlexec; one Session (project + history) per IPython shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None or self._session.cwd != Path.cwd().resolve():
            from .core.api import Session

            previous = self._session
            self._session = Session.open(Path.cwd())
            if previous is not None:
                self._session.default_run_configuration = previous.default_run_configuration
        return self._session

    # --- %aml_target -------------------------------------------------------------------------------

    @magic_arguments()
    @argument("name", help="target name: aml_config/NAME.compute")
    @argument("--type", required=True, choices=TARGET_TYPES, help="kind of target")
    @argument("--address", help="HOST or HOST:PORT (remote targets)")
    @argument("--username", help="SSH user (remote targets)")
    @argument("--key", help="SSH private key file (never copied into aml_config/)")
    @argument("--password-env", help="NAME of the environment variable holding the password")
    @argument("--base-image", help="baseDockerImage for docker targets")
    @argument("--python", help="pythonLocation: the interpreter to run (local/remote)")
    @argument("--network-mode", help="Docker network for runs and builds: host, none, bridge, <name>")
    @argument("--force", action="store_true", help="replace an existing target of that name")
    def _target_attach(self, line: str) -> None:
        """%aml_target attach NAME --type TYPE [...]: write NAME.compute + NAME.runconfig."""

    @magic_arguments()
    @argument("name")
    @argument("--force", action="store_true", help="rebuild even when the environment is cached")
    def _target_prepare(self, line: str) -> None:
        """%aml_target prepare RUNCONFIG [--force]: build the environment ahead of the first run."""

    @line_magic
    def aml_target(self, line: str) -> Any:
        """Manage compute targets in aml_config/.

        %aml_target list                        table of targets (local and docker always exist)
        %aml_target attach NAME --type docker [--base-image IMG] [--network-mode host]
        %aml_target attach gpu --type remotedocker --address host:22 --username ana --key ~/.ssh/id_ed25519
        %aml_target show NAME                   the .compute file (secrets are never stored there)
        %aml_target detach NAME                 remove NAME.compute and the run configurations using it
        %aml_target use NAME                    default run configuration for this session's submits
        %aml_target prepare NAME [--force]      build/refresh its environment image now
        """
        verb, _, rest = strip_comment(line).strip().partition(" ")
        try:
            if verb == "list" or verb == "":
                return self._show_table(*self._targets_table())
            if verb == "attach":
                return self._attach(rest)
            if verb == "show":
                name = self._one_name(rest, "show")
                print(self.session.project.target(name).to_yaml(), end="")
                return None
            if verb == "detach":
                for path in self.session.project.detach_target(self._one_name(rest, "detach")):
                    print(f"removed {path.relative_to(self.session.project.root)}")
                return None
            if verb == "use":
                name = self._one_name(rest, "use")
                self.session.project.run_configuration(name)  # raises with the known names
                self.session.default_run_configuration = name
                print(f"%%aml_submit now runs on '{name}' unless told otherwise (-c/-t).")
                return None
            if verb == "prepare":
                opts = _parse(self._target_prepare, rest)
                prepared = self.session.prepare(
                    opts.name, force=opts.force, log=lambda t: print(t, end="", flush=True)
                )
                state = "built" if prepared.built else "ready (cached, nothing built)"
                print(
                    f"Environment {prepared.env_hash[:12]} {state}"
                    + (f": {prepared.image}" if prepared.image else "")
                )
                return None
        except ConfigError as exc:
            raise UsageError(exc.explained()) from exc
        raise UsageError(
            f"Unknown %aml_target subcommand {verb!r}; use list, attach, show, detach, use or prepare. See %aml_target?"
        )

    def _one_name(self, rest: str, verb: str) -> str:
        parts = shlex.split(strip_comment(rest))
        if len(parts) != 1:
            raise UsageError(f"%aml_target {verb} takes one target name, e.g. %aml_target {verb} docker")
        return parts[0]

    def _attach(self, rest: str) -> None:
        opts = _parse(self._target_attach, rest)
        target, rc = self.session.project.attach_target(
            opts.name,
            opts.type,
            address=opts.address,
            username=opts.username,
            key_file=opts.key,
            password_env=opts.password_env,
            base_docker_image=opts.base_image,
            python_location=opts.python,
            force=opts.force,
            network_mode=opts.network_mode,
        )
        print(
            f"Attached '{target.name}' ({target.type}): aml_config/{target.name}.compute, aml_config/{rc.name}.runconfig"
        )

    def _targets_table(self) -> tuple[list[str], list[list[object]]]:
        from .display import targets_table

        project = self.session.project
        return targets_table(project.targets(), project.run_configurations())

    def _show_table(self, headers: list[str], rows: list[list[object]]) -> None:
        from .display import html_table, text_table

        if _in_kernel():
            display(HTML(html_table(headers, rows)))
        else:
            print(text_table(headers, rows))

    # --- %aml_runconfig ------------------------------------------------------------------------------

    @magic_arguments()
    @argument("name")
    @argument("--target", "-t", required=True)
    @argument("--framework", choices=["Python", "PySpark"], default="Python")
    @argument("--env", action="append", metavar="NAME=VALUE")
    @argument("--force", action="store_true")
    def _rc_create(self, line: str) -> None:
        """%aml_runconfig create NAME --target T"""

    @line_magic
    def aml_runconfig(self, line: str) -> None:
        """Manage run configurations: %aml_runconfig list | show NAME | create NAME --target T [--framework F] [--env K=V]"""
        from .core.api import parse_env_assignments

        verb, _, rest = strip_comment(line).strip().partition(" ")
        project = self.session.project
        try:
            if verb in ("", "list"):
                rows: list[list[object]] = [
                    [rc.name, rc.target, rc.framework] for rc in project.run_configurations()
                ]
                self._show_table(["name", "target", "framework"], rows)
            elif verb == "show":
                print(project.run_configuration(rest.strip(), check_target=False).to_text(), end="")
            elif verb == "create":
                opts = _parse(self._rc_create, rest)
                rc = project.create_run_configuration(
                    opts.name,
                    opts.target,
                    framework=opts.framework,
                    environment_variables=parse_env_assignments(opts.env),
                    force=opts.force,
                )
                print(f"wrote aml_config/{rc.name}.runconfig (target {rc.target})")
            else:
                raise UsageError(f"Unknown %aml_runconfig subcommand {verb!r}; use list, show or create.")
        except ConfigError as exc:
            raise UsageError(exc.explained()) from exc

    # --- %%aml_submit ---------------------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "-c",
        "--run-configuration",
        help="aml_config/NAME.runconfig to use (default: local, or %%aml_target use)",
    )
    @argument("-t", "--target", help="run on this compute target instead of the run configuration's")
    @argument("--experiment", help="experiment name recorded with the run (default: the project name)")
    @argument("--env", action="append", metavar="NAME=VALUE", help="extra environment variable (repeatable)")
    @argument(
        "-a", "--async", dest="no_wait", action="store_true", help="return the Run at once; the run goes on"
    )
    @argument("--no-widget", action="store_true", help="stream plain text instead of the live widget")
    @argument("--rebuild", action="store_true", help="rebuild the environment even when it is cached")
    @argument("args", nargs="*", help="line form: SCRIPT ARGS...; cell form: ARGS for the cell (after --)")
    @line_cell_magic
    def aml_submit(self, line: str, cell: str | None = None) -> Any:
        """Run this cell (or a project script) on a compute target and record it in the run history.

        The cell becomes the entry script of a snapshot of the project folder; in blocking mode the
        log streams into the cell output and the Run is returned (so `_` is the run). A failed run
        raises RunFailedError with the tail of its log. Ctrl-C (interrupt) cancels the run.

        Examples
        --------
        %%aml_submit -c docker -- --lr 0.1
        import sys, amlexec_run
        amlexec_run.log("lr", float(sys.argv[2]))

        %aml_submit -c local train.py 0.01
        %aml_submit -a -c docker train.py 0.5        # returns at once; run.wait() later
        """
        run, opts = self._submit(line, cell)
        if opts.no_wait:
            return self._submitted(run, widget=not opts.no_widget and _in_kernel())
        return self._follow(run, widget=not opts.no_widget and _in_kernel())

    def _submit(self, line: str, cell: str | None) -> tuple[Any, Any]:
        """Parse a %aml_submit line (and cell) and submit the run: (Run, options)."""
        from .core.api import parse_env_assignments

        opts = _parse(self.aml_submit, line)
        args = list(opts.args)
        script = None
        if cell is None:
            if not args:
                raise UsageError(
                    "%aml_submit needs a script: %aml_submit [-c RC] SCRIPT ARGS...  (or use %%aml_submit on a cell)"
                )
            script, args = args[0], args[1:]
        if args and args[0] == "--":
            args = args[1:]
        try:
            run = self.session.submit(
                script=script,
                cell=cell,
                arguments=args,
                run_configuration=opts.run_configuration,
                target=opts.target,
                experiment=opts.experiment,
                env=parse_env_assignments(opts.env),
                force_prepare=opts.rebuild,
            )
        except ConfigError as exc:
            raise UsageError(exc.explained()) from exc
        return run, opts

    async def aml_submit_async(self, line: str, cell: str | None) -> Any:
        """`%%aml_submit` (or `%aml_submit` alone in a cell) in a kernel: the same, but the cell
        awaits its run instead of blocking.

        While a cell awaits, ipykernel (>= 7) dispatches widget messages, so the live widget's
        Cancel and Rerun buttons work during the run; a blocking cell would only see the clicks
        after it ended. The cell still ends when the run does, and raises if it failed.
        """
        run, opts = self._submit(line, cell)
        if opts.no_wait:
            return self._submitted(run, widget=not opts.no_widget)
        view = self._widget(run) if not opts.no_widget else None
        if view is None:
            return self._follow_text(run)
        with _shown_live(view):
            try:
                await _until_done(run)
            except (asyncio.CancelledError, KeyboardInterrupt):  # the kernel's interrupt
                self._cancel_on_interrupt(run)
        return self._result(run)

    def _submitted(self, run: Any, *, widget: bool) -> Any:
        """An -a submit: the run goes on; in a kernel its live widget follows it (the kernel is idle,
        so its buttons work)."""
        view = self._widget(run) if widget else None
        if view is None:
            print(f"RunId: {run.id} submitted; run.wait() to follow it, %aml_run cancel {run.id} to stop it.")
        else:
            display(view)
            view.start()
        return run

    def _follow(self, run: Any, *, widget: bool) -> Any:
        """Block until the run ends, showing it live; Ctrl-C cancels it."""
        view = self._widget(run) if widget else None
        if view is None:
            return self._follow_text(run)
        with _shown_live(view):
            try:
                run.wait(raise_on_failure=False)
            except KeyboardInterrupt:
                self._cancel_on_interrupt(run)
        return self._result(run)

    def _follow_text(self, run: Any) -> Any:
        """Plain text (--no-widget, terminal IPython): the log and the Preparing phase as they stream."""
        from .textfollow import TextFollower

        print(f"RunId: {run.id}", flush=True)
        try:
            TextFollower(_print_now).run(self.session.history, run.id)
        except KeyboardInterrupt:
            self._cancel_on_interrupt(run)
        record = run.record
        summary = f"Run {record.run_id}: {record.status.value}"
        if record.duration is not None:
            summary += f" in {record.duration.total_seconds():.1f} s"
        if record.metrics:
            summary += " | " + ", ".join(f"{k}={_short(v)}" for k, v in record.metrics.items())
        print(summary)
        return self._result(run)

    def _cancel_on_interrupt(self, run: Any) -> None:
        print(f"\nInterrupted: canceling run {run.id} ...", file=sys.stderr, flush=True)
        run.cancel()
        run.wait(timeout=30, raise_on_failure=False)
        print(f"Run {run.id}: {run.status.value}", file=sys.stderr, flush=True)

    @staticmethod
    def _result(run: Any) -> Any:
        run.wait(timeout=0, raise_on_failure=True)  # RunFailedError with the log tail
        return run

    @staticmethod
    def _widget(run: Any) -> Any:
        try:
            from .widgets.run_widget import RunWidget
        except ImportError:
            return None
        return RunWidget(run)

    # --- %aml_runs / %aml_run -------------------------------------------------------------------------

    @magic_arguments()
    @argument("--experiment")
    @argument("--target", "-t")
    @argument("--status")
    @argument("--script")
    @argument("-n", "--limit", type=int, default=25)
    @argument("--table", action="store_true", help="a static table instead of the live dashboard")
    @line_magic
    def aml_runs(self, line: str) -> Any:
        """The run history of this project: %aml_runs [--experiment E] [-t TARGET] [--status S] [-n 25]"""
        opts = _parse(self.aml_runs, line)
        filters = {
            "experiment": opts.experiment,
            "target": opts.target,
            "status": opts.status,
            "script": opts.script,
        }
        if not opts.table and _in_kernel():
            try:
                from .widgets.dashboard import RunsDashboard
            except ImportError:
                pass
            else:
                try:
                    return RunsDashboard(
                        self.session.history,
                        project=self.session.project.name,
                        page_size=opts.limit,
                        **filters,
                    )
                except ValueError as exc:  # an unknown status, named with the valid ones
                    raise UsageError(exc.explained()) from exc
        from .display import runs_table

        try:
            records = self.session.runs(limit=opts.limit, **filters)
        except ValueError as exc:
            raise UsageError(exc.explained()) from exc
        self._show_table(*runs_table(records))
        return None

    @magic_arguments()
    @argument("verb", choices=["show", "logs", "cancel", "download", "compare", "restore"])
    @argument("run_ids", nargs="+", help="run id(s); compare takes 2-5")
    @argument("-d", "--dest", help="destination folder (download, restore)")
    @argument("--pattern", default="*", help="glob under outputs/ (download)")
    @argument("--control", action="store_true", help="logs: the control log (environment build, status)")
    @argument("--overwrite", action="store_true", help="restore: overwrite changed files")
    @line_magic
    def aml_run(self, line: str) -> Any:
        """One run: %aml_run show|logs|cancel|download|compare|restore RUN_ID [...]

        %aml_run show ID            the run (its Run object)
        %aml_run logs ID [--control]
        %aml_run cancel ID
        %aml_run download ID -d DIR [--pattern '*.png']
        %aml_run compare ID1 ID2 [ID3]
        %aml_run restore ID -d DIR [--overwrite]
        """
        opts = _parse(self.aml_run, line)
        session = self.session
        try:
            if opts.verb == "compare":
                return _ComparisonView(session.compare(opts.run_ids))
            if len(opts.run_ids) != 1:
                raise UsageError(f"%aml_run {opts.verb} takes one run id.")
            run = session.run(opts.run_ids[0])
            if opts.verb == "show":
                return run
            if opts.verb == "logs":
                self._print_logs(run, control=opts.control)
            elif opts.verb == "cancel":
                run.cancel()
                run.wait(timeout=30, raise_on_failure=False)
                print(f"Run {run.id}: {run.status.value}")
            elif opts.verb == "download":
                for path in run.download_outputs(opts.dest or f"outputs-{run.id}", opts.pattern):
                    print(path)
            elif opts.verb == "restore":
                if not opts.dest:
                    raise UsageError("%aml_run restore ID -d DIR: say where to write the snapshot.")
                files = session.restore(run.id, Path(opts.dest), overwrite=opts.overwrite)
                print(f"Restored {len(files)} file(s) into {opts.dest}")
        except ConfigError as exc:
            raise UsageError(exc.explained()) from exc
        except AmlExecError:
            raise
        return None

    def _print_logs(self, run: Any, *, control: bool) -> None:
        """A finished run's log; a live one's followed to its end (interrupt stops following only)."""
        if run.done:
            print(run.logs("control" if control else "driver"), end="")
            return
        from .textfollow import TextFollower

        try:
            TextFollower(_print_now, show_control=control).run(self.session.history, run.id)
        except KeyboardInterrupt:
            print(f"\nStopped following; run {run.id} goes on.", flush=True)


class _ComparisonView:
    """Renders a RunComparison as HTML in a notebook and as text elsewhere."""

    def __init__(self, comparison: Any) -> None:
        self.comparison = comparison

    def _repr_html_(self) -> str:
        from .display import compare_table, html_table

        files = "".join(f"<li>{how}: {path}</li>" for path, how in self.comparison.files)
        return html_table(*compare_table(self.comparison)) + (
            f"<p>Files that differ:</p><ul>{files}</ul>" if files else ""
        )

    def __repr__(self) -> str:
        from .display import compare_table, text_table

        return text_table(*compare_table(self.comparison))


def strip_comment(line: str) -> str:
    """A magic line without its trailing `# comment` (a `#` that starts a word outside quotes), so
    `%aml_runs   # the history` and `%%aml_submit -c local -- 0.1  # note` mean what they say; a `#`
    inside a word (`--env A=x#y`) or quotes is kept."""
    quote: str | None = None
    previous = " "
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return line[:i].rstrip()
        previous = char
    return line


def _parse(magic: Any, line: str) -> Any:
    return parse_argstring(magic, strip_comment(line))


_MAGIC_HINTS = {
    "target.attach": "%aml_target attach {0} --type TYPE ...",
    "target.prepare": "%aml_target prepare {0}",
    "target.list": "%aml_target list",
    "runconfig.list": "%aml_runconfig list",
    "project.init": "%aml_target init",
    "runs.list": "%aml_runs",
    "submit": "%aml_submit -c {0} {1}",
}


def magic_hint(hint: Any) -> str:
    """A core error's fixing command, written as a magic."""
    text = _MAGIC_HINTS.get(hint.verb, hint.verb)
    return text.format(*hint.args, *[""] * 3).strip()


def _print_now(text: str) -> None:
    print(text, end="", flush=True)


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


__all__ = ["AmlExecMagics", "RunFailedError"]
