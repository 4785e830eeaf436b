"""The YARN ResourceManager as seen from the head node: an application's state, and its kill.

The ResourceManager's REST API is reached from the head node (curl over SSH), as its web address is
usually not reachable from the user's machine. Its address comes from the head node's yarn-site.xml
(`yarn.resourcemanager.webapp.address`) in hadoopConfDir (else $HADOOP_CONF_DIR, else
/etc/hadoop/conf, HDInsight's place for it).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from xml.etree import ElementTree

from ...errors import TargetUnavailableError
from ...transport.ssh import SshConnection

_WEBAPP = "yarn.resourcemanager.webapp.address"
_DEFAULT_WEBAPP = "0.0.0.0:8088"
FINAL_STATES = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class YarnApp:
    """One look at an application: state (NEW..RUNNING, FINISHED|FAILED|KILLED) and final status."""

    id: str
    state: str
    final_status: str
    diagnostics: str = ""
    started_ms: int = 0
    finished_ms: int = 0

    @property
    def ended(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def detail(self) -> str:
        """What a person wants to read while it runs."""
        if self.state in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"):
            return f"waiting for YARN ({self.id} {self.state})"
        if self.state == "RUNNING":
            return f"RUNNING on YARN ({self.id})"
        return f"{self.state} on YARN ({self.id}, {self.final_status})"


def conf_dir_expression(hadoop_conf_dir: str | None) -> str:
    """The head node's HADOOP_CONF_DIR as a shell word."""
    if hadoop_conf_dir:
        return shlex.quote(hadoop_conf_dir)
    return '"${HADOOP_CONF_DIR:-/etc/hadoop/conf}"'


def resource_manager_url(conn: SshConnection, hadoop_conf_dir: str | None) -> str:
    """http://HOST:PORT of the ResourceManager's web services, from the head node's yarn-site.xml."""
    result = conn.run(["sh", "-c", f"cat {conf_dir_expression(hadoop_conf_dir)}/yarn-site.xml"])
    address = _DEFAULT_WEBAPP
    if result.exit_code == 0:
        try:
            root = ElementTree.fromstring(result.stdout)
        except ElementTree.ParseError:
            root = None
        for prop in root.iter("property") if root is not None else ():
            if prop.findtext("name") == _WEBAPP and prop.findtext("value"):
                address = str(prop.findtext("value")).strip()
    host, _, port = address.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://{host}:{port}"


def _curl(conn: SshConnection, argv: list[str], what: str) -> bytes:
    result = conn.run(["curl", "-sS", "-m", "20", *argv])
    if result.exit_code != 0:
        raise TargetUnavailableError(
            f"Could not {what} through the ResourceManager from {conn.endpoint.describe()} "
            f"(curl exit {result.exit_code}: {result.stderr.decode('utf-8', 'replace').strip()[-300:]}). "
            f"The head node needs curl and the ResourceManager's address in yarn-site.xml "
            f"(hadoopConfDir in the .compute file)."
        )
    return result.stdout


def application(conn: SshConnection, rm_url: str, app_id: str) -> YarnApp | None:
    """The application's state; None when the ResourceManager does not know it (yet)."""
    body = _curl(conn, ["-H", "Accept: application/json", f"{rm_url}/ws/v1/cluster/apps/{app_id}"], "read")
    try:
        app = json.loads(body)["app"]
    except (ValueError, KeyError, TypeError):
        return None
    return YarnApp(
        app_id,
        str(app.get("state", "")),
        str(app.get("finalStatus", "")),
        str(app.get("diagnostics") or ""),
        int(app.get("startedTime") or 0),
        int(app.get("finishedTime") or 0),
    )


def kill(conn: SshConnection, rm_url: str, app_id: str) -> None:
    """PUT /ws/v1/cluster/apps/{id}/state {"state": "KILLED"} (what `yarn application -kill` does)."""
    _curl(
        conn,
        [
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"state": "KILLED"}',
            f"{rm_url}/ws/v1/cluster/apps/{app_id}/state",
        ],
        f"kill {app_id}",
    )
