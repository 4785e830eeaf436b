"""The README's first example works when pasted into a notebook, cell by cell (blank lines split cells)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_as_pasted(project: Path, home: Path) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    cells = [c.strip("\n") for c in block.group(1).split("\n\n") if c.strip()]
    cells.append("print(run.status, run.metrics, run.record.arguments)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    ).execute()
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert last.strip() == "Completed {'lr': 0.1} ('0.1',)"
