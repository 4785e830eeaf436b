"""IPython magics: %aml_target, %aml_runconfig, %%aml_submit / %aml_submit, %aml_runs, %aml_run.

Thin: each magic parses its line, calls the core Session, and renders. A blocking submit follows the
run from the main thread (printing log text as it arrives, or driving the live widget), and raises
RunFailedError when the run fails, so notebook runners (nbclient, papermill) stop there.

Where each part lives:
- `commands.py`  the `AmlExecMagics` class: every magic's flags and its dispatch
- `targets.py`   `%aml_target` and `%aml_runconfig` verbs
- `submit.py`    `%%aml_submit`: submit, follow (widget, text, awaiting), interrupt = cancel
- `runs.py`      `%aml_runs` and `%aml_run show|logs|cancel|download|compare|restore`
- `awaiting.py`  the input transform that lets submit cells await (widget clicks during a run)
- `text.py`      `# comment` stripping, parsing, hints as magics, tables
"""

from __future__ import annotations

from ..core.errors import RunFailedError
from .awaiting import install_awaiting_submit, uninstall_awaiting_submit
from .commands import AmlExecMagics
from .text import magic_hint, strip_comment

__all__ = [
    "AmlExecMagics",
    "RunFailedError",
    "install_awaiting_submit",
    "magic_hint",
    "strip_comment",
    "uninstall_awaiting_submit",
]
