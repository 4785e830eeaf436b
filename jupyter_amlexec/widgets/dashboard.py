"""RunsDashboard: the run history as a live table with filters, sorting, paging and a compare view.

Filtering, sorting (also by a metric) and paging happen in SQL, so a page costs the same with 100
runs or 100,000. While a run on the page is live, a worker thread refreshes the page every few
seconds; it stops when every run shown has ended or the widget is closed.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from ..core.compare import compare_runs
from ..core.history import History
from ..core.models import RunStatus
from ..core.paths import amlexec_home
from ..core.snapshot import SnapshotStore
from . import plots
from .render import compare_html, runs_html

REFRESH_SECONDS = 3.0
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
        self.history = history or History(amlexec_home())
        self.snapshots = SnapshotStore(self.history.home)
        self.project = project
        self.page_size = page_size
        self.page = 0
        self.experiment = w.Text(value=experiment or "", description="experiment", continuous_update=False)
        self.target = w.Text(value=target or "", description="target", continuous_update=False)
        self.status = w.Dropdown(
            options=[ANY, *[s.value for s in RunStatus]], value=status or ANY, description="status"
        )
        self.script = w.Text(value=script or "", description="script", continuous_update=False)
        self.order = w.Dropdown(options=self._order_options(), value="created_utc", description="sort by")
        self.descending = w.ToggleButton(value=True, description="descending", icon="sort-amount-desc")
        self.previous_button = w.Button(description="◀ previous")
        self.next_button = w.Button(description="next ▶")
        self.table = w.HTML()
        self.selection = w.SelectMultiple(
            options=[], rows=6, description="compare", layout=w.Layout(width="32em")
        )
        self.compare_button = w.Button(description="Compare selected", icon="columns")
        self.only_differences = w.Checkbox(value=False, description="only differences")
        self.comparison = w.HTML()
        self.comparison_plot = w.Image(format="png", layout=w.Layout(display="none", max_width="100%"))
        for control in (self.experiment, self.target, self.status, self.script, self.order, self.descending):
            control.observe(lambda _change: self._reset_and_render(), names="value")
        self.previous_button.on_click(lambda _b: self._turn(-1))
        self.next_button.on_click(lambda _b: self._turn(+1))
        self.compare_button.on_click(lambda _b: self.show_comparison())
        self.only_differences.observe(lambda _c: self.show_comparison(), names="value")
        filters = w.HBox([self.experiment, self.target, self.status, self.script])
        sorting = w.HBox([self.order, self.descending, self.previous_button, self.next_button])
        compare = w.VBox(
            [
                w.HBox([self.selection, w.VBox([self.compare_button, self.only_differences])]),
                self.comparison,
                self.comparison_plot,
            ]
        )
        super().__init__([filters, sorting, self.table, compare], **kwargs)
        self._stop = threading.Event()
        self._live_thread: threading.Thread | None = None
        self.render()

    # --- queries --------------------------------------------------------------------------------

    def filters(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "experiment": self.experiment.value or None,
            "target": self.target.value or None,
            "status": None if self.status.value == ANY else self.status.value,
            "script": self.script.value or None,
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
        metrics = [(f"metric: {m}", f"metric:{m}") for m in self.history.metric_names(project=self.project)]
        return base + metrics

    # --- rendering --------------------------------------------------------------------------------

    def render(self) -> None:
        """Query one page in SQL and show it; start the live refresher if a shown run is not done."""
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
        self.table.value = runs_html(records, total=total, page=self.page, page_size=self.page_size)
        self.previous_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        chosen = [v for v in self.selection.value]
        self.selection.options = [r.run_id for r in records] + [
            c for c in chosen if c not in {r.run_id for r in records}
        ]
        self.selection.value = tuple(chosen)
        if any(not r.status.terminal for r in records):
            self._ensure_live()

    def _reset_and_render(self) -> None:
        self.page = 0
        self.render()

    def _turn(self, step: int) -> None:
        self.page = max(0, self.page + step)
        self.render()

    def _ensure_live(self) -> None:
        if self._live_thread is not None and self._live_thread.is_alive():
            return
        self._live_thread = threading.Thread(target=self._live, name="amlexec-dashboard", daemon=True)
        self._live_thread.start()

    def _live(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            records = self.history.query(
                **self.filters(),
                order_by=self.order.value,
                descending=self.descending.value,
                limit=self.page_size,
                offset=self.page * self.page_size,
            )
            total = self.history.count(**self.filters())
            self.table.value = runs_html(records, total=total, page=self.page, page_size=self.page_size)
            if all(r.status.terminal for r in records):
                return

    def show_comparison(self) -> None:
        chosen = list(self.selection.value)
        if len(chosen) < 2:
            self.comparison.value = "<i>Select 2 or 3 runs to compare.</i>"
            self.comparison_plot.layout.display = "none"
            return
        comparison = compare_runs(self.history, self.snapshots, chosen[:3])
        self.comparison.value = compare_html(comparison, only_differences=self.only_differences.value)
        png = plots.series_png(comparison.series)
        if png is not None:
            self.comparison_plot.value = png
            self.comparison_plot.layout.display = None

    def close(self) -> None:
        self._stop.set()
        super().close()

    def _repr_html_(self) -> str:
        records = self.history.query(**self.filters(), limit=self.page_size)
        return runs_html(records, total=self.history.count(**self.filters()), page_size=self.page_size)
