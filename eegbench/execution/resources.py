"""How many CPUs this process may really use, and thread pools sized to them.

``os.cpu_count()`` counts the machine's cores, not the ones a process is given: a Slurm job, a container
with a CPU quota or a worker pinned by ``taskset`` sees them all. Each process therefore sizes its thread
pools (torch intra-op, OpenMP/MKL/OpenBLAS) from its affinity mask and its cgroup CPU quota, divided among
the workers of one local run (``EEGBENCH_THREADS``, set by the local executor for its workers), so
parallel cells and shared nodes do not oversubscribe the cores.

Light on purpose: imports nothing heavy; torch is touched only when it is already imported (and by
:func:`resolve_device`, which needs it).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: threads per process chosen by the parent (the local executor's workers); wins over the computed share
THREADS_ENV = "EEGBENCH_THREADS"
_BLAS_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``2.5`` = 250 ms per 100 ms), or None when unlimited."""
    try:  # cgroup v2: "max 100000" or "250000 100000"
        quota_text, period_text = (root / "cpu.max").read_text().split()[:2]
        if quota_text != "max" and float(period_text) > 0:
            return float(quota_text) / float(period_text)
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = float((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = float((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus(cgroup_root: Path = _CGROUP) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def threads_per_worker(workers: int, cgroup_root: Path = _CGROUP) -> int:
    """The share of :func:`usable_cpus` for each of ``workers`` processes running at once (at least 1)."""
    return max(1, usable_cpus(cgroup_root) // max(1, int(workers)))


def process_threads() -> int:
    """Threads this process should use: ``EEGBENCH_THREADS`` when a parent chose, else :func:`usable_cpus`."""
    chosen = os.environ.get(THREADS_ENV, "")
    if chosen.isdigit() and int(chosen) >= 1:
        return int(chosen)
    return usable_cpus()


def limit_worker_threads(threads: int) -> None:
    """Set this process's share before its libraries start their pools (a worker initializer)."""
    os.environ[THREADS_ENV] = str(threads)
    for var in _BLAS_VARS:
        os.environ.setdefault(var, str(threads))
    apply_thread_limit()


def apply_thread_limit() -> int:
    """Size torch's intra-op pool to :func:`process_threads` (when torch is imported); returns the count."""
    threads = process_threads()
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; asking for CUDA without one is a one-line error."""
    import torch

    from eegbench.errors import EegbenchError

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise EegbenchError(f"--device {device}: no CUDA device is available (use --device cpu or auto)")
    if device not in ("cpu",) and not str(device).startswith("cuda"):
        raise EegbenchError(f"--device {device!r}: expected auto, cpu or cuda[:N]")
    return torch.device(device)
