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
