"""Batched cells: K members trained as one stacked model end exactly as each trained alone.

In float64 (float32 may differ by summation order alone), after several epochs: the same weights (every
parameter and batch-norm buffer), losses per epoch, selected epoch and epochs run, for resnet1d (with dropout),
braindecode's EEGNet (batch norm and dropout) and NICE (dropout), with members of other seeds, another
training-set size (fewer batches per epoch, a partial last batch) and early stopping cutting some members
before others.
"""

from __future__ import annotations

import math

import pytest
import torch

import eegbench
from eegbench.execution.batched import Member, NotBatchable, fit_batched
from eegbench.execution.engine import DeviceSplit, build_encoder, fit
from eegbench.planning.recipe import ComponentRef, Training

N_CHANS, N_TIMES, IMAGE_DIM, N_IMAGES = 6, 64, 12, 40

BACKBONES = {
    "resnet1d": {"filters": [8, 8, 12, 12, 16], "kernel_size": 5, "dropout": 0.3},
    "eegnet": {
        "kernel_length": 16,
        "depthwise_kernel_length": 8,
        "pool1_kernel_size": 2,
        "pool2_kernel_size": 4,
        "batch_norm_momentum": 0.1,
    },
    "nice": {"temporal_kernel": 7, "pool": 13, "pool_stride": 2, "n_filters": 8, "proj_dim": 16},
}


@pytest.fixture(autouse=True)
def _float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _split(n: int, seed: int) -> DeviceSplit:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, N_IMAGES, (n,), generator=g)
    x = (
        torch.randn(n, N_CHANS, N_TIMES, generator=g)
        + 0.5 * torch.randn(N_IMAGES, N_CHANS, N_TIMES, generator=g)[images]
    )
    return DeviceSplit(x, images, torch.ones(n, dtype=torch.int64))


def _member(backbone: str, seed: int, n_train: int, with_val: bool = True) -> Member:
    """A member as the engine builds it: the model under ``torch.manual_seed(seed)``, its RNG state after."""
    torch.manual_seed(seed)
    model = build_encoder(
        ComponentRef(backbone, BACKBONES[backbone]),
        n_chans=N_CHANS,
        n_times=N_TIMES,
        sfreq=64.0,
        ch_names=[f"C{i}" for i in range(N_CHANS)],
        image_dim=IMAGE_DIM,
        subjects=[1],
    ).double()
    rng_state = torch.get_rng_state()
    emb = torch.randn(N_IMAGES, IMAGE_DIM, generator=torch.Generator().manual_seed(99))
    loss_fn = eegbench.create("loss", "clip", temperature=0.07, learn_temperature=True).double()
    return Member(
        model=model,
        loss_fn=loss_fn,
        train=_split(n_train, 1000 + seed),
        val=_split(24, 2000 + seed) if with_val else None,
        image_emb=emb,
        seed=seed,
        rng_state=rng_state,
    )


def _alone(member: Member, cfg: Training):
    torch.set_rng_state(member.rng_state)  # as the engine: training starts right after the model was built
    return fit(member.model, member.loss_fn, member.train, member.val, member.image_emb, cfg, seed=member.seed)


#: NICE's first convolution feeds batch norm (through a pooling): its bias has a zero gradient in exact arithmetic,
#: so its value (and the running mean that follows it) moves with Adam rescaling rounding noise alone, batched or
#: not; compared at 1e-6 instead of 1e-8 (every other weight of NICE agrees to about 1e-11)
DEAD_BEFORE_BATCH_NORM = {"backbone.encoder.net.0.bias", "backbone.encoder.net.2.running_mean"}


def _assert_same(batched, alone):
    assert batched.epochs_run == alone.epochs_run
    assert batched.best_epoch == alone.best_epoch
    assert len(batched.history) == len(alone.history)
    for b, a in zip(batched.history, alone.history, strict=True):
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-12)
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-8)
        if not math.isnan(a["val_loss"]):
            assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-8)
    assert batched.state.keys() == alone.state.keys()
    for name, value in alone.state.items():
        other = batched.state[name]
        if value.is_floating_point():
            atol = 1e-6 if name in DEAD_BEFORE_BATCH_NORM else 1e-8
            assert torch.allclose(other, value, rtol=0, atol=atol), f"{name}: max diff {(other - value).abs().max()}"
        else:
            assert torch.equal(other, value), name


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_batched_members_end_as_if_trained_alone(backbone):
    cfg = Training(
        epochs=5,
        batch_size=32,
        lr=3e-3,
        weight_decay=0.05,
        warmup_epochs=1,
        schedule="cosine",
        patience=2,
        drop_last=False,
        grad_clip=1.0,
        batch_cells=8,
    )
    # seeds 0 and 1 at the full size; seed 2 with fewer trials: fewer batches per epoch and a partial last batch
    spec = [(0, 96), (1, 96), (2, 56)]
    batched = fit_batched([_member(backbone, s, n) for s, n in spec], cfg)
    alone = [_alone(_member(backbone, s, n), cfg) for s, n in spec]
    for b, a in zip(batched, alone, strict=True):
        _assert_same(b, a)


