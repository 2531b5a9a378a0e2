"""Tasks beyond 200-way top-k (issue 17): k-way retrieval curves, the seed's seen-concept test split
(``test_split = "train-heldout"``), classification with a linear probe and EEG -> concept-text retrieval."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import eegbench
from eegbench.errors import EegbenchError
from eegbench_plugins.retrieval import RetrievalTask, kway_hit_rates

from quick_spec import QUICK, TINY_TWIN

#: quick.toml's recipe on the tiny twin, one intra fold, a couple of epochs
INTRA = [TINY_TWIN, "train.epochs=2", "finetune.training_ratios=[]", 'protocol.name="intra"', "protocol.folds=[2]"]


@pytest.fixture
def twin_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


# --- k-way retrieval -----------------------------------------------------------------------------------------
def _noisy(n_way: int, n_subjects: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = torch.as_tensor(rng.standard_normal((n_way, 16)), dtype=torch.float32)
    idx = torch.arange(n_way).repeat(n_subjects)
    subj = torch.arange(1, n_subjects + 1).repeat_interleave(n_way)
    eeg = img[idx] + noise * torch.as_tensor(rng.standard_normal((len(idx), 16)), dtype=torch.float32)
    return eeg, img, idx, subj


def test_kway_top1_non_increasing_and_equal_to_top1_at_n_way():
    eeg, img, idx, subj = _noisy(200, 2, noise=1.5)
    task = RetrievalTask(kway=[2, 4, 10, 50, 100, 200, 300], kway_draws=20)
    for s in task.evaluate(eeg, img, idx, subj):
        m = s.metrics
        curve = [m[f"top1_{k}way"] for k in (2, 4, 10, 50, 100, 200)]
        assert curve == sorted(curve, reverse=True) and curve[0] > curve[-1], curve
        assert m["top1_200way"] == m["top1"] and m["top5_200way"] == m["top5"]  # exactly today's metric
        assert "top1_300way" not in m and "top5_4way" not in m and "top5_10way" in m  # k > gallery: skipped
        assert s.chance["top1_4way"] == 0.25 and s.chance["top5_10way"] == 0.5
        assert 0.0 < m["top1"] < m["top1_2way"] < 1.0


def test_kway_matches_the_hypergeometric_expectation_and_is_seeded():
    """Trial i beaten by b_i other images: P(top-1 in k-way) = C(m-1-b, k-1) / C(m-1, k-1)."""
    from math import comb

    m, k = 12, 4
    beats = torch.zeros(m, m, dtype=torch.bool)
    b = torch.arange(m) % 5  # trial i is beaten by b_i images, none of them its own
    for i in range(m):
        beats[i, i] = True
        beats[i, [(i + 1 + j) % m for j in range(int(b[i]))]] = True
    (hits, chance) = kway_hit_rates(beats, torch.arange(m), [k], draws=4000, seed=3)["top1_4way"]
    expected = torch.tensor([comb(m - 1 - int(x), k - 1) / comb(m - 1, k - 1) for x in b])
    assert chance == 0.25 and torch.allclose(hits, expected, atol=0.03)
    again = kway_hit_rates(beats, torch.arange(m), [k], draws=4000, seed=3)["top1_4way"][0]
    other = kway_hit_rates(beats, torch.arange(m), [k], draws=4000, seed=4)["top1_4way"][0]
    assert torch.equal(hits, again) and not torch.equal(hits, other)


def test_kway_settings_are_checked():
    for bad in ([1, 4], "2", [2.5]):
        with pytest.raises(EegbenchError, match="kway must be"):
            RetrievalTask(kway=bad)
    with pytest.raises(EegbenchError, match="kway_draws"):
        RetrievalTask(kway_draws=0)
    assert "top1_2way" not in RetrievalTask(kway=[]).evaluate(*_noisy(10, 1, 1.0))[0].metrics


def test_kway_on_the_twin_with_its_oracle_latents(twin_env):
    """A real cell on the synthetic twin, aligned to its oracle latents: the stored k-way curve falls with k
    and its k = n_way point is the cell's top-1."""
    from eegbench.runner import run_spec

    df = run_spec(QUICK, [*INTRA, 'task={name="retrieval", params={kway=[2, 4, 6]}}'], results_dir=twin_env / "res", quiet=True)
    assert not df.attrs["failed"]
    value = df.set_index("metric")["value"]
    assert df["context"].iloc[0]["n_way"] == 6
    assert value["top1_2way"] >= value["top1_4way"] >= value["top1_6way"] == value["top1"]
    assert df.set_index("metric")["chance"]["top1_4way"] == 0.25


def test_reported_file_accepts_kway_metrics(tmp_path):
    from eegbench.leaderboard import load_reported

    entry = ('[[reported]]\nmethod = "X"\ncitation = "c"\ndataset = "things-eeg-2"\nprotocol = "intra"\n'
             'stage = "pretrain"\nn_way = 200\n')
    path = tmp_path / "reported.toml"
    path.write_text(entry + "top1_2way = 0.9\ntop5_10way = 0.95\n")
    (row,) = load_reported(path)
    assert row["top1_2way"] == 0.9
    path.write_text(entry + "top1_4way = 71.2\n")  # a percentage, not a fraction
    with pytest.raises(EegbenchError, match="top1_4way = 71.2 must be a fraction"):
        load_reported(path)
