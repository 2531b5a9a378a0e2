"""The ``local`` executor: cells in this process (``jobs = 1``) or in worker processes (``jobs > 1``); ``jobs =
"auto"`` (the default) picks the count from the device and the machine."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from eegbench.errors import EegbenchError
from eegbench.execution.resources import JOBS_ENV, auto_jobs, limit_worker_threads, threads_per_worker
from eegbench.interfaces import CellLike, CellOutcome, CellRunner, Executor, PreloadingRunner

from ._core import Scheduler, batch_groups, error_text, run_group

log = logging.getLogger("eegbench.executor")


def _whole_jobs(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _worker_context(preload: list[str]) -> Any:
    """``forkserver`` where the platform has it (a clean single-threaded server process, started fresh, safe with
    torch and CUDA, that imports ``preload`` once and forks each worker from there: a fresh import of torch, the
    engine and braindecode costs each worker seconds of CPU), else ``spawn``. The fork server is one per process
    and keeps the preload of its first start."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(preload)
        return ctx
    return multiprocessing.get_context("spawn")


def _preload(runner: CellRunner, cells: Sequence[CellLike]) -> list[str]:
    modules = runner.worker_imports(cells) if isinstance(runner, PreloadingRunner) else ["torch"]
    return [*modules, f"{__package__}._forkserver_heap"]  # last: freezes what the modules before it made


def _start_worker(threads: int, environ: dict[str, str]) -> None:
    """A worker's initializer: the parent's environment as it is now (a fork server keeps the one it started
    with; a run may follow changes of ``os.environ`` in the same process), then its share of the CPUs."""
    os.environ.clear()
    os.environ.update(environ)
    limit_worker_threads(threads)


class LocalExecutor(Executor):
    """Runs cells on this machine.

    ``jobs = 1`` runs them one after another in this process, in cells order as dependencies allow.
    ``jobs > 1`` runs up to ``jobs`` cells at once in worker processes (forked from a fresh fork server that
    imported torch and the engine once; ``spawn`` where there is no fork server), the usable CPUs shared out
    among them as threads; a cell is handed out only once all its dependencies are done. The runner and cells
    must pickle (the CellRunner contract says they do).
    ``jobs = "auto"`` (the default): ``$EEGBENCH_JOBS`` when set, else one cell at a time in this process on
    a GPU and one single-threaded worker per usable CPU on CPUs, at most one per cell to run
    (:func:`eegbench.execution.resources.auto_jobs`).
    """

    name = "local"

    def __init__(self, jobs: int | str = "auto"):
        # a whole number only: int() would quietly turn 2.7 into 2 and "x" into a traceback
        if jobs != "auto" and not _whole_jobs(jobs):
            raise EegbenchError(
                f'executor local: jobs must be a whole number >= 1 (cells at once) or "auto", got {jobs!r}'
            )
        self.jobs = jobs

    def resolve_jobs(self, cells: int, device: str) -> int:
        """The number of cells to run at once for ``cells`` cells to run on ``device``."""
        if self.jobs != "auto":
            return int(self.jobs)
        chosen = os.environ.get(JOBS_ENV, "").strip()
        if chosen and chosen != "auto":
            if not chosen.isdigit() or int(chosen) < 1:
                raise EegbenchError(f'{JOBS_ENV}={chosen!r}: expected a whole number >= 1 or "auto"')
            return int(chosen)
        return auto_jobs(cells, device)

    def start(self, cells: Sequence[CellLike], runner: CellRunner) -> None:
        """Start the fork server now when ``cells`` will run in worker processes: its imports (torch, the engine,
        braindecode: seconds) then overlap the caller's data preparation instead of delaying the first cell."""
        if len(cells) <= 1 or self.resolve_jobs(len(cells), runner.device) <= 1:
            return
        if _worker_context(_preload(runner, cells)).get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def run(self, cells: Sequence[CellLike], runner: CellRunner) -> list[CellOutcome]:
        sched = Scheduler(cells, runner)
        jobs = self.resolve_jobs(len(sched.todo), runner.device)
        if jobs > 1 and len(sched.todo) > 1:
            log.info("local executor: %d worker processes, threads per worker: %d", jobs, threads_per_worker(jobs))
        if jobs == 1 or len(sched.todo) <= 1:
            while ready := sched.take_ready():
                for group in batch_groups(runner, ready):  # cells of one recipe train as one stacked model
                    for result in run_group(runner, group):
                        sched.finish(result)
        else:
            self._run_pool(sched, runner, min(jobs, len(sched.todo)), _preload(runner, sched.todo))
        return sched.outcomes()

    @staticmethod
    def _run_pool(sched: Scheduler, runner: Callable[[Any], Any], workers: int, preload: list[str]) -> None:
        threads = threads_per_worker(workers)  # the CPUs this run may use (affinity, cgroup quota) shared out
        ctx = _worker_context(preload)
        pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_start_worker, initargs=(threads, dict(os.environ))
        )
        running: dict[Future, list[Any]] = {}
        try:
            while True:
                for group in batch_groups(runner, sched.take_ready()):
                    running[pool.submit(run_group, runner, group)] = group
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken: list[tuple[list[Any], str]] = []
                for future in done:
                    group = running.pop(future)
                    try:
                        for result in future.result():
                            sched.finish(result)
                    except BrokenProcessPool as exc:
                        # a worker died (killed, out of memory, segfault): we cannot tell which cell
                        # killed it, so every cell in flight is recorded failed; the rest go on
                        broken.append((group, f"worker process died while running this cell: {exc}"))
                    except Exception as exc:
                        sched.fail_started(group, error_text(exc))
                if broken:
                    # the broken pool terminates its other workers: wait until they are gone, else their cells'
                    # claims still look held by a live process and would be left "running elsewhere"
                    pool.shutdown(wait=True, cancel_futures=True)
                    for group, message in broken:
                        sched.fail_started(group, message)
                    sched.fail_started(
                        [c for g in running.values() for c in g], "worker process pool broke while running this cell"
                    )
                    running.clear()
                    pool = ProcessPoolExecutor(
                        workers, mp_context=ctx, initializer=_start_worker, initargs=(threads, dict(os.environ))
                    )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
