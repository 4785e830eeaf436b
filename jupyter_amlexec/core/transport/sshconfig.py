"""Where and as whom to connect: a target's SSH settings merged with the user's ~/.ssh/config.

A target's own values win (as flags beat the config file in OpenSSH); `~/.ssh/config` fills in the
rest (HostName, Port, User, IdentityFile, IdentitiesOnly, ProxyJump, UserKnownHostsFile), so an
alias works as a target's address. Secrets are named here (a variable, a keyring entry), never held.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..project import ComputeTarget

DEFAULT_PORT = 22
DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")
PROJECT_KNOWN_HOSTS = Path("aml_config") / "known_hosts"
_MAX_JUMPS = 8


@dataclass(frozen=True)
class SshSettings:
    """What a target says about reaching its host: the `.compute` keys the SSH layer reads."""

    address: str  # host, alias of ~/.ssh/config, host:port or user@host[:port]
    port: int | None = None
    username: str | None = None
    key_file: str | None = None  # `privateKeyFile`
    password_env: str | None = None  # password or key passphrase, from this variable
    password_keyring: str | None = None  # ... or from this keyring entry ("service[/user]")
    name: str | None = None  # the target's name, for messages

    @classmethod
    def from_target(cls, target: ComputeTarget) -> SshSettings:
        """The SSH part of a remote target; ConfigError naming the file and key when it has no address."""
        if not target.address:
            raise ConfigError(
                f"target '{target.name}' has no address. Add `address: HOST[:PORT]` (or an alias of "
                f"~/.ssh/config) to aml_config/{target.name}.compute.",
                key="address",
            )
        return cls(
            address=target.address,
            port=target.port,
            username=target.username,
            key_file=target.key_file,
            password_env=target.password_env,
            password_keyring=target.password_keyring,
            name=target.name,
        )


@dataclass(frozen=True)
class Endpoint:
    """One SSH host, resolved: where to connect, as whom, with which keys, through which jump hosts."""

    alias: str  # what the user wrote (an alias of ~/.ssh/config or a host name)
    host: str
    port: int
    username: str
    key_files: tuple[Path, ...] = ()
    use_agent: bool = True  # False with `IdentitiesOnly yes`
    jumps: tuple[Endpoint, ...] = ()  # ProxyJump chain, first hop first
    known_hosts: tuple[Path, ...] = ()
    password_env: str | None = None
    password_keyring: str | None = None
    owner: str = field(default="", compare=False)  # "target 'gpuvm'": who asked, for messages

    @property
    def key(self) -> tuple[str, str, int]:
        """(user, host, port): one connection per key is shared in a process."""
        return (self.username, self.host, self.port)

    def describe(self) -> str:
        """user@host:port (via jump hosts), for messages."""
        via = f" via {', '.join(j.describe() for j in self.jumps)}" if self.jumps else ""
        return f"{self.username}@{self.host}:{self.port}{via}"


def split_address(address: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (or `[host]:port`) -> (user, host, port); ConfigError on a bad port."""
    user: str | None = None
    rest = address.strip()
    if rest.startswith("ssh://"):
        rest = rest[len("ssh://") :]
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port: int | None = None
    if rest.startswith("[") and "]" in rest:
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"bad port {port_text!r} in address {address!r}: use HOST:PORT.", key="address")
        port = int(port_text)
    if not host:
        raise ConfigError(f"no host in address {address!r}: use HOST[:PORT].", key="address")
    return user, host, port


def _lookup(alias: str, config_path: Path) -> Mapping[str, Any]:
    import paramiko  # lazy: `import jupyter_amlexec` stays fast without the ssh extra loaded

    if not config_path.is_file():
        return {}
    try:
        config = paramiko.SSHConfig.from_path(str(config_path))
    except Exception as exc:  # noqa: BLE001 - paramiko raises several types for one bad file
        raise ConfigError(f"cannot read it: {exc}. Fix the file or move it aside.", file=config_path) from exc
    return dict(config.lookup(alias))


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]  # type: ignore[attr-defined]


def _default_keys() -> tuple[Path, ...]:
    ssh_dir = Path.home() / ".ssh"
    return tuple(ssh_dir / name for name in DEFAULT_IDENTITIES if (ssh_dir / name).is_file())


def resolve_endpoint(
    settings: SshSettings,
    *,
    ssh_config: Path | None = None,
    project: Path | None = None,
) -> Endpoint:
    """The endpoint a target's settings name, with ~/.ssh/config applied (an alias works as address).

    `project` adds its `aml_config/known_hosts` to the files host keys are checked against.
    """
    config_path = ssh_config if ssh_config is not None else Path.home() / ".ssh" / "config"
    extra_known: tuple[Path, ...] = ()
    if project is not None and (project / PROJECT_KNOWN_HOSTS).is_file():
        extra_known = (project / PROJECT_KNOWN_HOSTS,)
    owner = f"target '{settings.name}'" if settings.name else f"SSH host '{settings.address}'"
    return _resolve(settings, config_path, extra_known, owner, depth=0)


def _resolve(
    settings: SshSettings, config_path: Path, extra_known: tuple[Path, ...], owner: str, depth: int
) -> Endpoint:
    user, alias, port = split_address(settings.address)
    found = _lookup(alias, config_path)
    port = settings.port or port or int(found.get("port", DEFAULT_PORT))
    username = settings.username or user or found.get("user") or getpass.getuser()
    keys: list[Path] = [Path(settings.key_file).expanduser()] if settings.key_file else []
    keys += [Path(p).expanduser() for p in _as_list(found.get("identityfile"))]
    if not keys:
        keys = list(_default_keys())
    known = [Path(p).expanduser() for p in _as_list(found.get("userknownhostsfile"))]
    known = known or [Path.home() / ".ssh" / "known_hosts"]
    jumps: tuple[Endpoint, ...] = ()
    proxy = str(found.get("proxyjump", "none"))
    if proxy.lower() != "none":
        if depth >= _MAX_JUMPS:
            raise ConfigError(f"ProxyJump chain longer than {_MAX_JUMPS} hops (a loop?).", file=config_path)
        hops: list[Endpoint] = []
        for hop in proxy.split(","):
            resolved = _resolve(SshSettings(address=hop), config_path, extra_known, owner, depth + 1)
            hops.extend(resolved.jumps if not hops else ())  # a first hop's own jumps come before it
            hops.append(resolved)
        jumps = tuple(hops)
    return Endpoint(
        alias=alias,
        host=str(found.get("hostname", alias)),
        port=port,
        username=str(username),
        key_files=tuple(dict.fromkeys(keys)),
        use_agent=str(found.get("identitiesonly", "no")).lower() != "yes",
        jumps=jumps,
        known_hosts=tuple(known) + extra_known,
        password_env=settings.password_env,
        password_keyring=settings.password_keyring,
        owner=owner,
    )
