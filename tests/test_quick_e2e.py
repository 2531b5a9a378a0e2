"""The README's main job, end to end on fresh folders: `benchmarks/quick.toml` compares three backbone families,
each learns, reruns skip, the leaderboard reads what the engine stored and ranks them.

Slow (about 30 s on 2 cores): it generates the synthetic twin and trains the three variants with one seed (the
README's run has two), as a user's first run does.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from eegbench.cli import main
from eegbench.runner import run_spec

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"
ONE_SEED = ["seeds=[0]"]
VARIANTS = {"resnet1d": "resnet1d", "eegnet": "eegnet", "nice": "nice"}  # variant: its backbone column


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    mp = pytest.MonkeyPatch()
    mp.setenv("EEGBENCH_DATA", str(root / "data"))
    mp.setenv("EEGBENCH_CACHE", str(root / "cache"))
    mp.delenv("EEGBENCH_JOBS", raising=False)  # the README's default: jobs = "auto" (tests/conftest.py sets 1)
    results = root / "results"
    try:
        df = run_spec(QUICK, ONE_SEED, results_dir=results)
        yield df, results
    finally:
        mp.undo()


def _finished_at(results: Path) -> dict[str, float]:
    with sqlite3.connect(results / "results.sqlite") as con:
        return dict(con.execute("SELECT cell_key, finished_at FROM cells WHERE status = 'done'").fetchall())


@pytest.mark.slow
def test_quick_learns_well_between_chance_and_ceiling(quick_run):
    df, _ = quick_run
    assert not df.attrs["failed"]
    top1 = df[df.metric == "top1"]
    assert len(top1) == 3 * 6  # 3 variants x 2 folds x (pretrain + finetune at 2 ratios), one test subject each
    assert set(top1["backbone"]) == set(VARIANTS.values())
    means = top1.groupby(["backbone", "stage", "training_ratio"])["value"].mean()
    chance = float(top1["chance"].iloc[0])
    assert chance == pytest.approx(1 / 50)
    for (backbone, stage, ratio), mean in means.items():
        assert 2 * chance < mean < 0.95, f"{backbone} {stage} ratio {ratio}: top-1 {mean:.3f}"
    for backbone in VARIANTS.values():
        assert means[(backbone, "finetune", 1.0)] > means[(backbone, "pretrain", 1.0)], backbone


@pytest.mark.slow
def test_the_default_runs_a_worker_per_cpu(quick_run):
    from eegbench.execution.resources import usable_cpus

    df, _ = quick_run
    log = Path(df.attrs["log"]).read_text()
    workers = min(usable_cpus(), 18)  # 18 cells to run (one seed)
    if workers > 1:
        assert f"local executor: {workers} worker processes, threads per worker: 1" in log
    else:
        assert "worker processes" not in log


@pytest.mark.slow
def test_rerun_skips_every_stored_cell(quick_run, monkeypatch):
    df, results = quick_run
    before = _finished_at(results)
    monkeypatch.setenv("EEGBENCH_DATA", str(results.parent / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(results.parent / "cache"))
    again = run_spec(QUICK, ONE_SEED, results_dir=results)
    assert _finished_at(results) == before  # no cell was rewritten
    assert sorted(again["value"]) == sorted(df["value"])


@pytest.mark.slow
def test_leaderboard_ranks_the_three_families(quick_run, capsys):
    df, results = quick_run
    assert main(["leaderboard", str(results), "--format", "json", "--no-reported"]) == 0
    board = json.loads(capsys.readouterr().out)
    [ctx] = board["contexts"]
    assert ctx["context"]["synthetic"] is True and ctx["context"]["n_way"] == 50
    rows = [r for r in ctx["rows"] if r["source"] == "measured"]
    top1 = df[df.metric == "top1"]
    for (backbone, stage, ratio), group in top1.groupby(["backbone", "stage", "training_ratio"]):
        [row] = [r for r in rows if r["backbone"] == backbone and r["stage"] == stage and r["training_ratio"] == ratio]
        assert row["n"] == len(group) == 2 and row["ranked"]
        assert row["mean"] == pytest.approx(group["value"].mean())
    pretrain = [r for r in rows if r["stage"] == "pretrain"]
    assert sorted(r["rank"] for r in pretrain) == [1, 2, 3]
    assert all(r["n_pairs"] == 2 and 0 < r["p_value"] <= 1 for r in pretrain if not r["best"])
