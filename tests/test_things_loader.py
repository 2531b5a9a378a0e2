"""The Things-EEG-2 Dataset: shapes, averaging modes, preparation, caching, and the release layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.interpolate import interp1d

import eegbench
from eegbench.errors import DataError
from eegbench.interfaces import PrepOptions
from eegbench_plugins.things_eeg2 import layout, loader
from eegbench_plugins.things_eeg2.loader import ThingsEEG2, build
from eegbench_plugins.things_eeg2.prepare import resample_linear
from eegbench_plugins.things_eeg2.safe_pickle import load_pickled_npy

TWIN = dict(subjects=2, train_concepts=6, images_per_concept=3, test_images=5, test_repetitions=8)


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))


@pytest.fixture
def twin(tmp_path):
    ds = eegbench.create("dataset", "things-eeg-2-synthetic", root=str(tmp_path / "twin"), **TWIN)
    ds.ensure_available()
    return ds


def _source(ds, subject, split):
    return load_pickled_npy(layout.preprocessed_file(ds.root, subject, split))


def test_shapes_and_averaging_modes(twin):
    raw = _source(twin, 1, "train")["preprocessed_eeg_data"]
    n = 18
    all_ = twin.load(1, "train", PrepOptions(averaging="all"))
    assert all_.eeg.shape == (n, 17, 100) and all_.eeg.dtype == np.float32
    np.testing.assert_allclose(all_.eeg, raw.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(all_.image_index, np.arange(n))
    assert all_.subject.tolist() == [1] * n

    none = twin.load(1, "train", PrepOptions(averaging="none"))
    assert none.eeg.shape == (n * 4, 17, 100)
    np.testing.assert_array_equal(none.image_index, np.repeat(np.arange(n), 4))
    np.testing.assert_allclose(none.eeg[4 * 3 + 2], raw[3, 2], rtol=1e-5, atol=1e-5)

    k2 = twin.load(1, "train", PrepOptions(averaging=2, seed=7))
    assert k2.eeg.shape == (n * 4, 17, 100)
    # each trial is the mean of 2 distinct repetitions of its own image
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    for row in (0, 9, 30):
        img = k2.image_index[row]
        assert any(np.allclose(k2.eeg[row], raw[img, [a, b]].mean(0), atol=1e-5) for a, b in pairs)
    again = twin.load(1, "train", PrepOptions(averaging=2, seed=7))
    np.testing.assert_array_equal(np.asarray(k2.eeg), np.asarray(again.eeg))
    other = twin.load(1, "train", PrepOptions(averaging=2, seed=8))
    assert not np.array_equal(np.asarray(k2.eeg), np.asarray(other.eeg))

    test = twin.load(2, "test", PrepOptions())
    assert test.eeg.shape == (5, 17, 100) and test.images.ids[0].startswith("test_images/")


def test_channels_window_and_resampling(twin):
    raw = _source(twin, 1, "test")
    opts = PrepOptions(channels=("Oz", "o1", "P7"), window=(0.0, 0.5), n_times=64)
    d = twin.load(1, "test", opts)
    assert d.eeg.shape == (5, 3, 64)
    assert d.info.ch_names == ("Oz", "O1", "P7")
    assert d.info.tmin == pytest.approx(0.0) and d.info.tmax == pytest.approx(0.5)
    assert d.info.sfreq == pytest.approx(63 / 0.5)
    names = list(raw["ch_names"])
    idx = [names.index(c) for c in ("Oz", "O1", "P7")]
    avg = raw["preprocessed_eeg_data"].mean(1)[:, idx, 20:71]
    expected = interp1d(np.arange(51), avg, axis=-1)(np.linspace(0, 50, 64))
    np.testing.assert_allclose(d.eeg, expected, rtol=1e-4, atol=1e-4)


def test_resample_equals_interp1d():
    x = np.random.default_rng(0).standard_normal((4, 3, 100))
    np.testing.assert_allclose(resample_linear(x, 128), interp1d(np.arange(100), x, axis=-1)(np.linspace(0, 99, 128)))


def test_bad_options_are_one_line(twin):
    with pytest.raises(DataError, match="no channel 'Cz'"):
        twin.load(1, "train", PrepOptions(channels=("Cz",)))
    with pytest.raises(DataError, match="between 1 and the 4"):
        twin.load(1, "train", PrepOptions(averaging=5))
    with pytest.raises(DataError, match="window"):
        twin.load(1, "train", PrepOptions(window=(2.0, 3.0)))
    with pytest.raises(DataError, match="split"):
        twin.image_set("val")


def test_cache_hit_is_memory_mapped_and_skips_the_source(twin, monkeypatch):
    opts = PrepOptions(n_times=128)
    first = twin.load(1, "train", opts)
    calls = []
    monkeypatch.setattr(loader, "load_pickled_npy", lambda path: calls.append(path) or 1 / 0)
    second = twin.load(1, "train", opts)
    assert calls == []
    assert isinstance(second.eeg, np.memmap) and not second.eeg.flags.writeable
    np.testing.assert_array_equal(np.asarray(first.eeg), np.asarray(second.eeg))
    entries = [p for p in (loader.Cache(loader.CACHE_NAMESPACE).root).iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    import json

    meta = json.loads((entries[0] / "meta.json").read_text())
    assert meta["options"]["n_times"] == 128 and meta["key_fields"]["subject"] == 1
    # another option is another entry (and reads the source)
    with pytest.raises(ZeroDivisionError):
        twin.load(1, "train", PrepOptions(n_times=64))
    assert len(calls) == 1


def test_the_cache_follows_the_source_content_not_its_mtime(twin):
    opts = PrepOptions()
    a = twin.load(1, "test", opts)
    path = layout.preprocessed_file(twin.root, 1, "test")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert twin.load(1, "test", opts).eeg.filename == a.eeg.filename  # touched, same bytes: the same entry
    record = load_pickled_npy(path)
    record["preprocessed_eeg_data"] = record["preprocessed_eeg_data"] * 2
    from eegbench_plugins.things_eeg2.safe_pickle import save_pickled_dict

    save_pickled_dict(path, record)
    b = twin.load(1, "test", opts)
    assert a.eeg.filename != b.eeg.filename
    np.testing.assert_allclose(np.asarray(b.eeg), 2 * np.asarray(a.eeg), rtol=1e-6)


def _write_release_folder(root, n_train_concepts=3, per_concept=10, n_test=4):
    """A release-format folder written independently of eegbench's writers (np.save of dicts)."""
    names = ["aardvark", "abacus", "accordion", "acorn"][:n_train_concepts]
    train_concepts = [f"{i + 1:05d}_{n}" for i, n in enumerate(names)]
    test_names = ["aircraft_carrier", "antelope", "backscratcher", "balance_beam"][:n_test]
    test_concepts = [f"{i + 1:05d}_{n}" for i, n in enumerate(test_names)]
    meta = {
        "train_img_files": np.array([f"{c[6:]}_{j + 1:02d}b.jpg" for c in train_concepts for j in range(per_concept)]),
        "train_img_concepts": np.array([c for c in train_concepts for _ in range(per_concept)]),
        "train_img_concepts_THINGS": np.array(
            [f"{3 * i + 1:05d}_{c[6:]}" for i, c in enumerate(train_concepts) for _ in range(per_concept)]
        ),
        "test_img_files": np.array([f"{c[6:]}_06s.jpg" for c in test_concepts]),
        "test_img_concepts": np.array(test_concepts),
        "test_img_concepts_THINGS": np.array([f"{i + 7:05d}_{c[6:]}" for i, c in enumerate(test_concepts)]),
    }
    (root / "image_set").mkdir(parents=True)
    np.save(root / "image_set" / "image_metadata.npy", meta)
    rng = np.random.default_rng(1)
    times = np.linspace(-0.2, 0.79, 100)
    ch = ["P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2"]
    for s in (1, 3):
        folder = root / "eeg_dataset" / "preprocessed_data" / f"sub-{s:02d}"
        folder.mkdir(parents=True)
        for split, shape in (
            ("training", (n_train_concepts * per_concept, 4, 17, 100)),
            ("test", (n_test, 80, 17, 100)),
        ):
            np.save(
                folder / f"preprocessed_eeg_{split}.npy",
                {"preprocessed_eeg_data": rng.standard_normal(shape), "ch_names": ch, "times": times},
            )
    return meta


