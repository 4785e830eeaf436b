"""`%%aml_submit` / `%aml_submit`: submit, then follow the run — in the live widget, in plain text,
or not at all (`-a`) — and raise RunFailedError when it failed, so nbclient/papermill stop there."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..core.errors import ConfigError
from .awaiting import until_done
from .text import parse, print_now, short


def submit(session: Any, flags: Any, line: str, cell: str | None) -> tuple[Any, Any]:
    """Parse a %aml_submit line (and cell) with the magic's `flags` and submit the run: (Run, options)."""
    from ..core.api import parse_env_assignments

    opts = parse(flags, line)
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
        run = session.submit(
            script=script,
            cell=cell,
            arguments=args,
            run_configuration=opts.run_configuration,
            target=opts.target,
            experiment=opts.experiment,
            env=parse_env_assignments(opts.env),
            secret_env=tuple(opts.secret_env or ()),
            force_prepare=opts.rebuild,
        )
    except ConfigError as exc:
        raise UsageError(exc.explained()) from exc
    return run, opts


def submitted(run: Any, *, widget: bool) -> Any:
    """An -a submit: the run goes on; in a kernel its live widget follows it (the kernel is idle,
    so its buttons work)."""
    view = live_widget(run) if widget else None
    if view is None:
        print(f"RunId: {run.id} submitted; run.wait() to follow it, %aml_run cancel {run.id} to stop it.")
    else:
        display(view)
        view.start()
    return run


def follow(session: Any, run: Any, *, widget: bool) -> Any:
    """Block until the run ends, showing it live; Ctrl-C cancels it."""
    view = live_widget(run) if widget else None
    if view is None:
        return follow_text(session, run)
    with shown_live(view):
        try:
            run.wait(raise_on_failure=False)
        except KeyboardInterrupt:
            cancel_on_interrupt(run)
    return result(run)


async def follow_awaiting(session: Any, run: Any, *, widget: bool) -> Any:
    """follow(), awaiting the run instead of blocking (the kernel handles widget clicks meanwhile)."""
    view = live_widget(run) if widget else None
    if view is None:
        return follow_text(session, run)
    with shown_live(view):
        try:
            await until_done(run)
        except (asyncio.CancelledError, KeyboardInterrupt):  # the kernel's interrupt
            cancel_on_interrupt(run)
    return result(run)


def follow_text(session: Any, run: Any) -> Any:
    """Plain text (--no-widget, terminal IPython): the log and the Preparing phase as they stream."""
    from ..textfollow import TextFollower

    print(f"RunId: {run.id}", flush=True)
    try:
        TextFollower(print_now).run(session.history, run.id)
    except KeyboardInterrupt:
        cancel_on_interrupt(run)
    record = run.record
    summary = f"Run {record.run_id}: {record.status.value}"
    if record.duration is not None:
        summary += f" in {record.duration.total_seconds():.1f} s"
    if record.metrics:
        summary += " | " + ", ".join(f"{k}={short(v)}" for k, v in record.metrics.items())
    print(summary)
    return result(run)


def cancel_on_interrupt(run: Any) -> None:
    """Ctrl-C while following: the run is canceled (said on stderr), not left running unseen."""
    print(f"\nInterrupted: canceling run {run.id} ...", file=sys.stderr, flush=True)
    run.cancel()
    run.wait(timeout=30, raise_on_failure=False)
    print(f"Run {run.id}: {run.status.value}", file=sys.stderr, flush=True)


def result(run: Any) -> Any:
    """The ended run, or RunFailedError with its log tail."""
    run.wait(timeout=0, raise_on_failure=True)
    return run


def live_widget(run: Any) -> Any:
    """The run's live widget, or None where ipywidgets is not installed."""
    try:
        from ..widgets.run_widget import RunWidget
    except ImportError:
        return None
    return RunWidget(run)


@contextmanager
def shown_live(view: Any) -> Iterator[None]:
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
