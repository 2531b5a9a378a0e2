"""The raw result rows as one tidy table, as MOABB's ``data.csv``: one line per (cell, test subject, metric)
with its spec, components, context, protocol, fold, subject, seed, stage, ratio, value and chance.

``eegbench export RESULTS --out rows.csv|rows.parquet`` and ``eegbench leaderboard RESULTS --format rows``
write it; :func:`result_rows` returns it as a pandas DataFrame. Scores are fractions rounded to 6
significant digits (:data:`eegbench.results.report.SIGNIFICANT_DIGITS`); component parameters are JSON strings.
Each row also carries its leaderboard configuration (``config``, ``config_id``) so the rows join the table.

The result commands live here: ``eegbench export`` and ``eegbench leaderboard`` (build → render → plots),
above :mod:`eegbench.results.leaderboard`, :mod:`eegbench.results.report` and :mod:`eegbench.results.plots`, which import no command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from eegbench.errors import EegbenchError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: the columns of :func:`result_rows`, in order (``subject`` is the test subject; ``spec`` the spec's name)
ROW_COLUMNS = (
    "spec", "dataset", "synthetic", "n_way", "test_averaging", "backbone", "backbone_params", "image_encoder",
    "image_encoder_params", "loss", "loss_params", "task", "config", "protocol", "fold", "subject", "seed", "stage",
    "training_ratio", "metric", "value", "chance", "epochs_run", "best_epoch", "wall_seconds", "device",
    "created_at", "context_key", "config_id", "cell_key", "spec_hash", "results_dir",
)
EXPORT_SUFFIXES = (".csv", ".parquet")


def result_rows(results_dirs: str | os.PathLike | Iterable[str | os.PathLike] | None = None, *,
                rows: "pd.DataFrame | None" = None, by: Sequence[str] | str | None = None) -> "pd.DataFrame":
    """Every stored result row of the given results directories (default: the results directory), merged as
    the leaderboard merges them, one line per (cell, test subject, metric), with the columns of
    :data:`ROW_COLUMNS`. ``by`` names the configurations as ``eegbench leaderboard --by`` does."""
    import pandas as pd

    from eegbench.results.leaderboard import DEFAULT_BY, STAGE_ORDER, build, load_results
    from eegbench.results.report import round_sig

    if rows is None:
        if results_dirs is None:
            from eegbench.paths import results_dir

            results_dirs = [results_dir()]
        rows = load_results(results_dirs)
    parts = []
    for metric in sorted(set(rows["metric"].dropna().astype(str))):
        # the leaderboard's own grouping names each row's configuration (one metric at a time)
        board = build(rows=rows, metric=metric, by=by or DEFAULT_BY, reported=False)
        parts.append(board.rows)
    df = pd.concat(parts, ignore_index=True)
    ctx = df["context"].map(lambda c: c if isinstance(c, dict) else {})
    out = pd.DataFrame({
        "spec": df["spec_name"], "dataset": df["dataset"],
        "synthetic": ctx.map(lambda c: c.get("synthetic")), "n_way": ctx.map(lambda c: c.get("n_way")),
        "test_averaging": ctx.map(lambda c: c.get("test_averaging")),
    })
    for col in ("backbone", "image_encoder", "loss"):
        out[col] = df[col]
        out[col + "_params"] = df[col + "_params"].map(_json)
    out["task"] = df["task"]
    out["config"] = df["config"]
    for col in ("protocol", "fold"):
        out[col] = df[col]
    out["subject"] = df["test_subject"].astype(int)
    out["seed"] = df["seed"].astype(int)
    out["stage"] = df["stage"]
    out["training_ratio"] = df["training_ratio"].astype(float).map(round_sig)
    out["metric"] = df["metric"]
    out["value"] = df["value"].astype(float).map(round_sig)
    out["chance"] = pd.to_numeric(df["chance"], errors="coerce").map(round_sig)
    for col in ("epochs_run", "best_epoch"):
        out[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    out["wall_seconds"] = pd.to_numeric(df["wall_seconds"], errors="coerce").map(lambda v: round_sig(v, 4))
    out["device"] = df["device"]
    out["created_at"] = pd.to_numeric(df["created_at"], errors="coerce").map(_iso)
    for col in ("context_key", "config_id", "cell_key", "spec_hash", "results_dir"):
        out[col] = df[col] if col in df else None
    out = out[list(ROW_COLUMNS)]
    # pretrain before finetune, ratios ascending, then subject, seed, metric
    stage_rank = out["stage"].map(lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER))
    order = ["context_key", "config", "protocol", "_stage", "training_ratio", "subject", "seed", "metric"]
    out = out.assign(_stage=stage_rank).sort_values(order, kind="stable").drop(columns="_stage")
    return out.reset_index(drop=True)


def _json(value: Any) -> str:
    return json.dumps(value if isinstance(value, dict) else {}, sort_keys=True, default=str)


def _iso(ts: Any) -> str:
    try:
        if ts != ts:  # nan
            return ""
        return datetime.fromtimestamp(float(ts), timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def rows_csv(frame: "pd.DataFrame") -> str:
    return frame.to_csv(index=False)


def write_rows(frame: "pd.DataFrame", path: str | os.PathLike) -> Path:
    """Write the rows to ``path``: ``.csv``, or ``.parquet`` (needs pyarrow or fastparquet)."""
    out = Path(path).expanduser()
    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise EegbenchError(f"--out {path}: unknown suffix {suffix or '(none)'!r}; use .csv or .parquet")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            out.write_text(rows_csv(frame), encoding="utf-8")
        else:
            try:
                frame.to_parquet(out, index=False)
            except ImportError as exc:
                raise EegbenchError(f"--out {path}: writing Parquet needs pyarrow (pip install pyarrow), or "
                                    "write .csv") from exc
    except OSError as exc:
        raise EegbenchError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out


def _results_parser(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A result command's parser: it reads the results directories given (``RESULTS ...``)."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("results", nargs="*", metavar="RESULTS",
                   help="results directories to merge (default: $EEGBENCH_RESULTS or ./results)")
    return p


def _add_export_command(sub) -> None:
    """Register ``eegbench export`` on the top-level subparsers."""
    p = _results_parser(
        sub, "export", help="the raw per-subject, per-seed result rows as CSV or Parquet (as MOABB's data.csv)",
        description="One line per (cell, test subject, metric): spec, components and their parameters, context "
                    "(dataset, n-way, test averaging), configuration label, protocol, fold, subject, seed, stage, "
                    "training ratio, metric, value (a fraction, 6 significant digits) and chance.",
    )
    p.add_argument("--out", metavar="FILE", help="write rows.csv or rows.parquet (default: CSV on standard output)")
    p.add_argument("--by", default=None,
                   help="result columns that name a configuration, as for `eegbench leaderboard` "
                        "(default backbone,image_encoder,loss)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from eegbench.paths import results_dir

    if args.out and Path(args.out).suffix.lower() not in EXPORT_SUFFIXES:  # before any reading
        raise EegbenchError(f"--out {args.out}: unknown suffix {Path(args.out).suffix or '(none)'!r}; "
                            "use .csv or .parquet")
    frame = result_rows(args.results or [results_dir()], by=args.by)
    if args.out:
        out = write_rows(frame, args.out)
        print(f"wrote {len(frame)} rows to {out}", file=sys.stderr)
    else:
        sys.stdout.write(rows_csv(frame))
    return 0


# --------------------------------------------------------------------------------------------------
# the command line: `eegbench leaderboard` (its command lives here, above leaderboard, report and plots,
# so none of those imports another's command) and `eegbench export`
# --------------------------------------------------------------------------------------------------
def add_commands(sub) -> None:
    """Register ``eegbench leaderboard`` and ``eegbench export`` on the top-level subparsers."""
    from eegbench.results.leaderboard import DEFAULT_BY, FORMATS

    p = _results_parser(
        sub, "leaderboard", help="tables, statistics and plots from results directories",
        description="One row per configuration, one column per protocol / stage / training ratio; each cell "
                    "mean ± std over test subjects and seeds with n. Rows of different comparison contexts are "
                    "never ranked together.",
    )
    p.add_argument("--metric", default="top1", help="metric to rank (default top1)")
    p.add_argument("--by", default=",".join(DEFAULT_BY),
                   help="result columns that name a configuration (default backbone,image_encoder,loss); rows "
                        "whose resolved configs (recipes) differ are never merged")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: from --out's suffix, else md); rows = the raw per-subject, "
                        "per-seed result rows as CSV (as `eegbench export`)")
    p.add_argument("--out", metavar="FILE", help="write the table here instead of standard output")
    p.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    rep = p.add_mutually_exclusive_group()
    rep.add_argument("--reported", metavar="FILE",
                     help="published numbers to show as reference rows (default: $EEGBENCH_REPORTED, else the file a "
                          "plugin provides: the papers plugin's reported.toml)")
    rep.add_argument("--no-reported", action="store_true", help="show no published numbers")
    p.set_defaults(func=cmd_leaderboard)
    _add_export_command(sub)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from eegbench.results.leaderboard import FORMATS, SUFFIX_FORMATS, build
    from eegbench.paths import results_dir
    from eegbench.results.report import render

    fmt = args.format
    if fmt is None and args.out:
        suffix = Path(args.out).suffix.lower()
        fmt = SUFFIX_FORMATS.get(suffix)
        if fmt is None:
            raise EegbenchError(f"--out {args.out}: unknown suffix {suffix or '(none)'!r}; use one of "
                                f"{' '.join(SUFFIX_FORMATS)} or pass --format {'|'.join(FORMATS)}")
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
