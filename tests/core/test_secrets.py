"""Secrets stay out of aml_config/ and the run history."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.core.errors import SecretError
from jupyter_amlexec.core.project import ComputeTarget, TargetType
from jupyter_amlexec.core.secrets import redact_environment, resolve_password
from tests.conftest import require
from tests.core.conftest import write_config

pytestmark = pytest.mark.usefixtures("isolated")

GPUVM = """\
address: gpuvm.example.net
password: AzureMlSecret=gpuvm#alice#0f3c5a8e2b7d4c19a6e1f2d3c4b5a697
type: remotedocker
username: alice
"""


def test_a_workbench_cloud_secret_is_explained_not_resolved(tmp_path: Path) -> None:
    # Given a target attached by Workbench, whose password lives in Azure's credential service
    target = ComputeTarget.load(write_config(tmp_path, "gpuvm.compute", GPUVM))
    # When its password is needed
    with pytest.raises(SecretError) as error:
        resolve_password(target)
    # Then the user learns what the value is and what to use instead
    message = str(error.value)
    assert "gpuvm" in message and "credential service" in message
    assert "cannot be resolved outside Azure" in message
    assert "passwordEnv: VAR" in message and "passwordKeyring" in message and "privateKeyFile" in message
    assert error.value.key == "password"


def test_a_plain_text_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    target = ComputeTarget.load(
        write_config(tmp_path, "vm.compute", "type: remote\naddress: h\nusername: u\npassword: hunter2\n")
    )
    with pytest.raises(SecretError) as error:
        resolve_password(target)
    message = str(error.value)
    assert "hunter2" not in message
    assert "plain-text password" in message and "passwordEnv: VAR" in message and "vm.compute" in message


def test_password_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a target naming the variable that holds its password
    target = ComputeTarget(name="vm", type=TargetType.REMOTE, password_env="VM_PW")
    monkeypatch.delenv("VM_PW", raising=False)
    # When it is unset, the error names the variable
    with pytest.raises(SecretError, match="VM_PW.*not set"):
        resolve_password(target)
    # When it is set, its value is the password
    monkeypatch.setenv("VM_PW", "s3cret")
    assert resolve_password(target) == "s3cret"


def test_password_env_wins_over_a_leftover_workbench_line(monkeypatch: pytest.MonkeyPatch) -> None:
    target = ComputeTarget.from_mapping(
        "vm", {"type": "remote", "password": "AzureMlSecret=vm#u#00", "passwordEnv": "VM_PW"}
    )
    monkeypatch.setenv("VM_PW", "from-env")
    assert resolve_password(target) == "from-env"


def test_a_target_without_password_needs_none() -> None:
    assert resolve_password(ComputeTarget(name="local", type=TargetType.LOCAL)) is None
    assert resolve_password(ComputeTarget(name="k", type=TargetType.REMOTE, key_file="~/.ssh/id")) is None


def test_keyring_missing_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a Python where `keyring` cannot be imported (None in sys.modules blocks the import)
    monkeypatch.setitem(sys.modules, "keyring", None)
    target = ComputeTarget(name="vm", type=TargetType.REMOTE, username="u", password_keyring="amlexec")
    with pytest.raises(SecretError) as error:
        resolve_password(target)
    assert "pip install keyring" in str(error.value) and "'amlexec'" in str(error.value)


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[Any]:
    """A real keyring backend (keyrings.alt's plain-text file) in the test's folder."""
    require(
        importlib.util.find_spec("keyring") is not None
        and importlib.util.find_spec("keyrings.alt") is not None,
        "keyring and keyrings.alt (test extra)",
    )
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring_pass.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield keyring
    finally:
        keyring.set_keyring(previous)


def test_password_from_the_keyring(file_keyring: Any) -> None:
    # Given passwords stored in the keyring, one per user and one under an explicit user
    file_keyring.set_password("amlexec-vm", "bob", "pw-bob")
    file_keyring.set_password("amlexec-vm", "svc", "pw-svc")
    # Then "service" uses the target's username, "service/user" that user
    by_username = ComputeTarget(
        name="vm", type=TargetType.REMOTE, username="bob", password_keyring="amlexec-vm"
    )
    explicit = ComputeTarget(
        name="vm", type=TargetType.REMOTE, username="bob", password_keyring="amlexec-vm/svc"
    )
    assert resolve_password(by_username) == "pw-bob"
    assert resolve_password(explicit) == "pw-svc"
    # and a missing entry says how to store it
    missing = ComputeTarget(name="vm", type=TargetType.REMOTE, username="ann", password_keyring="amlexec-vm")
    with pytest.raises(SecretError, match="keyring set amlexec-vm ann"):
        resolve_password(missing)


@pytest.mark.parametrize(
    "name",
    [
        "PASSWORD",
        "db_password",
        "MY_SECRET",
        "GITHUB_TOKEN",
        "api_key",
        "AWS_SECRET_ACCESS_KEY",
        "GOOGLE_CREDENTIALS",
    ],
)
def test_secret_looking_variables_are_redacted(name: str) -> None:
    assert redact_environment({name: "value", "LR": "0.1"}) == {name: "***", "LR": "0.1"}


def test_redaction_keeps_ordinary_variables_and_returns_a_copy() -> None:
    env = {"LR": "0.1", "EPOCHS": "3", "COLOUR": "blue green"}
    redacted = redact_environment(env)
    assert redacted == env and redacted is not env
