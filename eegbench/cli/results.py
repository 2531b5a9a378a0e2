"""``eegbench leaderboard`` and ``eegbench export``: the parsers, and handlers that read the results
directories given and pass them to the core: :func:`eegbench.results.leaderboard.build` →
:func:`eegbench.results.report.render` (→ :func:`eegbench.results.plots.make_plots`), and
:func:`eegbench.results.export.result_rows` → :func:`~eegbench.results.export.write_rows`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from eegbench.errors import EegbenchError


def _results_parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A result command's parser: it reads the results directories given (``RESULTS ...``)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    p.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="results directories to merge (default: $EEGBENCH_RESULTS or ./results)",
    )
    return p


def add_commands(sub: Any) -> None:
    """Register ``eegbench leaderboard`` and ``eegbench export`` on the top-level subparsers."""
    from eegbench.results.leaderboard import DEFAULT_BY, FORMATS

    p = _results_parser(
        sub,
        "leaderboard",
        help="tables, statistics and plots from results directories",
        description="One row per configuration, one column per protocol / stage / training ratio; each cell "
        "mean ± std over test subjects and seeds with n. Rows of different comparison contexts are "
        "never ranked together.",
    )
    p.add_argument("--metric", default="top1", help="metric to rank (default top1)")
    p.add_argument(
        "--by",
        default=",".join(DEFAULT_BY),
        help="result columns that name a configuration (default backbone,image_encoder,loss); rows "
        "whose resolved configs (recipes) differ are never merged",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: from --out's suffix, else md); rows = the raw per-subject, "
        "per-seed result rows as CSV (as `eegbench export`)",
    )
    p.add_argument("--out", metavar="FILE", help="write the table here instead of standard output")
    p.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    rep = p.add_mutually_exclusive_group()
    rep.add_argument(
        "--reported",
        metavar="FILE",
        help="published numbers to show as reference rows (default: $EEGBENCH_REPORTED, else the file a "
        "plugin provides: the papers plugin's reported.toml)",
    )
    rep.add_argument("--no-reported", action="store_true", help="show no published numbers")
    p.set_defaults(func=cmd_leaderboard)

    p = _results_parser(
        sub,
        "export",
        help="the raw per-subject, per-seed result rows as CSV or Parquet (as MOABB's data.csv)",
        description="One line per (cell, test subject, metric): spec, components and their parameters, context "
        "(dataset, n-way, test averaging), configuration label, protocol, fold, subject, seed, stage, "
        "training ratio, metric, value (a fraction, 6 significant digits) and chance.",
    )
    p.add_argument("--out", metavar="FILE", help="write rows.csv or rows.parquet (default: CSV on standard output)")
    p.add_argument(
        "--by",
        default=None,
        help="result columns that name a configuration, as for `eegbench leaderboard` "
        "(default backbone,image_encoder,loss)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from eegbench.paths import results_dir
    from eegbench.results.export import EXPORT_SUFFIXES, result_rows, rows_csv, write_rows

    if args.out and Path(args.out).suffix.lower() not in EXPORT_SUFFIXES:  # before any reading
        raise EegbenchError(
            f"--out {args.out}: unknown suffix {Path(args.out).suffix or '(none)'!r}; use .csv or .parquet"
        )
    frame = result_rows(args.results or [results_dir()], by=args.by)
    if args.out:
        out = write_rows(frame, args.out)
        print(f"wrote {len(frame)} rows to {out}", file=sys.stderr)
    else:
        sys.stdout.write(rows_csv(frame))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from eegbench.paths import results_dir
    from eegbench.results.export import result_rows, rows_csv, write_rows
    from eegbench.results.leaderboard import FORMATS, SUFFIX_FORMATS, build
    from eegbench.results.report import render

    fmt = args.format
    if fmt is None and args.out:
        suffix = Path(args.out).suffix.lower()
        fmt = SUFFIX_FORMATS.get(suffix)
        if fmt is None:
            raise EegbenchError(
                f"--out {args.out}: unknown suffix {suffix or '(none)'!r}; use one of "
                f"{' '.join(SUFFIX_FORMATS)} or pass --format {'|'.join(FORMATS)}"
            )
    fmt = fmt or "md"
    dirs = args.results or [results_dir()]
    reported: str | bool | None = False if args.no_reported else args.reported
    if fmt == "rows":  # the raw rows (every metric), not the summary table
        frame = result_rows(dirs, by=args.by)
        if not args.out:
            return _emit(rows_csv(frame), None, fmt)
        print(f"wrote {len(frame)} result rows to {write_rows(frame, args.out)}", file=sys.stderr)
        return 0
    board = build(dirs, metric=args.metric, by=args.by, reported=reported)
    plots = None
    if args.plots or fmt == "html":
        from eegbench.results.plots import make_plots

        plots = make_plots(board, args.plots)
        if args.plots:
            print(f"wrote {len(plots)} plot(s) to {args.plots}", file=sys.stderr)
    return _emit(render(board, fmt, plots=plots), args.out, fmt)


def _emit(text: str, out_path: str | None, fmt: str) -> int:
    if out_path:
        out = Path(out_path).expanduser()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise EegbenchError(f"cannot write {out}: {exc.strerror or exc}") from exc
        print(f"wrote {fmt} leaderboard to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
