"""Tables of targets, runs and comparisons as plain data, text, or HTML — shared by every adapter.

Pure functions: the CLI prints the text form, magics show the HTML form, widgets reuse both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.compare import RunComparison
    from .core.executors.base import PreparedEnv
    from .core.history import RunRecord
    from .core.project import ComputeTarget, RunConfiguration

Table = tuple[list[str], list[list[object]]]


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, css_class: str = "amlexec"
) -> str:
    import html  # the notebook's tables only: the CLI prints text

    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def targets_table(targets: Sequence[ComputeTarget], run_configurations: Sequence[RunConfiguration]) -> Table:
    used: dict[str, list[str]] = {}
    for rc in run_configurations:
        used.setdefault(rc.target, []).append(rc.name)
    rows: list[list[object]] = []
    for t in targets:
        where = t.address + (f":{t.port}" if t.port else "") if t.address else ""
        runtime = (
            t.base_docker_image or t.python_location or ("(this Python)" if t.type.value == "local" else "")
        )
        rows.append([t.name, t.type.value, where, runtime, ", ".join(used.get(t.name, []))])
    return ["name", "type", "address", "image / python", "run configurations"], rows


def runs_table(records: Sequence[RunRecord]) -> Table:
    """Workbench's `history list -o table`: one column per metric."""
    metric_names: list[str] = []
    for r in records:
        for name in r.metrics:
            if name not in metric_names and not isinstance(r.metrics[name], (list, dict)):
                metric_names.append(name)
    headers = ["Run_id", "Status", "Target", "Script_name", *metric_names, "Duration", "Start_time_utc"]
    rows = [
        [
            r.run_id,
            r.status.value,
            r.target,
            " ".join([r.script_name, *r.arguments]),
            *[r.metrics.get(m) for m in metric_names],
            str(r.duration).split(".")[0] if r.duration is not None else None,
            (r.start_time_utc or "")[:19],
        ]
        for r in records
    ]
    return headers, rows


def record_rows(record: RunRecord) -> list[list[object]]:
    rows: list[list[object]] = [
        ["run_id", record.run_id],
        ["run_number", record.run_number],
        ["status", record.status.value],
        ["exit_code", record.exit_code],
        ["target", record.target],
        ["script", " ".join([record.script_name, *record.arguments])],
        ["experiment", record.experiment],
        ["created_utc", record.created_utc],
        ["duration", record.duration],
        ["snapshot", record.snapshot_id],
    ]
    if record.error:
        rows.append(["error", record.error])
    rows += [[name, value] for name, value in record.metrics.items()]
    rows.append(["attachments", ", ".join(record.attachments)])
    return rows


def compare_table(comparison: RunComparison, *, only_differences: bool = False) -> Table:
    rows = comparison.differences_only() if only_differences else comparison.rows
    headers = ["", *comparison.run_ids, "differs"]
    return headers, [[f"{r.section}: {r.name}", *r.values, "*" if r.differs else ""] for r in rows]


def prepared_text(prepared: PreparedEnv) -> str:
    """What `prepare` did, in a line: an image built or reused, or a user-managed interpreter."""
    if prepared.image is None and not prepared.built:
        python = f" ({prepared.python})" if prepared.python else ""
        return f"Environment ready: user-managed{python}, nothing to build."
    state = "built" if prepared.built else "ready (cached, nothing built)"
    return f"Environment {prepared.env_hash[:12]} {state}" + (f": {prepared.image}" if prepared.image else "")
