"""The run history: an SQLite index (WAL) of runs, metrics and attachments, plus each run's files.

Several kernels and CLI processes write at once: every write is one short `BEGIN IMMEDIATE`
transaction with a generous busy timeout, and each thread (and each forked process) has its own
connection. Logs are files (`runs/<id>/driver_log.txt`) appended as they stream, so nothing is lost
if a process dies; the follower's checkpoint (log cursor, log size, metrics) is one transaction,
so a new follower resumes exactly where the last one stopped. `latest_metrics` keeps the newest value
of every metric per run, so a dashboard page of 100k runs with one column per metric, sorted by a
metric, is one indexed query.

Where each part lives (`History` is the three mixins over one connection layer):
- `schema.py`   the tables, the schema version, migrations of older files
- `records.py`  `RunRecord`, its Workbench JSON shape, a `runs` row -> record
- `store.py`    `HistoryStore`: connections per thread/process, write transactions, `get`
- `runs.py`     `RunWrites`: create, status, detail, cancel requests, handle, attachments, lease
- `logs.py`     `RunLogs`: log files, follower checkpoints, metric series
- `queries.py`  `RunQueries`: filters, sorting (also by a metric), paging, counts, metric names
"""

from __future__ import annotations

from .logs import RunLogs
from .queries import FEW_RUNS, RunQueries, status_name
from .records import RunRecord, duration_text, utc_now
from .runs import RunWrites
from .schema import LOG_FILES, SCHEMA_VERSION
from .store import BUSY_TIMEOUT_S, HistoryStore


class History(RunWrites, RunLogs, RunQueries):
    """Run records and metrics in `home/history.sqlite`, run files in `home/runs/<run_id>/`."""


__all__ = [
    "BUSY_TIMEOUT_S",
    "FEW_RUNS",
    "LOG_FILES",
    "SCHEMA_VERSION",
    "History",
    "HistoryStore",
    "RunRecord",
    "duration_text",
    "status_name",
    "utc_now",
]
