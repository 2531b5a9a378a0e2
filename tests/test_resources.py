"""Thread pools sized to the CPUs a process may really use: affinity mask, cgroup quota, local workers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eegbench.execution import resources


def _cgroup(tmp_path, v2=None, v1=None):
    root = tmp_path / "cgroup"
    root.mkdir()
    if v2 is not None:
        (root / "cpu.max").write_text(v2)
    if v1 is not None:
        (root / "cpu").mkdir()
        (root / "cpu" / "cpu.cfs_quota_us").write_text(str(v1[0]))
        (root / "cpu" / "cpu.cfs_period_us").write_text(str(v1[1]))
    return root


@pytest.fixture
def eight_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


def test_affinity_mask_counts_not_the_machine(eight_cpus, tmp_path):
    assert resources.usable_cpus(_cgroup(tmp_path)) == 8  # no quota files: the mask alone


@pytest.mark.parametrize(
    "v2, v1, expected",
    [
        ("max 100000\n", None, 8),  # cgroup v2 without a quota
        ("250000 100000\n", None, 3),  # 2.5 CPUs of quota: rounded up
        ("50000 100000\n", None, 1),  # half a CPU: at least one thread
        (None, (200000, 100000), 2),  # cgroup v1 quota
        (None, (-1, 100000), 8),  # cgroup v1 unlimited
    ],
)
def test_cgroup_quota_caps_the_mask(eight_cpus, tmp_path, v2, v1, expected):
    assert resources.usable_cpus(_cgroup(tmp_path, v2=v2, v1=v1)) == expected


def test_local_workers_share_the_usable_cpus(eight_cpus, tmp_path):
    root = _cgroup(tmp_path, v2="400000 100000")  # 4 CPUs of quota on an 8-CPU mask
    assert [resources.threads_per_worker(j, root) for j in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]


def test_a_worker_share_reaches_torch_and_blas_in_a_fresh_process():
    """What a local executor's worker initializer sets is what torch and the BLAS libraries then use."""
    code = (
        "import os, torch\n"
        "from eegbench.execution.resources import limit_worker_threads, apply_thread_limit\n"
        "limit_worker_threads(1)\n"
        "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], apply_thread_limit())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", resources.THREADS_ENV)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "1", "1"]


def test_process_threads_prefers_the_parents_choice(monkeypatch):
    monkeypatch.setenv(resources.THREADS_ENV, "3")
    assert resources.process_threads() == 3
    monkeypatch.setenv(resources.THREADS_ENV, "zero")  # not a count: computed instead
    assert resources.process_threads() == resources.usable_cpus()


def _meminfo(tmp_path, gib):
    path = tmp_path / f"meminfo-{gib}"
    path.write_text(f"MemTotal:       99999999 kB\nMemAvailable:   {int(gib * 2**20)} kB\n")
    return path


def test_auto_jobs_give_cpu_cells_a_worker_per_usable_cpu_within_memory(eight_cpus, tmp_path):
    root = _cgroup(tmp_path, v2="600000 100000")  # 6 CPUs of quota on an 8-CPU mask
    plenty = _meminfo(tmp_path, 64)
    assert resources.auto_jobs(20, "cpu", root, plenty) == 6
    assert resources.auto_jobs(3, "cpu", root, plenty) == 3  # no more workers than cells to run
    assert resources.auto_jobs(1, "cpu", root, plenty) == 1
    assert resources.auto_jobs(20, "cpu", root, _meminfo(tmp_path, 9)) == 2  # 4 GiB a worker
    assert resources.auto_jobs(20, "cpu", root, _meminfo(tmp_path, 1)) == 1
    (root / "memory.max").write_text(str(12 * 2**30))  # the cgroup's limit caps what the machine has free
    assert resources.usable_memory(root, plenty) == 12 * 2**30
    assert resources.auto_jobs(20, "cpu", root, plenty) == 3
    (root / "memory.max").write_text("max\n")
    assert resources.usable_memory(root, plenty) == 64 * 2**30
    assert resources.auto_jobs(20, "cuda:0", root, plenty) == 1  # one process owns a GPU


def test_auto_jobs_on_auto_device_follow_cuda(eight_cpus, tmp_path, monkeypatch):
    root, plenty = _cgroup(tmp_path), _meminfo(tmp_path, 64)
    monkeypatch.setattr(resources, "cuda_available", lambda: False)
    assert resources.auto_jobs(20, "auto", root, plenty) == 8
    monkeypatch.setattr(resources, "cuda_available", lambda: True)
    assert resources.auto_jobs(20, "auto", root, plenty) == 1


def test_cuda_available_asks_torch_only_where_a_gpu_device_file_is(tmp_path, monkeypatch):
    import torch

    def torch_asked():
        raise AssertionError("torch was asked")

    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("null", "nvidiactl", "nvidia-uvm", "kvm"):  # driver files without a GPU are not a device
        (dev / name).touch()
    monkeypatch.setattr(torch.cuda, "is_available", torch_asked)
    assert resources.cuda_available(dev) is False
    for gpu in ("nvidia0", "kfd"):
        (dev / gpu).touch()
        for answer in (True, False):
            monkeypatch.setattr(torch.cuda, "is_available", lambda answer=answer: answer)
            assert resources.cuda_available(dev) is answer
        (dev / gpu).unlink()
