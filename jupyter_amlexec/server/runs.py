"""Run handlers: list (filters, sort incl. by a metric, paging), one run, its log, its events as
SSE, metrics, artifacts, submit, cancel and rerun. Each verb is one core call off the IOLoop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.web import HTTPError

from ..core.follow import FollowCursor
from ..core.history import History, RunRecord
from . import views
from .base import AmlExecHandler
from .context import PathRefusedError
from .stream import EventStreamHandler

MAX_PAGE = 500
FILTERS = ("experiment", "target", "script")
CHUNK_BYTES = 1 << 20


class RunsHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """A page of runs; `path` limits them to the project of that folder."""
        filters: dict[str, Any] = {k: self.get_query_argument(k, None) or None for k in FILTERS}
        status = self.get_query_argument("status", None)
        if status:
            filters["status"] = [s for s in status.split(",") if s]
        path = self.get_query_argument("path", None)
        if path is not None:
            filters["project"] = self.amlexec.project_of(self.amlexec.folder(path)).name
        order_by = self.get_query_argument("order_by", "created_utc")
        descending = self.bool_argument("descending", True)
        limit = self.int_argument("limit", 50, low=1, high=MAX_PAGE)
        offset = self.int_argument("offset", 0)
        with_names = self.bool_argument("metric_names", False)
        page = await self.amlexec.call(
            _page, self.amlexec.history, filters, order_by, descending, limit, offset, with_names
        )
        self.reply(page)

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Submit a script of the server's root folder; 201 with the Queued run."""
        body = self.body()
        script = body.get("script")
        if not isinstance(script, str) or not script:
            raise HTTPError(400, "Give 'script': the path of a .py file relative to the server's root.")
        script_path = _confined_file(self.amlexec.root_dir, script)
        folder = body.get("path")
        session = self.amlexec.session(
            folder if isinstance(folder, str) else self.amlexec.relative(script_path)
        )
        arguments = body.get("arguments") or []
        if not isinstance(arguments, list):
            raise HTTPError(400, "'arguments' must be a list of strings.")
        run = await self.amlexec.call(
            lambda: session.submit(
                script=str(script_path),
                arguments=[str(a) for a in arguments],
                run_configuration=body.get("run_configuration") or None,
                target=body.get("target") or None,
                experiment=body.get("experiment") or None,
                description=body.get("description") or None,
            )
        )
        record = await self.amlexec.call(self.amlexec.history.get, run.id)
        self.reply(views.run_json(record), 201)


def _page(
    history: History,
    filters: dict[str, Any],
    order_by: str,
    descending: bool,
    limit: int,
    offset: int,
    with_names: bool,
) -> dict[str, Any]:
    records: list[RunRecord] = history.query(
        **filters, order_by=order_by, descending=descending, limit=limit, offset=offset
    )
    page: dict[str, Any] = {
        "runs": [views.run_json(r) for r in records],
        "total": history.count(**filters),
        "offset": offset,
        "limit": limit,
    }
    if with_names:
        page["metric_names"] = history.metric_names(**filters)
    return page


def _confined_file(root: Path, relative: str) -> Path:
    if relative.startswith("/") or Path(relative).is_absolute():
        raise PathRefusedError(f"Path {relative!r} must be relative to the server's root folder.")
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise PathRefusedError(f"Path {relative!r} is outside the server's root folder.")
    if not path.is_file():
        raise FileNotFoundError(f"No file {relative!r} under the server's root folder.")
    return path


class RunHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        record = await self.amlexec.call(self.amlexec.history.get, run_id)
        self.reply(views.run_json(record))


class RunLogHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """The log from `cursor` (a byte offset this route gave) or its last `tail_bytes`."""
        source = self.get_query_argument("source", "driver")
        if source not in ("driver", "control"):
            raise HTTPError(400, "Query parameter 'source' must be 'driver' or 'control'.")
        offset = self.int_argument("cursor", 0)
        tail = self.get_query_argument("tail_bytes", None)
        tail_bytes = self.int_argument("tail_bytes", 0, low=1) if tail else None
        history = self.amlexec.history

        def read() -> dict[str, Any]:
            record = history.get(run_id)
            if tail_bytes is None:
                text = history.read_log(run_id, source, offset=offset)
                end = offset + len(text.encode("utf-8"))
            else:  # the size before the read: text appended meanwhile is sent again, never lost
                log_file = history.run_dir(run_id) / f"{source}_log.txt"
                end = log_file.stat().st_size if log_file.exists() else 0
                text = history.read_log(run_id, source, tail_bytes=tail_bytes)
            return {
                "text": text,
                "cursor": str(end),
                "status": record.status.value,
                "done": record.status.terminal,
            }

        self.reply(await self.amlexec.call(read))


