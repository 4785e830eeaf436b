"""Which cells the kernel runs as awaiting submits (so widget clicks are handled while they wait)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_amlexec.magics import awaiting as magics


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Any:
    class Shell:
        autoawait = True

    monkeypatch.setattr(magics, "_ipython", lambda: Shell())
    return Shell


def transformed(cell: str) -> str:
    return "".join(magics._awaiting_submit_cells(cell.splitlines(keepends=True)))


def test_submit_cells_and_lone_submit_lines_await(shell: Any) -> None:
    assert transformed("%%aml_submit -c docker -- 0.1\nprint(1)\n").startswith("await ")
    assert "aml_submit_async('-c docker -- 0.1', 'print(1)\\n')" in transformed(
        "%%aml_submit -c docker -- 0.1\nprint(1)\n"
    )
    assert "aml_submit_async('train.py 0.5', None)" in transformed("%aml_submit train.py 0.5\n")


def test_other_cells_help_and_autoawait_off_are_left_alone(shell: Any) -> None:
    for cell in (
        "print(1)\n",
        "%aml_submit?\n",
        "%%aml_submit?\n",
        "%aml_submit a.py\nprint(2)\n",
        "%aml_submitx\n",
    ):
        assert transformed(cell) == cell
    shell.autoawait = False
    assert transformed("%%aml_submit\nprint(1)\n") == "%%aml_submit\nprint(1)\n"


def test_line_submit_in_a_kernel_returns_the_run(project: Path, home: Path) -> None:
    from tests.widgets.test_widgets_kernel import run_notebook

    (project / "train.py").write_text("import sys\nprint('lr is', sys.argv[1])\n")
    nb = run_notebook(
        ["%load_ext jupyter_amlexec", "%aml_submit train.py 0.5", "print(_.status, _.logs())"], project
    )
    assert "Completed lr is 0.5" in "".join(o.get("text", "") for o in nb.cells[2].outputs)
