"""Which cells are done, running, stale, failed or pending (``eegbench status SPEC|RESULTS``, whose parser and
table are :mod:`eegbench.cli.status`).

The results store is the source of truth (not a scheduler's queue): for a spec, every cell of its plan
is looked up in the store by key, and a cell the store has never seen is ``pending``; for a results
directory, every cell the store knows is listed. Rerunning a spec runs only the cells not ``done``.

``stale``: stored as ``running`` but its owner is gone (its pid no longer exists on this host, or its
heartbeat is older than :data:`eegbench.results.store.STALE_AFTER` seconds): a killed run. Not done; a rerun
claims and runs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegbench.errors import EegbenchError

if TYPE_CHECKING:
    from eegbench.results.store import ResultStore

STATUSES: tuple[str, ...] = ("done", "running", "stale", "failed", "pending")

#: fields of each row :func:`spec_status` and :func:`results_status` return
FIELDS: tuple[str, ...] = (
    "key",
    "status",
    "spec_name",
    "stage",
    "fold",
    "seed",
    "training_ratio",
    "error",
    "host",
    "pid",
    "started_at",
    "finished_at",
    "heartbeat",
)


def _store_at(directory: Path) -> ResultStore | None:
    from eegbench.results.store import DB_NAME, ResultStore

    if not (directory / DB_NAME).exists():
        return None
    return ResultStore(directory, read_only=True)  # a reading command: never writes, works on read-only stores


def _live_status(record: dict[str, Any]) -> str:
    """The stored status, with ``running`` read as ``stale`` when its owner is gone."""
    from eegbench.results.store import owner_state

    status = str(record["status"])
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


def spec_status(
    spec: Any, results: str | os.PathLike[str] | None = None, overrides: Iterable[str] | None = None
) -> tuple[Path, list[dict[str, Any]]]:
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
        rows.append(
            _row(
                cell.key,
                status,
                record,
                spec_name=cell.spec_name,
                stage=cell.stage,
                fold=cell.fold,
                seed=cell.seed,
                training_ratio=cell.training_ratio,
            )
        )
    return directory, rows


def results_status(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Status of every cell a results directory's store knows (ordered by spec, stage, fold, seed, ratio)."""
    directory = Path(directory)
    store = _store_at(directory)
    if store is None:
        raise EegbenchError(
            f"{directory}: no results database here (expected results.sqlite; pass a spec or "
            "the results directory a run wrote)"
        )
    rows = [_row(c["cell_key"], _live_status(c), {**c, "key": c["cell_key"]}) for c in store.cells()]
    # a fold's pretrain cell before its finetune cells (the store orders stages alphabetically)
    rows.sort(
        key=lambda r: (
            r["spec_name"] or "",
            r["fold"] or "",
            r["seed"] if r["seed"] is not None else -1,
            r["stage"] != "pretrain",
            r["training_ratio"] or 0.0,
            r["key"],
        )
    )
    return rows


def counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``{status: number of cells}`` for every status in :data:`STATUSES`."""
    out = {s: 0 for s in STATUSES}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out
