"""`%aml_target` and `%aml_runconfig`, every verb, in a real kernel (nbclient), as a user reads them."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run_cells(cells: list[str], workdir: Path, timeout: int = 180) -> list[str]:
    """Execute the cells in a real kernel, errors allowed; per cell, everything it showed as text:
    stdout, stderr, text/plain and text/html data, `[widget]` for a widget, errors as `Name: message`."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    return [_text(cell.outputs) for cell in nb.cells]


def _text(outputs: list[nbformat.NotebookNode]) -> str:
    parts: list[str] = []
    for out in outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        else:
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                parts.append("[widget]")
            parts.extend(str(data[k]) for k in ("text/plain", "text/html") if k in data)
    return "".join(parts)


def test_target_verbs_write_show_and_remove_the_files(project: Path, home: Path) -> None:
    # Given a fresh folder and a notebook going through every %aml_target verb
    cells = [
        "%load_ext jupyter_amlexec",
        "%aml_target list",
        "%aml_target init",
        "%aml_target init",
        "%aml_target attach box --type docker --network-mode host  # a box on the host network",
        "%aml_target show box",
        "%aml_target list",
        "%aml_target detach box",
        "%aml_target prepare local",
    ]
    # When it runs in a real kernel
    out = run_cells(cells, project)
    config = project / "aml_config"
    # Then list shows the built-in targets before any file exists
    assert "<td style='text-align:left'>local</td>" in out[1] and ">docker<" in out[1]
    # init writes the templates once, and says so; a second init writes nothing
    assert "wrote aml_config/local.compute" in out[2] and "wrote aml_config/conda_dependencies.yml" in out[2]
    assert (config / "docker.runconfig").is_file() and (config / "spark_dependencies.yml").is_file()
    assert "nothing written" in out[3]
    # attach (the trailing comment ignored) writes both files; show prints the .compute file
    assert "Attached 'box' (docker): aml_config/box.compute, aml_config/box.runconfig" in out[4]
    assert "networkMode: host" in out[5] and "type: docker" in out[5]
    assert ">box<" in out[6]
    # detach removes both, and names them
    assert "removed aml_config/box.compute" in out[7] and "removed aml_config/box.runconfig" in out[7]
    assert not (config / "box.compute").exists() and not (config / "box.runconfig").exists()
    # prepare on local builds nothing: the environment is the user's own interpreter
    assert "Environment ready: user-managed" in out[8] and "nothing to build" in out[8]


def test_use_makes_the_next_submits_run_on_that_configuration(project: Path, home: Path) -> None:
    cells = [
        "%load_ext jupyter_amlexec",
        "%aml_target attach mine --type local",
        "%aml_target use mine",
        "%%aml_submit --no-widget\nprint('where am I')",
        "print(_.record.target, _.record.run_configuration)",
    ]
    out = run_cells(cells, project)
    assert "%%aml_submit now runs on 'mine'" in out[2]
    assert "where am I" in out[3] and "Completed" in out[3]
    assert out[4].strip() == "mine mine"


def test_target_mistakes_name_the_fix(project: Path, home: Path) -> None:
    cells = [
        "%load_ext jupyter_amlexec",
        "%aml_target show nope",
        "%aml_target frobnicate",
        "%aml_target show",
        "%aml_target use nope",
        "%aml_target attach x --type spaceship",
        "%aml_target init now",
    ]
    out = run_cells(cells, project)
    assert "No compute target 'nope'" in out[1] and "To fix: %aml_target attach nope --type TYPE" in out[1]
    assert "Unknown %aml_target subcommand 'frobnicate'" in out[2] and "init" in out[2]
    assert "takes one target name, e.g. %aml_target show docker" in out[3]
    assert "No run configuration 'nope'" in out[4] and "To fix: %aml_runconfig list" in out[4]
    assert "UsageError" in out[5] and "spaceship" in out[5]
    assert "takes no arguments" in out[6]
    assert all("Traceback" not in text for text in out)


def test_runconfig_verbs(project: Path, home: Path) -> None:
    cells = [
        "%load_ext jupyter_amlexec",
        "%aml_runconfig create fast --target local --env BATCH=64 --env MODE=quick",
        "%aml_runconfig list",
        "%aml_runconfig show fast",
        "%aml_runconfig create fast --target local",
        "%aml_runconfig create slow --target nope",
        "%aml_runconfig rename fast",
        "%%aml_submit -c fast --no-widget\nimport os\nprint('batch', os.environ['BATCH'], os.environ['MODE'])",
    ]
    out = run_cells(cells, project)
    assert "wrote aml_config/fast.runconfig (target local)" in out[1]
    assert (project / "aml_config" / "fast.runconfig").is_file()
    assert ">fast<" in out[2] and ">local<" in out[2] and ">Python<" in out[2]
    assert "BATCH: '64'" in out[3] and "Target: local" in out[3]
    assert "UsageError" in out[4] and "exists" in out[4]  # no silent overwrite without --force
    assert "No compute target 'nope'" in out[5]
    assert "Unknown %aml_runconfig subcommand 'rename'" in out[6]
    assert "batch 64 quick" in out[7]
