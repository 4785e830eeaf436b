"""docker-py imported for a local engine without paramiko, and its ssh:// support when asked."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from jupyter_amlexec.core.executors.docker.engine import docker_module, ssh_support
docker = docker_module()
print("paramiko after docker:", "paramiko" in sys.modules)
import paramiko  # our SSH targets still import it normally afterwards
from docker.transport.sshconn import SSHHTTPAdapter  # what remotedocker's client is built on
ssh_support()  # what a dockerHost: ssh:// client needs
import docker.api.client
print("ssh adapter:", docker.api.client.SSHHTTPAdapter is SSHHTTPAdapter)
"""


def test_a_local_engine_client_does_not_import_paramiko_and_ssh_support_comes_back() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert "paramiko after docker: False" in out
    assert "ssh adapter: True" in out
