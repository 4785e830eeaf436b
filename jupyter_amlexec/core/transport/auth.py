"""SSH user authentication: ssh-agent keys, key files, then a password, as OpenSSH tries them.

The secret (a key passphrase or a password, one value as in Workbench's `--password`) is read from
its environment variable or keyring entry only when a key turns out to be encrypted or keys fail,
and it appears in no message. A failure lists what was tried and how to fix it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import TargetUnavailableError
from ..secrets import resolve_secret
from .sshconfig import Endpoint

log = logging.getLogger(__name__)


class _Secret:
    """The endpoint's secret, looked up at most once and only if needed."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._value: str | None = None
        self._done = False

    @property
    def named(self) -> bool:
        return bool(self._endpoint.password_env or self._endpoint.password_keyring)

    def get(self) -> str | None:
        if not self._done:
            e = self._endpoint
            self._value = resolve_secret(
                f"SSH {e.owner or e.alias}",
                env=e.password_env,
                keyring_entry=e.password_keyring,
                username=e.username,
            )
            self._done = True
        return self._value


def _load_key(path: Path, secret: _Secret, tried: list[str]) -> Any | None:
    import paramiko

    try:
        return paramiko.PKey.from_path(str(path))
    except FileNotFoundError:
        tried.append(f"{path} (not found)")
        return None
    except (paramiko.PasswordRequiredException, TypeError):  # TypeError: cryptography's "no password"
        passphrase = secret.get()
        if passphrase is None:
            tried.append(
                f"{path} (encrypted, and no passphrase: set `passwordEnv: VAR` or "
                f"`passwordKeyring: service/user` on the target, or add the key to ssh-agent)"
            )
            return None
        try:
            return paramiko.PKey.from_path(str(path), passphrase.encode())
        except (paramiko.SSHException, ValueError, TypeError):
            tried.append(f"{path} (the passphrase does not decrypt it)")
            return None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        tried.append(f"{path} (unreadable as a private key: {exc})")
        return None


def authenticate(transport: Any, endpoint: Endpoint) -> None:
    """Authenticate an open transport as the endpoint's user; TargetUnavailableError listing what failed."""
    import paramiko

    tried: list[str] = []
    secret = _Secret(endpoint)
    user = endpoint.username
    if endpoint.use_agent:
        agent = paramiko.Agent()
        try:
            keys = agent.get_keys()
            for key in keys:
                try:
                    transport.auth_publickey(user, key)
                    return
                except paramiko.AuthenticationException:
                    pass
            if keys:
                tried.append(f"{len(keys)} ssh-agent key(s)")
        finally:
            agent.close()
    for path in endpoint.key_files:
        key = _load_key(path, secret, tried)
        if key is None:
            continue
        try:
            transport.auth_publickey(user, key)
            return
        except paramiko.AuthenticationException:
            tried.append(f"{path} (refused by the host)")
    if secret.named:
        password = secret.get()
        if password is not None:
            try:
                transport.auth_password(user, password)
                return
            except paramiko.BadAuthenticationType:
                tried.append("a password (the host does not accept passwords)")
            except paramiko.AuthenticationException:
                tried.append("a password (refused)")
    raise TargetUnavailableError(_failure_message(endpoint, tried))


def _failure_message(endpoint: Endpoint, tried: list[str]) -> str:
    attempts = "; ".join(tried) if tried else "nothing: no ssh-agent key, no key file, no password"
    return (
        f"SSH authentication as {endpoint.username} to {endpoint.host}:{endpoint.port} failed. "
        f"Tried: {attempts}. Fix: put the public key in ~{endpoint.username}/.ssh/authorized_keys on "
        f"the host (`ssh-copy-id -p {endpoint.port} {endpoint.username}@{endpoint.host}`), name the "
        f"private key with `privateKeyFile:` (or IdentityFile in ~/.ssh/config), or check the username."
    )
