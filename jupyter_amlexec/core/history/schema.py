"""The history's SQLite schema and the migrations that bring an older file up to date in place.

Version 1 (the first release) kept attachments as a JSON column of `runs` and had no numeric column
in `metrics`; `migrate` and `backfill` upgrade such a file inside the schema transaction. Version 5
copies each run's filter columns into its latest_metrics rows (kept in step by triggers), so a page
sorted by a metric at any offset is read from one covering index; `migrate` fills the copies.
"""

from __future__ import annotations

import json
import sqlite3

SCHEMA_VERSION = 5  # 3: runs_filters, a covering index; 4: cancel requests; 5: latest_metrics carry filters
LOG_FILES = ("driver_log.txt", "control_log.txt")
SORT_TEXT_CHARS = 100  # a text metric sorts by its first 100 characters (kept in an index)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_number INTEGER NOT NULL,
    project TEXT NOT NULL,
    project_path TEXT NOT NULL,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    status_detail TEXT,
    created_ms INTEGER NOT NULL,
    created_utc TEXT NOT NULL,
    start_time_utc TEXT,
    end_time_utc TEXT,
    duration_ms INTEGER,
    target TEXT NOT NULL,
    target_type TEXT NOT NULL,
    run_configuration TEXT NOT NULL,
    script_name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    environment TEXT NOT NULL,
    snapshot_id TEXT,
    exit_code INTEGER,
    error TEXT,
    description TEXT,
    properties TEXT NOT NULL,
    handle TEXT,
    follower_pid INTEGER,
    follower_started INTEGER,
    raw_offset INTEGER NOT NULL DEFAULT 0,
    log_size INTEGER NOT NULL DEFAULT 0,
    raw_cursor TEXT,
    cancel_requested_utc TEXT
);
CREATE INDEX IF NOT EXISTS runs_project ON runs(project, created_ms);
CREATE INDEX IF NOT EXISTS runs_project_number ON runs(project, run_number);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment, created_ms);
CREATE INDEX IF NOT EXISTS runs_target ON runs(target, created_ms);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created_ms);
CREATE INDEX IF NOT EXISTS runs_script ON runs(script_name, created_ms);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_ms);
CREATE INDEX IF NOT EXISTS runs_filters ON runs(project, experiment, status, target, script_name);
CREATE INDEX IF NOT EXISTS runs_duration ON runs(duration_ms);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    num REAL,
    logged_utc TEXT NOT NULL,
    PRIMARY KEY (run_id, name, step)
);
CREATE TABLE IF NOT EXISTS latest_metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    num REAL,
    txt TEXT,
    logged_utc TEXT NOT NULL,
    seq INTEGER,
    project TEXT,
    experiment TEXT,
    status TEXT,
    target TEXT,
    script_name TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS latest_num_order ON latest_metrics(name, num, seq, project, experiment, status,
    target, script_name, run_id) WHERE num IS NOT NULL;
CREATE INDEX IF NOT EXISTS latest_txt_order ON latest_metrics(name, txt, seq, project, experiment, status,
    target, script_name, run_id, num) WHERE num IS NULL;
