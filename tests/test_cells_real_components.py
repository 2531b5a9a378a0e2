"""Real components through whole cells on a tiny twin: subject-aware backbones under LOSO, --cache for
prepared EEG."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eegbench.engine import load_encoder
from eegbench.runner import run_spec

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"
TINY = [
    "dataset.params={noise=4.0, subjects=4, train_concepts=12, images_per_concept=2, test_images=6, test_repetitions=4}",
    "train.epochs=2", "finetune.epochs=1", "finetune.training_ratios=[1.0]", "protocol.folds=[4]",
]


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
        assert not model.training and 4 in model.backbone.subjects  # eval mode; the held-out subject's layer is part of the checkpoint
        out = model(torch.zeros(2, meta["n_chans"], meta["n_times"]), torch.tensor([4, 4]))
        assert out.shape[0] == 2


def test_prepared_eeg_goes_to_the_given_cache(dirs):
    run_spec(QUICK, TINY, results_dir=dirs / "r", cache_dir=dirs / "mine", quiet=True)
    assert (dirs / "mine" / "embeddings").is_dir()
    prepared = [p for p in (dirs / "mine").iterdir() if p.name != "embeddings"]
    assert prepared, "prepared EEG should be cached under --cache"
    default = dirs / "default-cache"
    assert not default.exists() or not any(default.rglob("*.npy"))
