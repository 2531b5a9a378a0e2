"""`eegbench run` killed mid-run (SIGKILL, as a lost node or Ctrl-\\ would) leaves a readable store; the
rerun runs only the cells that were not finished."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

QUICK = str(Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml")
SMALL = [
    "--set",
    "variants=[]",
    "--set",
    "seeds=[0]",
    "--set",
    "dataset.params={noise=4.0, subjects=4, train_concepts=30, images_per_concept=2, test_images=10, "
    "test_repetitions=8}",
    "--set",
    "train.epochs=4",
    "--set",
    "finetune.epochs=3",
]


def _done(db: Path) -> dict[str, float]:
    if not db.exists():
        return {}
    with sqlite3.connect(db, timeout=30) as con:  # must stay readable while the writer works and after its death
        return dict(con.execute("SELECT cell_key, finished_at FROM cells WHERE status = 'done'").fetchall())


@pytest.mark.slow
def test_killed_run_resumes_only_missing_cells(tmp_path):
    env = {**os.environ, "EEGBENCH_DATA": str(tmp_path / "data"), "EEGBENCH_CACHE": str(tmp_path / "cache")}
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "eegbench.cli", "run", QUICK, *SMALL, "--results", str(results), "--quiet"]
    db = results / "results.sqlite"

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not _done(db) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _done(db)
    assert 1 <= len(before) < 6, "kill the run between its first and last cell"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _done(db)
    assert len(after) == 6
    assert {k: after[k] for k in before} == before  # finished cells were neither rerun nor rewritten
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n_rows = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert n_rows == 6 * 7  # one test subject per cell x top1/top3/top5 + k-way top1 at 2, 4, 10 and top5 at 10
