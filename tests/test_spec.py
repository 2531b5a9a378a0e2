"""Spec validation: unknown keys with suggestions, allowed values, ranges, overrides as TOML values."""

from __future__ import annotations

import re

import eegbench_fakes as fakes
import pytest

from eegbench.errors import SpecError
from eegbench.planning.spec import TRAIN_FIELDS, load_spec, parse_value


def _err(**changes) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(fakes.spec_dict(**changes))
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_defaults_fill_in_and_finetune_inherits_train():
    spec = load_spec(fakes.spec_dict(finetune={"training_ratios": [0.25, 1.0], "epochs": 3}))
    assert spec.train.epochs == 6 and spec.train.optimizer == "adamw" and spec.validation.selection == "best-val"
    ft = spec.finetune_train()
    assert ft.epochs == 3 and ft.lr == spec.train.lr and ft.batch_size == 32
    assert spec.as_dict()["finetune"]["training_ratios"] == [0.25, 1.0]


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"train.epoch": 5}, "[train] unknown key 'epoch' — did you mean 'epochs'?"),
        ({"dataset.chanels": ["O1"]}, "[dataset] unknown key 'chanels' — did you mean 'channels'?"),
        ({"seed": [1]}, "unknown key 'seed' — did you mean 'seeds'?"),
        ({"train.epochs": -3}, "[train] epochs: input should be greater than or equal to 1"),
        (
            {"finetune": {"training_ratios": [0.5, 1.5]}},
            "[finetune] training_ratios: input should be less than or equal to 1",
        ),
        (
            {"train.schedule": "cosin"},
            "[train] schedule: 'cosin' is not allowed — did you mean 'cosine'? "
            "(allowed: 'cosine', 'plateau', 'constant')",
        ),
        ({"protocol.name": "loocv"}, "(allowed: 'intra', 'loso', 'pooled')"),
        ({"dataset.train_averaging": "al"}, "did you mean 'all'?"),
        ({"dataset.window": [0.5, 0.1]}, "[dataset] window: window start must be before its end"),
        ({"validation.selection": "best-test"}, "(allowed: 'best-val', 'last')"),
        ({"seeds": [1, 1]}, "seeds repeat"),
        ({"train.betas": [0.9]}, "[train] betas: too few values"),
        ({"train.batch_cells": 0}, '[train] batch_cells: use false, true, "auto" or a number of cells >= 1 (got 0)'),
        ({"train.batch_cells": "some"}, "[train] batch_cells: use false, true"),
        ({"finetune": {"batch_cells": 2.5}}, "[finetune] batch_cells: use false, true"),
    ],
)
def test_errors_name_table_key_and_choices(changes, expected):
    msg = _err(**changes)
    assert expected in msg, msg
    assert msg.startswith("<dict>: ")


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(
        'name = "b"\nseeds = [1]\n[dataset]\nname = "d"\n[backbone]\nname = "b"\n[image_encoder]\nname = "e"\n'
        "[train]\nepochs = 3\nlearning_rate = 0.1\n"
    )
    with pytest.raises(SpecError, match=r"bench.toml: \[train\] unknown key 'learning_rate'"):
        load_spec(path)
    path.write_text("name = [\n")
    with pytest.raises(SpecError, match=re.escape("bench.toml: not valid TOML")):
        load_spec(path)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.toml")


def test_overrides_are_toml_values(tmp_path):
    spec = load_spec(
        fakes.spec_dict(),
        [
            "train.epochs=2",
            "seeds=[4, 5]",
            "dataset.params.noise=0.1",
            "dataset.train_averaging=none",
            "train.compile=true",
        ],
    )
    assert spec.train.epochs == 2 and spec.seeds == [4, 5] and spec.dataset.params == {"noise": 0.1}
    assert spec.dataset.train_averaging == "none" and spec.train.compile is True
    assert load_spec(fakes.spec_dict(), {"train.lr": 0.5}).train.lr == 0.5
    assert parse_value("[1,2]") == [1, 2] and parse_value("cosine") == "cosine" and parse_value('"x y"') == "x y"
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        load_spec(fakes.spec_dict(), ["train.epochs"])
    with pytest.raises(SpecError, match=r"\[train\] unknown key 'epoch'"):
        load_spec(fakes.spec_dict(), ["train.epoch=3"])


def test_paper_recipes_are_expressible():
    spec = load_spec(
        fakes.spec_dict(
            **{
                "dataset.test_averaging": "all",
                "dataset.window": [0.0, 1.0],
                "dataset.n_times": 250,
                "train.optimizer": "adam",
                "train.betas": [0.5, 0.999],
                "train.weight_decay": 0.0,
                "train.schedule": "constant",
                "train.text_prompt": "This picture is {concept}",
                "loss.params": {"text_weight": 0.01},
                "dataset.train_averaging": 4,
            }
        )
    )
    assert spec.train.betas == (0.5, 0.999) and spec.dataset.train_averaging == 4 and spec.dataset.window == (0.0, 1.0)
    assert load_spec(fakes.spec_dict(**{"dataset.train_averaging": "none"})).dataset.train_averaging == "none"


def test_every_train_key_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "specs.md").read_text()
    for key in TRAIN_FIELDS:
        assert f"`{key}`" in doc, key
    for flag in (
        "--subject_id",
        "--test_subject",
        "--subj_training_ratio",
        "-b",
        "--lr",
        "--warmup",
        "--temperature",
        "--separate_test",
        "--epoch",
        "--seed",
        "--eeg_enc",
        "--img_enc",
        "--loss",
        "--downstream",
    ):
        assert f"`{flag}`" in doc, flag


def test_an_override_of_a_default_components_parameters_keeps_its_name():
    """`--set task.params.kway=[2, 4]` on a spec without a [task] table sets the default task's parameter."""
    spec = load_spec(fakes.spec_dict(), ["task.params.kway=[2, 4]", "loss.params.temperature=0.05"])
    assert (spec.task.name, spec.task.params) == ("retrieval", {"kway": [2, 4]})
    assert (spec.loss.name, spec.loss.params) == ("fake-clip", {"temperature": 0.05})  # a named table keeps its name
    assert load_spec(fakes.spec_dict(), ['task.name="concept-text"']).task.name == "concept-text"