class RunEventsHandler(EventStreamHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """Follow a run as SSE from `cursor` (or the Last-Event-ID header) to its terminal status."""
        cursor = self.get_query_argument("cursor", None) or self.request.headers.get("Last-Event-ID")
        try:  # a malformed cursor is a 400 before the stream starts
            FollowCursor.parse(cursor)
        except ValueError:
            raise HTTPError(
                400, f"Bad cursor {cursor!r}: pass the id of an event this route sent, or none."
            ) from None
        await self.amlexec.call(self.amlexec.history.get, run_id)  # and an unknown run a 404
        self.start_stream()
        async for step in self.until_closed(self.amlexec.hubs.steps(run_id, cursor or None)):
            # one flush a step, and the step's end cursor as the id of its last event: a client
            # that resumes from its last id gets the next step, with nothing repeated
            for i, event in enumerate(step.events):
                name, data = views.event_json(event)
                self.write_event(name, data, step.cursor if i == len(step.events) - 1 else None)
            if not await self.push():
                return
        await self.send("end", {})
        self.finish()


class RunMetricsHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        history = self.amlexec.history

        def read() -> dict[str, Any]:
            history.get(run_id)
            return views.series_json(history.metric_series(run_id))

        self.reply(await self.amlexec.call(read))


class RunArtifactsHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        history = self.amlexec.history

        def read() -> list[dict[str, Any]]:
            history.get(run_id)
            return views.list_artifacts(history.run_dir(run_id) / "outputs")

        self.reply({"artifacts": await self.amlexec.call(read)})


class RunArtifactHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, relative: str) -> None:
        """Download one file of the run's outputs/; nothing outside that folder, no symlink."""
        history = self.amlexec.history
        path = await self.amlexec.call(_artifact_path, history, run_id, relative)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
        with open(path, "rb") as f:
            while chunk := await self.amlexec.call(f.read, CHUNK_BYTES):
                self.write(chunk)
                await self.flush()
        self.finish()


def _artifact_path(history: History, run_id: str, relative: str) -> Path:
    history.get(run_id)
    outputs = (history.run_dir(run_id) / "outputs").resolve()
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or relative.startswith("/") or ".." in parts:
        raise PathRefusedError(f"Artifact path {relative!r} must be relative to the run's outputs/.")
    path = outputs / relative
    walk = outputs
    for part in parts:  # no component may be a symlink: it could point outside outputs/
        walk = walk / part
        if walk.is_symlink():
            raise PathRefusedError(f"Artifact path {relative!r} goes through a symlink.")
    if not path.resolve().is_relative_to(outputs):
        raise PathRefusedError(f"Artifact path {relative!r} is outside the run's outputs/.")
    if not path.is_file():
        raise FileNotFoundError(f"Run {run_id} has no artifact {relative!r}.")
    return path


class RunCancelHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        """Ask the run's target to stop it; 202 with the run as it is now (cancel is idempotent)."""
        context = self.amlexec

        def cancel() -> RunRecord:
            context.session_of_run(run_id).cancel(run_id)
            return context.history.get(run_id)

        self.reply(views.run_json(await context.call(cancel)), 202)


class RunRerunHandler(AmlExecHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        """Run the same snapshot again; 201 with the new run."""
        context = self.amlexec
        body = self.body()
        overrides = {
            k: body[k] for k in ("arguments", "target", "run_configuration") if body.get(k) is not None
        }

        def rerun() -> RunRecord:
            run = context.session_of_run(run_id).rerun(run_id, **overrides)
            return context.history.get(run.id)

        self.reply(views.run_json(await context.call(rerun)), 201)
