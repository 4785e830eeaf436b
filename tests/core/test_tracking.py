"""The metric-tag protocol and the in-run API, including old Pythons and Workbench's logging API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_amlexec.core.tracking import INRUN_PYTHONPATH, LogDemuxer, inrun_files
from tests.conftest import require


def test_demuxer_splits_tags_across_chunk_boundaries() -> None:
    d = LogDemuxer()
    text1, m1 = d.feed(b'epoch 1\n@@amlexec@@ {"name":"loss","value":0.5,"kind":"scalar"}\nprogress 10%')
    text2, m2 = d.feed(b' @@amlexec@@ {"name":"acc","val')
    text3, m3 = d.feed(b'ue":[1,2],"kind":"list"}\n\xc3')
    text4, m4 = d.feed(b"\xa9t\n@@amlexec@@ not json\n")
    assert text1 == "epoch 1\nprogress 10%" and [(m.name, m.value) for m in m1] == [("loss", 0.5)]
    assert text2 == "" and m2 == []
    assert text3 == " \n" and [(m.name, m.value, m.kind) for m in m3] == [("acc", [1, 2], "list")]
    assert text4 == "ét\n@@amlexec@@ not json\n" and m4 == []


def _run_inrun(python: str, tmp_path: Path, code: str) -> tuple[str, list[object]]:
    lib = tmp_path / "lib"
    for name, content in inrun_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / INRUN_PYTHONPATH), "AMLEXEC_RUN_ID": "r_1"}
    out = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, check=True).stdout
    text, metrics = LogDemuxer().feed(out)
    del lib
    return text, [(m.name, m.value, m.kind) for m in metrics]


SCRIPT = (
    "import amlexec_run\n"
    "from azureml.logging import get_azureml_logger\n"
    "print('run', amlexec_run.get_run_id())\n"
    "amlexec_run.log('loss', 0.5)\n"
    "amlexec_run.log('nan', float('nan'))\n"
    "amlexec_run.log_row('cm', tp=3, fp=1)\n"
    "amlexec_run.upload('notes.txt', 'hello')\n"
    "get_azureml_logger().log('Accuracy', [0.6, 0.7]).wait()\n"
)
EXPECTED = [
    ("loss", 0.5, "scalar"),
    ("nan", "nan", "scalar"),
    ("cm", {"tp": 3, "fp": 1}, "row"),
    ("notes.txt", "outputs/notes.txt", "file"),
    ("Accuracy", [0.6, 0.7], "list"),
]


def test_inrun_api_logs_every_kind(tmp_path: Path) -> None:
    text, metrics = _run_inrun(sys.executable, tmp_path, SCRIPT)
    assert text == "run r_1\n" and metrics == EXPECTED
    assert (tmp_path / "outputs" / "notes.txt").read_text() == "hello"


@pytest.mark.parametrize("version", ["3.6.15", "3.8.18"])
def test_inrun_api_works_on_old_pythons(tmp_path: Path, version: str) -> None:
    python = Path(f"/root/.pyenv/versions/{version}/bin/python")
    require(python.exists(), f"Python {version} (pyenv) to test the in-run API on old targets")
    assert _run_inrun(str(python), tmp_path, SCRIPT)[1] == EXPECTED
