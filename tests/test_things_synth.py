"""The synthetic twin: the release's exact layout, deterministic, with a planted (but not trivial) relation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eegbench.cli import main
from eegbench.errors import DataError
from eegbench_plugins.things_eeg2 import layout
from eegbench_plugins.things_eeg2.plugin import SYNTH_DEFAULTS
from eegbench_plugins.things_eeg2.safe_pickle import load_pickled_npy
from eegbench_plugins.things_eeg2.synth import SynthParams, image_ids, write_twin

# lower noise than the default so a small twin (240 training images) still shows the relation clearly
SMALL = dict(subjects=3, train_concepts=60, images_per_concept=4, test_images=20, test_repetitions=16, noise=6.0)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin") / "root"
    return write_twin(root, SynthParams(**SMALL)), SynthParams(**SMALL)


def test_plugin_defaults_equal_generator_defaults():
    assert SynthParams().as_dict() == SYNTH_DEFAULTS


def test_layout_matches_the_release(twin):
    root, p = twin
    meta = load_pickled_npy(layout.metadata_file(root))
    assert set(meta) == {
        "train_img_files",
        "train_img_concepts",
        "train_img_concepts_THINGS",
        "test_img_files",
        "test_img_concepts",
        "test_img_concepts_THINGS",
    }
    n_train = p.train_concepts * p.images_per_concept
    assert len(meta["train_img_files"]) == n_train and len(meta["test_img_files"]) == p.test_images
    assert meta["train_img_concepts"][0] == "00001_syn0001"
    for s in range(1, p.subjects + 1):
        tr = load_pickled_npy(layout.preprocessed_file(root, s, "train"))
        te = load_pickled_npy(layout.preprocessed_file(root, s, "test"))
        assert tr["preprocessed_eeg_data"].shape == (n_train, 4, 17, 100)
        assert te["preprocessed_eeg_data"].shape == (p.test_images, p.test_repetitions, 17, 100)
        assert tr["preprocessed_eeg_data"].dtype == np.float64
        assert list(tr["ch_names"]) == list(layout.OCCIPITO_PARIETAL)
        times = np.asarray(tr["times"])
        assert len(times) == 100 and np.allclose(times[[0, -1]], [-0.2, 0.79])
    for split in ("train", "test"):
        for image_id in image_ids(p, split)[:3]:
            with Image.open(layout.image_set_dir(root) / image_id) as im:
                assert im.format == "JPEG" and im.size == (p.image_size, p.image_size)
    record = json.loads(layout.synth_params_file(root).read_text())
    assert record["params"] == p.as_dict()


def test_oracle_latents_file(twin):
    root, p = twin
    with np.load(layout.latents_file(root), allow_pickle=False) as z:
        ids, emb = list(z["ids"]), z["embeddings"]
    assert ids == image_ids(p, "train") + image_ids(p, "test")
    assert emb.dtype == np.float32 and emb.shape == (len(ids), p.latent_dim)
    assert ids[0].startswith("training_images/") and ids[-1].startswith("test_images/")


def test_deterministic_by_seed(tmp_path, twin):
    root, p = twin
    again = write_twin(tmp_path / "again", p)
    a = load_pickled_npy(layout.preprocessed_file(root, 2, "test"))["preprocessed_eeg_data"]
    b = load_pickled_npy(layout.preprocessed_file(again, 2, "test"))["preprocessed_eeg_data"]
    np.testing.assert_array_equal(a, b)
    other = write_twin(tmp_path / "other", SynthParams(**{**SMALL, "seed": 1}))
    c = load_pickled_npy(layout.preprocessed_file(other, 2, "test"))["preprocessed_eeg_data"]
    assert not np.allclose(a, c)


def test_the_same_bytes_whatever_the_blas_threads(tmp_path, twin):
    # a threaded matrix product splits its sums by thread count: the twin is generated with one BLAS thread
    from threadpoolctl import threadpool_limits

    root, p = twin
    with threadpool_limits(limits=4, user_api="blas"):
        threaded = write_twin(tmp_path / "threaded", p)
    for subject in range(1, p.subjects + 1):
        for split in ("train", "test"):
            a = layout.preprocessed_file(root, subject, split).read_bytes()
            assert a == layout.preprocessed_file(threaded, subject, split).read_bytes(), (subject, split)


def _ridge_top1(x_train, y_train, x_test, y_test, lam=1e4):
    xm, ym = x_train.mean(0), y_train.mean(0)
    w = np.linalg.solve(
        (x_train - xm).T @ (x_train - xm) + lam * np.eye(x_train.shape[1]), (x_train - xm).T @ (y_train - ym)
    )
    pred = (x_test - xm) @ w + ym
    pred /= np.linalg.norm(pred, axis=1, keepdims=True)
    return float(np.mean((pred @ y_test.T).argmax(1) == np.arange(len(y_test))))


def test_planted_relation_is_decodable_and_subject_specific(twin):
    root, p = twin
    with np.load(layout.latents_file(root)) as z:
        emb = z["embeddings"]
    n_train = p.train_concepts * p.images_per_concept
    y_tr, y_te = emb[:n_train], emb[n_train:]

    def feats(s, split):
        d = load_pickled_npy(layout.preprocessed_file(root, s, split))["preprocessed_eeg_data"].mean(1)
        return d.reshape(len(d), -1)

    tr = {s: feats(s, "train") for s in (1, 2, 3)}
    te = {s: feats(s, "test") for s in (1, 2, 3)}
    within = np.mean([_ridge_top1(tr[s], y_tr, te[s], y_te) for s in tr])
    cross = np.mean(
        [_ridge_top1(np.concatenate([tr[o] for o in tr if o != s]), np.tile(y_tr, (2, 1)), te[s], y_te) for s in tr]
    )
    chance = 1 / p.test_images
    assert within > 4 * chance  # the relation is there
    assert within < 1.0  # and not trivial
    assert cross < within  # subjects differ


def test_cli_synth_and_refuses_a_foreign_folder(tmp_path, capsys):
    root = tmp_path / "cli"
    args = [
        "synth",
        "--root",
        str(root),
        "--subjects",
        "1",
        "--train-concepts",
        "5",
        "--test-images",
        "4",
        "--test-repetitions",
        "4",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    assert layout.preprocessed_file(root, 1, "train").is_file()
    assert "synthetic twin" in capsys.readouterr().out
    assert main(args) == 0  # same parameters: nothing to do
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["synth", "--root", str(foreign)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (foreign / "keep.txt").read_text() == "mine"


def test_bad_params_are_one_line_errors():
    with pytest.raises(DataError, match="test_repetitions"):
        SynthParams(test_repetitions=10)
    with pytest.raises(DataError, match="unknown parameter"):
        SynthParams.from_dict({"nosuch": 1})


def test_cli_synth_refuses_to_replace_a_twin_with_other_parameters(tmp_path, capsys):
    root = tmp_path / "cli"
    args = [
        "synth",
        "--root",
        str(root),
        "--subjects",
        "1",
        "--train-concepts",
        "5",
        "--test-images",
        "4",
        "--test-repetitions",
        "4",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    record = layout.synth_params_file(root).read_text()
    capsys.readouterr()
    other = [a if a != "3" else "4" for a in args]  # --seed 4
    assert main(other) == 2
    err = capsys.readouterr().err
    assert str(root) in err and "seed=3" in err and "seed=4" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert layout.synth_params_file(root).read_text() == record  # untouched
    assert main([*other, "--force"]) == 0
    assert '"seed": 4' in layout.synth_params_file(root).read_text()


_RACER = r"""
import json, os, sys, time
from pathlib import Path
from eegbench_plugins.things_eeg2 import layout
from eegbench_plugins.things_eeg2.loader import build_synthetic

