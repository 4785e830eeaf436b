"""The `cluster` target through Livy, for clusters reachable over HTTP(S) only: a Livy batch per run.

How the snapshot travels: Livy runs what a path on the Livy host names, and a batch cannot carry
files. Sessions could take code inline, but Livy's REPL jars were never published (batches are what
every Livy has), and base64 in a batch's arguments stops at Linux's 128 KiB per argument. So the run's
folder goes to `livyFilesDir`, a folder this machine writes and the Livy server reads (listed in its
`livy.file.local-dir-whitelist`: the same machine, or a share both mount): the snapshot as one zip,
the bootstrap as the batch's file (bootstrap.py). No storage account or HDFS of ours is needed; the
folder is removed after the run. outputs/ come back through the same folder.

The log: Livy's `GET /batches/{id}/log?from=N&size=M` is not a stream a cursor can follow. Livy 0.7
returns `["stdout: ", <stdout lines>, "\nstderr: ", <stderr lines>]`, each part only the last
`livy.cache-log.size` lines (200 by default), so line numbers shift as either part grows and older
lines are gone (measured: a 1500-line job showed 258 lines, none of its own). So the bootstrap also
appends the driver's stdout + stderr to `driver.log` in the run's folder, read here by byte offset
(no gaps, no repeats, from any process). Livy's own lines (spark-submit's, before the driver starts)
are read by line number, and when a batch does not succeed, the last of them are appended to the
run's log before Livy purges the batch; a cancel keeps them before it deletes the batch. Basic auth (HDInsight's gateway, Knox)
with the password from passwordEnv / passwordKeyring, and `X-Requested-By` on every request (Livy's
CSRF guard). The standard library's HTTP client: sparkmagic would bring gssapi, which does not
install without Kerberos headers (docs/contracts.md).
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import ConfigError, TargetUnavailableError, TransportError
from ...models import EnvironmentSpec, RunStatus
from ...outputs import collect_directory
from ...project import ComputeTarget
from ...secrets import resolve_password
from ...snapshot import Snapshot
from ..base import ControlLog, HandleStatus, LogChunk, LogCursor, PreparedEnv, RunSpec, read_log_chunk
from .bootstrap import MAIN, SETTINGS_FILE, run_settings
from .submit import application_id, last_error_line

PAGE_LINES = 1000
_STARTING = ("not_started", "starting", "recovering")
_ENDED = {
    "success": RunStatus.COMPLETED,
    "dead": RunStatus.FAILED,
    "error": RunStatus.FAILED,
    "killed": RunStatus.CANCELED,
}


class LivyClient:
    """JSON over HTTP(S) to one Livy server; a failure to reach it is a TransportError (retried)."""

    def __init__(self, url: str, username: str | None, password: str | None) -> None:
        self.url = url.rstrip("/")
        self._auth = None
        if password is not None:
            token = base64.b64encode(f"{username or ''}:{password}".encode()).decode()
            self._auth = f"Basic {token}"

    def call(self, method: str, path: str, body: Mapping[str, object] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("X-Requested-By", "jupyter_amlexec")
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text or b"null")
            except ValueError:
                return exc.code, text.decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"Livy at {self.url} did not answer ({exc})") from exc


class LivyExecutor:
    """Runs as Livy batches; one per target and process."""

    needs_managed_environment = False  # the cluster's own Python (Livy starts it; nothing to build here)

    def __init__(self, target: ComputeTarget, home: Path) -> None:
        self.target = target
        where = Path("aml_config") / f"{target.name}.compute"
        self.url = str(target.extra.get("livyUrl") or "").strip().rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"bad value {self.url!r}; allowed: the http:// or https:// URL of the Livy server.",
                file=where,
                key="livyUrl",
            )
        files = target.extra.get("livyFilesDir")
        if not files:
            raise ConfigError(
                "a Livy target needs livyFilesDir: a folder this machine writes and the Livy server "
                "reads (in its livy.file.local-dir-whitelist), for the run's snapshot.",
                file=where,
                key="livyFilesDir",
            )
        self.files_dir = Path(str(files)).expanduser()
        self.python = target.python_location  # spark.pyspark.python on the cluster, when given
        self.settings = {"url": self.url, "files_dir": str(self.files_dir), "python": self.python}
        self.home = home
        self._client: LivyClient | None = None

    def client(self) -> LivyClient:
        """The HTTP client; the password is resolved here, at connect time, and kept in memory only."""
        if self._client is None:
            self._client = LivyClient(self.url, self.target.username, resolve_password(self.target))
        return self._client

    def check(self) -> None:
        try:
            code, body = self.client().call("GET", "/batches?size=1")
        except TransportError as exc:
            raise TargetUnavailableError(f"Target '{self.target.name}': {exc}. Check livyUrl.") from exc
        if code != 200:
            raise TargetUnavailableError(
                f"Target '{self.target.name}': Livy at {self.url} answered HTTP {code} ({str(body)[:200]}). "
                f"401 means the user or password (passwordEnv / passwordKeyring) is wrong."
            )

    def environment_key(self, env: EnvironmentSpec) -> str:
        return f"livy:{self.url}:{self.python or ''}"

    def prepare(
        self, env: EnvironmentSpec, log: ControlLog, *, force: bool = False, build: bool = True
    ) -> PreparedEnv:
        """Nothing to build: Livy runs the cluster's Python (pythonLocation picks another there)."""
        return PreparedEnv(env_hash=self.environment_key(env), python=self.python)

    def start(self, run: RunSpec, snapshot: Snapshot, log: ControlLog) -> LivyRunHandle:
        run_dir = self.files_dir / run.run_id
        outputs = run_dir / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        archive = run_dir / "snapshot.zip"
        settings = run_settings(
            dict(run.environment_variables),
            list(run.python_path),
            run.entry_script,
            str(outputs),
            log_file=str(run_dir / "driver.log"),
        )
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for entry in snapshot.entries:
                z.writestr(entry.path, snapshot.read(entry.path))
            z.writestr(SETTINGS_FILE, json.dumps(settings))
        archive.chmod(0o600)
        main = run_dir / "amlexec_main.py"
        main.write_text(MAIN)
        body = batch_body(run, main, archive, run_dir, snapshot, self.python)
        code, batch = self.client().call("POST", "/batches", body)
        if code not in (200, 201) or not isinstance(batch, dict) or "id" not in batch:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise TargetUnavailableError(
                f"Livy at {self.url} refused the batch: HTTP {code} {str(batch)[:300]}"
            )
        log(f"Livy batch {batch['id']} at {self.url} (snapshot {archive}, {archive.stat().st_size} bytes).")
        return LivyRunHandle(self, int(batch["id"]), run_dir, time.time())

    def attach(self, data: Mapping[str, object]) -> LivyRunHandle:
        handle = LivyRunHandle(
            self, int(str(data["batch_id"])), Path(str(data["run_dir"])), float(str(data["started_at"]))
        )
        handle.app_id = str(data["app_id"]) if data.get("app_id") else None
        return handle


