"""What every executor shares: dependency bookkeeping against the results store, and the picklable
functions a worker (process, Slurm job, Ray task) runs.

The results store is the source of truth, never the scheduler: before anything is submitted the
:class:`Scheduler` reads each cell's status from ``ResultStore(runner.results_dir)``; cells already
``done`` are not run again (unless ``runner.force`` is true), and a dependency outside the given cells
counts as met only when the store says it is done. A cell the runner skipped because another live
process runs it (outcome ``skipped`` with a note) does not meet its dependents: they are skipped too,
with a note, and left to that process (or a rerun). A cell whose dependency failed is recorded failed
in the store with a message naming the dependency, so ``eegbench status`` shows why it never ran.

Light on purpose: imports nothing heavy (the plugin list imports this package's ``__init__`` only).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eegbench.errors import EegbenchError
from eegbench.interfaces import CellLike, CellOutcome, CellRunner, GroupingRunner


def outcome(key: str, status: str, error: str | None = None, seconds: float = 0.0) -> CellOutcome:
    """A ``CellOutcome`` built by an executor (for cells it never handed to the runner)."""
    return CellOutcome(key=key, status=status, error=error, seconds=seconds)


def describe(cell: CellLike) -> str:
    """``pretrain sub-03 seed=0 [1a2b3c4d5e6f]``: the cell's label (as the runner's messages name it) and
    the start of its key."""
    return f"{cell.label()} [{str(cell.key)[:12]}]"


def store_of(runner: CellRunner):
    """The runner's results store (``runner.results_dir``, the CellRunner contract)."""
    from eegbench.results.store import ResultStore

    return ResultStore(runner.results_dir)


def record_failed(store: Any, cell: CellLike, message: str) -> bool:
    """Record ``cell`` failed, with its stage/fold/seed so ``eegbench status`` can name it.

    ``mark_failed`` alone stores only the key for a cell that never started (a failed dependency, a
    runner that raised first thing); claiming it first writes the cell's description. A cell already
    done is left as it is (as ``mark_failed`` leaves it). A cell running in another live process is left
    to it (it records its own outcome): returns False then, else True.
    """
    holder = store.claim(
        cell.key,
        spec_name=cell.spec_name or "",
        stage=cell.stage or "",
        fold=cell.fold or "",
        seed=cell.seed,
        training_ratio=cell.training_ratio,
        config=dict(cell.config or {}),
    )
    if holder is not None and holder["status"] == "running":
        return False
    store.mark_failed(cell.key, message)
    return True


