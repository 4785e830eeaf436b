"""RunWidget: one run, live — status, elapsed time, log tail, build log, metrics and plots, outputs.

Updates come from one plain worker thread that sets traits directly, throttled; this is the only
way that reaches the browser while a blocking cell holds the kernel's main thread (verified: see
shared/notes/widgets-threads.md). Events only mark what changed; the worker then reads the current
state from the history (a bounded log tail, the metric series), so the widget never holds more
than a tail of the log, however long the run prints.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import ipywidgets as w

from ..core.errors import AmlExecError
from ..core.models import LogEvent, MetricEvent, OutputsEvent, RunEvent, RunStatus, StatusEvent
from . import plots
from .render import log_html, metrics_html, outputs_html, run_html, status_html

log = logging.getLogger(__name__)

UPDATE_INTERVAL = 0.25  # at most 4 updates a second reach the front end
PLOT_INTERVAL = 2.0  # plots are re-rendered at most every 2 s while the run is live
LOG_TAIL_BYTES = 16 * 1024  # what the widget shows live
MORE_LOG_FACTOR = 4  # each "More log" click shows 4x as much
MAX_LOG_BYTES = 4 * 1024 * 1024  # the most a browser is sent; run.logs() has the rest
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")


class RunWidget(w.VBox):
    """A live view of a Run; `start()` begins following it, `finish()` writes the final state."""

    def __init__(self, run: Any, *, log_tail_bytes: int = LOG_TAIL_BYTES, **kwargs: Any) -> None:
        self.run = run
        self.log_tail_bytes = log_tail_bytes
        self.header = w.HTML()
        self.log_view = w.HTML()
        self.control_view = w.HTML()
        self.metrics = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(display="none", max_width="100%"))
        self.outputs = w.HTML()
        self.images = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.cancel_button = w.Button(
            description="Cancel",
            icon="stop",
            button_style="danger",
            tooltip="Stop the run on its target (the kernel's interrupt does the same)",
        )
        self.rerun_button = w.Button(description="Rerun", icon="redo", tooltip="Run the same snapshot again")
        self.more_log_button = w.Button(
            description="More log", icon="align-left", tooltip="Show 4x more of the log"
        )
        self.rerun_area = w.Output()
        self.tabs = w.Tab(
            children=[
                self.log_view,
                self.control_view,
                w.VBox([self.metrics, self.plot]),
                w.VBox([self.outputs, self.images]),
            ]
        )
        for i, title in enumerate(["Log", "Preparing", "Metrics", "Outputs"]):
            self.tabs.set_title(i, title)
        self.cancel_button.on_click(lambda _b: self._cancel())
        self.rerun_button.on_click(lambda _b: self._rerun())
        self.more_log_button.on_click(lambda _b: self.show_more_log())
        buttons = w.HBox([self.cancel_button, self.rerun_button, self.more_log_button])
        super().__init__([self.header, buttons, self.tabs, self.rerun_area], **kwargs)
        self._pending: set[str] = set()  # kinds of change since the last refresh
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Any = None
        self._last_plot = 0.0
        self._plot_pending = False  # metrics came in since the last plot
        self._phase: Any = None
        self._shown_images: tuple[str, ...] = ()
        self._finished = False
        self.refresh(plot=True)

    # --- life cycle ---------------------------------------------------------------------------------

    def start(self) -> RunWidget:
        """Subscribe to the run and start the one worker thread that updates the widget."""
        if self._thread is None:
            self._unsubscribe = self.run.subscribe(self._note)
            with self._pending_lock:  # what came between __init__'s read and the subscription
                self._pending |= {"log", "control", "metrics", "outputs"}
            self._thread = threading.Thread(
                target=self._follow, name=f"amlexec-widget-{self.run.id}", daemon=True
            )
            self._thread.start()
        return self

    def finish(self) -> None:
        """From the main thread, after the run ended: stop the worker, write and re-send the final state.

        Notebook runners keep only messages parented to the executing cell, so the final state must
        be written from the cell itself for a saved notebook to show it.
        """
        self._stop.set()
        self._wake.set()  # the worker may be waiting: end its wait now
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.refresh(plot=True)
        self._finished = True
        for widget in self._all_widgets():
            widget.send_state([k for k in widget.keys if k != "msg_id"])

    def close(self) -> None:
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        super().close()

    def _all_widgets(self) -> list[w.Widget]:
        found: list[w.Widget] = []

        def walk(widget: w.Widget) -> None:
            found.append(widget)
            for child in getattr(widget, "children", ()):
                walk(child)

        walk(self)
        return found

    # --- the worker thread ------------------------------------------------------------------------

    def _note(self, event: RunEvent) -> None:
        """The run's listener (on the follower's thread): remember what kind of thing changed, never
        the event itself, so a run printing 100 MB/s holds no log text here."""
        if isinstance(event, LogEvent):
            kind = "log" if event.source == "driver" else "control"
        elif isinstance(event, MetricEvent):
            kind = "metrics"
        elif isinstance(event, OutputsEvent):
            kind = "outputs"
        elif isinstance(event, StatusEvent):
            kind = "terminal" if event.status.terminal else "control"
        else:
            return
        with self._pending_lock:
            self._pending.add(kind)
        if kind == "terminal":
            self._wake.set()  # show the end at once, not at the end of the interval

    def _follow(self) -> None:
        last_status_check = 0.0
        while not self._stop.is_set():
            self._wake.wait(UPDATE_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():  # finish() writes the final state from the main thread
                return
            with self._pending_lock:
                changed, self._pending = self._pending, set()
            now = time.monotonic()
            terminal = "terminal" in changed
            if not terminal and now - last_status_check > 1.0:
                last_status_check = now
                terminal = self.run.done  # events can be missed by a widget made mid-run
            self._plot_pending |= "metrics" in changed
            live_plot = self._plot_pending and now - self._last_plot >= PLOT_INTERVAL
            try:
                self.refresh(
                    log="log" in changed or terminal,
                    control="control" in changed or terminal,
                    metrics="metrics" in changed or terminal,
                    outputs="outputs" in changed or terminal,
                    plot=live_plot or terminal,
                )
            except Exception:  # one bad refresh (a plot, a vanished file) must not freeze the widget
                log.exception("refreshing the widget of run %s failed", self.run.id)
            if terminal:
                return

    # --- state -> widgets ---------------------------------------------------------------------------

    def refresh(
        self,
        *,
        log: bool = True,
        control: bool = True,
        metrics: bool = True,
        outputs: bool = True,
        plot: bool = False,
    ) -> None:
        """Read the run's current state from the history and set the traits that changed."""
        record = self.run.record
        self._follow_phase(record.status)
        self.header.value = status_html(
            record.status,
            run_id=record.run_id,
            target=record.target,
            script=" ".join([record.script_name, *record.arguments]),
            elapsed=_elapsed(record),
            exit_code=record.exit_code,
            error=record.error,
        )
        self.cancel_button.disabled = record.status.terminal
        if log:
            tail = self.run.logs(tail_bytes=self.log_tail_bytes)
            self.more_log_button.disabled = len(tail.encode("utf-8")) < self.log_tail_bytes
            self.log_view.value = log_html(
                _from_line_start(tail, self.log_tail_bytes), empty="(no output yet)"
            )
        if control:
            self.control_view.value = log_html(self.run.logs("control", tail_bytes=self.log_tail_bytes))
        series = self.run.metric_series if (metrics or plot) else {}
        if metrics:
            self.metrics.value = metrics_html(series)
        if plot:
            self._last_plot = time.monotonic()
            self._plot_pending = False
            png = plots.series_png({name: {record.run_id: points} for name, points in series.items()})
            if png is not None:
                self.plot.value = png
                self.plot.layout.display = None
        if outputs:
            files = self.run.outputs
            self.outputs.value = outputs_html(files)
            self._show_images(files)

    def _show_images(self, files: list[str]) -> None:
        images = tuple(f for f in files if f.lower().endswith(IMAGE_SUFFIXES))[:12]
        if images == self._shown_images:
            return
        self._shown_images = images
        children = []
        for name in images:
            data = (self.run.outputs_dir / name).read_bytes()
            fmt = (
                "svg+xml" if name.lower().endswith(".svg") else name.rsplit(".", 1)[-1].replace("jpg", "jpeg")
            )
            children.append(
                w.VBox([w.Image(value=data, format=fmt, layout=w.Layout(max_width="320px")), w.Label(name)])
            )
        self.images.children = children

    def _follow_phase(self, status: RunStatus) -> None:
        """Show the Preparing tab while the environment is prepared, the Log tab once the run runs
        (once per phase: a tab the user picks afterwards stays picked)."""
        if status is self._phase:
            return
        self._phase = status
        if status is RunStatus.PREPARING:
            self.tabs.selected_index = 1
        elif status is RunStatus.RUNNING:
            self.tabs.selected_index = 0

    def show_more_log(self) -> None:
        """Show 4x more of the log (up to MAX_LOG_BYTES); live updates keep the larger view."""
        self.log_tail_bytes = min(self.log_tail_bytes * MORE_LOG_FACTOR, MAX_LOG_BYTES)
        text = self.run.logs(tail_bytes=self.log_tail_bytes)
        complete = len(text.encode()) < self.log_tail_bytes
        self.more_log_button.disabled = complete or self.log_tail_bytes >= MAX_LOG_BYTES
        note = "" if complete else f"(the last {self.log_tail_bytes // 1024} KB; `run.logs()` has it all)\n"
        self.log_view.value = log_html(note + _from_line_start(text, self.log_tail_bytes))

    # --- buttons ----------------------------------------------------------------------------------

    def _cancel(self) -> None:
        self.run.cancel()
        self.refresh(log=False, metrics=False, outputs=False)

    def _rerun(self) -> None:
        """Run the snapshot again below this widget; a refused rerun says why there (a button's
        exception would only reach the kernel's log, where nobody looks)."""
        from IPython.display import display

        self.rerun_area.clear_output()
        with self.rerun_area:
            try:
                again = RunWidget(self.run.rerun())
            except AmlExecError as exc:
                print(f"Rerun refused: {exc.explained()}")
                return
            display(again)
        again.start()

    def __repr__(self) -> str:
        return repr(self.run)

    def _repr_html_(self) -> str:
        record = self.run.record
        return run_html(
            record, self.run.logs(tail_bytes=self.log_tail_bytes), self.run.metric_series, self.run.outputs
        )


def _elapsed(record: Any) -> float | None:
    """Seconds since the run started, or since it was submitted while it is queued or preparing."""
    since = record.start_time_utc or record.created_utc
    if since is None:
        return None
    start = datetime.fromisoformat(since)
    end = datetime.fromisoformat(record.end_time_utc) if record.end_time_utc else datetime.now(timezone.utc)
    return max(0.0, (end - start).total_seconds())


def _from_line_start(tail: str, limit: int) -> str:
    """Drop the partial first line of a tail that was cut at `limit` bytes."""
    if len(tail.encode("utf-8")) < limit:
        return tail
    cut = tail.find("\n")
    return tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail
