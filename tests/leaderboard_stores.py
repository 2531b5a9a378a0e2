"""Realistic results stores of any size for leaderboard tests and benchmarks.

Cells come from ``build_plan`` on the shipped quick spec (4 LOSO folds, a pretrain and two finetune stages,
several seeds) and are written through ``result_rows`` and ``ResultStore.write_cell`` exactly as the runner
writes them, with made-up scores instead of training: one row per (test subject, metric) and three metrics,
so a store of N cells holds 3 N rows. Variants of the spec (``train.lr``, and ``finetune.lr`` over the same
pretraining) make many configurations in one comparison context, as a sweep does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from eegbench.results.store import CellRecord, ResultStore

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"
FOLDS = (1, 2, 3, 4)
SEEDS = (0, 1, 2, 3, 4)
#: cells per variant: 4 folds x (pretrain + 2 finetune ratios) x 5 seeds
CELLS_PER_VARIANT = len(FOLDS) * 3 * len(SEEDS)
METRICS = ("top1", "top3", "top5")


def _context() -> dict:
    return dict(
        dataset="things-eeg-2-synthetic",
        synthetic=True,
        test_split="test",
        n_way=50,
        train_averaging="all",
        test_averaging="all",
        window=None,
        channels=None,
        n_times=64,
        sfreq=100.0,
        standardize=True,
        selection="best-val",
        val_fraction=0.2,
        val_by="image",
        image_encoder="fp",
        image_encoder_random_init=False,
    )


def _variant(i: int) -> dict:
    """The i-th spec variant: 1 in 4 varies only the finetune lr (same pretrain cells as an earlier one)."""
    base = {"variants": [], "seeds": list(SEEDS), "protocol.folds": list(FOLDS)}
    if i % 4 == 3:
        return {**base, "train.lr": 0.001 * (1 + i // 4 * 3), "finetune.lr": 0.0005}
    return {**base, "train.lr": 0.001 * (1 + i // 4 * 3 + i % 4)}


def cell_result(context: dict, scores: list) -> SimpleNamespace:
    """What the engine hands ``result_rows`` for a cell: its scores in ``context``, the rest fixed."""
    return SimpleNamespace(
        context=context,
        scores=scores,
        image_encoder_fingerprint="fp",
        epochs_run=1,
        best_epoch=1,
        wall_seconds=1.0,
        samples_per_second=1.0,
        device="cpu",
        head="linear",
    )


def write_store(directory: str | Path, n_cells: int) -> int:
    """Write ``n_cells`` finished cells into a results store at ``directory``; returns how many rows.

    Pretrain cells shared by two variants are written once (their key is the same), like a rerun that finds
    them stored; a last, partial variant stands for a sweep still running (its rows are not ranked)."""
    from eegbench.interfaces import TaskScore
    from eegbench.planning.plan import build_plan
    from eegbench.runner import result_rows

    store = _UnsyncedStore(directory)
    context = _context()
    written: set[str] = set()
    records = []
    i = 0
    while len(written) < n_cells:
        for cell in build_plan(QUICK, _variant(i)).cells:
            if cell.key in written or len(written) == n_cells:
                continue
            written.add(cell.key)
            lift = 0.2 * cell.training_ratio * (cell.stage == "finetune") + 0.003 * (i % 7) + 0.001 * cell.seed
            scores = [
                TaskScore(
                    subject=s,
                    metrics={m: round(min(1.0, (0.3 + lift + 0.01 * s) * (1 + k)), 6) for k, m in enumerate(METRICS)},
                    chance={m: (1 + 2 * k) / 50 for k, m in enumerate(METRICS)},
                    n_way=50,
                )
                for s in cell.test_subjects
            ]
            result = cell_result(context, scores)
            records.append(
                CellRecord(
                    cell_key=cell.key,
                    rows=result_rows(cell, result),
                    spec_name=cell.spec_name,
                    stage=cell.stage,
                    fold=cell.fold,
                    seed=cell.seed,
                    training_ratio=cell.training_ratio,
                    config=dict(cell.config),
                )
            )
        i += 1
    for record in records:
        store.write_cell(record)
    return sum(len(r.rows) for r in records)


class _UnsyncedStore(ResultStore):
    """The real store without a disk sync per commit: generated stores are test fixtures, and syncing each
    of 6,000 cells takes minutes on a slow disk."""

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with super()._connect() as con:
            con.execute("PRAGMA synchronous=OFF")
            yield con
