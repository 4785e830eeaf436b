"""`%aml_runs` (the history: a live dashboard or a table) and `%aml_run VERB ID` (one run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ..core.errors import ConfigError
from .awaiting import in_kernel
from .text import ComparisonView, print_now, show_table


def runs_view(session: Any, opts: Any) -> Any:
    """The dashboard in a kernel (unless --table), else a table of the latest runs."""
    filters = {
        "experiment": opts.experiment,
        "target": opts.target,
        "status": opts.status,
        "script": opts.script,
    }
    try:
        if not opts.table and in_kernel():
            try:
                from ..widgets.dashboard import RunsDashboard
            except ImportError:
                pass
            else:
                return RunsDashboard(
                    session.history, project=session.project.name, page_size=opts.limit, **filters
                )
        records = session.runs(limit=opts.limit, **filters)
    except ValueError as exc:  # an unknown status, named with the valid ones
        raise UsageError(str(exc)) from exc
    from ..display import runs_table

    show_table(*runs_table(records))
    return None


def run_command(session: Any, opts: Any) -> Any:
    """One verb on one run (compare: on 2-5); config errors become UsageError with the fix."""
    try:
        if opts.verb == "compare":
            return ComparisonView(session.compare(opts.run_ids))
        if len(opts.run_ids) != 1:
            raise UsageError(f"%aml_run {opts.verb} takes one run id.")
        run = session.run(opts.run_ids[0])
        if opts.verb == "show":
            return run
        if opts.verb == "logs":
            print_logs(session, run, control=opts.control)
        elif opts.verb == "cancel":
            _cancel(run)
        elif opts.verb == "download":
            _download(run, opts.dest or f"outputs-{run.id}", opts.pattern)
        elif opts.verb == "restore":
            if not opts.dest:
                raise UsageError("%aml_run restore ID -d DIR: say where to write the snapshot.")
            files = session.restore(run.id, Path(opts.dest), overwrite=opts.overwrite)
            print(f"Restored {len(files)} file(s) into {opts.dest}")
    except ConfigError as exc:
        raise UsageError(exc.explained()) from exc
    return None


def _cancel(run: Any) -> None:
    """Stop a live run and wait (30 s at most) to say how it ended; an ended run is left alone."""
    if run.done:
        print(f"Run {run.id}: already {run.status.value}; nothing to cancel.")
        return
    run.cancel()
    run.wait(timeout=30, raise_on_failure=False)
    print(f"Run {run.id}: {run.status.value}")


def _download(run: Any, dest: str, pattern: str) -> None:
    """Copy the matching outputs and list them; say so when none matched (not a silent cell)."""
    files = run.download_outputs(dest, pattern)
    for path in files:
        print(path)
    if not files:
        print(f"No outputs of {run.id} match {pattern!r}; it has: {', '.join(run.outputs) or 'none'}.")


def print_logs(session: Any, run: Any, *, control: bool) -> None:
    """A finished run's log; a live one's followed to its end (interrupt stops following only)."""
    if run.done:
        print(run.logs("control" if control else "driver"), end="")
        return
    from ..textfollow import TextFollower

    try:
        follower = TextFollower(print_now, show_control=False, only_control=control)
        follower.run(session.history, run.id)
    except KeyboardInterrupt:
        print(f"\nStopped following; run {run.id} goes on.", flush=True)
