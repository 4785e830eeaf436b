"""The layering rule and the cost of %load_ext, checked in fresh interpreters."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import jupyter_amlexec.core

JUPYTER_MODULES = ["IPython", "ipywidgets", "tornado", "jupyter_server", "ipykernel"]
HEAVY_MODULES = ["docker", "paramiko", "ipywidgets", "matplotlib", "jupyter_server", "sparkmagic"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_core_imports_nothing_of_jupyter() -> None:
    # Given every module of the core
    names = [m.name for m in pkgutil.walk_packages(jupyter_amlexec.core.__path__, "jupyter_amlexec.core.")]
    names = [n for n in names if ".inrun" not in n]  # in-run files are data for the target, not imported
    assert "jupyter_amlexec.core.api" in names and "jupyter_amlexec.core.executors.local" in names
    # When a fresh interpreter imports them all
    loaded = _modules_after("\n".join(f"import {n}" for n in names))
    # Then no Jupyter module came with them
    assert not {m for m in loaded if m.split(".")[0] in JUPYTER_MODULES}


def test_load_ext_imports_no_heavy_module() -> None:
    # Given a fresh IPython shell, and what it loads on its own
    start = "from IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()\n"
    before = _modules_after(start)
    # When it loads the extension
    loaded = _modules_after(start + "ip.run_line_magic('load_ext', 'jupyter_amlexec')\n")
    # Then neither docker-py, paramiko, widgets, matplotlib nor the server came with it
    added = loaded - before
    assert "jupyter_amlexec.magics" in added
    assert not {m for m in added if m.split(".")[0] in HEAVY_MODULES}
