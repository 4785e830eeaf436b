"""Compute target handlers for the project of a folder (`path`, relative to the server's root):
list, show, check (reachability), attach, detach, and prepare with its build log as SSE."""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.web import HTTPError

from ..core.api import Session
from ..core.errors import AmlExecError
from ..core.executors import create_executor
from . import views
from .base import AmlExecHandler, message_of
from .stream import EventStreamHandler

# What the attach form may send. No `password`: secrets are named (env variable, keyring entry,
# key file), never stored; the core refuses a password too.
ATTACH_FIELDS = (
    "address",
    "username",
    "key_file",
    "password_env",
    "base_docker_image",
    "python_location",
)
ATTACH_SETTINGS = ("password_keyring", "network_mode", "shared_volumes")


class TargetsMixin(AmlExecHandler):
    def target_session(self) -> Session:
        return self.amlexec.session(self.get_query_argument("path", ""))

    def project_json(self, session: Session) -> dict[str, Any]:
        return {"path": self.amlexec.relative(session.project.root), "name": session.project.name}


def _targets(session: Session) -> list[dict[str, Any]]:
    rcs = session.project.run_configurations()
    return [views.target_json(t, rcs) for t in session.project.targets()]


class TargetsHandler(TargetsMixin):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        session = self.target_session()
        targets = await self.amlexec.call(_targets, session)
        self.reply({"project": self.project_json(session), "targets": targets})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Attach: write `<name>.compute` and `<name>.runconfig`; 201 with the target."""
        session = self.target_session()
        body = self.body()
        if "password" in body:
            raise HTTPError(
                400,
                "Passwords are never stored: give password_env (an environment variable name), "
                "password_keyring (service/user) or key_file (a private key path).",
            )
        unknown = set(body) - {"name", "type", "force", *ATTACH_FIELDS, *ATTACH_SETTINGS}
        if unknown:
            raise HTTPError(400, f"Unknown attach field(s): {', '.join(sorted(unknown))}.")
        name, kind = body.get("name"), body.get("type")
        if not isinstance(name, str) or not isinstance(kind, str) or not name or not kind:
            raise HTTPError(400, "Give 'name' and 'type' of the target to attach.")
        fields = {k: body[k] or None for k in ATTACH_FIELDS if k in body}
        settings = {k: body[k] for k in ATTACH_SETTINGS if body.get(k) not in (None, "")}

        def attach() -> dict[str, Any]:
            target, _rc = session.project.attach_target(
                name, kind, force=bool(body.get("force")), **fields, **settings
            )
            return views.target_json(target, session.project.run_configurations())

        self.reply(await self.amlexec.call(attach), 201)


class TargetHandler(TargetsMixin):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        session = self.target_session()

        def show() -> dict[str, Any]:
            target = session.project.target(name)
            doc = views.target_json(target, session.project.run_configurations())
            doc["file"] = target.to_yaml()
            return doc

        self.reply(await self.amlexec.call(show))

    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Detach: remove the .compute file and the run configurations that use it."""
        session = self.target_session()

        def detach() -> list[str]:
            return [self.amlexec.relative(p) for p in session.project.detach_target(name)]

        self.reply({"removed": await self.amlexec.call(detach)})


def _check(session: Session, name: str) -> dict[str, Any]:
    target = session.project.target(name)  # 404 for an unknown name, not "unreachable"
    try:
        create_executor(target, session.history.home).check()
    except AmlExecError as exc:
        return {"id": name, "reachable": False, "message": str(exc)}
    return {"id": name, "reachable": True, "message": None}


class TargetCheckHandler(TargetsMixin):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """Is the target reachable now (engine answers, interpreter exists, ...)?"""
        session = self.target_session()
        self.reply(await self.amlexec.call(_check, session, name))


class TargetPrepareHandler(EventStreamHandler, TargetsMixin):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Build (or find cached) the target's environment, streaming the build log as SSE."""
        session = self.target_session()
        force = bool(self.body().get("force"))
        await self.amlexec.call(session.project.target, name)  # 404 before the stream starts
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def log(text: str) -> None:  # on the pool's thread
            loop.call_soon_threadsafe(queue.put_nowait, ("log", {"text": text}))

        def prepare() -> None:
            try:
                env = session.prepare(target=name, force=force, log=log)
                done = {"ok": True, "built": env.built, "env_hash": env.env_hash, "image": env.image}
                loop.call_soon_threadsafe(queue.put_nowait, ("done", done))
            except Exception as exc:
                loop.call_soon_threadsafe(
                    queue.put_nowait, ("done", {"ok": False, "message": message_of(exc)})
                )

        self.start_stream()
        job = loop.run_in_executor(self.amlexec.pool, prepare)
        while True:
            kind, data = await queue.get()
            if not await self.send(kind, data) or kind == "done":
                break
        await job
        self.finish()
