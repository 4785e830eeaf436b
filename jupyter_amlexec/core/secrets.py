"""Secrets stay out of aml_config/ and the run history: resolve them late, redact them early.

A target names where its password lives (an environment variable, a keyring entry); the value is
read only when a connection needs it. Environment variables that look secret are redacted before
a run is recorded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .errors import ConfigError, SecretError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .project import ComputeTarget

REDACTED = "***"
# The redaction rule (README "Secrets"): a variable whose name holds PASS, PWD, SECRET, TOKEN, KEY,
# CREDENTIAL or AUTH, or is PW / ends in _PW / starts with PW_, any case, is a secret.
_SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|(?:^|_)PW(?:$|_)", re.IGNORECASE)
MIN_SECRET_CHARS = 4  # shorter values are not hunted for in logs (they would match ordinary text)


def looks_secret(name: str) -> bool:
    """Whether a variable of this name holds a secret under the redaction rule."""
    return bool(_SECRET_NAME.search(name))


def redact_environment(env: Mapping[str, str], secret_names: Iterable[str] = ()) -> dict[str, str]:
    """A copy of `env` with the values of secret variables (by name, or named in `secret_names`)
    replaced by ***: what the history keeps."""
    named = set(secret_names)
    return {k: (REDACTED if looks_secret(k) or k in named else str(v)) for k, v in env.items()}


def secret_values(env: Mapping[str, str], secret_names: Iterable[str] = ()) -> tuple[str, ...]:
    """The values a run must never show in its logs or events: those of its secret variables."""
    named = set(secret_names)
    values = {v for k, v in env.items() if (looks_secret(k) or k in named) and len(v) >= MIN_SECRET_CHARS}
    return tuple(sorted(values, key=len, reverse=True))  # longest first: a value inside another


def redact_text(text: str, values: Sequence[str]) -> str:
    """`text` with every occurrence of a secret value replaced by ***."""
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def resolve_password(target: ComputeTarget) -> str | None:
    """The target's password from where its config says it lives; None when it uses none."""
    legacy = target.workbench_secret
    if legacy is not None and (target.password_env or target.password_keyring):
        log.warning(
            "target %s: ignoring its Workbench `password:` line (passwordEnv/passwordKeyring is set); "
            "remove that line from aml_config/%s.compute",
            target.name,
            target.name,
        )
    if legacy is not None and not (target.password_env or target.password_keyring):
        where = f"aml_config/{target.name}.compute"
        if legacy.strip().lower().startswith("azuremlsecret="):
            raise SecretError(
                f"Target '{target.name}' ({where}) has `password: {legacy.strip()}`. That is not a "
                f"password but a key into Azure ML Workbench's cloud credential service, which cannot "
                f"be resolved outside Azure. Replace the password line with one of: `passwordEnv: VAR` "
                f"(an environment variable holding the password), `passwordKeyring: service/user` (a "
                f"keyring entry), or `privateKeyFile: ~/.ssh/id_ed25519` (an SSH key, or use ssh-agent).",
                key="password",
            )
        raise SecretError(
            f"Target '{target.name}' ({where}) holds a plain-text password. Move it into an environment "
            f"variable and write `passwordEnv: VAR` instead (or `passwordKeyring: service/user`, or an "
            f"SSH key with `privateKeyFile:`), then remove the password line: aml_config/ is often "
            f"committed and shared.",
            key="password",
        )
    return resolve_secret(
        f"Target '{target.name}'",
        env=target.password_env,
        keyring_entry=target.password_keyring,
        username=target.username,
    )


def resolve_secret(
    owner: str, *, env: str | None, keyring_entry: str | None, username: str | None = None
) -> str | None:
    """A password or key passphrase from the variable `env` or the keyring entry `keyring_entry`
    ("service" or "service/user"; the user defaults to `username`); None when neither is named.

    Shared by every reader of secrets (targets, SSH endpoints) so the messages stay one set;
    `owner` starts each message ("Target 'gpuvm'", "SSH host 'lab'").
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(
                f"{owner} takes its password from the environment variable "
                f"{env}, which is not set. Set it in the environment of the kernel "
                f"or terminal (not in aml_config/).",
                key="passwordEnv",
            )
        return value
    if keyring_entry:
        service, _, user = keyring_entry.partition("/")
        try:
            import keyring
        except ImportError:
            raise SecretError(
                f"{owner} reads its password from the keyring entry "
                f"'{keyring_entry}', but the `keyring` package is not installed: "
                f"pip install keyring.",
                key="passwordKeyring",
            ) from None
        try:
            value = keyring.get_password(service, user or (username or ""))
        except Exception as exc:  # noqa: BLE001 - every keyring backend failure means the same to the user
            raise SecretError(
                f"{owner}: the keyring could not be read for entry "
                f"'{keyring_entry}' ({type(exc).__name__}: {exc}). Unlock or configure the "
                f"keyring, or use passwordEnv: VAR instead.",
                key="passwordKeyring",
            ) from exc
        if value is None:
            raise SecretError(
                f"{owner}: no keyring entry '{keyring_entry}'. Store it with "
                f"`keyring set {service} {user or username or 'USER'}`.",
                key="passwordKeyring",
            )
        return str(value)
    return None


KEYRING_SERVICE = "jupyter_amlexec"


def store_in_keyring(target: str, username: str | None, password: str) -> str:
    """Keep a password given to `attach` in the keyring (Workbench's `--password P` stored it in its
    cloud credential service); returns the `passwordKeyring` entry the .compute file names."""
    try:
        import keyring
    except ImportError:
        raise SecretError(
            "A password given to attach is kept in the system keyring, but the `keyring` package is not "
            "installed: pip install keyring (or pass --password-env VAR naming a variable instead).",
            key="password",
        ) from None
    service, user = f"{KEYRING_SERVICE}:{target}", username or target
    try:
        keyring.set_password(service, user, password)
    except Exception as exc:  # noqa: BLE001 - every backend failure means the same to the user
        raise SecretError(
            f"The keyring could not store the password of target '{target}' ({type(exc).__name__}: {exc}). "
            f"Configure a keyring backend, or pass --password-env VAR instead.",
            key="password",
        ) from exc
    return f"{service}/{user}"


def secret_variables(names: Sequence[str]) -> dict[str, str]:
    """The values of `--secret-env NAME` variables from this process's environment."""
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise ConfigError(
            f"--secret-env {', '.join(missing)}: not set in this environment. Set "
            f"{'them' if len(missing) > 1 else 'it'} in the shell or kernel that submits (never in aml_config/)."
        )
    return {n: os.environ[n] for n in names}
