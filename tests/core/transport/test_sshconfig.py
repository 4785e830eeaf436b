"""Where a target's SSH settings and ~/.ssh/config say to connect (no host needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_amlexec.core.errors import ConfigError
from jupyter_amlexec.core.project import ComputeTarget
from jupyter_amlexec.core.transport.sshconfig import SshSettings, resolve_endpoint, split_address


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


def test_a_compute_file_gives_the_ssh_settings(tmp_path: Path) -> None:
    target = ComputeTarget.from_mapping(
        "gpuvm",
        {
            "type": "remotedocker",
            "address": "gpu.lab:2200",
            "username": "ana",
            "privateKeyFile": "~/.ssh/id_lab",
            "passwordEnv": "LAB_PW",
        },
    )
    settings = SshSettings.from_target(target)
    assert (settings.address, settings.port, settings.username) == ("gpu.lab", 2200, "ana")
    assert (settings.key_file, settings.password_env, settings.name) == ("~/.ssh/id_lab", "LAB_PW", "gpuvm")


def test_a_target_without_address_is_a_config_error_naming_the_file() -> None:
    target = ComputeTarget.from_mapping("vm", {"type": "remote", "username": "ana"})
    with pytest.raises(ConfigError, match=r"'address'.*aml_config/vm\.compute"):
        SshSettings.from_target(target)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("host", (None, "host", None)),
        ("host:2222", (None, "host", 2222)),
        ("ana@host:2222", ("ana", "host", 2222)),
        ("ssh://ana@host", ("ana", "host", None)),
        ("[::1]:2200", (None, "::1", 2200)),
    ],
)
def test_address_forms(address: str, expected: tuple[str | None, str, int | None]) -> None:
    assert split_address(address) == expected


def test_a_bad_port_is_named() -> None:
    with pytest.raises(ConfigError, match="bad port 'x22'"):
        split_address("host:x22")


def test_the_targets_own_values_win_over_ssh_config(home: Path) -> None:
    # Given ~/.ssh/config with a HostName, Port, User, IdentityFile and a jump host for "lab"
    (home / ".ssh" / "config").write_text(
        "Host lab\n  HostName 10.1.2.3\n  Port 2200\n  User cfguser\n  IdentityFile ~/.ssh/id_cfg\n"
        "  ProxyJump jumpuser@bastion:2022\n"
        "Host *\n  IdentitiesOnly yes\n"
    )
    # When a target names the alias and only a username of its own
    endpoint = resolve_endpoint(SshSettings(address="lab", username="ana", key_file="~/.ssh/id_target"))
    # Then the config fills in what the target leaves open, and the target's values come first
    assert (endpoint.host, endpoint.port, endpoint.username) == ("10.1.2.3", 2200, "ana")
    assert endpoint.key_files == (home / ".ssh" / "id_target", home / ".ssh" / "id_cfg")
    assert not endpoint.use_agent  # IdentitiesOnly yes
    assert [(j.username, j.host, j.port) for j in endpoint.jumps] == [("jumpuser", "bastion", 2022)]
    assert endpoint.known_hosts == (home / ".ssh" / "known_hosts",)


def test_without_config_the_defaults_are_openssh_s(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".ssh" / "id_ed25519").write_text("not read here")
    monkeypatch.setenv("USER", "someone")
    endpoint = resolve_endpoint(SshSettings(address="plainhost"))
    assert (endpoint.host, endpoint.port) == ("plainhost", 22)
    assert endpoint.key_files == (home / ".ssh" / "id_ed25519",)
    assert endpoint.use_agent and endpoint.jumps == ()
