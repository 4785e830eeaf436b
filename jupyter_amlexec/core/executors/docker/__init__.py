"""The Docker target (`type: docker`, later `remotedocker`): one container per run.

Modules: settings (the .compute keys Docker reads), engine (connection, lost-engine backoff),
image + build + pip_forwarding (environment images), container (create/start, snapshot in),
logcopy (the log, resumable), handle (status, cancel, outputs, clean-up), executor (the glue).
docker-py is imported lazily (extra `docker`): importing this package does not import it.
"""

from __future__ import annotations

from .executor import DockerExecutor
from .handle import DockerRunHandle
from .settings import DockerSettings

__all__ = ["DockerExecutor", "DockerRunHandle", "DockerSettings"]
