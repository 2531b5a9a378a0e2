"""``eegbench status SPEC|RESULTS``: the parser, and the table of :func:`eegbench.results.status.spec_status`'s
or :func:`~eegbench.results.status.results_status`'s rows (rich; plain text when piped)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eegbench.errors import EegbenchError
from eegbench.results.status import STATUSES, counts, results_status, spec_status

#: the status column's colour in a terminal
STYLES = {"done": "green", "running": "cyan", "stale": "yellow", "failed": "red", "pending": ""}


def add_commands(sub: Any) -> None:
    """Register ``eegbench status`` on the top-level subparsers."""
    p = sub.add_parser(
        "status", help="list a spec's or results directory's cells: done, running, stale, failed, pending"
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="SPEC|RESULTS",
        help="a benchmark spec (.toml) or a results directory (default: the results directory, as for "
        "`eegbench leaderboard`: --results, $EEGBENCH_RESULTS or ./results)",
    )
    p.add_argument(
        "--results",
        metavar="DIR",
        help="results directory (default: the spec's [paths] results, $EEGBENCH_RESULTS, ./results)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, as for `eegbench run` (repeatable)",
    )
    p.add_argument("--show", choices=("all", *STATUSES), default="all", help="list only cells with this status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    s = max(0.0, time.time() - ts)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}min ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def _note(r: dict[str, Any]) -> str:
    """Failed cells carry their error, running and stale ones host/pid, done ones when they finished."""
    if r["status"] == "failed":
        return str(r.get("error") or "no message").replace("\n", " ")[:300]
    if r["status"] == "running":
        return f"on {r.get('host') or '?'} pid {r.get('pid') or '?'}, started {_ago(r.get('started_at'))}"
    if r["status"] == "stale":
        return (
            f"owner gone: was on {r.get('host') or '?'} pid {r.get('pid') or '?'}, started "
            f"{_ago(r.get('started_at'))}, last heartbeat {_ago(r.get('heartbeat')) or 'never'}"
        )
    if r["status"] == "done":
        return f"finished {_ago(r.get('finished_at'))}"
    return ""


def render(rows: Sequence[dict[str, Any]], *, show: str = "all", width: int | None = None, color: bool = False) -> str:
    """The cells' table (one cell a line), ``""`` when none is shown: at its natural width (``width=None``:
    a file or a pipe, nothing wrapped), or fitted to a terminal's ``width`` (the note wraps, the rest never)."""
    from rich.text import Text

    from eegbench.cli.tables import new_table
    from eegbench.cli.tables import render as render_table

    chosen = [r for r in rows if show == "all" or r["status"] == show]
    if not chosen:
        return ""
    table = new_table()
    for header in ("status", "stage", "fold"):
        table.add_column(header, no_wrap=True)
    for header in ("seed", "ratio"):
        table.add_column(header, no_wrap=True, justify="right")
    table.add_column("cell", no_wrap=True)
    table.add_column("note", overflow="fold", no_wrap=width is None)
    for r in chosen:
        ratio = r.get("training_ratio")
        table.add_row(
            Text(r["status"], style=STYLES.get(r["status"], "")),
            r.get("stage") or "",
            r.get("fold") or "",
            "" if r.get("seed") is None else str(r["seed"]),
            "" if ratio is None else f"{ratio:g}",
            str(r["key"])[:12],
            _note(r),
        )
    return render_table(table, width=width, color=color)


def cmd_status(args: argparse.Namespace) -> int:
    from eegbench.paths import results_dir

    # like `eegbench leaderboard`: without a target, the results directory (--results, $EEGBENCH_RESULTS, ./results)
    target = Path(args.target) if args.target else results_dir(args.results)
    if not target.exists():
        raise EegbenchError(f"{target}: no such spec file or results directory")
    if target.is_dir() or target.suffix == ".sqlite":
        if args.overrides:
            raise EegbenchError("--set applies to a spec, not to a results directory")
        directory = Path(args.results) if args.results else (target if target.is_dir() else target.parent)
        rows = results_status(directory)
        title = f"results in {directory}"
    else:
        directory, rows = spec_status(target, args.results, args.overrides)
        title = f"spec {target} (results in {directory})"
    n = counts(rows)
    if args.json:
        print(json.dumps({"results": str(directory), "counts": n, "cells": rows}, indent=2, default=str))
        return 0
    # stale only when there is some: the line's usual shape stays what scripts already read
    print(f"{title}: {len(rows)} cells: " + ", ".join(f"{n[s]} {s}" for s in STATUSES if s != "stale" or n[s]))
    import shutil

    terminal = sys.stdout.isatty()
    table = render(rows, show=args.show, width=shutil.get_terminal_size().columns if terminal else None, color=terminal)
    if table:
        print(table)
    if n["failed"] or n["pending"] or n["stale"]:
        print("rerun the spec (`eegbench run SPEC`) to run the failed, stale and pending cells only")
    return 0
