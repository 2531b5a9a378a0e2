"""The ``submitit`` executor: cells as Slurm jobs (job arrays) through submitit.

Scheduling: cells whose dependencies are done are submitted together as one job array (array
parallelism caps how many of its jobs run at once); when a job ends, its cells' outcomes are recorded
and newly unblocked cells (a fold's finetune cells once its pretrain cell is done) are submitted in the
next array. Ordering by the results store, rather than Slurm ``afterok`` dependencies, means a failed
pretrain cell fails its dependents with a message instead of leaving them pending forever, and the
finetune job finds the pretrain checkpoint through the shared results directory wherever it ran.

Packing: with ``cells_per_job = k`` each job runs up to k ready cells of equal shape (same stage and
components) one after another (:func:`eegbench_plugins.executors._core.run_pack`): imports, the CUDA
context and cached data are paid once per job; each cell still goes through the runner on its own, so
packing never changes a result.

Smoke tests: ``cluster = "local"`` / ``"debug"`` exist to try a cluster spec where Slurm is not (a login
node, a laptop), so by default they do not apply the Slurm job environment — ``setup`` lines, the
``apptainer`` wrapper and ``python`` (the interpreter inside the image): local jobs start this
interpreter, as ``eegbench run`` itself does. ``local_setup = true`` applies them locally too (to test
the container itself); their output then goes to ``<log folder>/setup-<job id>.err``.

A job that ends without results fails its cells with the tail of what it left (its stderr, the setup
log, its stdout), naming only log files that exist.

GPUs: ``gpus_per_task`` defaults to 1 (a benchmark is meant for GPUs; silently running it on CPUs
would take days where hours were planned). Before the first submission, a positive ``gpus_per_task``
is checked against ``sinfo``'s generic resources (``%G``) of the partition (the default one when
unset): a partition without GPU gres is refused in one line naming ``gpus_per_task`` (set it to 0 to
run on CPUs). An ``sbatch`` refusal (a gres it does not know, a partition or memory the cluster lacks)
is one line with sbatch's own message, not a traceback.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eegbench.errors import EegbenchError
from eegbench.interfaces import CellLike, CellOutcome, CellRunner, Executor

from ._core import Scheduler, run_pack

CLUSTERS = ("slurm", "local", "debug")


def _log(message: str) -> None:
    print(f"submitit: {message}", file=sys.stderr, flush=True)


class SubmititExecutor(Executor):
    """Runs cells as submitit jobs on Slurm (``cluster = "slurm"``), as local subprocesses (``"local"``:
    the same pickling, job folders and subprocesses as on Slurm, without Slurm) or in this process
    (``"debug"``). The constructor is the ``submitit`` component's factory: its signature holds the defaults.

    Params: ``cluster`` ("slurm" | "local" | "debug"), ``partition``, ``account``, ``qos`` ("" = cluster
    default), ``gpus_per_task``, ``cpus_per_task``, ``mem_gb``, ``timeout_min`` (per job: with packing,
    for all its cells), ``array_parallelism`` (most jobs of one array running at once),
    ``cells_per_job`` (packing), ``sbatch`` (extra ``#SBATCH`` options, e.g. ``{constraint = "a100"}``),
    ``setup`` (shell lines run before Python, e.g. ``["module load apptainer"]``), ``apptainer`` (image:
    jobs run ``apptainer exec --nv [apptainer_args] IMAGE PYTHON``), ``python`` (interpreter command;
    "" = this one), ``log_folder`` ("" = ``<results>/submitit/%j``), ``job_name``, ``poll_seconds``
    (0 = 15 on Slurm, 0.3 otherwise), ``local_setup`` (false: ``cluster = "local"``/``"debug"`` skip
    ``setup``, ``apptainer`` and ``python`` and run this interpreter, so a cluster spec smoke-tests on
    a login node; true: apply them locally too).
    """

    name = "submitit"

    def __init__(
        self,
        *,
        cluster: str = "slurm",
        partition: str = "",
        account: str = "",
        qos: str = "",
        gpus_per_task: int = 1,
        cpus_per_task: int = 8,
        mem_gb: float = 32,
        timeout_min: int = 240,
        array_parallelism: int = 32,
        cells_per_job: int = 1,
        sbatch: Mapping[str, Any] = MappingProxyType({}),
        setup: Sequence[str] = (),
        apptainer: str = "",
        apptainer_args: str = "",
        python: str = "",
        log_folder: str = "",
        job_name: str = "eegbench",
        poll_seconds: float = 0.0,
        local_setup: bool = False,
    ):
        if cluster not in CLUSTERS:
            raise EegbenchError(f"executor submitit: cluster must be one of {', '.join(CLUSTERS)}, got {cluster!r}")
        for name, value, low in (
            ("cells_per_job", cells_per_job, 1),
            ("array_parallelism", array_parallelism, 1),
            ("timeout_min", timeout_min, 1),
            ("cpus_per_task", cpus_per_task, 1),
            ("gpus_per_task", gpus_per_task, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise EegbenchError(f"executor submitit: {name} must be a whole number >= {low}, got {value!r}")
        for name, value, zero_ok in (("mem_gb", mem_gb, False), ("poll_seconds", poll_seconds, True)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not (value or zero_ok):
                raise EegbenchError(
                    f"executor submitit: {name} must be a number {'>= 0' if zero_ok else '> 0'}, got {value!r}"
                )
        for name, value in (
            ("partition", partition),
            ("account", account),
            ("qos", qos),
            ("apptainer", apptainer),
            ("apptainer_args", apptainer_args),
            ("python", python),
            ("log_folder", log_folder),
            ("job_name", job_name),
        ):
            if not isinstance(value, str):
                raise EegbenchError(f'executor submitit: {name} must be a string ("" = unset), got {value!r}')
        if not isinstance(local_setup, bool):
            raise EegbenchError(f"executor submitit: local_setup must be true or false, got {local_setup!r}")
        if sbatch is not None and not isinstance(sbatch, Mapping):
            raise EegbenchError(f"executor submitit: sbatch must be a table of sbatch options, got {sbatch!r}")
        if isinstance(setup, str):
            setup = [setup]
        if not all(isinstance(line, str) for line in setup):
            raise EegbenchError(f"executor submitit: setup must be a list of shell lines, got {list(setup)!r}")
        self.cluster = cluster
        self.partition, self.account, self.qos = partition, account, qos
        self.gpus_per_task, self.cpus_per_task = gpus_per_task, cpus_per_task
        self.mem_gb, self.timeout_min = mem_gb, timeout_min
        self.array_parallelism, self.cells_per_job = array_parallelism, cells_per_job
        self.sbatch = dict(sbatch or {})
        self.setup = list(setup)
        self.apptainer, self.apptainer_args = apptainer, apptainer_args
        self.python, self.log_folder, self.job_name = python, log_folder, job_name
        self.local_setup = local_setup
        self._setup_logs: Path | None = None  # where local setup shells write (set by make_executor)
        self.poll_seconds = float(poll_seconds) or (15.0 if cluster == "slurm" else 0.3)

    # -- the submitit executor ---------------------------------------------------------------------------
    @property
    def job_environment(self) -> bool:
        """Whether jobs get ``setup``, ``apptainer`` and ``python``: on Slurm always, locally only with
        ``local_setup = true`` (a smoke test on a login node has no ``module`` command nor the image)."""
        return self.cluster == "slurm" or (self.cluster == "local" and self.local_setup)

    def skipped_environment(self) -> list[str]:
        """The Slurm job-environment parameters given but not applied on this cluster (for a notice)."""
        if self.job_environment:
            return []
        return [name for name in ("setup", "apptainer", "python") if getattr(self, name)]

    def python_command(self) -> str:
        """The command jobs start Python with: this interpreter, or ``python``, inside Apptainer if asked
        (``python`` and ``apptainer`` only where :attr:`job_environment` holds)."""
        if not self.job_environment:
            return shlex.quote(sys.executable)
        python = self.python or shlex.quote(sys.executable)
        if self.apptainer:
            extra = f"{self.apptainer_args} " if self.apptainer_args else ""
            return f"apptainer exec --nv {extra}{shlex.quote(self.apptainer)} {python}"
        return python

    def folder(self, results_dir: str | Path) -> Path:
        """Job folders (pickles, stdout/stderr logs), one per job id; by default inside the results dir."""
        return Path(self.log_folder) if self.log_folder else Path(results_dir) / "submitit" / "%j"

    def make_executor(self, results_dir: str | Path):
        import submitit

        folder = self.folder(results_dir)
        skipped = self.skipped_environment()
        if skipped:
            _log(
                f"cluster = {self.cluster!r}: not applying {', '.join(skipped)} (the Slurm job environment); jobs run "
                f"this interpreter{'' if self.cluster == 'debug' else ' (set local_setup = true to apply them)'}"
            )
        if self.cluster == "debug":
            return submitit.DebugExecutor(folder)
        if self.cluster == "local":
            ex = submitit.LocalExecutor(folder, python=self.python_command())
            setup = []
            if self.job_environment and self.setup:
                # the setup shell's output would only flash on the console: keep it where _job_error looks
                log_dir = self._setup_logs = _id_free(folder)
                setup = [
                    f"mkdir -p {shlex.quote(str(log_dir))}",
                    f'exec >>{shlex.quote(str(log_dir))}/setup-"$$".err 2>&1',
                    *self.setup,
                ]
            ex.update_parameters(timeout_min=self.timeout_min, setup=setup)
            return ex
        if shutil.which("srun") is None or shutil.which("sbatch") is None:
            raise EegbenchError(
                'executor submitit: cluster = "slurm" needs Slurm\'s sbatch and srun on PATH (run on a '
                "login node, or set executor.cluster=local to run the jobs as local processes)"
            )
        if self.gpus_per_task and partition_has_gpus(self.partition) is False:
            where = f"partition {self.partition!r}" if self.partition else "the default partition"
            raise EegbenchError(
                f"executor submitit: gpus_per_task = {self.gpus_per_task} but Slurm reports no GPUs on "
                f"{where} (`sinfo -o %G` lists no gpu gres); set gpus_per_task = 0 under "
                "[executor.params] (--set executor.gpus_per_task=0) to run on CPUs, or choose a "
                "partition with GPUs"
            )
        ex = submitit.SlurmExecutor(folder, python=self.python_command())
        params: dict[str, Any] = {
            "job_name": self.job_name,
            "time": self.timeout_min,
            "cpus_per_task": self.cpus_per_task,
            "mem": f"{self.mem_gb:g}GB",
            "array_parallelism": self.array_parallelism,
            "setup": self.setup,
            "additional_parameters": self.sbatch,
        }
        if self.gpus_per_task:
            params["gpus_per_task"] = self.gpus_per_task
        for key in ("partition", "account", "qos"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        ex.update_parameters(**params)
        return ex

    # -- running -------------------------------------------------------------------------------------
    def run(self, cells: Sequence[CellLike], runner: CellRunner) -> list[CellOutcome]:
        sched = Scheduler(cells, runner)
        if not sched.todo:
            return sched.outcomes()
        ex = self.make_executor(runner.results_dir)
        running: dict[Any, list[Any]] = {}
        try:
            sched.run_packs(
                self.cells_per_job,
                submit=lambda chunks: self._submit(ex, runner, chunks),
                wait=self._finished,
                collect=lambda job: job.result(),
                failure=self._job_error,
                running=running,
            )
        except KeyboardInterrupt:
            if self.cluster == "slurm" and running:
                _log(
                    f"interrupted: {len(running)} job(s) keep running on Slurm and write to the results store; "
                    "`eegbench status` follows them, rerunning submits only cells not done"
                )
            raise
        return sched.outcomes()

    def _finished(self, jobs: list[Any]) -> list[Any]:
        finished = [job for job in jobs if job.done()]
        if not finished:
            time.sleep(self.poll_seconds)
        return finished

    def _submit(self, ex: Any, runner: Any, chunks: list[list[Any]]) -> list[Any]:
        try:
            jobs = ex.map_array(run_pack, [runner] * len(chunks), chunks)
        except Exception as exc:  # submitit's FailedJobError: sbatch refused the job script
            if type(exc).__name__ != "FailedJobError":
                raise
            raise EegbenchError(self._refusal(str(exc))) from exc
        n = sum(len(c) for c in chunks)
        ids = ", ".join(str(j.job_id) for j in jobs)
        _log(f"submitted {len(jobs)} job(s) for {n} cell(s): {ids} (logs: {Path(jobs[0].paths.folder).parent})")
        return list(jobs)

    def _refusal(self, text: str) -> str:
        """One line for an ``sbatch`` refusal: sbatch's own error line, and what to set where it is known."""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        said = next((ln for ln in reversed(lines) if "error:" in ln), lines[-1] if lines else "no message")
        said = said[said.index("sbatch: error:") :] if "sbatch: error:" in said else said
        if "gres" in said.lower() or "generic resource" in said.lower():
            return (
                f"executor submitit: Slurm refused gpus_per_task = {self.gpus_per_task} ({said}); this cluster has "
                "no such GPUs: set gpus_per_task = 0 under [executor.params] (--set executor.gpus_per_task=0) to "
                "run on CPUs, or choose a partition with GPUs"
            )
        return (
            f"executor submitit: Slurm refused the job ({said}); check partition, account, qos, mem_gb, "
            "cpus_per_task and sbatch under [executor.params]"
        )

    def _job_error(self, job: Any, exc: BaseException) -> str:
        """Why a job left no results, first line first: the last telling line of what it wrote (its
        stderr, the local setup log, its stdout), then their tail and the log files that exist."""
        logs = [path for path in _job_logs(job, self._setup_logs) if path.is_file()]
        tail: list[str] = []
        for path in logs:
            tail = _tail(path)
            if tail:
                break
        state = ""
        if self.cluster == "slurm":  # TIMEOUT, OUT_OF_MEMORY, ...; a local job's state is its controller's
            with contextlib.suppress(Exception):
                state = str(job.state)
        telling = [ln for ln in tail if not _NOISE.match(ln)]
        if telling:
            cause = telling[-1]
        elif tail:
            cause = "no error message in its logs (killed? out of memory or past its time limit?)"
        elif getattr(exc, "__module__", "").startswith("submitit") and type(exc).__name__ == "UncompletedJobError":
            # submitit's own message names log files that may not exist: say what is known instead
            cause = "it wrote no output" + (
                " (is the job's python or setup valid on this machine?)" if self.cluster == "local" else ""
            )
        else:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            cause = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
        message = f"job {job.job_id} ended without results{f' (state {state})' if state else ''}: {cause[:500]}"
        if len(tail) > 1:
            message += "\n" + "\n".join(tail)
        if logs:
            message += "\nlog: " + ", ".join(str(p) for p in logs)
        return message


def partition_has_gpus(partition: str = "") -> bool | None:
    """Whether Slurm lists GPU generic resources on ``partition`` (the default partition when ""):
    any of its nodes' ``%G`` naming ``gpu``. None when ``sinfo`` cannot tell (absent, failing, or the
    partition unknown to it): the caller then leaves it to ``sbatch``."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %G"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    wanted = {p.strip() for p in partition.split(",") if p.strip()}
    gres = []
    for line in proc.stdout.splitlines():
        name, _, resources = line.strip().partition(" ")
        if (name.rstrip("*") in wanted) if wanted else name.endswith("*"):
            gres.append(resources)
    if not gres:
        return None
    return any("gpu" in g.lower() for g in gres)


_NOISE = re.compile(r"^(srun: |submitit (INFO|WARNING|DEBUG)|-+$)")


def _id_free(folder: str | Path) -> Path:
    """The deepest folder of ``folder`` with no submitit job-id placeholder (``%j``, ``%A`` ...)."""
    parts = Path(folder).expanduser().absolute().parts
    keep = []
    for part in parts:
        if re.search(r"%[jtAa]", part):
            break
        keep.append(part)
    return Path(*keep)


def _job_logs(job: Any, setup_logs: Path | None) -> list[Path]:
    """Where a job may have written: its stderr, the local setup log, its stdout (candidates only)."""
    out: list[Path] = []
    try:
        out.append(Path(job.paths.stderr))
        if setup_logs is not None:
            out.append(setup_logs / f"setup-{job.job_id}.err")
        out.append(Path(job.paths.stdout))
    except Exception:
        pass
    return out


def _tail(path: Path, lines: int = 12, chars: int = 2000) -> list[str]:
    """The last non-empty lines of a log file (read from its end: logs of long jobs are big)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    while kept and sum(len(ln) + 1 for ln in kept) > chars:
        kept.pop(0)
    return kept
