"""The `AmlExecMagics` class: each magic's flags (so `%aml_submit?` lists them) and its dispatch to
the module that does the work; one Session (project + history) per IPython shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from . import runs, submit, targets
from .awaiting import in_kernel
from .text import parse


@magics_class
class AmlExecMagics(Magics):
    """The magics of jupyter_amlexec; one Session (project + history) per IPython shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._session: Any = None

    @property
    def session(self) -> Any:
        """The Session of the current folder (a `%cd` to another project opens that one)."""
        if self._session is None or self._session.cwd != Path.cwd().resolve():
            from ..core.api import Session

            previous = self._session
            self._session = Session.open(Path.cwd())
            if previous is not None:
                self._session.default_run_configuration = previous.default_run_configuration
        return self._session

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
        %aml_target init                        write the aml_config/ templates (never overwrites)
        """
        targets.target_command(self.session, line)

    @line_magic
    def aml_runconfig(self, line: str) -> None:
        """Manage run configurations: %aml_runconfig list | show NAME | create NAME --target T [--framework F] [--env K=V]"""
        targets.runconfig_command(self.session, line)

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
        "--secret-env",
        action="append",
        metavar="NAME",
        help="pass this kernel's environment variable NAME to the run, never stored (repeatable;"
        " the history shows ***)",
    )
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
        %aml_submit --secret-env DB_TOKEN load.py    # DB_TOKEN reaches the run, never the history
        """
        run, opts = submit.submit(self.session, self.aml_submit, line, cell)
        widget = not opts.no_widget and in_kernel()
        if opts.no_wait:
            return submit.submitted(run, widget=widget)
        return submit.follow(self.session, run, widget=widget)

    async def aml_submit_async(self, line: str, cell: str | None) -> Any:
        """`%%aml_submit` (or `%aml_submit` alone in a cell) in a kernel: the same, but the cell
        awaits its run instead of blocking, so the widget's Cancel and Rerun work during the run.
        The cell still ends when the run does, and raises if it failed."""
        run, opts = submit.submit(self.session, self.aml_submit, line, cell)
        if opts.no_wait:
            return submit.submitted(run, widget=not opts.no_widget)
        return await submit.follow_awaiting(self.session, run, widget=not opts.no_widget)

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
        return runs.runs_view(self.session, parse(self.aml_runs, line))

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
        %aml_run logs ID [--control]   a live run's log is followed to its end
        %aml_run cancel ID
        %aml_run download ID -d DIR [--pattern '*.png']
        %aml_run compare ID1 ID2 [ID3]
        %aml_run restore ID -d DIR [--overwrite]
        """
        return runs.run_command(self.session, parse(self.aml_run, line))
