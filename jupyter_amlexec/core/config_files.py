"""Reading and writing the small YAML/JSON files of aml_config/, with line numbers for errors.

Workbench wrote YAML 1.1 (and JSON in its earliest builds); PyYAML's safe loader reads both. Every
write goes to a temp file in the same folder and is renamed over the target, so a failure never
leaves a half-written config.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # PyYAML is imported with the first file to read or write (~10 ms of a CLI start)
    import yaml


def load_mapping(path: Path, *, what: str) -> tuple[dict[str, Any], dict[str, int]]:
    """A file's top-level mapping and the line of each key; ConfigError with the line on bad input."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found.", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file: {exc.strerror}.", file=path) from exc
    if text.lstrip().startswith("{"):  # the JSON form of Sept-2017 builds: JSON's own errors are clearer
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON ({exc.msg}). Fix the syntax of this {what} file.", file=path, line=exc.lineno
            ) from exc
    import yaml

    try:
        node, data = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML/JSON ({problem}). Fix the syntax of this {what} file.",
            file=path,
            line=mark.line + 1 if mark is not None else None,
        ) from exc
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"a {what} file must hold a mapping of keys to values, not a {type(data).__name__}.",
            file=path,
            line=1,
        )
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _value in node.value:
            lines[str(key_node.value)] = key_node.start_mark.line + 1
    return {str(k): v for k, v in data.items()}, lines


def _safe_loader() -> Any:
    """libyaml's parser when PyYAML was built with it (its wheels are): ~10x faster on every submit."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for the line of each key) and its value, from one parse."""
    loader = _safe_loader()(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


class ConfigWriteError(ConfigError, OSError):
    """A file of aml_config/ cannot be written (read-only folder, full disk, a folder in the way).

    Also an OSError (with its errno), so code that handled the raw error still does.
    """

    def __init__(self, path: Path, exc: OSError, *, action: str = "write") -> None:
        folder = path.parent
        reason = exc.strerror or type(exc).__name__
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = (
                f"Make {folder} writable (check its permissions, `lsattr -d` for the immutable flag, and "
                f"whether its file system is mounted read-only), or work on a copy of the project."
            )
        elif exc.errno == errno.ENOSPC:
            fix = f"Free some space on the disk holding {folder}."
        else:
            fix = f"Remove what is in the way of {path.name} in {folder}, or fix the folder."
        ConfigError.__init__(self, f"cannot {action} {path.name}: {reason}. {fix}", file=path)
        self.errno = exc.errno
        self.strerror = exc.strerror
        self.filename = str(path)

    def __str__(self) -> str:
        return Exception.__str__(self)  # our message, not OSError's "[Errno 30] ..."


def write_atomic(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` in one rename; on any failure the old file is untouched and no
    temp file is left. An OSError becomes a ConfigWriteError naming the file, the folder and the fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigWriteError(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ConfigWriteError(path, exc) from exc
        raise


def dump_yaml(doc: Mapping[str, Any], *, sort_keys: bool = True) -> str:
    """YAML text that reads back as `doc`. Readable Unicode where that is exact; where it is not (a
    NEL or line separator inside a value reads back as a space) every non-ASCII character is escaped."""
    import yaml

    text = yaml.safe_dump(dict(doc), sort_keys=sort_keys, default_flow_style=False, allow_unicode=True)
    if _same_data(yaml.load(text, Loader=_safe_loader()), dict(doc)):
        return text
    return yaml.safe_dump(dict(doc), sort_keys=sort_keys, default_flow_style=False, allow_unicode=False)


def _same_data(a: object, b: object) -> bool:
    """Equality of parsed YAML data, where NaN equals NaN and a tuple equals a list."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_data(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_data(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def dump_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(dict(doc), indent=2) + "\n"
