"""``[[variants]]``: several configurations of one spec expanded into one plan (spec loading and planning)."""

from __future__ import annotations

import json

import eegbench_fakes as fakes
import pytest

from eegbench.cli import main
from eegbench.errors import SpecError
from eegbench.planning.plan import build_plan
from eegbench.planning.spec import expand_variants, load_spec
from eegbench.runner import run_spec

VARIANTS = [
    {"name": "mlp32"},  # the base's [backbone]
    {"name": "mlp8", "backbone": {"name": "fake-mlp", "params": {"hidden": 8}}},
    {"name": "mlp32-slow", "train": {"lr": 1e-3}},  # merged into [train]: only lr changes
]


@pytest.fixture
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)
    return tmp_path


def _spec(**changes):
    return fakes.spec_dict(**{"protocol.folds": [2, 3], "seeds": [0, 1], "variants": VARIANTS, **changes})


def test_variants_expand_into_complete_specs(env):
    spec = load_spec(_spec())
    expanded = dict(expand_variants(spec))
    assert list(expanded) == ["mlp32", "mlp8", "mlp32-slow"]
    assert expanded["mlp8"].backbone.params == {"hidden": 8}
    assert expanded["mlp32-slow"].train.lr == 1e-3 and expanded["mlp32-slow"].train.epochs == 6  # merged, not replaced
    assert all(not s.variants for s in expanded.values())


def test_plan_concatenates_variants_and_keeps_the_keys_of_identical_recipes(env):
    plan = build_plan(_spec())
    assert len(plan.cells) == 3 * 2 * 2  # variants x folds x seeds (pretrain only)
    assert len({c.key for c in plan.cells}) == len(plan.cells)
    alone = build_plan(fakes.spec_dict(**{"protocol.folds": [2, 3], "seeds": [0, 1]}))
    base_keys = [c.key for c in plan.cells if plan.variants[c.key] == "mlp32"]
    assert base_keys == [c.key for c in alone.cells]  # the base variant computes what the spec alone does
    hidden = {plan.variants[c.key]: c.config["backbone"]["params"]["hidden"] for c in plan.cells}
    lrs = {plan.variants[c.key]: c.config["train"]["lr"] for c in plan.cells}
    assert hidden == {"mlp32": 32, "mlp8": 8, "mlp32-slow": 32} and lrs["mlp32-slow"] == 1e-3


def test_set_overrides_reach_every_variant_and_only_selects_one(env):
    plan = build_plan(_spec(), ["train.epochs=3", "seeds=[5]"])
    assert {c.config["train"]["epochs"] for c in plan.cells} == {3} and {c.seed for c in plan.cells} == {5}
    chosen = plan.select(["variant=mlp8", "fold=3"])
    assert [plan.variants[c.key] for c in chosen] == ["mlp8"] and chosen[0].fold == "sub-03"
    with pytest.raises(SpecError, match="did you mean 'mlp8'"):
        plan.select(["variant=mlp9"])
    one = build_plan(_spec(), ['variants=[{name="only", backbone={name="fake-mlp", params={hidden=4}}}]'])
    assert set(one.variants.values()) == {"only"} and len(one.cells) == 4


@pytest.mark.parametrize(
    "variants, message",
    [
        ([{"backbone": {"name": "fake-mlp"}}], "needs a name"),
        ([{"name": "a"}, {"name": "a"}], "variant names repeat: a"),
        ([{"name": "a", "dataset": {"name": "fake-eeg"}}], "'dataset' cannot vary"),
        ([{"name": "a", "trian": {"lr": 1.0}}], "did you mean 'train'"),
        ([{"name": "a", "train": {"lr": -1.0}}], r"\[\[variants\]\] 'a': \[train\] lr"),
        ([{"name": "a", "backbone": {"name": "fake-mlpp"}}], r"\[\[variants\]\] 'a': \[backbone\].*fake-mlpp"),
    ],
)
def test_bad_variants_are_one_line_naming_the_variant(env, variants, message):
    with pytest.raises(SpecError, match=message):
        build_plan(_spec(variants=variants))


def test_dry_run_and_status_list_every_variant(env, capsys):
    table = run_spec(_spec(), results_dir=env / "res", dry_run=True)
    assert list(table["variant"]).count("mlp8") == 4 and capsys.readouterr().out == ""  # silent unless asked
    run_spec(_spec(), results_dir=env / "res", device="cpu", only=["variant=mlp8"])
    assert main(["status", "--results", str(env / "res"), "--json", _write(env, _spec())]) in (0, 1)
    status = [r["status"] for r in json.loads(capsys.readouterr().out)["cells"]]
    assert status.count("done") == 4 and len(status) == 12


def test_a_run_of_variants_prints_the_ranked_leaderboard(env, capsys):
    df = run_spec(_spec(), results_dir=env / "res", device="cpu", progress=True)
    assert not df.attrs["failed"]
    out = capsys.readouterr().out
    assert "# Leaderboard" in out and "Paired comparison" in out and "Spread over subjects" in out
    assert out.count("fake-mlp") >= 3 and "<details>" not in out


def _write(env, data) -> str:
    import tomli_w

    path = env / "variants.toml"
    path.write_text(tomli_w.dumps(data))
    return str(path)
