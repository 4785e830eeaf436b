"""The URL table of the REST API: one line per route, all under `<base_url>/jupyter-amlexec/api/`."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from . import runs, targets

PREFIX = ("jupyter-amlexec", "api")
RUN = r"(?P<run_id>[A-Za-z0-9_.\-]+)"
NAME = r"(?P<name>[A-Za-z0-9_.\-]+)"

ROUTES: tuple[tuple[str, type], ...] = (
    ("runs", runs.RunsHandler),
    (f"runs/{RUN}", runs.RunHandler),
    (f"runs/{RUN}/log", runs.RunLogHandler),
    (f"runs/{RUN}/events", runs.RunEventsHandler),
    (f"runs/{RUN}/metrics", runs.RunMetricsHandler),
    (f"runs/{RUN}/artifacts", runs.RunArtifactsHandler),
    (f"runs/{RUN}/artifacts/(?P<relative>.+)", runs.RunArtifactHandler),
    (f"runs/{RUN}/cancel", runs.RunCancelHandler),
    (f"runs/{RUN}/rerun", runs.RunRerunHandler),
    ("targets", targets.TargetsHandler),
    (f"targets/{NAME}", targets.TargetHandler),
    (f"targets/{NAME}/check", targets.TargetCheckHandler),
    (f"targets/{NAME}/prepare", targets.TargetPrepareHandler),
)


def handlers(base_url: str) -> list[tuple[str, type[Any]]]:
    return [(url_path_join(base_url, *PREFIX, pattern), handler) for pattern, handler in ROUTES]