def batch_body(
    run: RunSpec, main: Path, archive: Path, run_dir: Path, snapshot: Snapshot, python: str | None
) -> dict[str, object]:
    """POST /batches for a run: the bootstrap as file, the zip + the script's arguments as args, the
    spark file's options as Livy's own fields (project files named there are put beside the zip)."""
    conf: dict[str, str] = {}
    fields: dict[str, list[str]] = {"jars": [], "pyFiles": []}
    args = list(run.spark_arguments)
    for flag, value in zip(args[::2], args[1::2], strict=False):
        if flag == "--conf":
            key, _, v = value.partition("=")
            conf[key] = v
        elif flag == "--packages":
            conf["spark.jars.packages"] = value
        elif flag == "--repositories":
            conf["spark.jars.repositories"] = value
        elif flag in ("--jars", "--py-files"):
            fields["jars" if flag == "--jars" else "pyFiles"] = [
                _beside(p, run_dir, snapshot) for p in value.split(",")
            ]
    if python:
        conf.setdefault("spark.pyspark.python", python)
    body: dict[str, object] = {
        "file": str(main),
        "args": [str(archive), *run.arguments],
        "name": f"amlexec {run.run_id}",
        "conf": conf,
    }
    body.update({k: v for k, v in fields.items() if v})
    return body


def _beside(path: str, run_dir: Path, snapshot: Snapshot) -> str:
    """A project file named in the spark file, written into the run's folder; anything else as is."""
    if "://" in path or path.startswith("/"):
        return path
    dest = run_dir / "files" / path
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(snapshot.read(path))
    return str(dest)


