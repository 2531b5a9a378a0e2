"""A cell is one frozen, typed value: its recipe round-trips, its keys are stable, the engine checks contracts."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from eegbench.errors import EegbenchError
from eegbench.interfaces import stable_hash
from eegbench.planning.recipe import Cell, Recipe, Training

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"


@pytest.fixture
def cells(tmp_path, monkeypatch):
    from eegbench.planning.plan import build_plan

    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    return build_plan(QUICK, ["variants=[]"]).cells  # quick.toml's base recipe alone


def test_a_cell_is_frozen_and_round_trips_through_pickle(cells):
    for cell in cells:
        again = pickle.loads(pickle.dumps(cell))  # what submitit, ray and worker processes do
        assert again == cell and again.key == cell.key == stable_hash(cell.config)
        assert again.recipe.recipe_key == cell.recipe.recipe_key and hash(again.recipe) == hash(cell.recipe)
    cell = cells[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.recipe.train = Training()  # type: ignore[misc]
    with pytest.raises(TypeError, match="frozen"):
        cell.recipe.backbone.params["depth"] = 99  # type: ignore[index]
    assert cell.recipe.backbone.kwargs() == cell.config["backbone"]["params"]  # plain values for the factory


def test_recipe_keys_name_what_is_computed_not_where(cells):
    pre = [c for c in cells if c.stage == "pretrain"]
    ft = [c for c in cells if c.stage == "finetune"]
    # one recipe over folds and seeds; the finetune recipe builds on the pretrain one
    assert len({c.recipe.recipe_key for c in pre}) == 1 and len({c.key for c in pre}) == len(pre)
    assert {c.recipe.pretrain_recipe_key for c in ft} == {pre[0].recipe.recipe_key}
    assert ft[0].recipe.recipe_key != pre[0].recipe.recipe_key
    # where the data lives is not the method; the engine's head is
    moved = dataclasses.replace(
        pre[0].recipe,
        dataset=pre[0].recipe.dataset.__class__(
            pre[0].recipe.dataset.name, {**pre[0].recipe.dataset.params, "root": "/elsewhere"}
        ),
    )
    assert moved.recipe_key == pre[0].recipe.recipe_key
    assert pre[0].recipe.with_head("identity").recipe_key != pre[0].recipe.with_head("linear").recipe_key
    # a hash of plain JSON, the same in every process (no repr, no id)
    assert pre[0].recipe.recipe_key == stable_hash(pre[0].recipe.as_dict())


def test_training_has_every_spec_training_field():
    from eegbench.planning.spec import TRAIN_FIELDS

    assert {f.name for f in dataclasses.fields(Training)} == set(TRAIN_FIELDS)
    # batch_cells says how cells train, never what they compute: no identity (as_dict, keys) holds it
    identity = {k: list(d) if isinstance(d, tuple) else d for k, (_, d) in TRAIN_FIELDS.items() if k != "batch_cells"}
    assert Training().as_dict() == identity


def test_batching_is_no_part_of_a_cell_identity(cells):
    import dataclasses as dc

    cell = cells[0]
    for batch_cells in (False, 4, True):
        train = dc.replace(cell.recipe.train, batch_cells=batch_cells)
        other = dc.replace(cell, recipe=dc.replace(cell.recipe, train=train))
        assert other.key == cell.key and other.recipe.recipe_key == cell.recipe.recipe_key
    assert [dc.replace(Training(), batch_cells=b).max_batched_cells for b in ("auto", True, False, 1, 3)] == [
        8,
        8,
        1,
        1,
        3,
    ]


def test_a_cell_and_its_stage_must_agree(cells):
    pre = next(c for c in cells if c.stage == "pretrain")
    with pytest.raises(ValueError, match="finetune"):
        Cell(pre.recipe, dataclasses.replace(pre.placement, stage="finetune"), pretrain_key="x")
    assert isinstance(pre.recipe, Recipe)


def test_the_engine_refuses_a_backbone_without_n_features_in_one_line():
    import torch

    from eegbench.execution.engine import EEGEncoder

    with pytest.raises(EegbenchError) as err:
        EEGEncoder(torch.nn.Flatten(), 8)
    assert "\n" not in str(err.value) and "n_features" in str(err.value) and "Flatten" in str(err.value)
    flat = torch.nn.Flatten()
    flat.n_features = "wide"  # type: ignore[assignment]
    with pytest.raises(EegbenchError, match="positive int"):
        EEGEncoder(flat, 8)
