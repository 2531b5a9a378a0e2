"""Plans: cells = fold × seed × stage × ratio, stable keys, honest-protocol invariants, --only."""

from __future__ import annotations

import pickle

import eegbench_fakes as fakes
import pytest

from eegbench.errors import SpecError
from eegbench.planning.plan import build_plan


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)


def test_loso_cells_and_finetune_dependencies():
    plan = build_plan(
        fakes.spec_dict(
            **{"protocol.folds": "all", "seeds": [0, 1], "finetune": {"training_ratios": [0.1, 1.0], "epochs": 2}}
        )
    )
    pre = [c for c in plan.cells if c.stage == "pretrain"]
    ft = [c for c in plan.cells if c.stage == "finetune"]
    assert len(pre) == 3 * 2 and len(ft) == 3 * 2 * 2
    c = next(c for c in pre if c.fold == "sub-02" and c.seed == 1)
    assert c.test_subject == 2 and c.train_subjects == (1, 3) and c.protocol == "loso" and c.training_ratio == 1.0
    for f in ft:
        (dep,) = f.depends_on
        parent = next(p for p in pre if p.key == dep)
        assert parent.fold == f.fold and parent.seed == f.seed and f.train_subjects == (f.test_subject,)
        assert f.config["train"]["epochs"] == 2 and parent.config["train"]["epochs"] == 6
    assert len({c.key for c in plan.cells}) == len(plan.cells)
    assert pickle.loads(pickle.dumps(plan.cells[-1])) == plan.cells[-1]
    # component defaults are resolved into the config (and thus the key)
    assert c.config["backbone"]["params"] == {"hidden": 32}


def test_keys_are_stable_and_track_what_is_computed():
    a = build_plan(fakes.spec_dict()).cells[0]
    b = build_plan(fakes.spec_dict(**{"description": "other words", "seeds": [0, 9]})).cells[0]
    assert a.key == b.key  # adding seeds or prose does not invalidate stored cells
    assert build_plan(fakes.spec_dict(**{"train.lr": 0.01})).cells[0].key != a.key
    assert build_plan(fakes.spec_dict(**{"backbone.params.hidden": 32})).cells[0].key == a.key  # explicit default


def test_budget_split_mode_and_drop_last_are_part_of_the_key():
    """Finetune cells whose labelled budget is drawn first (validation inside it) are new computations: their
    config records ``labelled_fraction`` and so their keys differ from cells of the old layout (validation
    drawn from all images, then ratio of the rest), which stored results would otherwise be mistaken for."""
    from eegbench.interfaces import stable_hash

    spec = fakes.spec_dict(finetune={"training_ratios": [0.25, 1.0], "epochs": 2})
    plan = build_plan(spec)
    pre, ft_quarter, ft_full = plan.cells
    assert (
        pre.config["labelled_fraction"],
        ft_quarter.config["labelled_fraction"],
        ft_full.config["labelled_fraction"],
    ) == (1.0, 0.25, 1.0)
    old_layout = {k: v for k, v in ft_quarter.config.items() if k != "labelled_fraction"}
    assert ft_quarter.key == stable_hash(dict(ft_quarter.config)) != stable_hash(old_layout)
    keys = {c.key for c in plan.cells}
    ft = {"training_ratios": [0.25, 1.0], "epochs": 2}
    for change in ({"validation.by": "trial"}, {"train.drop_last": False}):
        assert not {c.key for c in build_plan(fakes.spec_dict(finetune=ft, **change)).cells} & keys
    keep_last = build_plan(fakes.spec_dict(finetune={**ft, "drop_last": False})).cells
    assert keep_last[0].key == pre.key  # only the finetune cells train differently
    assert not {c.key for c in keep_last[1:]} & keys and keep_last[1].config["train"]["drop_last"] is False
    assert pre.config["train"]["drop_last"] is True  # the default keeps today's full batches


def test_intra_and_pooled():
    intra = build_plan(fakes.spec_dict(**{"protocol": {"name": "intra", "folds": [1, 2]}})).cells
    assert [(c.fold, c.train_subjects, c.test_subject) for c in intra] == [("sub-01", (1,), 1), ("sub-02", (2,), 2)]
    (pooled,) = build_plan(fakes.spec_dict(**{"protocol": {"name": "pooled"}})).cells
    assert pooled.fold == "pooled" and pooled.train_subjects == (1, 2, 3) and pooled.test_subjects == (1, 2, 3)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"validation.split": "test"}, "would select checkpoints on the test images"),
        ({"validation.fraction": 0.0}, "needs a validation split"),
        (
            {"validation.fraction": 0.0, "validation.selection": "last", "train.schedule": "plateau"},
            'schedule = "plateau" needs a validation split',
        ),
        (
            {"validation.fraction": 0.0, "validation.selection": "last", "train.patience": 3},
            "patience = 3 needs a validation split",
        ),
        ({"protocol.folds": [7]}, "folds [7] are not among [dataset] subjects"),
        ({"dataset.subjects": [1], "protocol.folds": [1]}, "needs at least 2 subjects"),
        (
            {"protocol.name": "intra", "finetune": {"training_ratios": [0.5]}},
            '[finetune] needs [protocol] name = "loso"',
        ),
        ({"train.warmup_epochs": 9}, "warmup_epochs = 9 exceeds epochs = 6"),
        ({"backbone.name": "fake-mpl"}, "[backbone] unknown backbone 'fake-mpl' — did you mean 'fake-mlp'?"),
        ({"backbone.params.hiden": 3}, "[backbone] backbone 'fake-mlp' has no parameter 'hiden'"),
        ({"executor.name": "nowhere"}, "[executor] unknown executor 'nowhere'"),
    ],
)
def test_dishonest_or_unresolvable_specs_are_refused(changes, expected):
    with pytest.raises(SpecError) as info:
        build_plan(fakes.spec_dict(**changes))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_select_only_pulls_in_dependencies():
    plan = build_plan(fakes.spec_dict(**{"protocol.folds": "all", "finetune": {"training_ratios": [0.5, 1.0]}}))
    chosen = plan.select(["stage=finetune", "fold=2", "ratio=0.5"])
    assert [(c.stage, c.fold, c.training_ratio) for c in chosen] == [
        ("pretrain", "sub-02", 1.0),
        ("finetune", "sub-02", 0.5),
    ]
    assert len(plan.select({"seed": 0})) == len(plan.cells)
    with pytest.raises(SpecError, match="did you mean 'stage'"):
        plan.select(["stag=pretrain"])
    with pytest.raises(SpecError, match="matches no cell"):
        plan.select(["fold=sub-09"])
