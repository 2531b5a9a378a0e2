"""eegbench.splits: validation by whole images/concepts, seeded training subsets, standardisation."""
from __future__ import annotations

import numpy as np
import pytest

from eegbench.errors import EegbenchError
from eegbench.interfaces import EEGData, EEGInfo, ImageSet
from eegbench.splits import Standardizer, training_subset, validation_split


def make_data(n_images=40, reps=3, subjects=(1, 2), per_concept=4, seed=0):
    rng = np.random.default_rng(seed)
    concepts = tuple(f"c{i // per_concept:03d}" for i in range(n_images))
    ids = tuple(f"training_images/{c}/{i}.jpg" for i, c in enumerate(concepts))
    images = ImageSet("toy/train", ids, ids, concepts)
    info = EEGInfo(("A", "B", "C"), 100.0, 0.0, 0.09)
    idx = np.tile(np.repeat(np.arange(n_images), reps), len(subjects))
    sub = np.repeat(np.array(subjects), n_images * reps)
    eeg = (rng.standard_normal((len(idx), 3, 10)) * np.array([1.0, 5.0, 0.1])[:, None] + np.array([0.0, 3.0, -2.0])[:, None])
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
    with pytest.raises(EegbenchError, match="'image' or 'concept'"):
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
