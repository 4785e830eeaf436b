"""Reading one aml_config/ file into a mapping (YAML, or the JSON of Sept-2017 builds) with the line
of each key, and rendering a mapping back to text; plus the helpers that keep a file's own spelling."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from ..config_files import dump_json, dump_yaml, load_mapping
from ..errors import ConfigError
from .values import Parser


def _json_key_lines(text: str, keys: Iterable[str]) -> dict[str, int]:
    """Line of each top-level key of a JSON object (first occurrence), for error messages."""
    lines = {}
    for key in keys:
        match = re.search(re.escape(json.dumps(key)) + r"\s*:", text)
        if match:
            lines[key] = text.count("\n", 0, match.start()) + 1
    return lines


def _load_config(path: Path, what: str) -> tuple[dict[str, Any], dict[str, int], str]:
    """(mapping, line of each key, "yaml" | "json"). JSON is parsed as JSON: its errors name the line,
    and a tab-indented JSON file (not valid YAML) still loads."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found.", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (bad byte at offset {exc.start}). Save this {what} file as UTF-8.", file=path
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file: {exc.strerror}.", file=path) from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            try:  # a YAML flow mapping such as {Target: local} is fine too
                yaml_data, lines = load_mapping(path, what=what)
            except ConfigError:
                raise ConfigError(
                    f"not valid JSON ({exc.msg}, column {exc.colno}). Fix the syntax of this {what} file.",
                    file=path,
                    line=exc.lineno,
                ) from exc
            return yaml_data, lines, "yaml"
        if not isinstance(data, dict):  # pragma: no cover - a "{"-text is an object or an error
            raise ConfigError(f"a {what} file must hold a JSON object.", file=path, line=1)
        return data, _json_key_lines(text, data), "json"
    data, lines = load_mapping(path, what=what)
    return data, lines, "yaml"


def _same(raw: object, value: object, parse: Parser, default: object) -> bool:
    """Does a raw file value still mean `value`? Then it is written back with its own spelling."""
    if raw is None:
        return value == default
    try:
        return parse(raw, lambda m: ConfigError(m)) == value
    except ConfigError:
        return False


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    return value


def _render(doc: Mapping[str, object], form: str, *, what: str, sort_keys: bool = True) -> str:
    """YAML or JSON text; a value that cannot be written is a ConfigError naming its key."""
    import yaml  # writing a file: reading needs no PyYAML until a file is there

    dump: Callable[[Mapping[str, Any]], str] = (
        dump_json if form == "json" else (lambda d: dump_yaml(d, sort_keys=sort_keys))
    )
    try:
        return dump(doc)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        for key, value in doc.items():
            try:
                dump({key: value})
            except (yaml.YAMLError, TypeError, ValueError):
                raise ConfigError(
                    f"cannot write {value!r} into a {what} file: use text, numbers, booleans, lists "
                    f"or mappings.",
                    key=key,
                ) from exc
        raise ConfigError(f"cannot write this {what}: {exc}") from exc