def test_independent_release_folder_loads(tmp_path):
    meta = _write_release_folder(tmp_path / "release")
    ds = eegbench.create("dataset", "things-eeg-2", root=str(tmp_path / "release"))
    assert ds.subjects == [1, 3]
    assert ds.describe()["synthetic"] is False
    tr = ds.load(3, "train", PrepOptions(n_times=128))
    assert tr.eeg.shape == (30, 17, 128) and tr.eeg.dtype == np.float32
    assert tr.images.ids[10] == "training_images/00002_abacus/abacus_01b.jpg"
    assert tr.images.concepts[10] == meta["train_img_concepts"][10]
    assert tr.images.name == "things-eeg-2/train" and tr.images.root == str(tmp_path / "release")
    te = ds.load(1, "test", PrepOptions(averaging="none"))
    assert te.eeg.shape == (4 * 80, 17, 100)
    assert te.info.tmin == pytest.approx(-0.2) and te.info.sfreq == pytest.approx(100.0)


def test_missing_files_name_the_download_command(tmp_path):
    ds = build(tmp_path / "empty")
    assert ds.subjects == list(range(1, 11))
    with pytest.raises(DataError) as err:
        ds.ensure_available([2])
    msg = str(err.value)
    assert "\n" not in msg and "eegbench download things-eeg-2" in msg and "--subjects 2" in msg


