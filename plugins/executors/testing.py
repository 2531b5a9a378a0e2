"""A stand-in cell and runner for testing executors (ours and third parties') without training anything.

:class:`FakeRunner` follows the CellRunner contract: picklable, has ``results_dir``, writes the
cell's rows to the store itself (``mark_running`` then ``write_cell`` or ``mark_failed``) and returns a
``CellOutcome``. Its metric is a pure function of the cell (key and seed), so a run through any executor
must store exactly the rows of a sequential run. It lives in the package (not in tests/) so worker
processes, Slurm jobs and Ray tasks can import it by name.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from eegbench.results.store import CellRecord, ResultStore

from ._core import outcome


@dataclass(frozen=True)
class FakeCell:
    """What an executor reads of a cell (the ``CellLike`` contract of :mod:`eegbench.interfaces`)."""

    key: str
    stage: str = "pretrain"
    fold: str = "sub-01"
    seed: int = 0
    training_ratio: float = 1.0
    depends_on: tuple[str, ...] = ()
    spec_name: str = "fake"
    protocol: str = "intra"
    test_subject: int | None = 1
    train_subjects: tuple[int, ...] = (1,)
    config: dict = field(default_factory=dict, hash=False, compare=False)

    def label(self) -> str:
        """As :meth:`eegbench.planning.recipe.Cell.label` names a cell."""
        ratio = f" ratio={self.training_ratio:g}" if self.stage == "finetune" else ""
        return f"{self.stage} {self.fold} seed={self.seed}{ratio}"


def fake_metric(cell: Any) -> float:
    """Deterministic value in [0, 1) from the cell's key and seed."""
    digest = hashlib.sha256(f"{cell.key}/{cell.seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


@dataclass
class FakeRunner:
    """Writes one ``top1`` row per cell; fails cells whose key is in ``fail_keys`` with ``ValueError``.

    ``raise_keys`` cells raise out of the runner instead (an uncaught error the executor must record).
    ``crash_keys`` cells kill their worker process (``os._exit``), as an out-of-memory kill would.
    A dependent cell checks that its dependencies are done in the store when it starts.
    """

    results_dir: str
    fail_keys: frozenset = frozenset()
    raise_keys: frozenset = frozenset()
    crash_keys: frozenset = frozenset()
    force: bool = False
    sleep: float = 0.0
    device: str = "cpu"

    def __call__(self, cell: Any) -> Any:
        start = time.perf_counter()
        store = ResultStore(self.results_dir)
        if not self.force and store.is_done(cell.key):
            return outcome(cell.key, "skipped", None, 0.0)
        if cell.key in self.raise_keys:
            raise RuntimeError(f"fake runner exploded on {cell.key}")
        if cell.key in self.crash_keys:
            store.mark_running(cell.key, stage=cell.stage, fold=cell.fold, seed=cell.seed)
            os._exit(3)
        store.mark_running(
            cell.key,
            spec_name=cell.spec_name,
            stage=cell.stage,
            fold=cell.fold,
            seed=cell.seed,
            training_ratio=cell.training_ratio,
        )
        try:
            status = store.cell_status(cell.depends_on)
            not_done = [d for d in cell.depends_on if status.get(d) != "done"]
            if not_done:
                raise RuntimeError(f"started before its dependency {not_done[0]} was done")
            if cell.key in self.fail_keys:
                raise ValueError(f"test backbone refused cell {cell.key}")
            if self.sleep:
                time.sleep(self.sleep)
            row = {
                "spec_name": cell.spec_name,
                "protocol": cell.protocol,
                "fold": cell.fold,
                "stage": cell.stage,
                "test_subject": cell.test_subject,
                "train_subjects": list(cell.train_subjects),
                "seed": cell.seed,
                "training_ratio": cell.training_ratio,
                "metric": "top1",
                "value": fake_metric(cell),
                "chance": 0.005,
                "device": f"pid-{os.getpid()}",
            }
            store.write_cell(
                CellRecord(
                    cell.key,
                    [row],
                    spec_name=cell.spec_name,
                    stage=cell.stage,
                    fold=cell.fold,
                    seed=cell.seed,
                    training_ratio=cell.training_ratio,
                )
            )
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            store.mark_failed(cell.key, message)
            return outcome(cell.key, "failed", message, time.perf_counter() - start)
        return outcome(cell.key, "done", None, time.perf_counter() - start)


def fake_plan(n_folds: int = 2, seeds: tuple[int, ...] = (0,), finetune: bool = True) -> list[FakeCell]:
    """Pretrain cells per (fold, seed), each followed by a finetune cell depending on it."""
    cells = []
    for fold in range(1, n_folds + 1):
        for seed in seeds:
            pre = FakeCell(
                key=f"pre-{fold}-{seed}", stage="pretrain", fold=f"sub-{fold:02d}", seed=seed, test_subject=fold
            )
            cells.append(pre)
            if finetune:
                cells.append(
                    FakeCell(
                        key=f"fin-{fold}-{seed}",
                        stage="finetune",
                        fold=f"sub-{fold:02d}",
                        seed=seed,
                        training_ratio=0.5,
                        depends_on=(pre.key,),
                        test_subject=fold,
                    )
                )
    return cells
