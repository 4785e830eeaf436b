"""Listings name the files they could not read (and the typos they found), and still list the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_listings_show_every_readable_file_and_name_the_others(project: Path, home: Path) -> None:
    config = project / "aml_config"
    config.mkdir()
    (config / "typo.compute").write_text("type: docker\nbaseDockerImage: img\nkeepContainr: true\n")
    (config / "broken.compute").write_text("type: [\n")
    (config / "typo.runconfig").write_text("Target: typo\nTragetTypo: x\n")

    def amlexec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jupyter_amlexec", *args], cwd=project, capture_output=True, text=True
        )

    targets = amlexec("computetarget", "list")
    assert targets.returncode == 0 and "typo" in targets.stdout and "local" in targets.stdout
    assert "broken.compute" in targets.stderr and "error:" in targets.stderr
    assert "did you mean 'keepContainer'" in targets.stderr
    rcs = amlexec("runconfiguration", "list")
    assert rcs.returncode == 0 and "typo" in rcs.stdout
    assert "TragetTypo" in rcs.stderr and "did you mean 'Target'" in rcs.stderr
