"""Attach as Workbench users type it, checked at once: `--password P` goes to the keyring, never to
aml_config/; `computetarget list --check` says for every target whether it answers, and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.core.transport.conftest import SshHosts


def _amlexec(
    project: Path, env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_amlexec", *args],
        cwd=project,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(home: Path, ssh_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AMLEXEC_HOME": str(home),
        "HOME": str(ssh_home),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
    }


def test_a_workbench_password_flag_goes_to_the_keyring_with_a_warning(
    project: Path, home: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    host, port = ssh_hosts.hosts[0]
    env = _env(home, ssh_home)
    # When a user attaches the way Workbench documented it, password on the command line
    result = _amlexec(
        project, env, "computetarget", "attach", "remote", "-n", "vm", "-a", f"{host}:{port}",
        "-u", ssh_hosts.user, "-k", str(ssh_hosts.key), "--password", "s3cret-Pa55",
    )  # fmt: skip
    # Then the target is attached and checked, the password is in the keyring, not in any file of the project
    assert result.returncode == 0, result.stderr
    assert "Check: vm: ok" in result.stdout
    assert "stays in your shell" in result.stderr
    compute = (project / "aml_config" / "vm.compute").read_text()
    assert "passwordKeyring: jupyter_amlexec:vm/" in compute
    assert not any("s3cret-Pa55" in p.read_text() for p in (project / "aml_config").iterdir())
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    os.environ["HOME"], saved = str(ssh_home), os.environ["HOME"]
    try:
        keyring.set_keyring(PlaintextKeyring())
        assert keyring.get_password("jupyter_amlexec:vm", ssh_hosts.user) == "s3cret-Pa55"
    finally:
        os.environ["HOME"] = saved


def test_list_check_names_what_answers_and_what_does_not(
    project: Path, home: Path, ssh_hosts: SshHosts, ssh_home: Path
) -> None:
    host, port = ssh_hosts.hosts[0]
    env = _env(home, ssh_home)
    _amlexec(project, env, "computetarget", "attach", "remote", "-n", "vm", "-a", f"{host}:{port}",
             "-u", ssh_hosts.user, "-k", str(ssh_hosts.key))  # fmt: skip
    # a host whose key is not known: refused with its fingerprint and the command that trusts it
    (ssh_home / ".ssh" / "known_hosts").write_text("")
    _amlexec(project, env, "computetarget", "attach", "remote", "-n", "stranger", "-a", f"{host}:{port}",
             "-u", ssh_hosts.user, "-k", str(ssh_hosts.key), "--no-check")  # fmt: skip
    _amlexec(project, env, "computetarget", "attach", "remote", "-n", "gone", "-a", "127.0.0.9:2999",
             "-u", ssh_hosts.user, "--no-check")  # fmt: skip
    out = _amlexec(project, env, "computetarget", "list", "--check").stdout
    lines = {line.split(":", 1)[0]: line for line in out.splitlines() if ": " in line}
    assert lines["local"] == "local: ok"
    assert "SHA256:" in lines["stranger"] and "ssh-keyscan" in lines["stranger"]
    assert "Cannot reach" in lines["gone"] and "127.0.0.9" in lines["gone"]
