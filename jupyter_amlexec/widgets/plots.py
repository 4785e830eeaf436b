"""Small plots of metric series as PNG bytes, with matplotlib when it is installed (an optional extra).

Rendered off-screen (Agg), never through pyplot's global state, so a plot from the widget's worker
thread cannot disturb the user's own figures.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from ..core.models import Metric


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _numeric(points: Sequence[Metric]) -> list[float]:
    out: list[float] = []
    for p in points:
        if isinstance(p.value, (int, float)) and not isinstance(p.value, bool):
            out.append(float(p.value))
        elif (
            p.kind == "list"
            and isinstance(p.value, list)
            and all(isinstance(v, (int, float)) for v in p.value)
        ):
            out = [float(v) for v in p.value]  # a logged list is a whole series by itself
    return out


def series_png(series: Mapping[str, Mapping[str, Sequence[Metric]]], *, width: float = 7.0) -> bytes | None:
    """One small panel per metric; each panel overlays the runs given for it. None when nothing plots."""
    plottable = {
        name: {run: _numeric(points) for run, points in runs.items()} for name, runs in series.items()
    }
    plottable = {name: runs for name, runs in plottable.items() if any(len(v) > 1 for v in runs.values())}
    if not plottable or not available():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(plottable)
    columns = min(3, count)
    rows = (count + columns - 1) // columns
    figure = Figure(figsize=(width, 2.2 * rows), dpi=80)
    FigureCanvasAgg(figure)
    for i, (name, runs) in enumerate(sorted(plottable.items()), start=1):
        axes = figure.add_subplot(rows, columns, i)
        for run, values in runs.items():
            axes.plot(range(len(values)), values, marker="." if len(values) < 30 else None, label=run[-8:])
        axes.set_title(name, fontsize=9)
        axes.tick_params(labelsize=7)
        if len(runs) > 1:
            axes.legend(fontsize=6)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
