"""Text helpers of the magics: `# comment` stripping, argument parsing, hints written as magics,
tables (HTML in a kernel, text in a terminal) and the comparison view."""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.display import HTML, display

from .awaiting import in_kernel


def strip_comment(line: str) -> str:
    """A magic line without its trailing `# comment` (a `#` that starts a word outside quotes), so
    `%aml_runs   # the history` and `%%aml_submit -c local -- 0.1  # note` mean what they say; a `#`
    inside a word (`--env A=x#y`) or quotes is kept."""
    quote: str | None = None
    previous = " "
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return line[:i].rstrip()
        previous = char
    return line


def parse(magic: Any, line: str) -> Any:
    """Parse a magic line (comment stripped) with the flags declared on `magic`, split as a shell
    would: `--pattern '*.png'` and `train.py 'a b'` lose their quotes (IPython's own splitting keeps
    them, so a quoted glob matched nothing and a script got its arguments with the quotes)."""
    try:
        argv = shlex.split(strip_comment(line))
    except ValueError as exc:  # an unbalanced quote
        raise UsageError(f"Cannot read {line.strip()!r}: {exc}.") from exc
    return magic.parser.parse_args(argv)


_MAGIC_HINTS = {
    "target.attach": "%aml_target attach {0} --type TYPE ...",
    "target.prepare": "%aml_target prepare {0}",
    "target.list": "%aml_target list",
    "runconfig.list": "%aml_runconfig list",
    "project.init": "%aml_target init",
    "runs.list": "%aml_runs",
    "run.show": "%aml_run show {0}",
    "submit": "%aml_submit -c {0} {1}",
}


def magic_hint(hint: Any) -> str:
    """A core error's fixing command, written as a magic."""
    text = _MAGIC_HINTS.get(hint.verb, hint.verb)
    return text.format(*hint.args, *[""] * 3).strip()


def print_now(text: str) -> None:
    """Print streamed log text as it comes (no newline added, flushed for the cell output)."""
    print(text, end="", flush=True)


def short(value: object) -> str:
    """A metric value for a one-line summary."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def show_table(headers: list[str], rows: list[list[object]]) -> None:
    """An HTML table in a kernel, a text table in a terminal IPython."""
    from ..display import html_table, text_table

    if in_kernel():
        display(HTML(html_table(headers, rows)))
    else:
        print(text_table(headers, rows))


class ComparisonView:
    """Renders a RunComparison as HTML in a notebook and as text elsewhere."""

    def __init__(self, comparison: Any) -> None:
        self.comparison = comparison

    def _repr_html_(self) -> str:
        from ..display import compare_table, html_table

        files = "".join(f"<li>{how}: {path}</li>" for path, how in self.comparison.files)
        return html_table(*compare_table(self.comparison)) + (
            f"<p>Files that differ:</p><ul>{files}</ul>" if files else ""
        )

    def __repr__(self) -> str:
        from ..display import compare_table, text_table

        return text_table(*compare_table(self.comparison))
