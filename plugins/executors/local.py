"""The ``local`` executor: cells in this process (``jobs = 1``) or in worker processes (``jobs > 1``)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from eegbench.errors import EegbenchError
from eegbench.execution.resources import limit_worker_threads, threads_per_worker
from eegbench.interfaces import CellLike, CellOutcome, CellRunner, Executor

from ._core import Scheduler, batch_groups, error_text, run_group


class LocalExecutor(Executor):
    """Runs cells on this machine.

    ``jobs = 1`` runs them one after another in this process, in cells order as dependencies allow.
    ``jobs > 1`` runs up to ``jobs`` cells at once in worker processes (``spawn`` start method: a fresh
    interpreter per worker, safe with torch and CUDA); a cell is handed out only once all its
    dependencies are done. The runner and cells must pickle (the CellRunner contract says they do).
    """

    name = "local"

    def __init__(self, jobs: int = 1):
        # a whole number only: int() would quietly turn 2.7 into 2 and "x" into a traceback
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise EegbenchError(f"executor local: jobs must be a whole number >= 1 (cells at once), got {jobs!r}")
        self.jobs = jobs

    def run(self, cells: Sequence[CellLike], runner: CellRunner) -> list[CellOutcome]:
        sched = Scheduler(cells, runner)
        if self.jobs == 1 or len(sched.todo) <= 1:
            while ready := sched.take_ready():
                for group in batch_groups(runner, ready):  # cells of one recipe train as one stacked model
                    for result in run_group(runner, group):
                        sched.finish(result)
        else:
            self._run_pool(sched, runner, min(self.jobs, len(sched.todo)))
        return sched.outcomes()

    @staticmethod
    def _run_pool(sched: Scheduler, runner: Callable[[Any], Any], workers: int) -> None:
        threads = threads_per_worker(workers)  # the CPUs this run may use (affinity, cgroup quota) shared out
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=limit_worker_threads, initargs=(threads,))
        running: dict[Future, list[Any]] = {}
        try:
            while True:
                for group in batch_groups(runner, sched.take_ready()):
                    running[pool.submit(run_group, runner, group)] = group
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    group = running.pop(future)
                    try:
                        for result in future.result():
                            sched.finish(result)
                    except BrokenProcessPool as exc:
                        # a worker died (killed, out of memory, segfault): we cannot tell which cell
                        # killed it, so every cell in flight is recorded failed; the rest go on
                        broken = True
                        sched.fail_started(group, f"worker process died while running this cell: {exc}")
                    except Exception as exc:
                        sched.fail_started(group, error_text(exc))
                if broken:
                    sched.fail_started(
                        [c for g in running.values() for c in g], "worker process pool broke while running this cell"
                    )
                    running.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = ProcessPoolExecutor(
                        workers, mp_context=ctx, initializer=limit_worker_threads, initargs=(threads,)
                    )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