root, me = Path(sys.argv[1]), sys.argv[2]
ds = build_synthetic(root=root, subjects=2, train_concepts=20, images_per_concept=3, test_images=10, test_repetitions=8)
(root.parent / f"ready-{me}").touch()
while not (root.parent / "go").exists():
    time.sleep(0.005)
ds.ensure_available()
st = layout.synth_params_file(root).stat()
print(json.dumps({"identity": ds.source_identity(), "inode": st.st_ino, "mtime": st.st_mtime_ns}))
"""


def test_two_first_uses_at_once_generate_one_twin(tmp_path):
    """Both processes reach generation together; the file lock lets one write and the other find its twin."""
    import json
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    base = tmp_path / "data"
    base.mkdir()
    root = base / "twin"
    env = {**os.environ, "EEGBENCH_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(root), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in (1, 2)
    ]
    for _ in range(12_000):  # both racers loaded and waiting at the start line (a bound, not a timing check)
        if all((base / f"ready-{i}").exists() for i in (1, 2)):
            break
        if any(p.poll() is not None for p in procs):
            pytest.fail(f"a racer exited before the start: {[p.communicate() for p in procs]}")
        time.sleep(0.01)
    else:
        pytest.fail("the racers never reached the start line")
    (base / "go").touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert first == second  # one twin: the same files (same inode and mtime), the same identity
    final = layout.synth_params_file(root).stat()
    assert (final.st_ino, final.st_mtime_ns) == (first["inode"], first["mtime"])
    assert sorted(p.name for p in base.iterdir() if not p.name.startswith(("ready-", "go"))) == [".twin.lock", "twin"]
    assert any("waiting for another process" in err for _, err in outs)


def test_cli_synth_defaults_to_where_the_dataset_generates_the_twin(tmp_path, monkeypatch, capsys):
    """`eegbench synth` without --root writes the twin where `things-eeg-2-synthetic` with the same parameters
    looks for it (<data dir>/things-eeg-2-synthetic/<parameter hash>), so the dataset finds it ready."""
    import eegbench

    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    small = dict(subjects=1, train_concepts=5, test_images=4, test_repetitions=4, seed=3)
    assert main(["synth", *[a for k, v in small.items() for a in (f"--{k.replace('_', '-')}", str(v))]]) == 0
    dataset = eegbench.create("dataset", "things-eeg-2-synthetic", **small)
    expected = (
        tmp_path / "data" / "things-eeg-2-synthetic" / SynthParams.from_dict({**SYNTH_DEFAULTS, **small}).content_hash()
    )
    assert Path(dataset.root) == expected
    assert f"at {expected}" in capsys.readouterr().out
    assert layout.preprocessed_file(expected, 1, "train").is_file()


def test_synth_help_describes_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "synthetic twin" in out.split("options:")[0].lower()  # a description before the options
    assert "<parameter hash>" in out and "(default: 80)" in out


def test_ar1_filter_is_scipys_lfilter_to_the_last_bit():
    from scipy.signal import lfilter

    from eegbench_plugins.things_eeg2.synth import ar1_filter

    rng = np.random.default_rng(3)
    for shape in [(7, 3, 17, 100), (5, 64), (1,), (4, 1)]:
        x = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
        for ar in (0.6, 0.95, -0.3):
            gain = np.sqrt(1 - ar**2)
            ours = ar1_filter(x, gain, ar)
            assert ours.flags.c_contiguous and ours.dtype == np.float64
            assert np.array_equal(ours, lfilter([gain], [1.0, -ar], x, axis=-1))
