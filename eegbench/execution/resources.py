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
#: the local executor's ``jobs`` where a spec and ``--jobs`` leave it at ``"auto"`` (a whole number, or ``auto``)
JOBS_ENV = "EEGBENCH_JOBS"
#: memory a CPU worker is budgeted when ``jobs = "auto"`` picks the count: a LOSO pretraining on the whole
#: preprocessed release holds 9 subjects x 16,540 trials x 17 x 128 float32 (1.3 GB) plus the test split,
#: embeddings, model and the interpreter with torch
WORKER_MEMORY_BYTES = 4 * 2**30
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


def _cgroup_memory_limit(root: Path = _CGROUP) -> int | None:
    """The memory limit of this process's cgroup in bytes, or None when unlimited or unknown."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):  # v2, v1
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 writes a huge number for "unlimited"
            return int(text)
    return None


def usable_memory(cgroup_root: Path = _CGROUP, meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes this process may still allocate: the machine's available memory, capped by its cgroup limit;
    None where neither can be read (not on Linux)."""
    available = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    limit = _cgroup_memory_limit(cgroup_root)
    if limit is None:
        return available
    return limit if available is None else min(available, limit)


def cuda_available(dev: Path = Path("/dev")) -> bool:
    """``torch.cuda.is_available()``, without importing torch (seconds) on a machine with no GPU device file
    (NVIDIA's ``/dev/nvidia<N>``, AMD's ``/dev/kfd`` for ROCm builds): such a machine has no CUDA device."""
    try:
        names = [p.name for p in dev.iterdir()]
    except OSError:
        names = ["kfd"]  # cannot tell: ask torch
    if not any(n == "kfd" or (n.startswith("nvidia") and n[6:].isdigit()) for n in names):
        return False
    import torch

    return bool(torch.cuda.is_available())


def auto_jobs(cells: int, device: str, cgroup_root: Path = _CGROUP, meminfo: Path = Path("/proc/meminfo")) -> int:
    """Cells at once for the local executor's ``jobs = "auto"``.

    On a GPU (``device`` ``cuda[:N]``, or ``auto`` with CUDA available): 1, one process owns the device (cells
    of one recipe fill it together through ``batch_cells``). On CPUs: one worker per usable CPU (affinity mask,
    cgroup quota), each with one thread, at most one per cell to run and one per :data:`WORKER_MEMORY_BYTES` of
    usable memory. Small EEG encoders barely speed up with a second intra-op thread (their convolutions are
    small) but run at full speed in a process of their own, so on CPUs the cores go to cells, not threads.
    """
    if cells <= 1:
        return 1
    if str(device).startswith("cuda"):
        return 1
    if device == "auto" and cuda_available():
        return 1
    jobs = min(usable_cpus(cgroup_root), cells)
    memory = usable_memory(cgroup_root, meminfo)
    if memory is not None:
        jobs = min(jobs, max(1, memory // WORKER_MEMORY_BYTES))
    return max(1, jobs)


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
