"""The magics in a terminal IPython (no kernel, no widgets): plain-text tables and logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SESSION = """\
%load_ext jupyter_amlexec
%aml_target list
%aml_submit job.py 'a b' "c d" e
%aml_runs
%aml_runconfig list
r = %aml_submit -a job.py x
r.wait()
%aml_run logs $r.id
%aml_submit?
"""


def test_terminal_ipython_prints_text_tables_and_streams_the_log(project: Path, home: Path) -> None:
    # Given a script, and an IPython session run from a terminal
    (project / "job.py").write_text("import sys\nprint('job args', sys.argv[1:])\n")
    (project / "session.ipy").write_text(SESSION)
    # When it runs
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "session.ipy"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    # Then the tables are text, quoted arguments reach the script as one argument each
    assert result.returncode == 0 and "Traceback" not in out + result.stderr, out + result.stderr
    assert any(line.split()[:2] == ["local", "local"] for line in out.splitlines())
    assert "job args ['a b', 'c d', 'e']" in out
    assert "Completed in" in out
    assert any("Completed  local   job.py a b c d e" in line for line in out.splitlines())
    assert any(line.split() == ["docker", "docker", "Python"] for line in out.splitlines())
    # And -a returns the run; its log is printed afterwards
    assert "submitted; run.wait() to follow it" in out and "job args ['x']\nDocstring:" in out
    # And the help lists every flag, --secret-env with what it promises
    assert all(flag in out for flag in ("-c RUN_CONFIGURATION", "-t TARGET", "--experiment", "--env", "-a"))
    assert "--secret-env NAME" in out and "never stored" in out
