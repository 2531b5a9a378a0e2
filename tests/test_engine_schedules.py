"""Schedules and optimiser groups as a reviewer checked them: plateau reaches lr after warmup, a learned
temperature is not weight-decayed, subject-aware backbones meet unseen test subjects."""
from __future__ import annotations

import pytest
import torch

from eegbench.engine import fit, run_cell, to_device
from eegbench.plan import build_plan

import eegbench_fakes as fakes


@pytest.fixture
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)
    return tmp_path


def _cell(**changes):
    return build_plan(fakes.spec_dict(**changes)).cells[0]


@pytest.mark.parametrize("warmup", [0, 1, 2, 5])
def test_plateau_runs_at_the_configured_lr_after_warmup(env, warmup):
    res = run_cell(_cell(**{"train.epochs": warmup + 2, "train.schedule": "plateau", "train.plateau_patience": 50,
                            "train.lr": 0.01, "train.warmup_epochs": warmup}), results_dir=env / "r", device="cpu")
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
    from eegbench.engine import EEGEncoder

    enc = EEGEncoder(model, emb.shape[1])
    loss = eegbench.create("loss", "clip", temperature=0.04, learn_temperature=True)
    seen = {}
    orig = torch.optim.AdamW.__init__

    def spy(self, groups, **kw):
        seen["groups"] = [(len(list(g["params"])), g["weight_decay"]) for g in groups]
        return orig(self, groups, **kw)

    torch.optim.AdamW.__init__ = spy
    try:
        fit(enc, loss, split, None, emb, {"epochs": 1, "batch_size": 32, "lr": 1e-3, "min_lr": 0.0, "weight_decay": 0.5,
                                          "optimizer": "adamw", "betas": (0.9, 0.999), "eps": 1e-8, "warmup_epochs": 0,
                                          "schedule": "constant", "plateau_factor": 0.1, "plateau_patience": 1,
                                          "patience": 0, "amp": "off", "grad_clip": 0.0, "compile": False},
            seed=0, selection="last")
    finally:
        torch.optim.AdamW.__init__ = orig
    n_loss = len([p for p in loss.parameters() if p.requires_grad])
    assert n_loss >= 1 and (n_loss, 0.0) in seen["groups"] and any(wd == 0.5 for _, wd in seen["groups"])