def test_synthetic_default_root_is_generated_once_under_data_dir(tmp_path):
    ds = eegbench.create("dataset", "things-eeg-2-synthetic", **TWIN)
    assert str(ds.root).startswith(str(tmp_path / "data" / "things-eeg-2-synthetic"))
    assert not ds.root.exists()  # nothing happens before first use
    ds.ensure_available()
    assert ds.root.name == ds.synthetic.content_hash()
    assert ds.image_set("test").name == f"things-eeg-2-synthetic-{ds.synthetic.content_hash()}/test"
    stamp = layout.synth_params_file(ds.root).stat().st_mtime_ns
    again = eegbench.create("dataset", "things-eeg-2-synthetic", **TWIN)
    again.ensure_available()
    assert layout.synth_params_file(ds.root).stat().st_mtime_ns == stamp
    # no temporary leftovers (the generation lock file stays: removing it would race with a waiting process)
    assert [p.name for p in ds.root.parent.iterdir() if not p.name.endswith(".lock")] == [ds.root.name]
    assert ds.describe()["synthetic"] is True


def test_direct_construction_of_the_class(tmp_path):
    _write_release_folder(tmp_path / "r", n_train_concepts=1, n_test=2)
    ds = ThingsEEG2(tmp_path / "r", cache_root=tmp_path / "own-cache")
    ds.load(1, "test", PrepOptions())
    assert (tmp_path / "own-cache" / loader.CACHE_NAMESPACE).is_dir()


def test_window_outside_the_epoch_is_an_error_naming_the_range(twin):
    with pytest.raises(DataError, match=r"window \[0.5, 3.0\] s is outside the epoch's time range \[-0.2, 0.79\] s"):
        twin.load(1, "test", PrepOptions(window=(0.5, 3.0)))
    with pytest.raises(DataError, match="outside"):
        twin.load(1, "test", PrepOptions(window=(-0.5, 0.3)))
    with pytest.raises(DataError, match="outside"):
        twin.load(1, "test", PrepOptions(window=(0.0, 0.81)))
    # one sample of slack: "0-0.8 s" keeps the samples up to 0.79 s (like the recipes' [0, 1] at 250 Hz)
    eeg = twin.load(1, "test", PrepOptions(window=(0.0, 0.8)))
    assert eeg.info.tmax == pytest.approx(0.79)


