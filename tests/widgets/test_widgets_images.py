"""Logged images and metric plots when the run's own interpreter has no matplotlib: the run writes a
PNG with the standard library, the kernel (which has the `widgets` extra) draws the plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_cli import amlexec
from tests.test_magics_targets import run_cells

SCRIPT = """
import struct, zlib, amlexec_run
try:
    import matplotlib
    print("matplotlib present")
except ImportError:
    print("no matplotlib in this interpreter")

def png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")

open("sample.png", "wb").write(png(4, 3))
amlexec_run.log_image("sample", "sample.png")
for step in range(5):
    amlexec_run.log("loss", 1.0 / (step + 1))
"""

INSPECT = """
from jupyter_amlexec.widgets.run_widget import RunWidget
from jupyter_amlexec.widgets import plots
view = RunWidget(run)
print("outputs", run.outputs)
print("kind", run.metric_series["sample"][0].kind, run.metrics["sample"])
print("plot", view.plot.value[:8] == b"\\x89PNG\\r\\n\\x1a\\n", view.plot.layout.display)
print("images", [box.children[1].value for box in view.images.children])
print("image bytes", view.images.children[0].children[0].value[:4] == b"\\x89PNG")
print("series_png", plots.series_png({"loss": {run.id: run.metric_series["loss"]}})[:4] == b"\\x89PNG")
"""


def test_log_image_and_plots_without_matplotlib_in_the_run(project: Path, home: Path, tmp_path: Path) -> None:
    # Given a local target whose interpreter is a bare venv (no matplotlib, no jupyter_amlexec)
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=60)
    (project / "draw.py").write_text(SCRIPT)
    cells = [
        "%load_ext jupyter_amlexec",
        f"%aml_target attach bare --type local --python {bare / 'bin' / 'python'}",
        "%aml_submit -c bare draw.py",
        "run = _\nprint(run.status.value, run.logs())",
        INSPECT,
    ]
    # When a script logs an image it wrote itself and a series of a metric
    out = run_cells(cells, project)
    # Then it ran without matplotlib, and its image is both an output and a metric of kind image
    assert "Completed no matplotlib in this interpreter" in out[3]
    assert "outputs ['sample.png']" in out[4]
    assert "kind image outputs/sample.png" in out[4]
    # And the run widget shows the image and draws the loss series with the kernel's matplotlib
    assert "plot True None" in out[4]
    assert "images ['sample.png']" in out[4] and "image bytes True" in out[4]
    assert "series_png True" in out[4]


def test_log_image_of_a_matplotlib_figure(project: Path, home: Path) -> None:
    # Given a run whose interpreter has matplotlib, logging a figure (not a file)
    (project / "fig.py").write_text(
        "import amlexec_run\nfrom matplotlib.figure import Figure\nfig = Figure()\n"
        "fig.add_subplot().plot([3, 1, 2])\namlexec_run.log_image('curve', fig)\n"
    )
    result = amlexec(project, "experiment", "submit", "fig.py")
    assert result.returncode == 0, result.stderr
    record = json.loads(amlexec(project, "history", "last", "-o", "json", check=True).stdout)
    # Then the figure is saved as a PNG output, and the metric points at it
    assert record["curve"] == "outputs/curve.png" and "outputs/curve.png" in record["attachments"]
    png = (home / "runs" / record["run_id"] / "outputs" / "curve.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
