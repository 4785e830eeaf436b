"""jupyter_amlexec: run notebook cells and scripts on compute targets, with a run history.

`%load_ext jupyter_amlexec` registers the magics; everything heavy (docker-py, widgets,
matplotlib) is imported only when a magic needs it, so loading stays fast. The jupyter-server
extension (REST API) and the prebuilt JupyterLab extension are found through the two
`_jupyter_*` functions below; they import nothing, so kernels never load tornado or jupyter_server.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's flag without importing typing: each guardian process imports this
if TYPE_CHECKING:
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


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server loads `jupyter_amlexec.server` (only the server does; kernels never do)."""
    return [{"module": "jupyter_amlexec.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt lab extension shipped in the package (built from labextension/)."""
    return [{"src": "labextension", "dest": "jupyter-amlexec"}]
