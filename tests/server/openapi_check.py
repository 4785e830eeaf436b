"""Every response the tests get is checked against jupyter_amlexec/server/openapi.yaml.

A response's status must be declared for its operation, and a JSON body (or each SSE event's data)
must match the declared schema; a route missing from the document fails too.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "jupyter_amlexec" / "server" / "openapi.yaml"
API = "/jupyter-amlexec/api"


@cache
def spec() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return doc


def template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join(
        "(?P<artifact>.+)" if p == "{artifact}" else "[^/]+" if p.startswith("{") else re.escape(p)
        for p in parts
    )
    return re.compile(f"^{body}$")


def operation(method: str, url_path: str) -> tuple[str, dict[str, Any]]:
    """The spec's path template and operation for a request path (after the API prefix)."""
    rel = url_path.split(API, 1)[1] if API in url_path else url_path
    for template, item in spec()["paths"].items():
        if template_regex(template).match(rel) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {rel} is not in openapi.yaml")


def validate(schema: dict[str, Any], data: Any) -> None:
    jsonschema.Draft202012Validator({**schema, "components": spec()["components"]}).validate(data)


def check_response(method: str, url_path: str, status: int, content_type: str, body: bytes) -> None:
    template, op = operation(method, url_path)
    declared = op["responses"].get(str(status))
    assert declared is not None, f"{method} {template} answered {status}, not declared in openapi.yaml"
    if "$ref" in declared:
        declared = spec()["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    media = content_type.split(";")[0].strip()
    assert media in declared["content"], f"{method} {template} {status}: {media} not declared"
    if media == "application/json":
        validate(declared["content"][media]["schema"], json.loads(body))


def check_event(name: str, data: Any, *, prepare: bool = False) -> None:
    events = spec()["components"]["x-sse-events"]
    key = "prepare_log" if prepare and name == "log" else name
    assert key in events, f"SSE event {name!r} is not in openapi.yaml"
    validate(events[key], data)
