"""jupyter_amlexec: run notebook cells and scripts on compute targets, with a run history.

`%load_ext jupyter_amlexec` registers the magics; everything heavy (docker-py, widgets,
matplotlib) is imported only when a magic needs it, so loading stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    from .core.errors import set_hint_renderer
    from .magics import AmlExecMagics, install_awaiting_submit, magic_hint

    set_hint_renderer(magic_hint)
    ipython.register_magics(AmlExecMagics)
    install_awaiting_submit(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Runs that are going on keep going; `%%aml_submit` cells stop awaiting."""
    from .magics import uninstall_awaiting_submit

    uninstall_awaiting_submit(ipython)
