"""SSH host keys checked against known_hosts files the way OpenSSH reads them.

Plain, hashed (`|1|salt|hash`), wildcard and `[host]:port` entries, `@revoked` markers; each entry
keeps its file and line so a changed key names the exact line to remove. An unknown host is refused
with its fingerprint and the command that trusts it: accepting keys silently is how a
man-in-the-middle gets in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostKeyError

_TYPE_NAMES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}


@dataclass(frozen=True)
class KnownHostEntry:
    """One key line of a known_hosts file (where it is, so a message can point at it)."""

    file: Path
    line: int
    key_type: str
    key_blob: bytes
    revoked: bool = False

    @property
    def fingerprint(self) -> str:
        """This line's key as OpenSSH shows it (SHA256:...)."""
        return fingerprint(self.key_blob)


def host_token(host: str, port: int) -> str:
    """The name a host has in known_hosts: `host` on port 22, `[host]:port` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(blob: bytes) -> str:
    """A key's fingerprint as OpenSSH prints it (`SHA256:` + unpadded base64 of the digest)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def type_label(key_type: str) -> str:
    """ED25519 / RSA / ECDSA, as in OpenSSH's "ED25519 key fingerprint is ..."."""
    if key_type.startswith("ecdsa-"):
        return "ECDSA"
    return _TYPE_NAMES.get(key_type, key_type.upper())


def _pattern_matches(pattern: str, token: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt64, digest64 = pattern.split("|", 3)
            salt, digest = base64.b64decode(salt64), base64.b64decode(digest64)
        except (ValueError, binascii.Error):
            return False
        mine = hmac.new(salt, token.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mine, digest)
    # OpenSSH patterns know only `*` and `?`: brackets are literal (they wrap `[host]:port`)
    regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, token.lower()) is not None


def _hosts_match(field: str, token: str) -> bool:
    matched = False
    for pattern in field.split(","):
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], token):
                return False  # a negated match excludes the line, whatever else matches
        elif _pattern_matches(pattern, token):
            matched = True
    return matched


def _parse_line(path: Path, number: int, text: str, token: str) -> KnownHostEntry | None:
    fields = text.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = None
    if fields[0].startswith("@"):
        marker, fields = fields[0], fields[1:]
    if marker == "@cert-authority" or len(fields) < 3 or not _hosts_match(fields[0], token):
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except (ValueError, binascii.Error):
        return None
    return KnownHostEntry(path, number, fields[1], blob, revoked=marker == "@revoked")


class KnownHosts:
    """The known_hosts files of one connection: the user's first, then the project's, if present."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = tuple(Path(f) for f in files)

    @property
    def trust_file(self) -> Path:
        """Where the message tells the user to add a key (the first file: the user's own)."""
        return self.files[0] if self.files else Path("~/.ssh/known_hosts").expanduser()

    def entries(self, host: str, port: int) -> list[KnownHostEntry]:
        """Every key line for this host and port, in file order (missing files hold none)."""
        token = host_token(host, port)
        found: list[KnownHostEntry] = []
        for path in self.files:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            for number, text in enumerate(lines, start=1):
                entry = _parse_line(path, number, text, token)
                if entry is not None:
                    found.append(entry)
        return found

    def preferred_types(self, host: str, port: int) -> list[str]:
        """Key types on record for the host: asked for first, so the server offers a key we know."""
        types: list[str] = []
        for entry in self.entries(host, port):
            if not entry.revoked and entry.key_type not in types:
                types.append(entry.key_type)
        return types

    def verify(self, host: str, port: int, key_type: str, key_blob: bytes) -> None:
        """Accept the key the host offered only if a known_hosts line holds it; HostKeyError if not."""
        entries = self.entries(host, port)
        if any(e.revoked and e.key_blob == key_blob for e in entries):
            raise HostKeyError(
                f"The SSH host key of {host_token(host, port)} ({type_label(key_type)} "
                f"{fingerprint(key_blob)}) is marked @revoked in known_hosts: refusing to connect. "
                f"Ask the host's administrator for its current key."
            )
        live = [e for e in entries if not e.revoked]
        if any(e.key_blob == key_blob for e in live):
            return
        if live:
            raise HostKeyError(self._changed_message(host, port, key_type, key_blob, live))
        raise HostKeyError(self._unknown_message(host, port, key_type, key_blob))

    def _unknown_message(self, host: str, port: int, key_type: str, key_blob: bytes) -> str:
        where = " or ".join(str(f) for f in self.files) or str(self.trust_file)
        scan = f"ssh-keyscan -p {port} {shlex.quote(host)}"
        return (
            f"The SSH host {host_token(host, port)} is not known (no key for it in {where}), so its "
            f"identity cannot be checked: refusing to connect. The host offered an "
            f"{type_label(key_type)} key with fingerprint {fingerprint(key_blob)}. Compare that "
            f"fingerprint with the one the host's administrator gives you (on the host: "
            f"`ssh-keygen -lf /etc/ssh/ssh_host_{type_label(key_type).lower()}_key.pub`; from here: "
            f"`{scan} | ssh-keygen -lf -`), then trust the host with:\n"
            f"  {scan} >> {shlex.quote(str(self.trust_file))}"
        )

    def _changed_message(
        self, host: str, port: int, key_type: str, key_blob: bytes, recorded: Sequence[KnownHostEntry]
    ) -> str:
        token = host_token(host, port)
        old = "; ".join(
            f"{type_label(e.key_type)} {e.fingerprint} ({e.file}, line {e.line})" for e in recorded
        )
        removals = "\n".join(
            f"  ssh-keygen -R {shlex.quote(token)} -f {shlex.quote(str(f))}"
            for f in dict.fromkeys(e.file for e in recorded)
        )
        return (
            f"WARNING: the SSH host key of {token} has CHANGED. Someone may be intercepting the "
            f"connection (a man-in-the-middle attack), or the host was reinstalled. Refusing to "
            f"connect.\n  on record:   {old}\n  offered now: {type_label(key_type)} "
            f"{fingerprint(key_blob)}\nOnly if the host's administrator confirms the new "
            f"fingerprint, remove the old line(s) with:\n{removals}\nand trust the new key with:\n"
            f"  ssh-keyscan -p {port} {shlex.quote(host)} >> {shlex.quote(str(recorded[0].file))}"
        )
