"""Every route of the running app refuses anonymous and wrong-token calls (the list comes from
the app itself, so a new route cannot slip past this test)."""

from __future__ import annotations

import re

import requests

from . import openapi_check
from .conftest import Api, Server

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
