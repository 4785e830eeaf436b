"""Every notebook in example_notebooks/ runs in a real kernel (nbclient): documentation that cannot rot."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "example_notebooks").glob("*.ipynb"))


def execute(notebook: Path, workdir: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.extend(str(v) for v in o.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_example_notebook_runs(notebook: Path, tmp_path: Path, home: Path) -> None:
    # Given a copy of the example project with the notebook in it
    workdir = tmp_path / "quickstart"
    shutil.copytree(REPO / "examples" / "quickstart", workdir)
    # When the notebook runs top to bottom in a real kernel
    nb = execute(notebook, workdir)
    # Then no cell failed, and its runs are in the history
    text = outputs_text(nb)
    assert "Error" not in "".join(o.get("ename", "") for c in nb.cells for o in c.get("outputs", []))
    if notebook.name == "quickstart.ipynb":
        assert "trained with scale 0.5" in text
        assert "Completed" in text and "['result.txt']" in text
        assert '"a":' in text  # the downloaded model
        assert (workdir / "downloaded" / "model.json").exists()
