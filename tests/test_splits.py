"""eegbench.execution.splits: validation by whole images/concepts/(subject, image) pairs, the labelled budget (ratio
first, validation inside it), seeded training subsets, standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from eegbench.errors import EegbenchError
from eegbench.execution.splits import Standardizer, budget_counts, labelled_split, training_subset, validation_split
from eegbench.interfaces import EEGData, EEGInfo, ImageSet


def make_data(n_images=40, reps=3, subjects=(1, 2), per_concept=4, seed=0):
    rng = np.random.default_rng(seed)
    concepts = tuple(f"c{i // per_concept:03d}" for i in range(n_images))
    ids = tuple(f"training_images/{c}/{i}.jpg" for i, c in enumerate(concepts))
    images = ImageSet("toy/train", ids, ids, concepts)
    info = EEGInfo(("A", "B", "C"), 100.0, 0.0, 0.09)
    idx = np.tile(np.repeat(np.arange(n_images), reps), len(subjects))
    sub = np.repeat(np.array(subjects), n_images * reps)
    eeg = (
        rng.standard_normal((len(idx), 3, 10)) * np.array([1.0, 5.0, 0.1])[:, None]
        + np.array([0.0, 3.0, -2.0])[:, None]
    )
    return EEGData(eeg.astype(np.float32), idx.astype(np.int64), sub.astype(np.int64), images, info)


def test_validation_by_image_keeps_images_whole():
    data = make_data()
    train, val = validation_split(data, 0.2, seed=1)
    assert len(train) + len(val) == len(data)
    tr_img, va_img = set(train.image_index.tolist()), set(val.image_index.tolist())
    assert not tr_img & va_img
    assert len(va_img) == 8  # 20 % of 40 images
    # same images held out for every subject, with all their repetitions
    for s in (1, 2):
        assert set(val.image_index[val.subject == s].tolist()) == va_img
    assert len(val) == 8 * 3 * 2
    again = validation_split(data, 0.2, seed=1)[1]
    np.testing.assert_array_equal(again.image_index, val.image_index)
    assert set(validation_split(data, 0.2, seed=2)[1].image_index.tolist()) != va_img


def test_validation_by_concept_holds_out_whole_concepts():
    data = make_data()
    train, val = validation_split(data, 0.3, seed=0, by="concept")
    c_tr = {data.images.concepts[i] for i in train.image_index}
    c_va = {data.images.concepts[i] for i in val.image_index}
    assert c_va and not c_tr & c_va
    assert len(c_va) == 3  # 30 % of 10 concepts


def test_zero_fraction_and_bad_arguments():
    data = make_data()
    train, val = validation_split(data, 0.0, seed=0)
    assert len(val) == 0 and len(train) == len(data) and val.eeg.shape[1:] == (3, 10)
    with pytest.raises(EegbenchError, match="fraction"):
        validation_split(data, 1.0, seed=0)
    with pytest.raises(EegbenchError, match="'image', 'concept', 'trial'"):
        validation_split(data, 0.2, seed=0, by="subject")


def test_training_subset_per_subject():
    data = make_data()
    assert training_subset(data, 1.0, seed=0) is data
    sub = training_subset(data, 0.25, seed=3)
    for s in (1, 2):
        imgs = np.unique(sub.image_index[sub.subject == s])
        assert len(imgs) == 10
        assert np.sum(sub.subject == s) == 10 * 3  # every repetition of a kept image
    np.testing.assert_array_equal(training_subset(data, 0.25, seed=3).image_index, sub.image_index)
    with pytest.raises(EegbenchError):
        training_subset(data, 0.0, seed=0)


def _pairs(data):
    return set(zip(data.subject.tolist(), data.image_index.tolist(), strict=True))


def test_validation_by_trial_holds_out_subject_image_pairs():
    data = make_data(n_images=40, reps=3, subjects=(1, 2, 3))
    train, val = validation_split(data, 0.2, seed=4, by="trial")
    assert len(train) + len(val) == len(data)
    assert not _pairs(train) & _pairs(val)  # a pair's repetitions all go to one side
    assert len(_pairs(val)) == 24 and len(val) == 24 * 3  # 20 % of 3 x 40 pairs, every repetition
    # unlike the image split, held-out images are still trained on through other subjects
    assert set(val.image_index.tolist()) & set(train.image_index.tolist())
    # the draw is seeded: same seed, same pairs; another seed, other pairs
    again = validation_split(data, 0.2, seed=4, by="trial")[1]
    np.testing.assert_array_equal(again.image_index, val.image_index)
    np.testing.assert_array_equal(again.subject, val.subject)
    assert _pairs(validation_split(data, 0.2, seed=5, by="trial")[1]) != _pairs(val)
    # training images only: the held-out pairs are pairs of the data it was given
    assert _pairs(val) <= _pairs(data)


@pytest.mark.parametrize("by", ["image", "trial", "concept"])
@pytest.mark.parametrize("ratio", [0.05, 0.25, 0.5, 1.0])
def test_labelled_budget_is_ratio_of_the_subjects_images_with_validation_inside(ratio, by):
    data = make_data(n_images=200, reps=2, subjects=(7,), per_concept=10)
    train, val = labelled_split(data, ratio, 0.2, seed=3, by=by)
    used = set(train.image_index.tolist()) | set(val.image_index.tolist())
    assert len(used) == round(ratio * 200)  # the budget: r of the subject's images, validation included
    assert not set(train.image_index.tolist()) & set(val.image_index.tolist())
    # validation lies inside the ratio's subset (the same subset training_subset keeps)
    subset = set(training_subset(data, ratio, seed=3).image_index.tolist())
    assert set(val.image_index.tolist()) <= subset and used == subset
    n_train, n_val, exact = budget_counts(200, 1, ratio, 0.2, by)
    assert n_train + n_val == round(ratio * 200)
    if exact:  # the dry run's arithmetic is the split's
        assert (len(np.unique(train.image_index)), len(np.unique(val.image_index))) == (n_train, n_val)
    assert exact is (by != "concept")


def test_labelled_budget_without_validation_and_counts_over_subjects():
    data = make_data(n_images=40, reps=1, subjects=(1, 2))
    train, val = labelled_split(data, 0.5, 0.0, seed=0)
    assert val is None and len(np.unique(train.image_index[train.subject == 1])) == 20
    assert budget_counts(16540, 1, 0.05, 0.2, "trial") == (662, 165, True)
    assert budget_counts(16540, 9, 1.0, 0.2, "image") == (9 * 13232, 9 * 3308, True)
    assert budget_counts(16540, 9, 1.0, 0.2, "trial") == (148860 - 29772, 29772, True)
    for by in ("image", "trial"):  # the pretrain split of two subjects, counted as the engine draws it
        tr, va = labelled_split(data, 1.0, 0.2, seed=1, by=by)
        assert (len(_pairs(tr)), len(_pairs(va))) == budget_counts(40, 2, 1.0, 0.2, by)[:2]


def test_standardizer_fits_on_training_only():
    data = make_data()
    train, val = validation_split(data, 0.2, seed=0)
    st = Standardizer.fit(train)
    out = st.apply(np.asarray(train.eeg))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 2)), 1, atol=1e-3)
    assert st.mean.tolist() == pytest.approx([0.0, 3.0, -2.0], abs=0.2)
    again = Standardizer.from_dict(st.as_dict())
    np.testing.assert_array_equal(again.apply(val.eeg), st.apply(val.eeg))
    with pytest.raises(EegbenchError, match="channels"):
        st.apply(np.zeros((2, 4, 10), np.float32))
