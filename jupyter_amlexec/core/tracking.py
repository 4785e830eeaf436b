"""Metrics in the log stream: the tagged-line protocol between a run and its follower.

A run logs a metric by writing one line `@@amlexec@@ {json}` to its stdout (the in-run module in
core/inrun/ does that), so metrics reach us live over the one channel every target already has:
its log. The follower splits the raw stream into displayable text and metrics.
"""

from __future__ import annotations

import codecs
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from .models import Metric

log = logging.getLogger(__name__)

METRIC_TAG = "@@amlexec@@ "
INRUN_PYTHONPATH = ".amlexec/lib"
CELL_SCRIPT = ".amlexec/cell.py"
METRIC_KINDS = frozenset({"scalar", "list", "row", "image", "file"})

_INRUN_DIR = Path(__file__).parent / "inrun"
_INRUN_FILES = ("amlexec_run.py", "azureml/__init__.py", "azureml/logging.py")


def inrun_files() -> dict[str, bytes]:
    """The in-run support files, by their path inside a snapshot (a fresh dict each call)."""
    return {f"{INRUN_PYTHONPATH}/{name}": (_INRUN_DIR / name).read_bytes() for name in _INRUN_FILES}


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def parse_metric(payload: str) -> Metric | None:
    """A metric from the JSON after the tag; None when it is not one of ours (then it is log text)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or "value" not in doc:
        return None
    kind = doc.get("kind", "scalar")
    if kind not in METRIC_KINDS:
        return None
    return Metric(name=doc["name"], value=doc["value"], kind=kind, logged_utc=_utc_now())


class LogDemuxer:
    """Splits raw log bytes into displayable text and metrics, across arbitrary chunk boundaries."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> tuple[str, list[Metric]]:
        text = self._partial + self._decoder.decode(data)
        cut = text.rfind("\n") + 1
        self._partial = text[cut:]
        if "@" not in self._partial:
            # a partial line that cannot hold a tag (a progress bar, a prompt) is shown now, not at
            # the next newline; one that might is kept until its line ends
            self._partial = ""
            return self._split(text)
        return self._split(text[:cut])

    def flush(self) -> tuple[str, list[Metric]]:
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return self._split(text)

    @staticmethod
    def _split(text: str) -> tuple[str, list[Metric]]:
        if METRIC_TAG not in text:
            return text, []
        shown: list[str] = []
        metrics: list[Metric] = []
        for line in text.splitlines(keepends=True):
            at = line.find(METRIC_TAG)
            if at < 0:
                shown.append(line)
                continue
            metric = parse_metric(line[at + len(METRIC_TAG) :].strip())
            if metric is None:
                log.debug("kept a malformed metric line as log text: %r", line)
                shown.append(line)
                continue
            metrics.append(metric)
            if at > 0:  # text printed without a newline before the tag is still log
                shown.append(line[:at] + "\n")
        return "".join(shown), metrics
