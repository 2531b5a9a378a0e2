"""The submitit executor on a real Slurm: a tiny quick spec submitted through sbatch as job arrays stores
exactly the local executor's rows, and a cluster without GPUs gets one line naming ``gpus_per_task``.

Needs a running Slurm (``sbatch``, ``sinfo`` and a node up); ``.ci/run`` starts a single-node one with
``.ci/slurm-single-node.sh`` (Debian's slurm-wlm + munge, no GPU). Skipped, with the reason, elsewhere.
About a minute on 2 cores: two runs of four cells each (two pretrain cells, then their finetune cells:
two job arrays of two tasks, one after the other), plus Slurm's scheduling.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from quick_spec import QUICK, TINY_ONE_FOLD, as_cli

import eegbench
from eegbench.errors import EegbenchError
from eegbench.results.store import ResultStore
from eegbench_plugins.executors import slurm as slurm_executor
from eegbench_plugins.executors.testing import FakeRunner, fake_plan

#: what this one-node, GPU-less cluster needs; everything else is the executor's default
SLURM_PARAMS = 'partition="debug", cpus_per_task=1, mem_gb=1, timeout_min=10, poll_seconds=1'


def _why_no_slurm() -> str | None:
    for tool in ("sbatch", "srun", "sinfo", "squeue"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (`bash .ci/slurm-single-node.sh` installs and starts a single-node Slurm)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    states = proc.stdout.split()
    if proc.returncode != 0 or not {"idle", "mixed", "allocated"} & set(states):
        return f"Slurm has no node up (sinfo: {proc.stderr.strip() or ' '.join(states) or 'no nodes'})"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(_why_no_slurm()), reason=_why_no_slurm() or "")]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One data and cache folder for every run (the twin is generated once, by the local run); one BLAS
    thread everywhere, so the local process and the Slurm jobs compute alike."""
    root = tmp_path_factory.mktemp("slurm")
    threads = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return root, dict(
        os.environ, EEGBENCH_DATA=str(root / "data"), EEGBENCH_CACHE=str(root / "cache"), HF_HUB_OFFLINE="1", **threads
    )


#: one fold, two seeds: two pretrain cells (one job array of two tasks), then their two finetune cells
CELLS = [*TINY_ONE_FOLD, "seeds=[0, 1]"]


def run(env: dict[str, str], results: Path, *overrides: str) -> subprocess.CompletedProcess:
    # sbatch exports this environment to the jobs (--export=ALL, Slurm's default)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "eegbench.cli",
            "run",
            str(QUICK),
            *as_cli([*CELLS, *overrides]),
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def metric_rows(results: Path) -> dict[tuple, float]:
    return {
        (r["cell_key"], r["metric"], r["test_subject"]): r["value"] for r in ResultStore(results, read_only=True).rows()
    }


def test_a_real_job_array_stores_the_local_executors_rows(env):
    root, environ = env
    local = run(environ, root / "local", 'executor={name="local"}')
    assert local.returncode == 0, local.stderr
    expected = metric_rows(root / "local")
    assert len({k for k, _, _ in expected}) == 4 and len(expected) >= 12  # 2 seeds x (pretrain, finetune)

    on_slurm = run(
        environ,
        root / "slurm",
        f'executor={{name="submitit", params={{cluster="slurm", gpus_per_task=0, cells_per_job=1, {SLURM_PARAMS}}}}}',
    )
    assert on_slurm.returncode == 0, on_slurm.stderr
    assert metric_rows(root / "slurm") == expected  # the same cells, metrics and values, bit for bit
    # Slurm ran them: array task ids (<job>_<task>) were submitted, and Slurm ran them to completion
    arrays = [
        ids.split(", ")
        for ids in re.findall(r"submitted \d+ job\(s\) for \d+ cell\(s\): ([\d_, ]+?) \(", on_slurm.stderr)
    ]
    # the two pretrain cells are one array of two tasks (later arrays may hold one cell: a plain job id)
    assert arrays and [re.sub(r"^\d+", "", j) for j in arrays[0]] == ["_0", "_1"], on_slurm.stderr
    first = arrays[0][0]
    assert (root / "slurm" / "submitit" / first).is_dir()  # submitit's job folder, with Slurm's logs
    shown = subprocess.run(["scontrol", "show", "job", first], capture_output=True, text=True, timeout=30)
    if shown.returncode == 0:  # finished jobs leave scontrol after MinJobAge (300 s by default)
        assert "JobState=COMPLETED" in shown.stdout, shown.stdout


def test_gpus_on_a_cluster_without_gpus_is_one_line_naming_gpus_per_task(env):
    root, environ = env
    results = root / "gpu-default"
    proc = run(environ, results, f'executor={{name="submitit", params={{cluster="slurm", {SLURM_PARAMS}}}}}')
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("eegbench: error")]
    assert len(lines) == 1 and "gpus_per_task = 0" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    # refused before anything was submitted: no cell is recorded failed (a rerun with the fix runs them all)
    if (results / "results.sqlite").exists():
        assert "failed" not in ResultStore(results, read_only=True).cell_status().values()


def test_sbatchs_own_gres_refusal_is_one_line_naming_gpus_per_task(tmp_path, monkeypatch):
    # where sinfo cannot tell (None), the request reaches the real sbatch, which refuses the gres
    monkeypatch.setattr(slurm_executor, "partition_has_gpus", lambda partition="": None)
    executor = eegbench.create(
        "executor",
        "submitit",
        cluster="slurm",
        gpus_per_task=1,
        partition="debug",
        cpus_per_task=1,
        mem_gb=1,
        timeout_min=5,
        poll_seconds=1,
        log_folder=str(tmp_path / "logs" / "%j"),
    )
    with pytest.raises(EegbenchError) as info:
        executor.run(fake_plan(n_folds=1, seeds=(0,)), FakeRunner(str(tmp_path / "results")))
    message = str(info.value)
    assert "\n" not in message and "gpus_per_task = 0" in message and "sbatch: error" in message, message