def error_text(exc: BaseException) -> str:
    """``Type: message`` plus the innermost traceback frame (kept short: it is stored per cell)."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


# --------------------------------------------------------------------------------------------------
# worker-side functions (module level, so they pickle by reference in every backend)
# --------------------------------------------------------------------------------------------------
def run_cell(runner: CellRunner, cell: CellLike) -> CellOutcome:
    """Run one cell; an exception escaping the runner is recorded failed here and never propagates.

    The runner normally records its own failures (the CellRunner contract); this is the safety net for errors it
    did not catch, so a cell's failure never stops the other cells.
    """
    start = time.perf_counter()
    try:
        return runner(cell)
    except Exception as exc:
        message = error_text(exc)
        try:
            record_failed(store_of(runner), cell, message)
        except Exception as store_exc:
            message += f"; and recording it failed: {store_exc}"
        return outcome(cell.key, "failed", message, time.perf_counter() - start)


def batch_groups(runner: CellRunner, cells: Sequence[CellLike]) -> list[list[CellLike]]:
    """``cells`` in the groups the runner trains as one stacked model (one cell each for a runner that cannot)."""
    if isinstance(runner, GroupingRunner):
        return [list(g) for g in runner.groups(cells)]
    return [[cell] for cell in cells]


def run_group(runner: CellRunner, cells: Sequence[CellLike]) -> list[CellOutcome]:
    """Run one group of cells trained together (:func:`batch_groups`); as :func:`run_cell`, an exception escaping
    the runner is recorded here (each cell of the group not already done is failed) and never propagates."""
    if len(cells) == 1 or not isinstance(runner, GroupingRunner):
        return [run_cell(runner, cell) for cell in cells]
    start = time.perf_counter()
    try:
        return list(runner.run_group(cells))
    except Exception as exc:
        message = error_text(exc)
        store = store_of(runner)
        status = store.cell_status([c.key for c in cells])
        out = []
        for cell in cells:
            if status.get(cell.key) == "done":
                out.append(outcome(cell.key, "done", None, 0.0))
                continue
            try:
                record_failed(store, cell, message)
            except Exception as store_exc:
                message += f"; and recording it failed: {store_exc}"
            out.append(outcome(cell.key, "failed", message, time.perf_counter() - start))
        return out


def run_pack(runner: CellRunner, cells: Sequence[CellLike]) -> list[CellOutcome]:
    """Run several independent cells in one worker (cell packing), in the groups the runner trains as one
    (:func:`batch_groups`); outcomes in ``cells`` order.

    Each cell's result is the one it has alone (batching never changes a result), so packing amortises
    start-up (imports, CUDA context, cached data) and batching the training steps without changing any cell.
    """
    by_key: dict[str, CellOutcome] = {}
    for group in batch_groups(runner, cells):
        for result in run_group(runner, group):
            by_key[result.key] = result
    return [by_key[cell.key] for cell in cells]


def pack_key(cell: CellLike) -> str:
    """Cells with equal keys share shapes (same stage and components): packing groups them together."""
    from eegbench.interfaces import stable_hash

    config = cell.config or {}
    shape = {k: config.get(k) for k in ("dataset", "backbone", "image_encoder", "loss", "data", "prep") if k in config}
    return stable_hash([cell.stage, shape])


def packs(cells: Sequence[CellLike], per_job: int) -> list[list[CellLike]]:
    """Chunks of at most ``per_job`` cells, each chunk of one :func:`pack_key` (order otherwise kept)."""
    groups: dict[str, list[Any]] = {}
    for cell in cells:
        groups.setdefault(pack_key(cell), []).append(cell)
    out: list[list[Any]] = []
    for group in groups.values():
        out += [group[i : i + per_job] for i in range(0, len(group), per_job)]
    return out


# --------------------------------------------------------------------------------------------------
# the dependency tracker every executor drives
# --------------------------------------------------------------------------------------------------
class Scheduler:
    """Tracks which cells may start, given ``depends_on`` and the results store.

    An executor loops: ``take_ready()`` → run those cells anywhere → ``finish(outcome)`` for each, until
    ``take_ready()`` is empty and nothing is in flight; then ``outcomes()`` gives the outcomes in cells
    order. Finishing a cell as failed fails its dependents (recorded in the store) at once.
    """

    def __init__(self, cells: Sequence[CellLike], runner: CellRunner):
        self.cells = list(cells)
        keys = [c.key for c in self.cells]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise EegbenchError(f"cell {dup} is listed twice; an executor runs each cell once")
        self.by_key = {c.key: c for c in self.cells}
        self.store = store_of(runner)
        self.force = bool(runner.force)
        self._outcomes: dict[str, Any] = {}
        self._started: set[str] = set()
        external = {d for c in self.cells for d in c.depends_on if d not in self.by_key}
        status = self.store.cell_status(list(self.by_key) + sorted(external))
        self._external_done = {d for d in external if status.get(d) == "done"}
        self._external_status = {d: status.get(d, "not run") for d in external}
        if not self.force:
            for key in self.by_key:
                if status.get(key) == "done":
                    self._outcomes[key] = outcome(key, "skipped", None, 0.0)
                    self._started.add(key)

    # -- queries ---------------------------------------------------------------------------------------
    @property
    def todo(self) -> list[CellLike]:
        """Cells not finished and not started."""
        return [c for c in self.cells if c.key not in self._started]

    def _dep_ok(self, key: str) -> bool | None:
        """True when a dependency is met, False when it failed, None while it is still to come."""
        if key in self.by_key:
            got = self._outcomes.get(key)
            if got is None:
                return None
            # a cell skipped because another process runs it is not met here: that process runs its dependents
            return got.status == "done" or (got.status == "skipped" and not got.error)
        return key in self._external_done

    def take_ready(self) -> list[CellLike]:
        """Cells whose dependencies are all met, now marked started (each is returned once)."""
        ready = []
        for cell in self.cells:
            if cell.key in self._started:
                continue
            deps = [self._dep_ok(d) for d in cell.depends_on]
            if all(d is True for d in deps):
                ready.append(cell)
                self._started.add(cell.key)
        return ready

    def finish(self, result: CellOutcome) -> None:
        """Record a cell's outcome; a failed cell fails everything that depends on it."""
        self._outcomes[result.key] = result
        self._started.add(result.key)
        if result.status == "failed":
            self._fail_dependents(result.key)
        elif result.status == "skipped" and result.error:
            self._skip_dependents(result.key)

    def _skip_dependents(self, key: str) -> None:
        """Dependents of a cell another live process runs: skipped here, nothing recorded (that process,
        or a rerun, runs them)."""
        what = describe(self.by_key[key]) if key in self.by_key else key
        note = self._outcomes[key].error
        for cell in self.cells:
            if cell.key in self._started or key not in cell.depends_on:
                continue
            self.finish(outcome(cell.key, "skipped", f"dependency {what} {note}", 0.0))

    def _fail_dependents(self, failed_key: str) -> None:
        failed_cell = self.by_key.get(failed_key)
        reason = self._outcomes[failed_key].error or "no message"
        what = describe(failed_cell) if failed_cell is not None else failed_key
        for cell in self.cells:
            if cell.key in self._started or failed_key not in cell.depends_on:
                continue
            self._fail(cell, f"dependency {what} failed: {reason.splitlines()[0] if reason else ''}")

    def _fail(self, cell: CellLike, message: str) -> None:
        if record_failed(self.store, cell, message):
            self.finish(outcome(cell.key, "failed", message, 0.0))
        else:  # another live process runs it: its outcome is that process's to record
            self.finish(outcome(cell.key, "skipped", f"running elsewhere; not recorded failed here: {message}", 0.0))

    def fail_started(self, cells: Iterable[CellLike], message: str) -> None:
        """Record cells that were handed out but whose worker died without reporting (job killed, OOM).

        A cell the store already has as done finished before the worker died: it stays done.
        """
        cells = list(cells)
        status = self.store.cell_status([c.key for c in cells])
        for cell in cells:
            if status.get(cell.key) == "done":
                self.finish(outcome(cell.key, "done", None, 0.0))
            else:
                self._fail(cell, message)

    def close(self) -> None:
        """Fail what can never start: dependencies outside these cells that are not done, or cycles."""
        for cell in self.cells:
            if cell.key in self._started:
                continue
            missing = [d for d in cell.depends_on if d not in self.by_key and d not in self._external_done]
            if missing:
                d = missing[0]
                self._fail(
                    cell,
                    f"dependency {d} is not among the cells to run and is "
                    f"{self._external_status.get(d, 'not run')} in the results store; run it first",
                )
            else:
                self._fail(
                    cell, "dependency cycle among cells " + ", ".join(sorted(str(k)[:12] for k in cell.depends_on))
                )

    def run_packs(
        self,
        per_pack: int,
        submit: Callable[[list[list[CellLike]]], list[Any]],
        wait: Callable[[list[Any]], list[Any]],
        collect: Callable[[Any], Iterable[CellOutcome]],
        failure: Callable[[Any, BaseException], str],
        running: dict[Any, list[CellLike]] | None = None,
    ) -> None:
        """The loop of an executor that runs packs of cells elsewhere (Slurm jobs, Ray tasks): ready cells in
        packs of ``per_pack`` (:func:`packs`) go to ``submit`` (one handle per pack); ``wait`` returns the
        handles that finished (it may block or sleep; empty is fine); ``collect`` yields a finished handle's
        outcomes. A handle whose ``collect`` raises (a killed job, a dead worker) fails its own cells only,
        with ``failure(handle, exc)`` as the message. ``running`` (handle → pack) is the caller's, so an
        interrupted caller sees what is still in flight."""
        running = {} if running is None else running
        while True:
            chunks = packs(self.take_ready(), per_pack)
            if chunks:
                running.update(zip(submit(chunks), chunks, strict=True))
            if not running:
                return
            for handle in wait(list(running)):
                pack = running.pop(handle)
                try:
                    for result in collect(handle):
                        self.finish(result)
                except Exception as exc:
                    self.fail_started(pack, failure(handle, exc))

    def outcomes(self) -> list[CellOutcome]:
        """Outcomes in cells order (call after the run loop ended)."""
        self.close_pending()
        return [self._outcomes[c.key] for c in self.cells]

    def close_pending(self) -> None:
        # a dependency cycle or an unmet external dependency leaves cells never ready: record why
        while any(c.key not in self._outcomes for c in self.cells):
            before = len(self._outcomes)
            self.close()
            if len(self._outcomes) == before:
                break
