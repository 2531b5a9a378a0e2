"""Schedules and optimiser groups as a reviewer checked them: plateau reaches lr after warmup, a learned
temperature is not weight-decayed, subject-aware backbones meet unseen test subjects."""

from __future__ import annotations

import eegbench_fakes as fakes
import pytest
import torch

from eegbench.execution.engine import fit, run_cell, to_device
from eegbench.planning.plan import build_plan


@pytest.fixture
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)
    return tmp_path


def _cell(**changes):
    return build_plan(fakes.spec_dict(**changes)).cells[0]


@pytest.mark.parametrize("warmup", [0, 1, 2, 5])
def test_plateau_runs_at_the_configured_lr_after_warmup(env, warmup):
    res = run_cell(
        _cell(
            **{
                "train.epochs": warmup + 2,
                "train.schedule": "plateau",
                "train.plateau_patience": 50,
                "train.lr": 0.01,
                "train.warmup_epochs": warmup,
            }
        ),
        results_dir=env / "r",
        device="cpu",
    )
    lrs = [h["lr"] for h in res.history]
    assert lrs[warmup] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.01)
    assert all(a < 0.01 for a in lrs[:warmup])


def _toy(n=64, d=8):
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    x = (emb @ torch.randn(d, 4 * 16, generator=g)).reshape(n, 4, 16)
    split = to_device(x.numpy(), torch.arange(n).numpy(), torch.zeros(n, dtype=torch.long).numpy(), torch.device("cpu"))
    return split, emb


def test_learned_temperature_is_not_weight_decayed():
    import eegbench

    split, emb = _toy()
    model = fakes.build_backbone(n_chans=4, n_times=16, hidden=16)
    from eegbench.execution.engine import EEGEncoder

    enc = EEGEncoder(model, emb.shape[1])
    loss = eegbench.create("loss", "clip", temperature=0.04, learn_temperature=True)
    seen = {}
    orig = torch.optim.AdamW.__init__

    def spy(self, groups, **kw):
        seen["groups"] = [(len(list(g["params"])), g["weight_decay"]) for g in groups]
        return orig(self, groups, **kw)

    torch.optim.AdamW.__init__ = spy
    try:
        fit(
            enc,
            loss,
            split,
            None,
            emb,
            {
                "epochs": 1,
                "batch_size": 32,
                "lr": 1e-3,
                "min_lr": 0.0,
                "weight_decay": 0.5,
                "optimizer": "adamw",
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "warmup_epochs": 0,
                "schedule": "constant",
                "plateau_factor": 0.1,
                "plateau_patience": 1,
                "patience": 0,
                "amp": "off",
                "grad_clip": 0.0,
                "compile": False,
            },
            seed=0,
            selection="last",
        )
    finally:
        torch.optim.AdamW.__init__ = orig
    n_loss = len([p for p in loss.parameters() if p.requires_grad])
    assert n_loss >= 1 and (n_loss, 0.0) in seen["groups"] and any(wd == 0.5 for _, wd in seen["groups"])


# ------------------------------------------------------------------------------------------------------
# learning-rate sequences, epoch by epoch, recorded from the hand-written schedules this engine had before
# it used torch.optim.lr_scheduler; the torch schedulers must reproduce them (to 1e-12)
# ------------------------------------------------------------------------------------------------------
#: name -> (training settings, synthetic validation losses per epoch or None for a constant 1.0)
SCHEDULE_CASES = {
    # the seed's recipe: warm up from 1e-7 over 20 epochs, then ReduceLROnPlateau(0.1, patience 25); the
    # validation loss stops improving after epoch 30, so it is cut at epochs 56 and 82
    "seed_plateau": (
        dict(
            epochs=85,
            lr=0.005,
            min_lr=1e-7,
            warmup_epochs=20,
            schedule="plateau",
            plateau_factor=0.1,
            plateau_patience=25,
        ),
        [1.0 - 0.01 * e for e in range(30)] + [0.71] * 55,
    ),
    # cuts clamp at min_lr
    "plateau_min_lr": (
        dict(
            epochs=12, lr=0.01, min_lr=2e-4, warmup_epochs=2, schedule="plateau", plateau_factor=0.1, plateau_patience=1
        ),
        [1.0, 0.9, 0.8] + [0.8] * 9,
    ),
    "cosine_warmup": (dict(epochs=20, lr=0.01, min_lr=1e-6, warmup_epochs=5, schedule="cosine"), None),
    "cosine_no_warmup": (dict(epochs=7, lr=0.003, min_lr=0.0, warmup_epochs=0, schedule="cosine"), None),
    "constant_warmup": (dict(epochs=8, lr=0.002, min_lr=1e-7, warmup_epochs=3, schedule="constant"), None),
}

