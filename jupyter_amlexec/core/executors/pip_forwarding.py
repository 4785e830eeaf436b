"""The host's pip index and CA settings, packed for an environment build in a container.

Behind a TLS-intercepting proxy or a private index, pip inside a fresh image fails unless it gets
the same settings as the host. Only network indexes are forwarded (file:// paths mean nothing in a
container). The files are deleted inside the build container before its image is committed.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

_CA_CANDIDATES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
_SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_KEYS = ("index-url", "extra-index-url", "trusted-host")


def _config_files() -> list[Path]:
    files = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf")]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    files += [Path(xdg) / "pip" / "pip.conf", Path.home() / ".pip" / "pip.conf"]
    if env := os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(env))
    return files


def _network_values(raw: str) -> list[str]:
    return [v for v in raw.split() if v.startswith(("http://", "https://")) or "://" not in v]


def host_pip_settings() -> dict[str, list[str]]:
    """index-url / extra-index-url / trusted-host as pip on this host would see them."""
    settings: dict[str, list[str]] = {}
    parser = configparser.ConfigParser()
    parser.read([str(p) for p in _config_files() if p.is_file()])
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
    """The CA bundle pip on this host uses: PIP_CERT and friends, then `cert =` in a pip config
    file (later files win, as in pip), then the system bundle."""
    for name in _CA_CANDIDATES:
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    parser = configparser.ConfigParser()
    parser.read([str(p) for p in _config_files() if p.is_file()])
    for section in ("install", "global"):
        if parser.has_option(section, "cert"):
            configured = Path(os.path.expanduser(parser.get(section, "cert").strip()))
            if configured.is_file():
                return configured
    return _SYSTEM_BUNDLE if _SYSTEM_BUNDLE.is_file() else None


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
