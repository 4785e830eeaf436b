"""Cells that await their run: an input transform that turns a `%%aml_submit` cell into `await ...`.

While a cell awaits, ipykernel (>= 7) dispatches widget messages, so a live widget's Cancel and
Rerun buttons work during the run; a blocking cell would only see the clicks after it ended.
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

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
    """Undo install_awaiting_submit (`%unload_ext`): cells block again."""
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


async def until_done(run: Any) -> None:
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


def in_kernel() -> bool:
    """True in a Jupyter kernel with comms (where widgets render), False in a terminal IPython."""
    ip = _ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _ipython() -> Any:
    from IPython import get_ipython

    return get_ipython()
