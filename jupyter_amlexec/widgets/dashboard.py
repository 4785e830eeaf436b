"""RunsDashboard: the run history as a live table with filters, sorting, paging and a compare view.

Filtering, sorting (also by a metric) and paging happen in SQL, so a page costs the same with 100
runs or 100,000. A worker thread re-reads the page every few seconds (less often when the query is
slow) until the widget is closed, so new runs, status changes and new metric columns show up.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ipywidgets as w

from ..core.compare import compare_runs
from ..core.history import History, status_name
from ..core.models import RunStatus
from ..core.paths import amlexec_home
from ..core.snapshot import SnapshotStore
from . import plots
from .render import compare_html, runs_html

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3.0
SLOW_QUERY_FACTOR = 10  # a page that takes t seconds to read is re-read at most every 10 t
MAX_COMPARED = 3
ANY = "(any)"


class RunsDashboard(w.VBox):
    """Runs of the history, one column per metric, like `az ml history list -o table`."""

    def __init__(
        self,
        history: History | None = None,
        *,
        project: str | None = None,
        experiment: str | None = None,
        target: str | None = None,
        status: str | None = None,
        script: str | None = None,
        page_size: int = 25,
        **kwargs: Any,
    ) -> None:
        self._stop = threading.Event()  # first: close() (also from __del__) needs it
        self.history = history or History(amlexec_home())
        self.snapshots = SnapshotStore(self.history.home)
        self.project = project
        self.page_size = page_size
        self.page = 0
        self._make_filters(experiment, target, status, script)
        self._make_paging_and_compare()
        self._wire()
        super().__init__(self._layout(), **kwargs)
        self._live_thread: threading.Thread | None = None
        self._lock = threading.RLock()  # the live thread and button handlers render alike
        self._metric_names: list[str] = []
        self.render()
        self._ensure_live()

    def _make_filters(
        self, experiment: str | None, target: str | None, status: str | None, script: str | None
    ) -> None:
        """The filter and sort controls, set from the magic's flags."""
        self.experiment = w.Text(value=experiment or "", description="experiment", continuous_update=False)
        self.target = w.Text(value=target or "", description="target", continuous_update=False)
        self.status = w.Dropdown(
            options=[ANY, *[s.value for s in RunStatus]],
            value=status_name(status) if status else ANY,  # ValueError naming the valid ones
            description="status",
        )
        self.script = w.Text(value=script or "", description="script", continuous_update=False)
        self.order = w.Dropdown(options=self._order_options(), value="created_utc", description="sort by")
        self.descending = w.ToggleButton(value=True, description="descending", icon="sort-amount-desc")

    def _make_paging_and_compare(self) -> None:
        """The page controls, the table and the compare view."""
        self.previous_button = w.Button(description="◀ previous")
        self.next_button = w.Button(description="next ▶")
        self.page_number = w.BoundedIntText(
            value=1, min=1, max=1, description="page", layout=w.Layout(width="12em")
        )
        self.page_count = w.Label("of 1")
        self.table = w.HTML()
        self.selection = w.SelectMultiple(
            options=[], rows=6, description="compare", layout=w.Layout(width="32em")
        )
        self.compare_button = w.Button(description="Compare selected", icon="columns")
        self.only_differences = w.Checkbox(value=False, description="only differences")
        self.comparison = w.HTML()
        self.comparison_plot = w.Image(format="png", layout=w.Layout(display="none", max_width="100%"))

    def _wire(self) -> None:
        """Every control re-renders what it changes."""
        for control in (self.experiment, self.target, self.status, self.script, self.order, self.descending):
            control.observe(lambda _change: self._reset_and_render(), names="value")
        self.previous_button.on_click(lambda _b: self._turn(-1))
        self.next_button.on_click(lambda _b: self._turn(+1))
        self.page_number.observe(lambda change: self._go_to(change["new"] - 1), names="value")
        self.compare_button.on_click(lambda _b: self.show_comparison())
        self.only_differences.observe(lambda _c: self.show_comparison(), names="value")

    def _layout(self) -> list[w.Widget]:
        """Filters, then sorting and paging, the table, and the compare view below it."""
        filters = w.HBox([self.experiment, self.target, self.status, self.script])
        pages = [self.previous_button, self.page_number, self.page_count, self.next_button]
        sorting = w.HBox([self.order, self.descending, *pages])
        compare = w.VBox(
            [
                w.HBox([self.selection, w.VBox([self.compare_button, self.only_differences])]),
                self.comparison,
                self.comparison_plot,
            ]
        )
        return [filters, sorting, self.table, compare]

    # --- queries --------------------------------------------------------------------------------

    def filters(self) -> dict[str, Any]:
        """The history filters of the controls; text boxes match anywhere unless given a pattern."""
        return {
            "project": self.project,
            "experiment": _contains(self.experiment.value),
            "target": _contains(self.target.value),
            "status": None if self.status.value == ANY else self.status.value,
            "script": _contains(self.script.value),
        }

    def _order_options(self) -> list[tuple[str, str]]:
        base = [
            ("created", "created_utc"),
            ("run number", "run_number"),
            ("status", "status"),
            ("duration", "duration"),
            ("target", "target"),
            ("script", "script_name"),
        ]
        self._metric_names = self.history.metric_names(project=self.project)
        return base + [(f"metric: {m}", f"metric:{m}") for m in self._metric_names]

    # --- rendering --------------------------------------------------------------------------------

    def render(self) -> None:
        """Query one page in SQL and show it."""
        with self._lock:
            filters = self.filters()
            total = self.history.count(**filters)
            pages = max(1, -(-total // self.page_size))
            self.page = min(self.page, pages - 1)
            records = self.history.query(
                **filters,
                order_by=self.order.value,
                descending=self.descending.value,
                limit=self.page_size,
                offset=self.page * self.page_size,
            )
            table = runs_html(records, total=total, page=self.page, page_size=self.page_size)
            if table != self.table.value:
                self.table.value = table
            self.previous_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= pages - 1
            self.page_number.max = pages
            self.page_number.value = self.page + 1
            self.page_count.value = f"of {pages}"
            chosen = list(self.selection.value)
            options = [r.run_id for r in records] + [
                c for c in chosen if c not in {r.run_id for r in records}
            ]
            if options != list(self.selection.options):
                self.selection.options = options
                self.selection.value = tuple(chosen)

    def _reset_and_render(self) -> None:
        self.page = 0
        self.render()

    def _turn(self, step: int) -> None:
        self._go_to(self.page + step)

    def _go_to(self, page: int) -> None:
        if max(0, page) != self.page:
            self.page = max(0, page)
            self.render()

    def _ensure_live(self) -> None:
        if self._live_thread is not None and self._live_thread.is_alive():
            return
        self._live_thread = threading.Thread(target=self._live, name="amlexec-dashboard", daemon=True)
        self._live_thread.start()

    def _live(self) -> None:
        """Re-read the page until the widget closes; new metric names become sort options."""
        interval = REFRESH_SECONDS
        while not self._stop.wait(interval):
            started = time.monotonic()
            try:
                if self.history.metric_names(project=self.project) != self._metric_names:
                    current = self.order.value
                    self.order.options = self._order_options()
                    self.order.value = current
                self.render()
            except Exception:  # a broken refresh must not end the live view
                log.exception("dashboard refresh failed")
            interval = max(REFRESH_SECONDS, SLOW_QUERY_FACTOR * (time.monotonic() - started))

    def show_comparison(self) -> None:
        chosen = list(self.selection.value)
        if len(chosen) < 2:
            self.comparison.value = "<i>Select 2 or 3 runs to compare.</i>"
            self.comparison_plot.layout.display = "none"
            return
        comparison = compare_runs(self.history, self.snapshots, chosen[:MAX_COMPARED])
        note = (
            f"<i>Comparing the first {MAX_COMPARED} of the {len(chosen)} selected runs.</i>"
            if len(chosen) > MAX_COMPARED
            else ""
        )
        self.comparison.value = note + compare_html(comparison, only_differences=self.only_differences.value)
        png = plots.series_png(comparison.series)
        if png is not None:
            self.comparison_plot.value = png
            self.comparison_plot.layout.display = None
        else:  # no series in common: do not leave the last comparison's plot on screen
            self.comparison_plot.layout.display = "none"

    def close(self) -> None:
        self._stop.set()
        super().close()

    def __repr__(self) -> str:
        return f"RunsDashboard({self.history.count(**self.filters())} runs)"

    def _repr_html_(self) -> str:
        records = self.history.query(**self.filters(), limit=self.page_size)
        return runs_html(records, total=self.history.count(**self.filters()), page_size=self.page_size)


def _contains(text: str) -> str | None:
    """A text box's value as a history filter: `lr` finds `train_lr.py`; a pattern is used as typed."""
    text = text.strip()
    if not text:
        return None
    return text if any(c in text for c in "*?[") else f"*{text}*"