EXPECTED_LRS = {
    "seed_plateau": [
        1e-07,
        0.000250095,
        0.0005000899999999999,
        0.0007500849999999999,
        0.00100008,
        0.001250075,
        0.00150007,
        0.0017500649999999999,
        0.0020000599999999997,
        0.002250055,
        0.0025000499999999998,
        0.0027500449999999996,
        0.00300004,
        0.0032500349999999996,
        0.0035000299999999995,
        0.0037500249999999997,
        0.00400002,
        0.004250015,
        0.0045000100000000005,
        0.004750005000000001,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        0.0005,
        5e-05,
        5e-05,
        5e-05,
    ],
    "plateau_min_lr": [
        0.0002,
        0.0050999999999999995,
        0.01,
        0.01,
        0.01,
        0.001,
        0.001,
        0.0002,
        0.0002,
        0.0002,
        0.0002,
        0.0002,
    ],
    "cosine_warmup": [
        1e-06,
        0.0020008000000000005,
        0.004000600000000001,
        0.0060004,
        0.0080002,
        0.01,
        0.009890748929868663,
        0.009567770515484183,
        0.00904518046337755,
        0.008345818466491111,
        0.007500250000000001,
        0.00654543046337755,
        0.005523090052106635,
        0.0044779099478933675,
        0.0034555695366224513,
        0.0025007500000000017,
        0.00165518153350889,
        0.0009558195366224509,
        0.0004332294845158165,
        0.00011025107013133847,
    ],
    "cosine_no_warmup": [
        0.003,
        0.002851453301853629,
        0.0024352347027881004,
        0.0018337814009344716,
        0.0011662185990655284,
        0.0005647652972118998,
        0.00014854669814637144,
    ],
    "constant_warmup": [
        1e-07,
        0.0006667333333333333,
        0.0013333666666666669,
        0.002,
        0.002,
        0.002,
        0.002,
        0.002,
    ],
}


def _lr_sequence(monkeypatch, name):
    import eegbench
    from eegbench.execution import engine
    from eegbench.planning.recipe import Training

    settings, val_losses = SCHEDULE_CASES[name]
    losses = iter(val_losses or [1.0] * settings["epochs"])
    monkeypatch.setattr(engine, "validation_loss", lambda *a, **k: next(losses))
    g = torch.Generator().manual_seed(0)
    n, d = 32, 4
    emb = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    x = torch.randn(n, 2, 4, generator=g)
    split = to_device(x.numpy(), torch.arange(n).numpy(), torch.zeros(n, dtype=torch.long).numpy(), torch.device("cpu"))
    model = engine.EEGEncoder(fakes.build_backbone(n_chans=2, n_times=4, hidden=4), d)
    loss = eegbench.create("loss", "clip", temperature=0.04, learn_temperature=False)
    res = fit(model, loss, split, split, emb, Training(batch_size=32, amp="off", **settings), seed=0, selection="last")
    return [h["lr"] for h in res.history]


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_learning_rate_sequence_is_unchanged(monkeypatch, name):
    got = _lr_sequence(monkeypatch, name)
    assert len(got) == len(EXPECTED_LRS[name])
    assert got == pytest.approx(EXPECTED_LRS[name], rel=0, abs=1e-12)


def test_seed_plateau_cuts_where_the_validation_loss_stalls():
    lrs = EXPECTED_LRS["seed_plateau"]
    assert lrs[0] == 1e-7 and lrs[20:56] == [0.005] * 36
    assert lrs[56] == pytest.approx(5e-4) and lrs[82] == pytest.approx(5e-5)
