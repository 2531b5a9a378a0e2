"""The retrieval task: registered, top-k by image row, chance k/n_way, one score per subject."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import eegbench
from eegbench.errors import EegbenchError
from eegbench_plugins.retrieval import RetrievalTask


def test_registered_with_defaults():
    comp = eegbench.get_component("task", "retrieval")
    assert comp.defaults == {
        "topk": [1, 3, 5],
        "center": False,
        "kway": [2, 4, 10, 50, 100, 200],
        "kway_draws": 100,
        "kway_seed": 0,
    }
    task = eegbench.create("task", "retrieval")
    assert task.topk == [1, 3, 5] and task.center is False


def test_center_subtracts_each_embeddings_feature_mean():
    """center = true ranks by the cosine of mean-centred embeddings (the seed's retrieval); a bad value is refused."""
    rng = np.random.default_rng(1)
    img = torch.as_tensor(rng.standard_normal((30, 8)), dtype=torch.float32)
    eeg = img + torch.as_tensor(rng.standard_normal((30, 8)), dtype=torch.float32) + 2.0  # a common offset
    idx, subj = torch.arange(30), torch.ones(30, dtype=torch.long)
    (centred,) = RetrievalTask(center=True).evaluate(eeg, img, idx, subj)
    (by_hand,) = RetrievalTask().evaluate(eeg - eeg.mean(1, keepdim=True), img - img.mean(1, keepdim=True), idx, subj)
    (plain,) = RetrievalTask().evaluate(eeg, img, idx, subj)
    assert centred.metrics == by_hand.metrics and centred.metrics != plain.metrics
    with pytest.raises(EegbenchError, match="center must be true or false"):
        RetrievalTask(center="yes")


def test_perfect_and_shuffled_embeddings():
    rng = np.random.default_rng(0)
    img = torch.as_tensor(rng.standard_normal((50, 16)), dtype=torch.float32)
    idx = torch.arange(50).repeat(2)
    subj = torch.tensor([1] * 50 + [2] * 50)
    eeg = img[idx] * 3.0  # scale does not matter: cosine
    s1, s2 = RetrievalTask(kway=[]).evaluate(eeg, img, idx, subj)
    assert (s1.subject, s2.subject) == (1, 2) and s1.metrics == {"top1": 1.0, "top3": 1.0, "top5": 1.0}
    assert s1.chance == {"top1": 0.02, "top3": 0.06, "top5": 0.1} and s1.n_way == 50 and s1.extra["n_trials"] == 50
    (k,) = RetrievalTask(kway=[2, 10, 50]).evaluate(eeg, img, idx, torch.ones(100, dtype=torch.long))
    assert {m: v for m, v in k.metrics.items() if "way" in m} == {
        "top1_2way": 1.0,
        "top1_10way": 1.0,
        "top5_10way": 1.0,
        "top1_50way": 1.0,
        "top5_50way": 1.0,
    }
    wrong = img[(idx + 1) % 50]
    (s,) = RetrievalTask(topk=[1]).evaluate(wrong, img, idx, torch.ones(100, dtype=torch.long))
    assert s.metrics["top1"] == 0.0


def test_ties_count_against_and_topk_monotone():
    img = torch.ones(10, 4)  # every image identical: no information, so never a hit at top-1
    (s,) = RetrievalTask().evaluate(torch.ones(3, 4), img, torch.tensor([0, 4, 9]), torch.zeros(3, dtype=torch.long))
    assert s.metrics["top1"] == 0.0 and s.metrics["top5"] == 0.0
    rng = np.random.default_rng(1)
    eeg = torch.as_tensor(rng.standard_normal((40, 8)), dtype=torch.float32)
    img = torch.as_tensor(rng.standard_normal((20, 8)), dtype=torch.float32)
    (s,) = RetrievalTask().evaluate(eeg, img, torch.arange(40) % 20, torch.zeros(40, dtype=torch.long))
    assert s.metrics["top1"] <= s.metrics["top3"] <= s.metrics["top5"]


def test_bad_topk_is_refused():
    with pytest.raises(eegbench.EegbenchError, match="topk"):
        RetrievalTask(topk=[0])
