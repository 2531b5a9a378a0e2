"""Plain text for the terminal: the padded tables of ``eegbench list`` and ``eegbench status``.

Below every command module (it imports nothing of eegbench), so both commands share it without importing
each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def text_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Columns padded to their widest cell under a dashed header; the last column (a summary) is not padded."""
    rows = [list(r) for r in rows]
    widths = [max(len(str(r[i])) for r in [*rows, list(headers)]) for i in range(len(headers))]
    widths[-1] = 0

    def line(r: Sequence[Any]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * len(h) for h in headers])] + [line(r) for r in rows])
