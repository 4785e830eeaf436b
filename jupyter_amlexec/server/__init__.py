"""The REST adapter: a jupyter-server extension serving the run history and compute targets.

Loaded by jupyter_server only (never by `%load_ext`), so tornado and jupyter_server stay out of
kernels. Routes live under `<base_url>/jupyter-amlexec/api/`; `openapi.yaml` beside this file is
the contract the tests validate every response against.
"""

from __future__ import annotations

from typing import Any


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Add our routes to the running server; everything shared lives in one `ServerContext`."""
    from .context import ServerContext
    from .routes import handlers

    web_app = server_app.web_app
    context = ServerContext.create(root_dir=server_app.root_dir)
    web_app.settings["amlexec"] = context
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    server_app.log.info("jupyter_amlexec: REST API at %sjupyter-amlexec/api/", web_app.settings["base_url"])