def test_window_order_error_names_the_value_once():
    from eegbench.planning.spec import SpecError, load_spec

    raw = {
        "name": "b",
        "dataset": {"name": "d", "window": [0.5, 0.1]},
        "backbone": {"name": "b"},
        "image_encoder": {"name": "e"},
    }
    with pytest.raises(SpecError) as info:
        load_spec(raw)
    assert str(info.value).count("[0.5, 0.1]") == 1, str(info.value)


def test_twin_missing_subjects_get_twin_advice_not_a_download(twin):
    with pytest.raises(DataError) as info:
        twin.ensure_available([3, 4])
    msg = str(info.value)
    assert "download" not in msg and "synthetic twin (subjects 1-2, no raw sessions)" in msg
    assert "dataset.params.subjects=4" in msg and "eegbench synth --root NEWDIR --subjects 4" in msg
    # the release's dataset pointed at a twin's root gets the same advice
    with pytest.raises(DataError, match="synthetic twin") as info:
        build(twin.root).ensure_available([3])
    assert "download" not in str(info.value)


def test_explicit_root_with_a_twin_of_other_parameters_is_refused(tmp_path):
    root = tmp_path / "twin-root"
    first = eegbench.create("dataset", "things-eeg-2-synthetic", root=str(root), **{**TWIN, "noise": 18.0})
    first.ensure_available()
    # the same parameters keep working on that root
    same = eegbench.create("dataset", "things-eeg-2-synthetic", root=str(root), **{**TWIN, "noise": 18.0})
    assert same.load(1, "test", PrepOptions()).eeg.shape[0] == TWIN["test_images"]
    with pytest.raises(DataError) as info:
        eegbench.create("dataset", "things-eeg-2-synthetic", root=str(root), **{**TWIN, "noise": 1.0})
    msg = str(info.value)
    assert "\n" not in msg and str(root) in msg and "noise=18.0 (asked 1.0)" in msg
    assert "drop root" in msg and "subjects" not in msg  # names only what differs
    # a twin written at the root after construction is checked when it is first used
    late = tmp_path / "late"
    ds = loader.build_synthetic(root=late, **{**TWIN, "seed": 3})
    first_params = first.synthetic
    from eegbench_plugins.things_eeg2.synth import write_twin

    write_twin(late, first_params)
    with pytest.raises(DataError, match=r"seed=0 \(asked 3\)"):
        ds.load(1, "test", PrepOptions())


def test_seed_is_in_the_cache_key_only_for_random_draws(twin):
    cache = loader.Cache(loader.CACHE_NAMESPACE)

    def entries():
        return sorted(p.name for p in cache.root.iterdir() if not p.name.startswith("."))

    for averaging in ("all", "none"):
        a = twin.load(1, "train", PrepOptions(averaging=averaging, seed=1))
        b = twin.load(1, "train", PrepOptions(averaging=averaging, seed=2))
        assert a.eeg.filename == b.eeg.filename
    assert len(entries()) == 2
    k1 = twin.load(1, "train", PrepOptions(averaging=2, seed=1))
    k2 = twin.load(1, "train", PrepOptions(averaging=2, seed=2))
    assert k1.eeg.filename != k2.eeg.filename and len(entries()) == 4
    assert not np.array_equal(np.asarray(k1.eeg), np.asarray(k2.eeg))
    assert twin.cache_fields(1, "train", PrepOptions(averaging=np.int64(2), seed=5))["options"]["seed"] == 5


def _no_hashing(monkeypatch):
    """Make hashing a file's bytes or generating a twin fail, so a call is shown to use the memo only."""
    from eegbench import paths
    from eegbench_plugins.things_eeg2 import synth

    def refuse(*args, **kwargs):
        raise AssertionError(f"file hashed or twin generated: {args[:1]}")

    monkeypatch.setattr(paths, "sha256_of_file", refuse)
    monkeypatch.setattr(loader, "load_pickled_npy", refuse)
    monkeypatch.setattr(synth, "write_twin", refuse)


