"""Every route of the running app refuses anonymous and wrong-token calls (the list comes from
the app itself, so a new route cannot slip past this test)."""

from __future__ import annotations

import re

import pytest
import requests

from . import openapi_check
from .conftest import Api, Server, start_server, stop_server

SAMPLE = {"run_id": "proj_1", "name": "local", "relative": "a.txt"}


def concrete(pattern: str) -> str:
    """A URL path for a route regex: each named group replaced by a sample value."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE[m.group(1)], pattern)
    return path.rstrip("$")


def test_the_app_has_our_routes_and_the_spec_names_each(server: Server) -> None:
    # Given the routes the running app registered under jupyter-amlexec/
    assert len(server.routes) >= 13
    # Then each route and each of its methods is an operation of openapi.yaml
    for route in server.routes:
        for method in route["methods"]:
            openapi_check.operation(method, concrete(route["pattern"]))


def test_every_route_refuses_anonymous_and_wrong_token(server: Server) -> None:
    base = server.url.rstrip("/")
    for route in server.routes:
        for method in route["methods"]:
            url = base + concrete(route["pattern"])
            for headers in ({}, {"Authorization": "token wrong-token"}):
                # When a call comes without the token, or with a wrong one
                resp = requests.request(method, url, headers=headers, timeout=30, allow_redirects=False)
                # Then it is refused, with a JSON message and nothing of ours
                assert resp.status_code == 403, (method, url, headers, resp.status_code, resp.text[:200])
                assert "message" in resp.json()


def test_with_the_token_the_same_routes_answer(api: Api) -> None:
    # Given the token: an unknown run is a 404 with a message (the route is there and authorised)
    resp = api.get("runs/proj_1")
    assert resp.status_code == 404 and "proj_1" in resp.json()["message"]


def test_the_servers_authorizer_decides_every_action(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Given a server whose authorizer lets users read but not change anything of ours
    server = start_server(
        tmp_path_factory.mktemp("readonly"),
        "--ServerApp.authorizer_class=tests.server.readonly_authorizer.ReadOnlyAmlExec",
    )
    try:
        (server.root / "p").mkdir()
        (server.root / "p" / "a.py").write_text("print('never runs')")
        api = Api(server)
        # Then reads work, and every write or delete is refused before anything happens
        assert api.get("targets", params={"path": "p"}).status_code == 200
        assert api.get("runs").json()["total"] == 0
        assert api.post("runs", json={"script": "p/a.py"}).status_code == 403
        attach = api.post("targets", params={"path": "p"}, json={"name": "t", "type": "local"})
        assert attach.status_code == 403 and not (server.root / "p" / "aml_config").exists()
        assert api.delete("targets/local", params={"path": "p"}).status_code == 403
        assert api.get("runs").json()["total"] == 0
    finally:
        stop_server(server)


def test_the_openapi_document_is_valid() -> None:
    from openapi_spec_validator import validate

    # The document the responses are checked against is itself a valid OpenAPI 3.1 document
    validate(openapi_check.spec())
