"""The host's pip index and CA settings, packed for an environment build in a container.

Behind a TLS-intercepting proxy or a private index, pip inside a fresh image fails unless it gets
the same settings as the host. Only network indexes are forwarded (file:// paths mean nothing in a
container). The files are deleted inside the build container before its image is committed.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

_CA_FALLBACKS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # used by pip only when it has no `cert`
_SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_KEYS = ("index-url", "extra-index-url", "trusted-host")


def _config_files() -> list[Path]:
    files = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf")]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    files += [Path(xdg) / "pip" / "pip.conf", Path.home() / ".pip" / "pip.conf"]
    if env := os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(env))
    return files


def _read_config() -> configparser.RawConfigParser:
    """The host's pip config files merged as pip merges them. Raw, as pip reads them: a `%` (an
    URL-encoded password in an index URL) is no interpolation."""
    parser = configparser.RawConfigParser()
    parser.read([str(p) for p in _config_files() if p.is_file()])
    return parser


def _network_values(raw: str) -> list[str]:
    return [v for v in raw.split() if v.startswith(("http://", "https://")) or "://" not in v]


def host_pip_settings() -> dict[str, list[str]]:
    """index-url / extra-index-url / trusted-host as pip on this host would see them."""
    settings: dict[str, list[str]] = {}
    parser = _read_config()
    for section in ("global", "install"):
        if parser.has_section(section):
            for key in _KEYS:
                if parser.has_option(section, key):
                    settings[key] = _network_values(parser.get(section, key))
    for key in _KEYS:
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            settings[key] = _network_values(env)
    return {k: v for k, v in settings.items() if v and (k == "trusted-host" or all("://" in x for x in v))}


def host_ca_bundle() -> Path | None:
    """The CA bundle pip on this host uses, in pip's order: PIP_CERT, then `cert =` in a pip config
    file ([install] over [global], later files win), then REQUESTS_CA_BUNDLE / SSL_CERT_FILE, then
    the system bundle. A setting naming a missing file is passed over, as it could not be sent."""
    candidates = [os.environ.get("PIP_CERT"), _configured_cert()]
    candidates += [os.environ.get(name) for name in _CA_FALLBACKS]
    for value in candidates:
        if value and Path(value).expanduser().is_file():
            return Path(value).expanduser()
    return _SYSTEM_BUNDLE if _SYSTEM_BUNDLE.is_file() else None


def _configured_cert() -> str | None:
    parser = _read_config()
    for section in ("install", "global"):
        if parser.has_option(section, "cert"):
            return parser.get(section, "cert").strip() or None
    return None


def host_pip_files() -> dict[str, bytes]:
    """pip.conf and ca.crt for the build directory (either may be absent)."""
    files: dict[str, bytes] = {}
    settings = host_pip_settings()
    if settings:
        lines = ["[global]"] + [f"{key} = {' '.join(values)}" for key, values in settings.items()]
        files["pip.conf"] = ("\n".join(lines) + "\n").encode()
    bundle = host_ca_bundle()
    if bundle is not None:
        files["ca.crt"] = bundle.read_bytes()
    return files
