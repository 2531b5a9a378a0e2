"""Leaderboards from already-loaded rows: the stores' cell configs travel explicitly, not in DataFrame.attrs."""

from __future__ import annotations

from test_leaderboard import measured, write_plan

from eegbench.results.leaderboard import CellConfigs, build, load_results


def test_rows_and_cell_configs_give_the_directories_board(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    a, b = tmp_path / "a", tmp_path / "b"
    write_plan(a, stages=("pretrain",))
    write_plan(b, stages=("finetune",))  # b's finetune rows point at a's pretrain cells
    write_plan(b, stages=("pretrain",), with_rows=False)  # b knows those pretrain cells' configs (no rows)
    configs = CellConfigs()
    rows = load_results([a, b], cell_configs=configs)
    assert not rows.attrs  # nothing for pandas to deep-copy on every operation
    # every cell of both cells tables: 2 pretrain cells (written in a and b, same keys) and 4 finetune cells
    assert sorted(cfg["stage"] for cfg in configs.values()) == ["finetune"] * 4 + ["pretrain"] * 2
    cols = ["config_id", "config", "stage", "training_ratio", "mean", "n"]
    from_dirs = measured(build([a, b], reported=False))[cols].reset_index(drop=True)
    from_rows = measured(build(rows=rows, cell_configs=configs, reported=False))[cols].reset_index(drop=True)
    assert from_rows.equals(from_dirs) and from_dirs["config_id"].nunique() == 1
    # b's rows alone, without the cells tables' configs: each row's stored recipe names its pretraining
    alone = measured(build(rows=load_results(b), reported=False))
    assert set(alone["config_id"]) == set(from_dirs["config_id"])


def test_cell_configs_decode_on_demand_and_skip_unreadable_copies():
    configs = CellConfigs()
    configs.add("k1", "{not json")
    configs.add("k1", '{"stage": "pretrain"}')  # a later directory's readable copy
    configs.add("k2", "{}")
    configs.add("k3", None)
    assert configs.get("k1") == {"stage": "pretrain"} and "k2" not in configs and "k3" not in configs
    assert dict(configs) == {"k1": {"stage": "pretrain"}}
