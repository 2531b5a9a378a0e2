"""Leaderboard cost over realistic stores (pytest-benchmark; figures in docs/performance.md, never asserted).

A store of N finished cells holds 3 N rows (one test subject x three metrics per LOSO cell), written as the
runner writes them (see ``leaderboard_stores.py``). What is timed: ``build`` (read the store, group rows into
recipes, summarise, rank, test) plus the Markdown rendering, i.e. ``eegbench leaderboard`` without the
interpreter's start. With benchmarks disabled (the default) only the 600-cell store is built and read, once,
as a correctness check; the 6,000-cell one runs with ``--benchmark-enable`` or ``EEGBENCH_BENCH_LARGE=1``.
Run: ``pytest tests/test_leaderboard_bench.py --benchmark-enable -p no:randomly``.
"""

from __future__ import annotations

import os

import pytest
from leaderboard_stores import CELLS_PER_VARIANT, write_store

from eegbench.results.leaderboard import build
from eegbench.results.report import render

pytestmark = pytest.mark.benchmark
LARGE_ENV = "EEGBENCH_BENCH_LARGE"


def _enabled(config) -> bool:
    return not config.getoption("benchmark_disable", False) or config.getoption("benchmark_enable", False)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """``{n_cells: results directory}``, each written once per module."""
    made: dict[int, object] = {}

    def get(n_cells: int):
        if n_cells not in made:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("EEGBENCH_DATA", str(tmp_path_factory.mktemp("data")))
                d = tmp_path_factory.mktemp(f"store{n_cells}")
                assert write_store(d, n_cells) == 3 * n_cells
            made[n_cells] = d
        return made[n_cells]

    return get


@pytest.mark.parametrize("n_cells", [600, 6000])
def test_leaderboard_cost(benchmark, stores, request, n_cells):
    if n_cells > 600 and not (_enabled(request.config) or os.environ.get(LARGE_ENV)):
        pytest.skip(f"{n_cells} cells: run with --benchmark-enable or {LARGE_ENV}=1")
    directory = stores(n_cells)

    def leaderboard():
        board = build(directory, reported=False)
        return board, render(board, "md")

    board, text = benchmark.pedantic(leaderboard, rounds=3 if _enabled(request.config) else 1, iterations=1)
    # every top-1 row read once; one configuration per spec variant (the finetune-lr variants share their
    # pretraining, whose row is then its own), each spanning the pretrain and two finetune columns
    assert len(board.rows) == n_cells
    measured = board.table[board.table["source"] == "measured"]
    assert set(zip(measured["stage"], measured["training_ratio"], strict=True)) == {
        ("pretrain", 1.0),
        ("finetune", 0.25),
        ("finetune", 1.0),
    }
    assert int(measured["n_cells"].sum()) == n_cells
    assert measured["ranked"].any() and (measured["n_pairs"][measured["ranked"] & ~measured["best"]] == 4).all()
    assert text.count("\n") > len(set(measured["config_id"])) and n_cells // CELLS_PER_VARIANT >= 10
