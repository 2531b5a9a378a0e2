"""Built-in executors: ``local``, ``submitit`` (Slurm), ``ray``.

Each implements :class:`eegbench.interfaces.Executor`: ``run(cells, runner) -> list[CellOutcome]`` in
cells order, respecting ``cell.depends_on``. Each executor's class is its factory: its constructor's
signature gives the parameters and their defaults. Listing imports nothing heavy: the executor modules import
submitit and ray only when an executor runs.
"""

from __future__ import annotations

from eegbench import hookimpl
from eegbench.components import Component


@hookimpl
def eegbench_executors():
    return [
        Component(
            kind="executor",
            name="local",
            summary='this machine: N worker processes (jobs; "auto": one per CPU, or one on a GPU) or in-process',
            factory="eegbench_plugins.executors.local:LocalExecutor",
        ),
        Component(
            kind="executor",
            name="submitit",
            summary="Slurm job arrays through submitit (GPUs, memory, time limit, Apptainer, cell packing)",
            factory="eegbench_plugins.executors.slurm:SubmititExecutor",
            citation="submitit (Meta AI Research), https://github.com/facebookincubator/submitit",
            notes="cluster = 'local' runs the same jobs as local subprocesses (no Slurm), 'debug' in this process; "
            "both skip setup, apptainer and python (this interpreter runs the jobs) unless local_setup = true.",
        ),
        Component(
            kind="executor",
            name="ray",
            summary="a Ray task per cell with CPU/GPU resources, on a Ray cluster or a local instance",
            factory="eegbench_plugins.executors.rayexec:RayExecutor",
            citation="Moritz et al. 2018, Ray: A Distributed Framework for Emerging AI Applications, OSDI",
            notes="needs the optional extra: pip install 'eegbench[ray]'. address = '' starts a local instance, "
            "'auto' joins the cluster this node belongs to, 'ray://host:10001' a remote one.",
        ),
    ]
