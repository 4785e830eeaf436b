"""The base of every REST handler: errors mapped to HTTP statuses in one place, JSON in and out.

Authentication and authorisation are on each verb (`@tornado.web.authenticated` then
`@authorized`, resource `AUTH_RESOURCE`), so jupyter_server's identity provider and authorizer
decide; a route without them fails tests/server/test_auth.py, which lists the app's own routes.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado.web import HTTPError

from ..core.errors import (
    AmlExecError,
    ConfigError,
    HistoryError,
    RunNotFoundError,
    SecretError,
    SnapshotError,
    TargetNotFoundError,
    TargetUnavailableError,
)
from .context import PathRefusedError, ServerContext

AUTH_RESOURCE = "amlexec"

# First match wins, so subclasses come before their bases.
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (PathRefusedError, 403),
    (RunNotFoundError, 404),
    (TargetNotFoundError, 404),
    (FileNotFoundError, 404),
    (SecretError, 400),
    (ConfigError, 400),
    (SnapshotError, 400),
    (ValueError, 400),
    (TargetUnavailableError, 503),
    (HistoryError, 500),
    (AmlExecError, 500),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status for an exception raised by the core or by our own checks."""
    if isinstance(exc, HTTPError):
        return exc.status_code
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def message_of(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        return exc.log_message or exc.reason or "HTTP error"
    if isinstance(exc, (AmlExecError, PathRefusedError, FileNotFoundError, ValueError)):
        return str(exc)
    return "Internal error; the server log has the details."


class AmlExecHandler(APIHandler):
    """Base of our handlers: the shared context, JSON bodies, and `{"message": ...}` errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def amlexec(self) -> ServerContext:
        context: ServerContext = self.settings["amlexec"]
        return context

    def _handle_request_exception(self, e: BaseException) -> None:
        """Our errors become their status here, before tornado logs them as a server fault."""
        if isinstance(e, HTTPError) or status_of(e) < 500 or isinstance(e, AmlExecError):
            if self._finished:
                return
            self.send_error(status_of(e), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        message = message_of(exc_info[1]) if exc_info else (self._reason or "error")
        if status_code >= 500 and exc_info:
            self.log.error("jupyter_amlexec: %s", message, exc_info=exc_info)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    def body(self) -> dict[str, Any]:
        """The request's JSON object (empty body = {}); 400 on anything else."""
        if not self.request.body:
            return {}
        try:
            doc = json.loads(self.request.body)
        except ValueError as exc:
            raise HTTPError(400, f"Request body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise HTTPError(400, "Request body must be a JSON object.")
        return doc

    def reply(self, doc: object, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(doc, default=str))

    def int_argument(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        text = self.get_query_argument(name, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise HTTPError(400, f"Query parameter '{name}' must be an integer, not {text!r}.") from None
        if value < low or (high is not None and value > high):
            upper = f" and {high}" if high is not None else ""
            raise HTTPError(400, f"Query parameter '{name}' must be between {low}{upper}.")
        return value

    def bool_argument(self, name: str, default: bool) -> bool:
        text = self.get_query_argument(name, None)
        if text is None or text == "":
            return default
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise HTTPError(400, f"Query parameter '{name}' must be true or false, not {text!r}.")