def test_a_plateau_cut_and_an_early_stop_touch_one_member_only():
    cfg = Training(
        epochs=8,
        batch_size=32,
        lr=1e-2,
        weight_decay=0.0,
        schedule="plateau",
        plateau_patience=0,
        plateau_factor=0.5,
        patience=2,
        optimizer="adam",
        drop_last=True,
        batch_cells=8,
    )
    spec = [(3, 64), (4, 96), (5, 64), (6, 40)]
    batched = fit_batched([_member("resnet1d", s, n) for s, n in spec], cfg)
    alone = [_alone(_member("resnet1d", s, n), cfg) for s, n in spec]
    for b, a in zip(batched, alone, strict=True):
        _assert_same(b, a)
    # the members really went separate ways: not all stopped at the same epoch, and their rates differ
    assert len({r.epochs_run for r in alone}) > 1
    assert any(len({r.history[e]["lr"] for r in alone if e < len(r.history)}) > 1 for e in range(cfg.epochs))


def test_members_without_validation_keep_their_last_weights():
    cfg = Training(epochs=3, batch_size=32, lr=1e-3, schedule="constant", batch_cells=8)
    spec = [(0, 64), (1, 48)]
    batched = fit_batched([_member("nice", s, n, with_val=False) for s, n in spec], cfg)
    alone = [_alone(_member("nice", s, n, with_val=False), cfg) for s, n in spec]
    for b, a in zip(batched, alone, strict=True):
        _assert_same(b, a)


def test_a_diverging_member_fails_alone_and_the_others_finish():
    cfg = Training(epochs=3, batch_size=32, lr=1e-3, schedule="constant", batch_cells=8)
    good, bad = _member("resnet1d", 0, 64), _member("resnet1d", 1, 64)
    with torch.no_grad():  # a broken temperature: that member's loss is nan from its first step
        bad.loss_fn.raw_temperature.fill_(float("nan"))
    ended: list[int] = []
    ends = fit_batched([good, bad], cfg, on_done=lambda i, end: ended.append(i))
    assert isinstance(ends[1], eegbench.errors.CellFailure) and "diverged" in str(ends[1])
    assert not isinstance(ends[0], Exception) and ends[0].epochs_run == 3
    assert ended == [1, 0]  # the failed member was reported as soon as it stopped


def test_a_model_drawing_its_own_randomness_is_refused_before_any_step():
    class Noisy(torch.nn.Module):
        n_features = 4

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(N_CHANS * N_TIMES, 4)

        def forward(self, x):
            return torch.nn.functional.dropout(self.lin(x.flatten(1)), 0.5, training=self.training)

    from eegbench.execution.engine import EEGEncoder

    members = []
    for seed in (0, 1):
        m = _member("resnet1d", seed, 32)
        torch.manual_seed(seed)
        m.model = EEGEncoder(Noisy(), IMAGE_DIM).double()
        members.append(m)
    before = {k: v.clone() for k, v in members[0].model.state_dict().items()}
    with pytest.raises(NotBatchable):
        fit_batched(members, Training(epochs=1, batch_size=16, batch_cells=2))
    after = members[0].model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_auto_batches_only_where_it_pays_and_the_timing_changes_nothing(monkeypatch):
    """``batch_cells = "auto"`` times a batched step against steps alone on throwaway copies first: whichever it
    decides, no member's weights, buffers or RNG stream moved, so training alone afterwards is unchanged."""
    import eegbench.execution.batched as batched

    members = [_member("eegnet", s, 48) for s in (0, 1)]
    before = [({k: v.clone() for k, v in m.model.state_dict().items()}, m.rng_state.clone()) for m in members]
    rng = torch.get_rng_state()
    monkeypatch.setattr(batched, "_step_seconds", lambda *a, **k: (2.0, 1.0))  # batched slower: refused
    with pytest.raises(NotBatchable, match="takes 2000 ms"):
        fit_batched(members, Training(epochs=1, batch_size=16, batch_cells="auto"))
    monkeypatch.undo()
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    template = copy.deepcopy(members[0].model)
    calls = batched._record_dropouts(
        template, batched._swap_dropouts(template), members[0], 16, torch.autocast("cpu", enabled=False)
    )
    stacked = (*stack_module_state([m.model for m in members]), *stack_module_state([m.loss_fn for m in members]))
    loss_fn = members[0].loss_fn

    def member_loss(p, b, lp, lb, x, s, t, txt):
        return functional_call(loss_fn, (lp, lb), (functional_call(template, (p, b), (x, s)), t))

    in_dims = (0, 0, 0, 0, 0, 0, 0, None)
    batched_s, alone_s = batched._step_seconds(
        vmap(member_loss, in_dims=in_dims, randomness="error"), members, calls, stacked, 16
    )
    assert batched_s > 0 and alone_s > 0
    assert torch.equal(torch.get_rng_state(), rng)
    for m, (state, rng_state) in zip(members, before, strict=True):
        assert all(torch.equal(v, state[k]) for k, v in m.model.state_dict().items())
        assert torch.equal(m.rng_state, rng_state)


