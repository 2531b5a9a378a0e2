"""Two `eegbench run` processes on one results directory split the cells: each cell is trained exactly
once (claimed atomically in the store), every cell ends done, and no result row is duplicated."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest
from quick_spec import QUICK, TINY, as_cli


@pytest.mark.slow
def test_two_concurrent_runs_compute_each_cell_once(tmp_path, monkeypatch):
    env = {
        **os.environ,
        "EEGBENCH_DATA": str(tmp_path / "data"),
        "EEGBENCH_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    for k in ("EEGBENCH_DATA", "EEGBENCH_CACHE"):
        monkeypatch.setenv(k, env[k])
    # generate the twin once, so the two runs race on cells only
    from eegbench.execution.engine import build_dataset
    from eegbench.planning.plan import build_plan

    plan = build_plan(QUICK, TINY)
    build_dataset(plan.cells[0].config).ensure_available([1, 2, 3, 4])
    n_cells = len(plan.cells)
    assert n_cells == 6

    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "eegbench.cli", "run", str(QUICK), *as_cli(TINY), "--results", str(results), "--quiet"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs

    # who trained what: each run's log names the cells it finished ("cell <label> done in ...")
    logs = sorted((results / "logs").glob("quick-*.log"))
    assert len(logs) == 2
    trained: Counter[str] = Counter()
    per_run = []
    for log in logs:
        done = re.findall(r"cell (.+?) done in ", log.read_text())
        per_run.append(len(done))
        trained.update(done)
    assert sum(per_run) == n_cells and set(trained.values()) == {1}, trained  # none twice, none missed
    with sqlite3.connect(results / "results.sqlite") as con:
        statuses = dict(con.execute("SELECT cell_key, status FROM cells").fetchall())
        assert len(statuses) == n_cells
        assert set(statuses.values()) == {"done"}
        n_rows = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        dup = con.execute(
            "SELECT COUNT(*) FROM (SELECT cell_key, metric, test_subject FROM results "
            "GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    assert n_rows == n_cells * 5 and dup == 0  # one test subject per cell x top1/top3/top5 + 2- and 4-way top1


def test_live_foreign_running_cell_is_skipped_by_the_runner(tmp_path, monkeypatch):
    """A CellRunner never trains a cell another live process holds; a dead holder's cell it takes."""
    from eegbench.results.store import ResultStore
    from eegbench.runner import CellRunner
    from eegbench_plugins.executors.testing import FakeCell as _Fake

    class FakeCell(_Fake):
        def label(self) -> str:
            return self.key

    results = tmp_path / "r"
    store = ResultStore(results)
    store.mark_running("held", stage="pretrain")
    parent = os.getppid()
    with sqlite3.connect(results / "results.sqlite") as con:
        con.execute("UPDATE cells SET pid = ? WHERE cell_key = 'held'", (parent,))
    trained = []
    monkeypatch.setattr(
        CellRunner,
        "_train",
        lambda self, cells, record: (
            trained.extend(c.key for c in cells) or (_ for _ in ()).throw(RuntimeError("trained"))
        ),
    )
    for force in (False, True):
        out = CellRunner(results, force=force)(FakeCell("held"))
        assert out.status == "skipped" and out.error.startswith("running elsewhere (") and f"pid {parent}" in out.error
    assert trained == [] and store.cell_record("held")["pid"] == parent

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with sqlite3.connect(results / "results.sqlite") as con:
        con.execute("UPDATE cells SET pid = ? WHERE cell_key = 'held'", (proc.pid,))
    out = CellRunner(results)(FakeCell("held"))
    assert trained == ["held"] and out.status == "failed" and "trained" in out.error
    assert store.cell_record("held")["status"] == "failed"


def test_dependents_of_a_cell_running_elsewhere_are_skipped_not_failed(tmp_path):
    import eegbench
    from eegbench.results.store import ResultStore
    from eegbench_plugins.executors.testing import FakeCell, FakeRunner

    results = tmp_path / "r"
    store = ResultStore(results)
    store.mark_running("pre", stage="pretrain")
    with sqlite3.connect(results / "results.sqlite") as con:
        con.execute("UPDATE cells SET pid = ? WHERE cell_key = 'pre'", (os.getppid(),))
    cells = [FakeCell("pre"), FakeCell("fin", stage="finetune", depends_on=("pre",)), FakeCell("other", fold="sub-02")]

    class Claiming(FakeRunner):
        def __call__(self, cell):
            from eegbench.interfaces import CellOutcome

            holder = ResultStore(self.results_dir).claim(cell.key)
            if holder is not None and holder["status"] == "running":
                return CellOutcome(cell.key, "skipped", f"running elsewhere ({holder['host']}, pid {holder['pid']})")
            return super().__call__(cell)

    outs = {o.key: o for o in eegbench.create("executor", "local").run(cells, Claiming(str(results)))}
    assert outs["pre"].status == "skipped" and outs["fin"].status == "skipped" and outs["other"].status == "done"
    assert "dependency" in outs["fin"].error and "running elsewhere" in outs["fin"].error
    assert "fin" not in store.cell_status()  # nothing recorded for it: the holder's run (or a rerun) does it