CREATE TABLE IF NOT EXISTS metric_counts (
    name TEXT NOT NULL,
    project TEXT NOT NULL,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    script_name TEXT NOT NULL,
    numeric INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    PRIMARY KEY (name, project, experiment, status, target, script_name, numeric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_catalog (
    project TEXT NOT NULL,
    experiment TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (project, experiment, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attachments (
    run_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
"""

# A latest_metrics row carries its run's filter columns and its first-logged position (`seq`), so a
# page sorted by a metric is read from one covering index: skipping to a deep offset steps over index
# entries without looking up each run. metric_counts holds how many runs of each filter combination
# have a numeric (or text) value of each metric, so the length of each part of a metric's order is a
# sum over a few rows, not a count over the index. The triggers keep both in step for any writer.
RUN_FILTER_COLUMNS = ("project", "experiment", "status", "target", "script_name")
_COPIED = ", ".join(RUN_FILTER_COLUMNS)
_COUNT_KEY = f"name, {_COPIED}, numeric"


def _count_row(row: str, delta: int) -> str:
    """SQL adding `delta` to the count of trigger row `row`'s combination (OLD or NEW)."""
    values = ", ".join(f"{row}.{c}" for c in ("name", *RUN_FILTER_COLUMNS))
    return (
        f"INSERT INTO metric_counts ({_COUNT_KEY}, runs) VALUES ({values}, {row}.num IS NOT NULL, {delta})"
        f" ON CONFLICT ({_COUNT_KEY}) DO UPDATE SET runs = runs + {delta}"
    )


def _count_run(row: str, delta: int) -> str:
    """SQL adding `delta` to the counts of every metric of run `row` (OLD or NEW), by its columns."""
    values = ", ".join(f"{row}.{c}" for c in RUN_FILTER_COLUMNS)
    return (
        f"INSERT INTO metric_counts ({_COUNT_KEY}, runs) SELECT name, {values}, num IS NOT NULL, {delta}"
        f" FROM latest_metrics WHERE run_id = {row}.run_id AND project IS NOT NULL"
        f" ON CONFLICT ({_COUNT_KEY}) DO UPDATE SET runs = runs + {delta}"
    )


_CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in RUN_FILTER_COLUMNS)
TRIGGERS = (
    # `checkpoint` writes the copies itself; this fills them for any other writer.
    "CREATE TRIGGER IF NOT EXISTS latest_metrics_copy_run AFTER INSERT ON latest_metrics"
    " WHEN NEW.project IS NULL BEGIN"
    f" UPDATE latest_metrics SET seq = COALESCE(NEW.seq, NEW.rowid), ({_COPIED}) = (SELECT {_COPIED}"
    " FROM runs WHERE run_id = NEW.run_id) WHERE rowid = NEW.rowid;"
    f" INSERT INTO metric_counts ({_COUNT_KEY}, runs) SELECT name, {_COPIED}, num IS NOT NULL, 1"
    " FROM latest_metrics WHERE rowid = NEW.rowid AND project IS NOT NULL"
    f" ON CONFLICT ({_COUNT_KEY}) DO UPDATE SET runs = runs + 1; END",
    "CREATE TRIGGER IF NOT EXISTS latest_metrics_count AFTER INSERT ON latest_metrics"
    f" WHEN NEW.project IS NOT NULL BEGIN {_count_row('NEW', 1)}; END",
    "CREATE TRIGGER IF NOT EXISTS latest_metrics_kind AFTER UPDATE OF num ON latest_metrics"
    " WHEN OLD.project IS NOT NULL AND (OLD.num IS NULL) <> (NEW.num IS NULL) BEGIN"
    f" {_count_row('OLD', -1)}; {_count_row('NEW', 1)}; END",
    f"CREATE TRIGGER IF NOT EXISTS runs_filters_to_latest_metrics AFTER UPDATE OF {_COPIED} ON runs"
    f" WHEN {_CHANGED} BEGIN {_count_run('OLD', -1)}; {_count_run('NEW', 1)};"
    f" UPDATE latest_metrics SET ({_COPIED}) = ({', '.join(f'NEW.{c}' for c in RUN_FILTER_COLUMNS)})"
    " WHERE run_id = NEW.run_id; END",
)


def create(db: sqlite3.Connection) -> None:
    """Create what is missing: tables, indexes, then the triggers (which name the tables)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for trigger in TRIGGERS:
        db.execute(trigger)


def migrate(db: sqlite3.Connection) -> set[str]:
    """Add the columns later versions added to an older file's tables (for version 5 also fill
    latest_metrics' copies of the run columns, before their indexes exist); returns runs' old columns."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "runs" not in tables:
        return set()
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    for name, decl in (
        ("status_detail", "TEXT"),
        ("follower_started", "INTEGER"),
        ("duration_ms", "INTEGER"),
        ("raw_cursor", "TEXT"),
        ("cancel_requested_utc", "TEXT"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
    db.execute(
        "UPDATE runs SET duration_ms = CAST(ROUND((julianday(end_time_utc) - julianday(start_time_utc))"
        " * 86400000) AS INTEGER) WHERE duration_ms IS NULL AND end_time_utc IS NOT NULL"
    )
    if "metrics" in tables and "num" not in {r[1] for r in db.execute("PRAGMA table_info(metrics)")}:
        db.execute("ALTER TABLE metrics ADD COLUMN num REAL")
        db.execute(
            "UPDATE metrics SET num = CAST(value AS REAL) WHERE json_type(value) IN ('integer', 'real')"
        )
    if "latest_metrics" in tables and "txt" not in {
        r[1] for r in db.execute("PRAGMA table_info(latest_metrics)")
    }:
        db.execute("DROP TABLE latest_metrics")  # rebuilt from the series by backfill
        db.execute("DROP INDEX IF EXISTS latest_by_name")
    elif "latest_metrics" in tables:
        _copy_run_filters(db)
    return columns


def _copy_run_filters(db: sqlite3.Connection) -> None:
    """Version 5: give each latest_metrics row of an older file its run's filter columns and `seq`."""
    if "seq" in {r[1] for r in db.execute("PRAGMA table_info(latest_metrics)")}:
        return
    db.execute("DROP INDEX IF EXISTS latest_by_name")  # the two order indexes replace it
    for name in ("seq", *RUN_FILTER_COLUMNS):
        db.execute(f"ALTER TABLE latest_metrics ADD COLUMN {name} {'INTEGER' if name == 'seq' else 'TEXT'}")
    db.execute(
        f"UPDATE latest_metrics SET seq = rowid, ({_COPIED}) = (SELECT {_COPIED} FROM runs r"
        " WHERE r.run_id = latest_metrics.run_id)"
    )


def backfill(db: sqlite3.Connection, old_columns: set[str]) -> None:
    """Fill the tables later versions added from what an older file holds."""
    if not old_columns:
        return
    if db.execute("SELECT COUNT(*) FROM latest_metrics").fetchone()[0] == 0:
        db.execute(
            "INSERT INTO latest_metrics (run_id, name, step, kind, value, num, logged_utc, txt)"
            " SELECT m.run_id, m.name, m.step, m.kind, m.value, m.num, m.logged_utc, CASE WHEN m.num IS NOT"
            f" NULL THEN NULL WHEN json_type(m.value) = 'text' THEN substr(json_extract(m.value, '$'), 1,"
            f" {SORT_TEXT_CHARS}) ELSE substr(m.value, 1, {SORT_TEXT_CHARS}) END FROM metrics m"
            " JOIN (SELECT run_id, name, MAX(step) AS step FROM metrics GROUP BY run_id, name) last"
            " ON last.run_id = m.run_id AND last.name = m.name AND last.step = m.step"
            " ORDER BY m.run_id, m.rowid"
        )
    if db.execute("SELECT 1 FROM metric_counts LIMIT 1").fetchone() is None:  # a version 4 file
        key = f"name, {_COPIED}, num IS NOT NULL"
        db.execute(
            f"INSERT INTO metric_counts ({_COUNT_KEY}, runs) SELECT {key}, COUNT(*) FROM latest_metrics"
            f" WHERE project IS NOT NULL GROUP BY {key}"
        )
    db.execute(
        "INSERT OR IGNORE INTO metric_catalog (project, experiment, name) SELECT DISTINCT r.project,"
        " r.experiment, m.name FROM latest_metrics m JOIN runs r ON r.run_id = m.run_id"
    )
    if "attachments" in old_columns:
        for run_id, text in db.execute("SELECT run_id, attachments FROM runs").fetchall():
            paths = [p for p in json.loads(text or "[]") if p not in LOG_FILES]
            db.executemany(
                "INSERT OR IGNORE INTO attachments (run_id, position, path) VALUES (?,?,?)",
                [(run_id, i, p) for i, p in enumerate(paths)],
            )
