"""A stored cell is reused only while what it read is unchanged: the data's identity and every file a
component parameter names are part of the cell key."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from eegbench.plan import build_plan
from eegbench.runner import run_spec

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"
TINY = [
    "dataset.params={noise=4.0, subjects=4, train_concepts=12, images_per_concept=2, test_images=6, test_repetitions=4}",
    "train.epochs=2", "finetune.epochs=1", "finetune.training_ratios=[1.0]", "protocol.folds=[4]",
]


@pytest.fixture
def dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


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
