"""Where the run history lives: $AMLEXEC_HOME, else `amlexec/` under the Jupyter data dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def jupyter_data_dir() -> Path:
    """The Jupyter data dir, computed as jupyter_core does, without importing it."""
    if env := os.environ.get("JUPYTER_DATA_DIR"):
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Jupyter"
    if os.name == "nt":
        appdata = os.environ.get("APPDATA")
        return Path(appdata) / "jupyter" if appdata else home / ".jupyter" / "data"
    xdg = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(xdg) / "jupyter"


def amlexec_home() -> Path:
    """The folder holding history.sqlite, blobs/, snapshots/ and runs/."""
    if env := os.environ.get("AMLEXEC_HOME"):
        return Path(env).expanduser()
    return jupyter_data_dir() / "amlexec"
