"""Stores written before the store kept recipes load, migrate on open, and rank exactly as they did.

The fixtures (tests/fixtures/store_v1, see its README) were written by the previous version's runner path;
``expected.json`` is that version's leaderboard over them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from eegbench.results.leaderboard import build
from eegbench.results.store import ResultStore

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "store_v1"
COLS = ["config_id", "config", "variant", "stage", "training_ratio", "mean", "n", "rank"]


@pytest.fixture
def stores(tmp_path):
    for name in ("full", "lone"):
        shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path / "full", tmp_path / "lone"


def tables(full, lone):
    return {
        name: build(dirs, reported=False).table[COLS].to_dict("records")
        for name, dirs in (("full", [full]), ("lone", [lone]), ("both", [full, lone]))
    }


def columns(path, table):
    with sqlite3.connect(path / "results.sqlite") as con:
        return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def test_an_old_store_ranks_as_before_read_only_and_after_migration(stores):
    full, lone = stores
    expected = json.loads((FIXTURES / "expected.json").read_text())
    before = {p: hashlib.sha256((p / "results.sqlite").read_bytes()).hexdigest() for p in stores}
    assert tables(full, lone) == expected  # read-only: keys computed in memory, nothing written
    assert all(hashlib.sha256((p / "results.sqlite").read_bytes()).hexdigest() == h for p, h in before.items())
    assert "recipe_key" not in columns(full, "results")

    for p in stores:
        ResultStore(p)  # opened for writing: migrated
        assert {"recipe", "recipe_key", "pretrain_recipe_key"} <= columns(p, "results")
        assert {"recipe_key", "pretrain_recipe_key"} <= columns(p, "cells")
    with sqlite3.connect(full / "results.sqlite") as con:
        assert con.execute("SELECT count(*) FROM results WHERE recipe_key IS NULL").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM cells WHERE recipe_key IS NULL AND status = 'done'").fetchone()[0] == 0
        # every finetune row names the pretrain recipe its pretrain cell's rows carry
        orphans = con.execute(
            "SELECT count(*) FROM results f WHERE f.stage = 'finetune' AND NOT EXISTS (SELECT 1 "
            "FROM results p WHERE p.stage = 'pretrain' AND p.recipe_key = f.pretrain_recipe_key)"
        )
        assert orphans.fetchone()[0] == 0
    with sqlite3.connect(lone / "results.sqlite") as con:  # pretrain settings unknown here: left to the merge
        assert con.execute("SELECT count(*) FROM results WHERE recipe_key IS NOT NULL").fetchone()[0] == 0
    assert tables(full, lone) == expected
    ResultStore(full)  # a second open finds nothing to do
    assert tables(full, lone) == expected


def test_new_cells_of_an_unchanged_recipe_keep_the_old_keys(stores, tmp_path, monkeypatch):
    """Cells planned today hash to the keys the old version stored (skip-if-stored still skips), and their
    recipes to the recipe keys the migration gave the old rows."""
    from dataclasses import replace

    from eegbench.interfaces import stable_hash
    from eegbench.planning.plan import build_plan
    from eegbench.planning.recipe import ComponentRef

    full, _ = stores
    ResultStore(full)
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    with sqlite3.connect(full / "results.sqlite") as con:
        stored = {
            k: (json.loads(cfg), rk, prk)
            for k, cfg, rk, prk in con.execute("SELECT cell_key, config, recipe_key, pretrain_recipe_key FROM cells")
        }
    cells = build_plan(FIXTURES / "quick.toml").cells  # the spec the stores were written from
    old_of: dict[str, str] = {}  # today's cell key -> the key the old version stored for the same cell
    for cell in cells:  # pretrain cells first (the plan's order), so a finetune finds its pretrain's old key
        for key, (cfg, _, _) in stored.items():
            if (cfg["stage"], cfg["fold"], cfg["seed"], cfg["training_ratio"], cfg["train"]) != (
                cell.stage,
                cell.fold,
                cell.seed,
                cell.training_ratio,
                cell.config["train"],
            ):
                continue
            if cell.stage == "pretrain" or cfg["pretrain"]["key"] == old_of.get(cell.pretrain_key):
                old_of[cell.key] = key
    assert len(old_of) == len(cells)
    for cell in cells:
        old_cfg, recipe_key, pretrain_recipe_key = stored[old_of[cell.key]]
        # the same layout; only what the data files are here may differ (another machine's synthetic twin)
        assert set(old_cfg) == set(cell.config)
        link = {"pretrain": {**old_cfg["pretrain"], "key": cell.pretrain_key}} if cell.stage == "finetune" else {}
        # the retrieval task has since gained parameters (k-way metrics, with defaults): the one recipe change
        # between then and now, so the old task stands in for today's on both sides
        added = set(cell.config["task"]["params"]) - set(old_cfg["task"]["params"])
        assert added == {"kway", "kway_draws", "kway_seed"}
        same_inputs = {**old_cfg, "inputs": cell.config["inputs"], **link}
        assert stable_hash(same_inputs) == stable_hash({**cell.config, "task": old_cfg["task"], **link})
        recipe = replace(cell.recipe, task=ComponentRef.from_dict(old_cfg["task"])).with_head("linear")
        assert (recipe.recipe_key, recipe.pretrain_recipe_key) == (recipe_key, pretrain_recipe_key)