# --------------------------------------------------------------------------------------------------
# through the runner and executors
# --------------------------------------------------------------------------------------------------
def _stored(results):
    import sqlite3

    with sqlite3.connect(results / "results.sqlite") as con:
        rows = con.execute("SELECT cell_key, metric, value, best_epoch, epochs_run FROM results").fetchall()
        finished = dict(con.execute("SELECT cell_key, finished_at FROM cells WHERE status = 'done'").fetchall())
    return {(r[0], r[1]): r[2:] for r in rows}, finished


@pytest.mark.slow
def test_a_spec_run_batched_stores_what_it_stores_one_by_one_and_each_way_skips_the_other(tmp_path, monkeypatch):
    from quick_spec import QUICK, TINY

    from eegbench.runner import run_spec

    torch.set_default_dtype(torch.float32)  # a real run, in float32 (the fixture above set float64)
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    import eegbench.execution.batched as batched

    sizes: list[int] = []
    real = batched.fit_batched
    monkeypatch.setattr(
        batched, "fit_batched", lambda members, *a, **k: sizes.append(len(members)) or real(members, *a, **k)
    )
    alone, together = tmp_path / "alone", tmp_path / "together"
    run_spec(QUICK, [*TINY, "train.batch_cells=false"], results_dir=alone)
    assert sizes == []
    run_spec(QUICK, [*TINY, "train.batch_cells=4"], results_dir=together)
    assert sizes == [2, 4]  # the 2 pretrain cells (folds) as one, then the 4 finetune cells (folds x ratios)
    one, _ = _stored(alone)
    many, finished = _stored(together)
    assert one.keys() == many.keys() and len({k for k, _ in one}) == 6  # the same cells (keys), every metric
    for key, (value, best_epoch, epochs_run) in one.items():
        # float32: the stacked convolutions sum in another order, so scores may differ by a rounding alone
        assert many[key][1:] == (best_epoch, epochs_run)
        assert many[key][0] == pytest.approx(value, abs=0.02), key
    run_spec(QUICK, [*TINY, "train.batch_cells=false"], results_dir=together)  # stored batched: skipped alone
    assert _stored(together)[1] == finished


def test_executors_hand_the_runner_its_groups(tmp_path):
    """The local executor (and run_pack, which Slurm jobs and Ray tasks run) give a grouping runner whole
    groups; a runner that cannot group gets one cell at a time."""
    import eegbench
    from eegbench_plugins.executors._core import run_pack
    from eegbench_plugins.executors.testing import FakeCell, FakeRunner

    class GroupingFake(FakeRunner):
        def groups(self, cells):
            by: dict[str, list] = {}
            for c in cells:
                by.setdefault(c.stage, []).append(c)
            return list(by.values())

        def run_group(self, cells):
            handed.append([c.key for c in cells])
            return [self(c) for c in cells]

    cells = [FakeCell(key=f"pre-{i}", stage="pretrain") for i in range(3)] + [
        FakeCell(key=f"fin-{i}", stage="finetune", depends_on=(f"pre-{i}",)) for i in range(3)
    ]
    handed: list[list[str]] = []
    outcomes = eegbench.create("executor", "local").run(cells, GroupingFake(str(tmp_path / "a")))
    assert [o.status for o in outcomes] == ["done"] * 6
    assert handed == [["pre-0", "pre-1", "pre-2"], ["fin-0", "fin-1", "fin-2"]]
    handed.clear()
    assert [o.key for o in run_pack(GroupingFake(str(tmp_path / "b")), cells[:3])] == ["pre-0", "pre-1", "pre-2"]
    assert handed == [["pre-0", "pre-1", "pre-2"]]
    handed.clear()
    plain = eegbench.create("executor", "local").run(cells, FakeRunner(str(tmp_path / "c")))
    assert [o.status for o in plain] == ["done"] * 6 and handed == []
