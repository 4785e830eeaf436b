"""Log metrics and files from inside a run (injected into every snapshot by jupyter_amlexec).

Runs in the target's own Python (3.6 or newer, standard library only), so a script needs no
package installed to log. Each metric is one tagged line on stdout, which the follower turns into a
metric of the run history; files go under outputs/, which is collected after the run.

    import amlexec_run
    amlexec_run.log("accuracy", 0.93)          # repeated logs of one name form a series
    amlexec_run.log_list("losses", [0.9, 0.4])
    amlexec_run.log_row("confusion", tp=10, fp=2)
    amlexec_run.log_image("roc", "roc.png")      # or a matplotlib figure
    amlexec_run.upload("notes.txt", "some text")
"""

import json
import math
import os
import sys

TAG = "@@amlexec@@ "
OUTPUTS = "outputs"

__all__ = ["log", "log_list", "log_row", "log_image", "upload", "get_run_id"]


def get_run_id():
    """The id of the run in the history (None when the script runs outside jupyter_amlexec)."""
    return os.environ.get("AMLEXEC_RUN_ID")


def _plain(value):
    """A JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to strings."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    elif hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _emit(name, value, kind):
    if not isinstance(name, str) or not name:
        raise ValueError("a metric name must be a non-empty string, not %r" % (name,))
    line = TAG + json.dumps({"name": name, "value": _plain(value), "kind": kind}, allow_nan=False) + "\n"
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    out = sys.__stdout__ or sys.stdout
    out.write(line)
    out.flush()


def log(name, value):
    """Log a number or string (a list, tuple or array is logged as a list)."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        _emit(name, value, "list")
    else:
        _emit(name, value, "scalar")


def log_list(name, values):
    """Log a list of numbers as one value (Workbench drew it as a chart)."""
    _emit(name, list(_plain(values)), "list")


def log_row(name, **columns):
    """Log one row of a table; rows of one name form the table."""
    _emit(name, columns, "row")


def _into_outputs(name, source_path):
    relative = os.path.relpath(os.path.abspath(source_path), os.getcwd())
    if relative.replace(os.sep, "/").startswith(OUTPUTS + "/"):
        return relative.replace(os.sep, "/")
    os.makedirs(OUTPUTS, exist_ok=True)
    target = os.path.join(OUTPUTS, name)
    import shutil  # here, not at the top: every run imports this module, few copy a file (~4 ms)

    shutil.copyfile(source_path, target)
    return target.replace(os.sep, "/")


def log_image(name, image):
    """Log an image: a file path or a matplotlib figure (saved as PNG under outputs/)."""
    if hasattr(image, "savefig"):
        os.makedirs(OUTPUTS, exist_ok=True)
        path = os.path.join(OUTPUTS, name if name.endswith(".png") else name + ".png")
        image.savefig(path, format="png")
        stored = path.replace(os.sep, "/")
    else:
        base = name if os.path.splitext(name)[1] else name + os.path.splitext(str(image))[1]
        stored = _into_outputs(base, str(image))
    _emit(name, stored, "image")


def upload(name, content):
    """Store text, bytes, or an existing file's content as outputs/<name>."""
    if isinstance(content, str) and os.path.isfile(content):
        stored = _into_outputs(name, content)
    else:
        target = os.path.join(OUTPUTS, name)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(target, mode) as f:
            f.write(content)
        stored = target.replace(os.sep, "/")
    _emit(name, stored, "file")
