"""Real components through whole cells on a tiny twin: subject-aware backbones under LOSO, --cache for
prepared EEG, and cell keys that cover their inputs (a stored cell is reused only while what it read —
the data's identity and every file a parameter names — is unchanged)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from quick_spec import QUICK
from quick_spec import TINY_ONE_FOLD as TINY

from eegbench.execution.engine import load_encoder
from eegbench.planning.plan import build_plan
from eegbench.runner import run_spec


@pytest.fixture
def dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "default-cache"))
    return tmp_path


def test_subject_aware_backbone_under_loso_meets_its_unseen_subject(dirs):
    backbone = 'backbone={name="resnet1d-subject", params={filters=[8, 8, 8, 8, 8], kernel_size=5}}'
    df = run_spec(QUICK, [*TINY, backbone], results_dir=dirs / "r", quiet=True)
    assert not df.attrs["failed"] and set(df["stage"]) == {"pretrain", "finetune"}
    for ckpt in (dirs / "r" / "checkpoints").glob("*.pt"):
        model, meta = load_encoder(ckpt)
        assert (
            not model.training and 4 in model.backbone.subjects
        )  # eval mode; the held-out subject's layer is part of the checkpoint
        out = model(torch.zeros(2, meta["n_chans"], meta["n_times"]), torch.tensor([4, 4]))
        assert out.shape[0] == 2


def test_prepared_eeg_goes_to_the_given_cache(dirs):
    run_spec(QUICK, TINY, results_dir=dirs / "r", cache_dir=dirs / "mine", quiet=True)
    assert (dirs / "mine" / "embeddings").is_dir()
    prepared = [p for p in (dirs / "mine").iterdir() if p.name != "embeddings"]
    assert prepared, "prepared EEG should be cached under --cache"
    default = dirs / "default-cache"
    assert not default.exists() or not any(default.rglob("*.npy"))


def test_changed_image_targets_are_a_new_cell(dirs):
    first = run_spec(QUICK, TINY, results_dir=dirs / "r", quiet=True)
    again = run_spec(QUICK, TINY, results_dir=dirs / "r", quiet=True)
    assert set(again["cell_key"]) == set(first["cell_key"])  # unchanged inputs: every cell reused
    # replace the oracle latents with other vectors (same ids, same shape)
    [latents] = list((dirs / "data").rglob("synthetic_latents.npz"))
    with np.load(latents, allow_pickle=False) as z:
        ids, emb = z["ids"], z["embeddings"]
    rng = np.random.default_rng(1)
    np.savez(latents, ids=ids, embeddings=rng.standard_normal(emb.shape).astype(np.float32))
    os.utime(latents, ns=(latents.stat().st_atime_ns, latents.stat().st_mtime_ns + 10**9))
    changed = build_plan(QUICK, TINY).cells
    assert not set(c.key for c in changed) & set(first["cell_key"])


def test_data_identity_follows_the_data_root(dirs, tmp_path):
    a = build_plan(QUICK, [*TINY, f'dataset.params.root="{tmp_path / "a"}"']).cells[0]
    b = build_plan(QUICK, [*TINY, f'dataset.params.root="{tmp_path / "b"}"']).cells[0]
    assert a.config["inputs"]["data"] and a.key != b.key
