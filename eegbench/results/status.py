"""``eegbench status SPEC|RESULTS``: which cells are done, running, stale, failed or pending.

The results store is the source of truth (not a scheduler's queue): for a spec, every cell of its plan
is looked up in the store by key, and a cell the store has never seen is ``pending``; for a results
directory, every cell the store knows is listed. Rerunning a spec runs only the cells not ``done``.

``stale``: stored as ``running`` but its owner is gone (its pid no longer exists on this host, or its
heartbeat is older than :data:`eegbench.results.store.STALE_AFTER` seconds): a killed run. Not done; a rerun
claims and runs it.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from eegbench.errors import EegbenchError

STATUSES: tuple[str, ...] = ("done", "running", "stale", "failed", "pending")

#: fields of each row :func:`cell_status_rows` returns
FIELDS: tuple[str, ...] = ("key", "status", "spec_name", "stage", "fold", "seed", "training_ratio", "error", "host",
                           "pid", "started_at", "finished_at", "heartbeat")


def _store_at(directory: Path):
    from eegbench.results.store import DB_NAME, ResultStore

    if not (directory / DB_NAME).exists():
        return None
    return ResultStore(directory, read_only=True)  # a reading command: never writes, works on read-only stores


def _live_status(record: dict[str, Any]) -> str:
    """The stored status, with ``running`` read as ``stale`` when its owner is gone."""
    from eegbench.results.store import owner_state

    status = record["status"]
    if status == "running" and owner_state(record) == "stale":
        return "stale"
    return status


def _row(key: str, status: str, record: dict[str, Any] | None, **known: Any) -> dict[str, Any]:
    record = record or {}
    row = {f: record.get(f) for f in FIELDS}
    row.update({k: v for k, v in known.items() if v is not None})
    row["key"], row["status"] = key, status
    if status != "failed":
        row["error"] = None
    return row


def spec_status(spec: Any, results: str | os.PathLike | None = None,
                overrides: Iterable[str] | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Status of every cell of a spec's plan: ``(results_dir, rows)`` in plan order.

    ``results`` overrides the spec's ``[paths] results`` (then ``EEGBENCH_RESULTS``, then ``./results``).
    """
    from eegbench.paths import results_dir
    from eegbench.planning.plan import build_plan

    plan = build_plan(spec, list(overrides) if overrides else None)
    directory = results_dir(results or plan.spec.paths.results or None)
    store = _store_at(directory)
    records = {c["cell_key"]: c for c in store.cells()} if store is not None else {}
    rows = []
    for cell in plan.cells:
        record = records.get(cell.key)
        status = _live_status(record) if record else "pending"
        rows.append(_row(cell.key, status, record, spec_name=cell.spec_name, stage=cell.stage, fold=cell.fold,
                         seed=cell.seed, training_ratio=cell.training_ratio))
    return directory, rows


def results_status(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """Status of every cell a results directory's store knows (ordered by spec, stage, fold, seed, ratio)."""
    directory = Path(directory)
    store = _store_at(directory)
    if store is None:
        raise EegbenchError(f"{directory}: no results database here (expected results.sqlite; pass a spec or "
                            "the results directory a run wrote)")
    rows = [_row(c["cell_key"], _live_status(c), {**c, "key": c["cell_key"]}) for c in store.cells()]
    # a fold's pretrain cell before its finetune cells (the store orders stages alphabetically)
    rows.sort(key=lambda r: (r["spec_name"] or "", r["fold"] or "", r["seed"] if r["seed"] is not None else -1,
                             r["stage"] != "pretrain", r["training_ratio"] or 0.0, r["key"]))
    return rows


def counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``{status: number of cells}`` for every status in :data:`STATUSES`."""
    out = {s: 0 for s in STATUSES}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    s = max(0.0, time.time() - ts)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}min ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def render(rows: Sequence[dict[str, Any]], *, show: str = "all") -> str:
    """A plain-text table (one cell a line); failed cells carry their error, running and stale ones host/pid."""
    from eegbench.text import text_table

    chosen = [r for r in rows if show == "all" or r["status"] == show]
    if not chosen:
        return ""
    table = []
    for r in chosen:
        ratio = r.get("training_ratio")
        if r["status"] == "failed":
            note = (r.get("error") or "no message").replace("\n", " ")[:300]
        elif r["status"] == "running":
            note = f"on {r.get('host') or '?'} pid {r.get('pid') or '?'}, started {_ago(r.get('started_at'))}"
        elif r["status"] == "stale":
            note = (f"owner gone: was on {r.get('host') or '?'} pid {r.get('pid') or '?'}, started "
                    f"{_ago(r.get('started_at'))}, last heartbeat {_ago(r.get('heartbeat')) or 'never'}")
        elif r["status"] == "done":
            note = f"finished {_ago(r.get('finished_at'))}"
        else:
            note = ""
        table.append([r["status"], r.get("stage") or "", r.get("fold") or "",
                      "" if r.get("seed") is None else str(r["seed"]), "" if ratio is None else f"{ratio:g}",
                      str(r["key"])[:12], note])
    return text_table(table, ["status", "stage", "fold", "seed", "ratio", "cell", "note"])


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
    table = render(rows, show=args.show)
    if table:
        print(table)
    if n["failed"] or n["pending"] or n["stale"]:
        print("rerun the spec (`eegbench run SPEC`) to run the failed, stale and pending cells only")
    return 0


def add_commands(sub) -> None:
    """Register ``eegbench status`` on the top-level subparsers."""
    p = sub.add_parser("status", help="list a spec's or results directory's cells: done, running, stale, failed, pending")
    p.add_argument("target", nargs="?", metavar="SPEC|RESULTS",
                   help="a benchmark spec (.toml) or a results directory (default: the results directory, as for "
                        "`eegbench leaderboard`: --results, $EEGBENCH_RESULTS or ./results)")
    p.add_argument("--results", metavar="DIR",
                   help="results directory (default: the spec's [paths] results, $EEGBENCH_RESULTS, ./results)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value, as for `eegbench run` (repeatable)")
    p.add_argument("--show", choices=("all", *STATUSES), default="all", help="list only cells with this status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
