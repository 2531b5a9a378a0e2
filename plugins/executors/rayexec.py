"""The ``ray`` executor: a Ray task per cell (or per pack of cells) with CPU/GPU resources.

Connects to a running cluster (``address = "auto"`` or ``"ray://head:10001"``) or starts a local
instance (``address = ""``, ``num_cpus`` / ``num_gpus`` of it; 0 = what the machine has) that it shuts
down when the run ends. Cells are submitted as soon as their dependencies are done; Ray places tasks
where their resources are free. Tasks are not retried by Ray (``max_retries = 0``): the results store
decides what a rerun does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eegbench.errors import EegbenchError
from eegbench.interfaces import CellLike, CellOutcome, CellRunner, Executor

from ._core import Scheduler, error_text, run_pack


class RayExecutor(Executor):
    """``ray`` executor; the constructor is the component's factory (its signature holds the defaults).

    Params: ``address`` ("" = start a local instance, "auto" = the cluster this node is in,
    "ray://host:10001" = remote), ``num_cpus`` / ``num_gpus`` (local instance size; 0 = all),
    ``cpus_per_cell`` / ``gpus_per_cell`` (a task's resources), ``cells_per_task`` (packing).
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str = "",
        num_cpus: int = 0,
        num_gpus: int = 0,
        cpus_per_cell: float = 1.0,
        gpus_per_cell: float = 0.0,
        cells_per_task: int = 1,
    ):
        if isinstance(cells_per_task, bool) or not isinstance(cells_per_task, int) or cells_per_task < 1:
            raise EegbenchError(f"executor ray: cells_per_task must be a whole number >= 1, got {cells_per_task!r}")
        for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise EegbenchError(
                    f"executor ray: {name} must be a whole number >= 0 (0 = all of the machine), got {value!r}"
                )
        for name, value in (("cpus_per_cell", cpus_per_cell), ("gpus_per_cell", gpus_per_cell)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise EegbenchError(f"executor ray: {name} must be a number >= 0, got {value!r}")
        if not isinstance(address, str):
            raise EegbenchError(
                f'executor ray: address must be a string ("", "auto" or "ray://host:port"), got {address!r}'
            )
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.cpus_per_cell, self.gpus_per_cell = float(cpus_per_cell), float(gpus_per_cell)
        self.cells_per_task = cells_per_task

    def _connect(self) -> bool:
        """Initialise Ray unless it already is; True when this call started it (so we shut it down)."""
        try:
            import ray
        except ImportError:
            raise EegbenchError("executor ray needs Ray: pip install 'eegbench[ray]'") from None
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if self.address:
            kwargs["address"] = self.address
        else:
            if self.num_cpus:
                kwargs["num_cpus"] = int(self.num_cpus)
            if self.num_gpus:
                kwargs["num_gpus"] = int(self.num_gpus)
        ray.init(**kwargs)
        return True

    def run(self, cells: Sequence[CellLike], runner: CellRunner) -> list[CellOutcome]:
        sched = Scheduler(cells, runner)
        if not sched.todo:
            return sched.outcomes()
        started = self._connect()  # first: it turns a missing Ray into a one-line error
        import ray

        try:
            task = ray.remote(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell, max_retries=0)(run_pack)
            runner_ref = ray.put(runner)  # shipped once, not once per task
            sched.run_packs(
                self.cells_per_task,
                submit=lambda chunks: [task.remote(runner_ref, c) for c in chunks],
                wait=lambda refs: ray.wait(refs, num_returns=1)[0],
                collect=ray.get,
                failure=_task_error,
            )
        finally:
            if started:
                ray.shutdown()
        return sched.outcomes()


def _task_error(ref: Any, exc: BaseException) -> str:
    """A dead worker's message: the last line of its error (Ray wraps the cause in several)."""
    lines = [ln for ln in error_text(exc).splitlines() if ln.strip()]
    return f"ray task failed: {lines[-1][:500] if lines else type(exc).__name__}"