def test_source_identity_is_the_content_memoised_and_tracks_every_file(tmp_path, monkeypatch):
    root = tmp_path / "twin"
    params = {**TWIN, "noise": 4.0}
    # a twin not generated yet: its parameter hash, nothing written
    fresh = loader.build_synthetic(root=root, **params)
    with monkeypatch.context() as m:
        _no_hashing(m)
        absent = fresh.source_identity()
    assert absent == f"things-eeg-2-synthetic-{fresh.synthetic.content_hash()}:absent" and not root.exists()
    fresh.ensure_available()
    ds = loader.build_synthetic(root=root, **params)
    base = ds.source_identity()  # hashes each file once
    with monkeypatch.context() as m:
        _no_hashing(m)
        assert ds.source_identity() == base  # then only the memo is read
    assert base != absent and base.startswith(f"things-eeg-2-synthetic-{ds.synthetic.content_hash()}:")
    tracked = [layout.preprocessed_file(root, 2, "test"), layout.metadata_file(root), layout.latents_file(root)]
    seen = {base}
    for path in [*tracked, layout.synth_params_file(root)]:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: the content is the same
        assert ds.source_identity() == base, path
    for path in tracked:
        path.write_bytes(path.read_bytes() + b"\0")  # other content
        now = ds.source_identity()
        assert now not in seen, path
        seen.add(now)
    layout.preprocessed_file(root, 1, "train").unlink()
    assert ds.source_identity() not in seen


def test_identity_of_a_copy_elsewhere_is_the_same(tmp_path):
    import shutil

    ds = loader.build_synthetic(root=tmp_path / "a", **TWIN)
    ds.ensure_available()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert loader.build_synthetic(root=tmp_path / "b", **TWIN).source_identity() == ds.source_identity()


def test_source_identity_of_the_release_hashes_each_file_once(tmp_path, monkeypatch):
    root = tmp_path / "release"
    for s in range(1, 11):
        for split in ("train", "test"):
            path = layout.preprocessed_file(root, s, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([s]) * 4096)
    layout.metadata_file(root).parent.mkdir(parents=True)
    layout.metadata_file(root).write_bytes(b"x")
    ds = build(root)
    first = ds.source_identity()
    assert first.startswith("things-eeg-2:")
    with monkeypatch.context() as m:
        _no_hashing(m)
        assert ds.source_identity() == first
    with open(layout.preprocessed_file(root, 7, "train"), "r+b") as f:
        f.write(b"\xff")  # same size, other bytes
    assert ds.source_identity() != first


@pytest.mark.parametrize("bad", ["nan", "inf", "int8", "complex", "str"])
def test_bad_eeg_values_are_refused_at_preparation_in_one_line(twin, bad):
    from eegbench_plugins.things_eeg2.safe_pickle import save_pickled_dict

    path = layout.preprocessed_file(twin.root, 2, "train")
    record = load_pickled_npy(path)
    data = record["preprocessed_eeg_data"]
    if bad in ("nan", "inf"):
        data[3, 1, 5, 40] = np.nan if bad == "nan" else -np.inf
        data[4, 0, 0, 0] = np.nan  # a later one: the first is named
    else:
        data = {"int8": lambda d: d.astype(np.int8), "complex": lambda d: d + 1j * d, "str": lambda d: d.astype(str)}[
            bad
        ](data)
    record["preprocessed_eeg_data"] = data
    save_pickled_dict(path, record)
    with pytest.raises(DataError) as err:
        twin.load(2, "train", PrepOptions(averaging="all"))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "subject 2" in msg
    if bad in ("nan", "inf"):
        channel = layout.OCCIPITO_PARIETAL[5]
        assert f"condition 3, repetition 1, channel 5 ({channel}), time 40" in msg and "2 non-finite" in msg
        assert ("nan" if bad == "nan" else "-inf") in msg
    else:
        assert "real floating point" in msg and {"int8": "int8", "complex": "complex", "str": "string"}[bad] in msg
    # nothing prepared was stored, and the other subject is unaffected
    assert not [p for p in loader.Cache(loader.CACHE_NAMESPACE).root.glob("*/meta.json")]
    assert np.isfinite(twin.load(1, "train", PrepOptions(averaging="all")).eeg).all()
