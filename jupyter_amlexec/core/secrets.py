"""Secrets stay out of aml_config/ and the run history: resolve them late, redact them early.

A target names where its password lives (an environment variable, a keyring entry); the value is
read only when a connection needs it. Environment variables that look secret are redacted before
a run is recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .errors import SecretError

if TYPE_CHECKING:
    from .project import ComputeTarget

REDACTED = "***"
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` with the values of secret-looking variables replaced by ***."""
    return {k: (REDACTED if looks_secret(k) else str(v)) for k, v in env.items()}


def resolve_password(target: ComputeTarget) -> str | None:
    """The target's password from where its config says it lives; None when it uses none."""
    legacy = target.workbench_secret
    if legacy is not None and not (target.password_env or target.password_keyring):
        if legacy.startswith("AzureMlSecret="):
            raise SecretError(
                f"Target '{target.name}' has `password: {legacy}`: a key into Azure ML Workbench's cloud "
                f"credential service, which cannot be resolved outside Azure. Use an SSH key "
                f"(privateKeyFile: ~/.ssh/id_ed25519, or ssh-agent), or name an environment variable that "
                f"holds the password (passwordEnv: MY_VAR), then remove the password line.",
                key="password",
            )
        raise SecretError(
            f"Target '{target.name}' holds a plain-text password in its .compute file. Move it into an "
            f"environment variable and write `passwordEnv: VAR_NAME` instead (or use an SSH key), then "
            f"remove the password line: aml_config/ is often committed and shared.",
            key="password",
        )
    if target.password_env:
        value = os.environ.get(target.password_env)
        if value is None:
            raise SecretError(
                f"Target '{target.name}' takes its password from the environment variable "
                f"{target.password_env}, which is not set. Set it in the environment of the kernel "
                f"or terminal (not in aml_config/).",
                key="passwordEnv",
            )
        return value
    if target.password_keyring:
        service, _, user = target.password_keyring.partition("/")
        try:
            import keyring
        except ImportError:
            raise SecretError(
                f"Target '{target.name}' reads its password from the keyring entry "
                f"'{target.password_keyring}', but the `keyring` package is not installed: "
                f"pip install keyring.",
                key="passwordKeyring",
            ) from None
        value = keyring.get_password(service, user or (target.username or ""))
        if value is None:
            raise SecretError(
                f"No keyring entry '{target.password_keyring}' for target '{target.name}'. Store it with "
                f"`keyring set {service} {user or target.username or 'USER'}`.",
                key="passwordKeyring",
            )
        return str(value)
    return None
