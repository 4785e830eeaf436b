"""An authorizer that allows reading only: the server must ask it before every action of ours."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer


class ReadOnlyAmlExec(Authorizer):
    """Refuses write/execute/delete on the "amlexec" resource; everything else as usual."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "amlexec" and action != "read")
