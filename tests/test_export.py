"""The raw rows export (`eegbench export`, `eegbench leaderboard --format rows`): one line per (cell, test
subject, metric) with its context, every value checked against the SQLite database."""

from __future__ import annotations

import csv
import io
import sqlite3

import numpy as np
import pytest
from test_leaderboard import CONFIGS, make_context, make_results

from eegbench.cli import main
from eegbench.results.export import ROW_COLUMNS, result_rows


def float32_scores(base, subject, seed, ratio, k):
    return float(np.float32(min(1.0, round(base * k * (0.6 + 0.4 * ratio) + 0.02 * subject + 0.01 * seed, 2))))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("rows")
    make_results(
        d,
        CONFIGS,
        subjects=(1, 2, 3),
        seeds=(0, 1),
        protocols=("intra", "loso"),
        ratios=(0.25, 1.0),
        context=make_context(n_way=50, sfreq=63.63636363636364),
        scorer=float32_scores,
    )
    return d


def test_rows_are_the_database_rows_with_context_and_configuration(results):
    frame = result_rows(results)
    assert tuple(frame.columns) == ROW_COLUMNS
    con = sqlite3.connect(results / "results.sqlite")
    db = {
        (k, s, m): (v, c, stage, ratio, seed, fold, protocol, backbone)
        for k, s, m, v, c, stage, ratio, seed, fold, protocol, backbone in con.execute(
            "SELECT cell_key, test_subject, metric, value, chance, stage, "
            "training_ratio, seed, fold, protocol, backbone FROM results"
        )
    }
    con.close()
    # 2 configurations x (intra pretrain + loso pretrain + loso finetune at 2 ratios) x 3 subjects x 2 seeds x 2 metrics
    assert len(frame) == len(db) == 2 * 4 * 3 * 2 * 2
    for r in frame.to_dict("records"):
        value, chance, stage, ratio, seed, fold, protocol, backbone = db[(r["cell_key"], r["subject"], r["metric"])]
        assert r["value"] == pytest.approx(value, rel=5e-6) and r["chance"] == pytest.approx(chance)
        assert len(repr(r["value"])) <= 8  # 0.3799999952316284 in the database, 0.38 here
        assert (r["stage"], r["training_ratio"], r["seed"], r["fold"], r["protocol"], r["backbone"]) == (
            stage,
            ratio,
            seed,
            fold,
            protocol,
            backbone,
        )
        assert r["n_way"] == 50 and r["test_averaging"] == "all" and r["spec"] == "quick"
        assert r["config"].startswith(backbone + " / ") and len(r["config_id"]) == 12
    # the configuration labels are the leaderboard's
    from eegbench.results.leaderboard import build

    board = build(results, reported=False)
    assert set(frame["config"]) == set(board.table["config"])
    # ordered: pretrain before finetune, ratios ascending
    loso = frame[(frame["protocol"] == "loso") & (frame["config"] == frame["config"].iloc[0])]
    assert list(dict.fromkeys(zip(loso["stage"], loso["training_ratio"], strict=True))) == [
        ("pretrain", 1.0),
        ("finetune", 0.25),
        ("finetune", 1.0),
    ]


def test_cli_export_and_leaderboard_rows_write_the_same_csv(results, tmp_path, capsys):
    assert main(["export", str(results), "--out", str(tmp_path / "rows.csv")]) == 0
    assert main(["leaderboard", str(results), "--format", "rows"]) == 0
    stdout = capsys.readouterr().out
    text = (tmp_path / "rows.csv").read_text()
    assert text == stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 96 and list(rows[0]) == list(ROW_COLUMNS)
    # float32 scores of two decimals (0.19 stored as 0.1899999976158142) come out as written
    assert all(len(r["value"]) <= 4 for r in rows) and any(r["value"] == "0.19" for r in rows)


def test_export_refuses_an_unknown_suffix_in_one_line(results, tmp_path, capsys):
    assert main(["export", str(results), "--out", str(tmp_path / "rows.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "rows.txt" in err and ".csv or .parquet" in err
    assert not (tmp_path / "rows.txt").exists()


def test_parquet_export_round_trips_or_says_what_to_install(results, tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "rows.parquet"
    code = main(["export", str(results), "--out", str(out)])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert code == 2 and not out.exists()
        assert "pyarrow" in capsys.readouterr().err
        return
    assert code == 0
    back = pd.read_parquet(out)
    assert len(back) == 96 and tuple(back.columns) == ROW_COLUMNS
