"""Pure render functions for the widgets and their HTML fallbacks: state in, HTML text out.

Nothing here touches ipywidgets, so every view is testable without a kernel and the same HTML
serves `_repr_html_` where no widget manager runs (nbconvert, GitHub, terminals via text).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from ..core.history import RunRecord
from ..core.models import Metric, RunStatus
from ..display import cell, html_table, runs_table

STATUS_COLOURS = {
    RunStatus.QUEUED: "#6c757d",
    RunStatus.PREPARING: "#b58900",
    RunStatus.STARTING: "#b58900",
    RunStatus.RUNNING: "#0d6efd",
    RunStatus.FINALIZING: "#0d6efd",
    RunStatus.COMPLETED: "#198754",
    RunStatus.FAILED: "#dc3545",
    RunStatus.CANCELED: "#6c757d",
}


def elapsed_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_html(
    status: RunStatus,
    *,
    run_id: str,
    target: str,
    script: str,
    elapsed: float | None = None,
    exit_code: int | None = None,
    error: str | None = None,
) -> str:
    colour = STATUS_COLOURS.get(status, "#6c757d")
    badge = (
        f"<span class='amlexec-status' style='background:{colour};color:white;padding:2px 8px;"
        f"border-radius:4px;font-weight:600'>{html.escape(status.value)}</span>"
    )
    parts = [
        badge,
        f"<b>{html.escape(run_id)}</b>",
        f"on <code>{html.escape(target)}</code>",
        html.escape(script),
    ]
    if elapsed is not None:
        parts.append(f"<span class='amlexec-elapsed'>{elapsed_text(elapsed)}</span>")
    if exit_code is not None and status.terminal:
        parts.append(f"exit code {exit_code}")
    text = " &nbsp; ".join(parts)
    if error and status in (RunStatus.FAILED, RunStatus.CANCELED):
        text += f"<div style='color:{STATUS_COLOURS[RunStatus.FAILED]}'>{html.escape(error)}</div>"
    return f"<div class='amlexec-header'>{text}</div>"


def log_html(text: str, *, empty: str = "(no output yet)") -> str:
    body = html.escape(text) if text else f"<i>{html.escape(empty)}</i>"
    return (
        "<pre class='amlexec-log' style='max-height:22em;overflow:auto;margin:0;font-size:12px;"
        f"white-space:pre-wrap'>{body}</pre>"
    )


def metrics_html(series: Mapping[str, Sequence[Metric]]) -> str:
    """One row per metric: its latest value, how many times it was logged, and min/max of numbers."""
    if not series:
        return "<i>No metrics logged yet.</i>"
    rows: list[list[object]] = []
    for name, points in series.items():
        values = [p.value for p in points]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        rows.append(
            [
                name,
                values[-1] if values else None,
                len(values),
                min(numbers) if numbers else None,
                max(numbers) if numbers else None,
            ]
        )
    return html_table(["metric", "latest", "count", "min", "max"], rows, css_class="amlexec-metrics")


def outputs_html(files: Sequence[str]) -> str:
    if not files:
        return "<i>No files in outputs/.</i>"
    items = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in files)
    return f"<ul class='amlexec-outputs'>{items}</ul>"


def run_html(
    record: RunRecord, log_tail: str, series: Mapping[str, Sequence[Metric]], outputs: Sequence[str]
) -> str:
    """The whole run as static HTML: the widget's fallback."""
    duration = record.duration.total_seconds() if record.duration is not None else None
    return (
        status_html(
            record.status,
            run_id=record.run_id,
            target=record.target,
            script=" ".join([record.script_name, *record.arguments]),
            elapsed=duration,
            exit_code=record.exit_code,
            error=record.error,
        )
        + log_html(log_tail)
        + metrics_html(series)
        + outputs_html(outputs)
    )


def runs_html(
    records: Sequence[RunRecord], *, total: int | None = None, page: int = 0, page_size: int = 25
) -> str:
    """The runs table (one column per metric) with a paging caption."""
    headers, rows = runs_table(records)
    caption = ""
    if total is not None:
        first = page * page_size + 1 if total else 0
        last = min(total, (page + 1) * page_size)
        caption = f"<div class='amlexec-caption'>runs {first}–{last} of {total}</div>"
    return caption + html_table(headers, rows, css_class="amlexec-runs")


def compare_html(comparison: object, *, only_differences: bool = False) -> str:
    from ..core.compare import RunComparison
    from ..display import compare_table

    assert isinstance(comparison, RunComparison)
    headers, rows = compare_table(comparison, only_differences=only_differences)
    table = html_table(headers, rows, css_class="amlexec-compare")
    if comparison.files:
        items = "".join(
            f"<li>{html.escape(how)}: <code>{html.escape(path)}</code></li>" for path, how in comparison.files
        )
        table += f"<div>Files that differ between the snapshots:</div><ul>{items}</ul>"
    elif not comparison.unavailable_snapshots:
        table += "<div>The runs ran the same files.</div>"
    if comparison.unavailable_snapshots:
        missing = ", ".join(f"<code>{html.escape(s[:12])}</code>" for s in comparison.unavailable_snapshots)
        table += f"<div>Snapshots no longer stored, so their files could not be compared: {missing}</div>"
    return table


__all__ = [
    "cell",
    "compare_html",
    "log_html",
    "metrics_html",
    "outputs_html",
    "run_html",
    "runs_html",
    "status_html",
]