class LivyRunHandle:
    """One Livy batch: state and log by HTTP, the line number as the log cursor."""

    def __init__(self, executor: LivyExecutor, batch_id: int, run_dir: Path, started_at: float) -> None:
        self.executor = executor
        self.batch_id = batch_id
        self.run_dir = run_dir
        self.started_at = started_at
        self.app_id: str | None = None
        self._livy_kept = False  # Livy's own log appended to ours (at a failure or cancel)
        self._deleted = False
        self._error: str | None = None

    def poll(self) -> HandleStatus:
        try:
            code, batch = self.executor.client().call("GET", f"/batches/{self.batch_id}")
        except TransportError:
            return HandleStatus(
                RunStatus.RUNNING, detail="connection lost to Livy, retrying", started_at=self.started_at
            )
        if code == 404:
            if self._deleted:
                return HandleStatus(RunStatus.CANCELED, error="canceled: the Livy batch was deleted")
            return HandleStatus(RunStatus.FAILED, error=f"Livy no longer knows batch {self.batch_id}")
        state = str(batch.get("state", "")) if isinstance(batch, dict) else ""
        if isinstance(batch, dict) and batch.get("appId"):
            self.app_id = str(batch["appId"])
        if state in _ENDED:
            status = _ENDED[state]
            if status is not RunStatus.COMPLETED:
                self._error = last_error_line(self._log_tail()) or self._error
                self._keep_livy_log(f"ended {state}")
            error = (
                None if status is RunStatus.COMPLETED else (self._error or f"the Livy batch ended {state}")
            )
            return HandleStatus(
                status, 0 if state == "success" else None, error=error, started_at=self.started_at
            )
        where = f"Livy batch {self.batch_id}" + (f", Spark application {self.app_id}" if self.app_id else "")
        detail = f"starting ({where})" if state in _STARTING else f"{state} ({where})"
        return HandleStatus(RunStatus.RUNNING, detail=detail, started_at=self.started_at)

    def wait(self, timeout: float) -> HandleStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.poll()
            if status.status.terminal or time.monotonic() >= deadline:
                return status
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _log_tail(self, size: int = 65536) -> bytes:
        path = self.run_dir / "driver.log"
        try:
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - size))
                return f.read()
        except FileNotFoundError:
            return b""

    def livy_log(self) -> list[str]:
        """Livy's own lines of the batch (the last of them: Livy keeps a window)."""
        lines: list[str] = []
        while True:
            try:
                code, body = self.executor.client().call(
                    "GET", f"/batches/{self.batch_id}/log?from={len(lines)}&size={PAGE_LINES}"
                )
            except TransportError:
                return lines
            page = [str(x) for x in body.get("log") or []] if code == 200 and isinstance(body, dict) else []
            lines += page
            if len(page) < PAGE_LINES:
                return lines

    def _keep_livy_log(self, why: str) -> None:
        """Livy's lines into the run's log file, once: what spark-submit said before the driver ran."""
        if self._livy_kept:
            return
        self._livy_kept = True
        lines = self.livy_log()
        if lines:
            text = f"\n===== Livy's log of batch {self.batch_id} ({why}; its last lines) =====\n"
            with open(self.run_dir / "driver.log", "a", encoding="utf-8") as f:
                f.write(text + "\n".join(lines) + "\n")

    def logs(self, cursor: LogCursor) -> LogChunk:
        chunk = read_log_chunk(self.run_dir / "driver.log", cursor)
        if chunk.data:
            self.app_id = self.app_id or application_id(chunk.data)
            self._error = last_error_line(chunk.data) or self._error
        return chunk

    def cancel(self) -> None:
        """Keep Livy's log of the batch, then DELETE it (Livy kills its spark-submit)."""
        if self._deleted:
            return
        self._keep_livy_log("canceled")
        self.executor.client().call("DELETE", f"/batches/{self.batch_id}")
        self._deleted = True

    def collect_outputs(self, dest: Path, max_file_bytes: int, log: ControlLog) -> list[str]:
        """outputs/ the bootstrap copied into the run's folder in livyFilesDir."""
        return collect_directory(self.run_dir / "outputs", dest, max_file_bytes, log)

    def cleanup(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "cluster",
            "transport": "livy",
            "batch_id": self.batch_id,
            "run_dir": str(self.run_dir),
            "started_at": self.started_at,
            "app_id": self.app_id,
        }
