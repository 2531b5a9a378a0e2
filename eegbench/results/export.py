"""The raw result rows as one tidy table, as MOABB's ``data.csv``: one line per (cell, test subject, metric)
with its spec, components, context, protocol, fold, subject, seed, stage, ratio, value and chance.

``eegbench export RESULTS --out rows.csv|rows.parquet`` and ``eegbench leaderboard RESULTS --format rows``
write it; :func:`result_rows` returns it as a pandas DataFrame. Scores are fractions rounded to 6
significant digits (:data:`eegbench.results.report.SIGNIFICANT_DIGITS`); component parameters are JSON strings.
Each row also carries its leaderboard configuration (``config``, ``config_id``) so the rows join the table.
The commands' parsers are :mod:`eegbench.cli.results`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegbench.errors import EegbenchError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: the columns of :func:`result_rows`, in order (``subject`` is the test subject; ``spec`` the spec's name)
ROW_COLUMNS = (
    "spec",
    "dataset",
    "synthetic",
    "n_way",
    "test_averaging",
    "backbone",
    "backbone_params",
    "image_encoder",
    "image_encoder_params",
    "loss",
    "loss_params",
    "task",
    "config",
    "protocol",
    "fold",
    "subject",
    "seed",
    "stage",
    "training_ratio",
    "metric",
    "value",
    "chance",
    "epochs_run",
    "best_epoch",
    "wall_seconds",
    "device",
    "created_at",
    "context_key",
    "config_id",
    "cell_key",
    "spec_hash",
    "results_dir",
)
EXPORT_SUFFIXES = (".csv", ".parquet")


def result_rows(
    results_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    *,
    rows: pd.DataFrame | None = None,
    by: Sequence[str] | str | None = None,
) -> pd.DataFrame:
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
    out = pd.DataFrame(
        {
            "spec": df["spec_name"],
            "dataset": df["dataset"],
            "synthetic": ctx.map(lambda c: c.get("synthetic")),
            "n_way": ctx.map(lambda c: c.get("n_way")),
            "test_averaging": ctx.map(lambda c: c.get("test_averaging")),
        }
    )
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
        out[col] = df.get(col)
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
        return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def rows_csv(frame: pd.DataFrame) -> str:
    return str(frame.to_csv(index=False))


def write_rows(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
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
                raise EegbenchError(
                    f"--out {path}: writing Parquet needs pyarrow (pip install pyarrow), or write .csv"
                ) from exc
    except OSError as exc:
        raise EegbenchError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out
