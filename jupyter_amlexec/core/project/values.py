"""Value parsers of aml_config/ files: each returns the typed value or raises a ConfigError naming the
file, line, key and bad value, with the values allowed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..errors import ConfigError

TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FRAMEWORKS = ("Python", "PySpark")
YARN_DEPLOY_MODES = ("cluster", "client")

ErrorFactory = Callable[[str], ConfigError]
Parser = Callable[[object, ErrorFactory], object]


def _error_factory(path: Path | None, key: str, lines: Mapping[str, int]) -> ErrorFactory:
    def error(message: str) -> ConfigError:
        return ConfigError(message, file=path, key=key, line=lines.get(key))

    return error


def _as_bool(value: object, err: ErrorFactory) -> bool:
    if isinstance(value, bool):
        return value
    # YAML 1.1 spellings, in case a file quoted them
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.strip().lower() in ("true", "yes", "on")
    raise err(f"bad value {value!r}; allowed: true or false.")


def _no_nul(text: str, err: ErrorFactory) -> str:
    """Text that ends up in argv, paths or an environment cannot hold NUL (no OS call accepts it)."""
    if "\x00" in text:
        raise err(f"bad value {text!r}: a NUL character (\\0) cannot reach a program or a path; remove it.")
    return text


def _as_str(value: object, err: ErrorFactory) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        if text.strip():
            return _no_nul(text, err)
    raise err(f"bad value {value!r}; allowed: a non-empty text value.")


def _as_positive_float(value: object, err: ErrorFactory, allowed: str = "a positive number") -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not number > 0 or number != number or number == float("inf"):
        raise err(f"bad value {value!r}; allowed: {allowed}.")
    return int(number) if number.is_integer() else number  # `cpus: 2` is written back as 2


def _as_cpus(value: object, err: ErrorFactory) -> float:
    return _as_positive_float(value, err, "a positive number of CPUs such as 2 or 0.5")


def _as_port(value: object, err: ErrorFactory) -> int:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise err(f"bad value {value!r}; allowed: a TCP port number from 1 to 65535.")
    return int(text)


_SIZE = re.compile(r"^\d+(\.\d+)?\s*([bkmg]b?)?$", re.IGNORECASE)


def _as_size(value: object, err: ErrorFactory) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not _SIZE.match(text):
        raise err(
            f"bad value {value!r}; allowed: a size such as 512m or 4g (b, k, m, g), or a number of bytes."
        )
    return text


_GPUS = re.compile(r"^(all|\d+|[A-Za-z0-9_-]+(\s*,\s*[A-Za-z0-9_-]+)*)$")


def _as_gpus(value: object, err: ErrorFactory) -> str:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not _GPUS.match(text):
        raise err(f"bad value {value!r}; allowed: all, a number of GPUs (2) or device ids (0,1).")
    return text


def _as_yarn_mode(value: object, err: ErrorFactory) -> str:
    text = _as_str(value, err).strip()
    if text.lower() not in YARN_DEPLOY_MODES:
        raise err(f"bad value {value!r}; allowed: {' or '.join(YARN_DEPLOY_MODES)}.")
    return text.lower()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _as_env_name(value: object, err: ErrorFactory) -> str:
    text = _as_str(value, err).strip()
    if not _ENV_NAME.match(text):
        raise err(f"bad value {value!r}; allowed: an environment variable name such as MY_PASSWORD.")
    return text


def _as_volumes(value: object, err: ErrorFactory) -> tuple[str, ...]:
    allowed = "a list of HOST_PATH_OR_VOLUME:/container/path[:ro|rw] strings"
    if not isinstance(value, (list, tuple)):
        raise err(f"bad value {value!r}; allowed: {allowed}.")
    volumes = []
    for item in value:
        parts = str(item).split(":") if isinstance(item, str) else []
        if not 2 <= len(parts) <= 3 or not parts[0] or not parts[1].startswith("/"):
            raise err(f"bad volume {item!r}; allowed: {allowed}.")
        volumes.append(_no_nul(str(item), err))
    return tuple(volumes)


def _as_str_list(value: object, err: ErrorFactory) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise err(f"bad item {item!r} in {value!r}; allowed: a list of text or numbers.")
            items.append(_no_nul(str(item), err))
        return tuple(items)
    raise err(f'bad value {value!r}; allowed: a list such as ["$file", "--lr", 0.1].')


def _as_framework(value: object, err: ErrorFactory) -> str:
    text = _as_str(value, err).strip()
    for framework in FRAMEWORKS:
        if framework.lower() == text.lower():
            return framework
    raise err(f"unknown framework {text!r}; allowed: {' or '.join(FRAMEWORKS)}.")


def _env_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_environment(value: object, err: ErrorFactory) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise err(f"bad value {value!r}; allowed: a mapping of NAME: value.")
    env = {}
    for name, item in value.items():
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise err(f"bad value {item!r} for {name}; allowed: text or a number.")
        text = str(name)
        if not text or "=" in text:
            raise err(f"bad variable name {text!r}; allowed: a non-empty name without '='.")
        env[_no_nul(text, err)] = _no_nul(_env_value(item), err)
    return env


def _as_mapping(value: object, err: ErrorFactory) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise err(f"bad value {value!r}; allowed: a mapping.")
    return {str(k): v for k, v in value.items()}


def _as_substitutions(value: object, err: ErrorFactory) -> dict[str, str]:
    mapping = _as_mapping(value, err)
    for source, target in mapping.items():
        if not isinstance(target, str):
            raise err(f"bad value {target!r} for {source}; allowed: a mapping of a.dsource: b.dsource.")
    return {k: str(v) for k, v in mapping.items()}


def _as_megabytes(value: object, err: ErrorFactory) -> float:
    return _as_positive_float(value, err, "a positive number of megabytes")


def _check_name(name: str, what: str) -> None:
    if not TARGET_NAME.match(name):
        raise ConfigError(
            f"{name!r} cannot name a {what}: use letters, digits, '_', '-' or '.', starting with a "
            f"letter or digit (it becomes a file name in aml_config/)."
        )


def closest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key `key` was most likely meant to be (case and a trailing typo forgiven), or None.

    `baseDockerImag` -> `baseDockerImage`; `TragetTypo` -> `Target` (its first letters match).
    """
    import difflib  # only a file with an unknown key needs it

    folded = key.lower()
    best: tuple[float, str] | None = None
    for candidate in known:
        wanted = candidate.lower()
        score = max(
            difflib.SequenceMatcher(None, folded, wanted).ratio(),
            # a known key with something glued on (`TragetTypo`): compare as many letters as it has
            difflib.SequenceMatcher(None, folded[: len(wanted)], wanted).ratio() - 0.05,
        )
        if score >= 0.6 and (best is None or score > best[0]):
            best = (score, candidate)
    return best[1] if best else None


def unknown_key_warnings(
    keys: Iterable[str], known: Iterable[str], where: Path | str | None
) -> tuple[str, ...]:
    """One warning per key not in `known`, naming the file and the closest known key.

    Unknown keys are kept (a round trip loses nothing), but a typo must not pass without a word.
    """
    known = tuple(known)
    place = f" in {where}" if where is not None else ""
    warnings = []
    for key in keys:
        if key in known:
            continue
        guess = closest_key(key, known)
        hint = f"did you mean '{guess}'?" if guess else f"known keys: {', '.join(sorted(known))}."
        warnings.append(f"unknown key '{key}'{place}; {hint} (kept as is, not used)")
    return tuple(warnings)
