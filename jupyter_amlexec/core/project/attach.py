"""What `attach` writes: a new ComputeTarget + RunConfiguration pair from the user's settings,
validated completely before anything touches aml_config/ (as `az ml computetarget attach` did)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..errors import ConfigError
from .files import _plain
from .runconfigs import RunConfiguration
from .targets import REMOTE_TYPES, TARGET_SETTINGS, ComputeTarget, TargetType
from .templates import default_base_image
from .values import _check_name


def _target_doc(
    type: str | TargetType, named: Mapping[str, object], settings: Mapping[str, object]
) -> dict[str, object]:
    """The .compute mapping: `type`, the named arguments, then the settings by their file keys."""
    if "password" in settings:
        raise ConfigError(
            "Passwords are never written into aml_config/: pass password_env='VAR' (the environment "
            "variable holding it), a passwordKeyring entry, or key_file (an SSH key).",
            key="password",
        )
    doc: dict[str, object] = {"type": type.value if isinstance(type, TargetType) else type}
    doc.update({key: value for key, value in named.items() if value is not None})
    for field_name, value in settings.items():
        if field_name not in TARGET_SETTINGS:
            raise ConfigError(
                f"Unknown target setting '{field_name}'. Known: {', '.join(sorted(TARGET_SETTINGS))}."
            )
        if value is not None:
            doc[TARGET_SETTINGS[field_name]] = _plain(value)
    return doc


def attached_pair(
    name: str, type: str | TargetType, named: Mapping[str, object], settings: Mapping[str, object]
) -> tuple[ComputeTarget, RunConfiguration]:
    """The target and run configuration `attach` writes; ConfigError naming a bad value.

    named: file key -> value (address, username, privateKeyFile, ...); settings: field -> value.
    """
    _check_name(name, "compute target")
    target = ComputeTarget.from_mapping(name, _target_doc(type, named, settings), quiet=True)
    if target.type in (TargetType.DOCKER, TargetType.REMOTE_DOCKER) and target.base_docker_image is None:
        target = replace(target, base_docker_image=default_base_image())
    if target.type in REMOTE_TYPES and not (target.address and target.username):
        raise ConfigError(
            f"A '{target.type}' target needs an address (--address HOST[:PORT]) and a user (--username USER).",
            key="address",
        )
    if target.type is TargetType.REMOTE:
        target = replace(target, user_managed_environment=True)
    if target.type is TargetType.CLUSTER and target.yarn_deploy_mode is None:
        target = replace(target, yarn_deploy_mode="cluster")
    target = replace(target, raw={}).validated()  # a new file: attach's style
    rc = RunConfiguration(
        name=name,
        target=name,
        framework="PySpark" if target.type is TargetType.CLUSTER else "Python",
        prepare_environment=True,
    ).validated()
    return target, rc
