"""The terminal tables of ``eegbench list`` and ``eegbench status``, drawn by rich.

One look for both: a bold header over a rule, two spaces between columns, the first column at the margin
(so ``grep ^failed`` and ``awk '{print $1}'`` keep working). In a terminal a table may be fitted to its width
and coloured; written to a file or a pipe (``width=None``, ``color=False``) it is plain text at its natural
width: no ANSI codes, nothing shortened or wrapped, no trailing blanks.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table


def new_table() -> Table:
    """An empty table in the commands' style; add columns and rows with rich's API."""
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, header_style="bold")


def render(table: Table, *, width: int | None = None, color: bool = False) -> str:
    """``table`` as text: fitted to ``width`` columns, or at its natural width (``None``); ANSI styles only
    with ``color`` (colours, not bold, dropped when ``NO_COLOR`` is set). No trailing newline."""
    from rich.console import Console

    out = io.StringIO()
    console = Console(
        file=out,
        width=width or 1_000_000,
        force_terminal=color,
        color_system="auto" if color else None,
        markup=False,  # cell text is data: '[1]' in a citation is not a style tag, ':x:' not an emoji
        emoji=False,
        highlight=False,
        legacy_windows=False,
    )
    if width is None:
        console.width = max(1, console.measure(table).maximum)
    console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())
