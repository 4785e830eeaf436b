"""Start a real jupyter server and write down the routes of that very app before it serves.

The auth test reads the routes from this file, so every route the running app has (a new one
too) is checked for authentication; nothing is listed by hand.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from jupyter_server.serverapp import ServerApp
from tornado.web import RequestHandler

PREFIX = "jupyter-amlexec"


def _rules(router: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for rule in getattr(router, "rules", []):
        target = rule.target
        if hasattr(target, "rules"):
            found += _rules(target)
        elif isinstance(target, type) and issubclass(target, RequestHandler):
            found.append((rule.matcher.regex.pattern, target))
    return found


def routes(app: ServerApp) -> list[dict[str, Any]]:
    """Our routes: regex and the HTTP methods its handler implements."""
    out = []
    for pattern, handler in _rules(app.web_app.default_router):
        if PREFIX not in pattern:
            continue
        methods = [
            m
            for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if getattr(handler, m.lower()) is not getattr(RequestHandler, m.lower())
        ]
        out.append({"pattern": pattern, "handler": handler.__name__, "methods": methods})
    return out


def main() -> None:
    app = ServerApp.instance()
    app.initialize(sys.argv[1:])
    with open(os.environ["AMLEXEC_ROUTES_FILE"], "w") as f:
        json.dump(routes(app), f)
    app.start()


if __name__ == "__main__":
    main()
