"""Raw → preprocessed with MNE on tiny synthetic raw sessions: shape, order, evoked response, MVNN."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegbench.cli import main
from eegbench.errors import DataError
from eegbench.interfaces import PrepOptions
from eegbench_plugins.things_eeg2 import layout
from eegbench_plugins.things_eeg2.loader import ThingsEEG2
from eegbench_plugins.things_eeg2.preprocess import PreprocessOptions, preprocess
from eegbench_plugins.things_eeg2.safe_pickle import load_pickled_npy
from eegbench_plugins.things_eeg2.synth import Model, SynthParams, clean_responses, session_conditions, write_twin

P = SynthParams(subjects=1, train_concepts=8, images_per_concept=2, test_images=6, test_repetitions=16, noise=1.0)


# noise-dominated raw (no overlap structure from neighbouring trials' responses) to check whitening
P_NOISY = SynthParams(
    subjects=1, train_concepts=40, images_per_concept=2, test_images=6, test_repetitions=16, noise=10.0
)


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    return write_twin(tmp_path_factory.mktemp("raw") / "twin", P, raw=True)


@pytest.fixture(scope="module")
def noisy_root(tmp_path_factory):
    return write_twin(tmp_path_factory.mktemp("noisy") / "twin", P_NOISY, raw=True)


def test_raw_files_have_the_release_structure(raw_root):
    rec = load_pickled_npy(layout.raw_file(raw_root, 1, 3, "test"))
    assert rec["raw_eeg_data"].shape[0] == 64 and rec["ch_names"][-1] == "stim" and rec["sfreq"] == 1000
    assert rec["ch_types"][:63] == ["eeg"] * 63
    codes = session_conditions(Model(P), 1, 3, "test")
    shown = codes[codes != layout.CATCH_CODE]
    assert np.bincount(shown)[1:].tolist() == [P.test_repetitions // 4] * P.test_images
    train = [session_conditions(Model(P), 1, s, "train") for s in (1, 2)]
    # each training image appears in one of two complementary halves, twice per session
    both = np.concatenate([c[c != layout.CATCH_CODE] for c in train])
    assert np.bincount(both)[1:].tolist() == [2] * 16


def test_preprocess_shapes_order_and_evoked_response(raw_root, tmp_path):
    out = tmp_path / "out"
    preprocess(raw_root, PreprocessOptions(mvnn="none"), out_root=out)
    tr = load_pickled_npy(layout.preprocessed_file(out, 1, "train"))
    te = load_pickled_npy(layout.preprocessed_file(out, 1, "test"))
    assert tr["preprocessed_eeg_data"].shape == (16, 4, 17, 100)
    assert te["preprocessed_eeg_data"].shape == (6, 16, 17, 100)
    assert list(tr["ch_names"]) == list(layout.OCCIPITO_PARIETAL)
    assert np.allclose(te["times"][[0, -1]], [-0.2, 0.79])
    # conditions sorted: each row's evoked response matches its own image's planted response best
    clean = clean_responses(Model(P), 1, "test", np.round(te["times"], 6), layout.OCCIPITO_PARIETAL)
    clean = clean - clean[..., te["times"] < 0].mean(-1, keepdims=True)
    evoked = te["preprocessed_eeg_data"].mean(1)
    corr = np.corrcoef(evoked.reshape(6, -1), clean.reshape(6, -1))[:6, 6:]
    assert np.all(np.argmax(corr, axis=1) == np.arange(6))
    assert np.min(np.diag(corr)) > 0.6  # overlapping responses at a 200 ms SOA blur it somewhat
    sidecar = json.loads((layout.preprocessed_file(out, 1, "train").parent / "preprocessing.json").read_text())
    assert sidecar["options"]["mvnn"] == "none"
    # and the loader reads what preprocess wrote, with --out as the root (its image_set links to the source's)
    assert layout.metadata_file(out).read_bytes() == layout.metadata_file(raw_root).read_bytes()
    assert ThingsEEG2(out, cache_root=tmp_path / "c").load(1, "test", PrepOptions(n_times=128)).eeg.shape == (
        6,
        17,
        128,
    )


def test_mvnn_whitens_the_noise(noisy_root, tmp_path):
    raw_root = noisy_root
    out = tmp_path / "mvnn"
    assert main(["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(out), "--mvnn", "time"]) == 0
    te = load_pickled_npy(layout.preprocessed_file(out, 1, "test"))["preprocessed_eeg_data"]
    # noise = deviation from each condition's mean, on the test partition that MVNN was not fitted on
    noise = te - te.mean(1, keepdims=True)
    cov = np.einsum("nrct,nrdt->cd", noise, noise) / (noise.shape[0] * (noise.shape[1] - 1) * noise.shape[3])
    scale = np.trace(cov) / 17
    assert np.linalg.norm(cov / scale - np.eye(17)) / np.sqrt(17) < 0.35
    # before MVNN the same noise is far from white (channels are correlated)
    plain = tmp_path / "plain"
    preprocess(raw_root, PreprocessOptions(mvnn="none"), out_root=plain)
    te0 = load_pickled_npy(layout.preprocessed_file(plain, 1, "test"))["preprocessed_eeg_data"]
    n0 = te0 - te0.mean(1, keepdims=True)
    cov0 = np.einsum("nrct,nrdt->cd", n0, n0)
    cov0 /= np.trace(cov0) / 17
    assert np.linalg.norm(cov0 - np.eye(17)) / np.sqrt(17) > 2 * np.linalg.norm(cov / scale - np.eye(17)) / np.sqrt(17)


def test_all_channels_and_errors(raw_root, tmp_path):
    out = tmp_path / "all"
    preprocess(
        raw_root, PreprocessOptions(channels="all", mvnn="epochs", mvnn_fit="train+test", sfreq=50), out_root=out
    )
    tr = load_pickled_npy(layout.preprocessed_file(out, 1, "train"))
    assert tr["preprocessed_eeg_data"].shape == (16, 4, 63, 50)
    assert json.loads((layout.preprocessed_file(out, 1, "train").parent / "preprocessing.json").read_text())[
        "test_statistics_in_mvnn"
    ]
    with pytest.raises(DataError, match="no raw sessions"):
        preprocess(tmp_path / "nothing")
    with pytest.raises(DataError, match="mvnn"):
        PreprocessOptions(mvnn="bogus")


def test_existing_preprocessed_files_are_not_overwritten_without_the_flag(raw_root, tmp_path, capsys):
    # the twin's own preprocessed files stand in for the release's: `--root` without `--out` targets them
    target = layout.preprocessed_file(raw_root, 1, "train")
    before = target.read_bytes()
    code = main(["preprocess", "things-eeg-2", "--root", str(raw_root), "--mvnn", "none"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(target) in err and "--out DIR2" in err and "--overwrite" in err
    assert target.read_bytes() == before
    # into a copy of the outputs, the flag replaces them, atomically (no temporary files left behind)
    out = tmp_path / "out"
    assert main(["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(out), "--mvnn", "none"]) == 0
    assert main(["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(out), "--mvnn", "none"]) == 2
    assert (
        main(
            ["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(out), "--mvnn", "none", "--overwrite"]
        )
        == 0
    )
    folder = layout.preprocessed_file(out, 1, "train").parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "preprocessed_eeg_test.npy",
        "preprocessed_eeg_training.npy",
        "preprocessing.json",
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sfreq": -5}, "sfreq -5"),
        ({"sfreq": 0}, "positive"),
        ({"sfreq": float("nan")}, "positive"),
        ({"tmin": 0.5, "tmax": 0.1}, "before its end"),
    ],
)
def test_bad_preprocess_options_are_one_line(kwargs, match):
    with pytest.raises(DataError, match=match) as info:
        PreprocessOptions(**kwargs)
    assert "\n" not in str(info.value)


def test_sfreq_above_the_raw_rate_is_refused(raw_root, tmp_path, capsys):
    code = main(
        ["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(tmp_path / "o"), "--sfreq", "2000"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "2000" in err and "1000 Hz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    code = main(["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(tmp_path / "o"), "--sfreq", "-5"])
    err = capsys.readouterr().err
    assert code == 2 and "sfreq -5" in err and "Traceback" not in err


def test_twin_without_raw_sessions_suggests_the_twin_command(tmp_path, capsys):
    root = write_twin(tmp_path / "noraw", P)
    assert main(["preprocess", "things-eeg-2", "--root", str(root), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "synthetic twin" in err and "no raw sessions" in err and "download" not in err
    assert f"eegbench synth --root {root}" in err and "--raw" in err
    # the suggested command adds the raw sessions without touching the twin's other files
    before = layout.preprocessed_file(root, 1, "test").stat().st_mtime_ns
    write_twin(root, P, raw=True)
    assert layout.raw_file(root, 1, 4, "test").is_file()
    assert layout.preprocessed_file(root, 1, "test").stat().st_mtime_ns == before
    assert json.loads(layout.synth_params_file(root).read_text())["raw"] is True


def _authors_sigma(epochs, codes, mode, shrinkage):
    """The dataset authors' mvnn loop (gifale95/eeg_encoding preprocessing_utils.mvnn), one partition, written
    with scikit-learn's own ``_cov`` exactly as they call it: per condition the mean of per-epoch (time ×
    channels) or per-time-point (repetitions × channels) covariances, then the mean over conditions."""
    from sklearn.discriminant_analysis import _cov

    sigma_cond = []
    for code in np.unique(codes):
        cond = epochs[codes == code]
        if mode == "time":
            if len(cond) < 2:
                continue
            sigma_cond.append(np.mean([_cov(cond[:, :, t], shrinkage=shrinkage) for t in range(cond.shape[2])], axis=0))
        else:
            sigma_cond.append(np.mean([_cov(cond[e].T, shrinkage=shrinkage) for e in range(len(cond))], axis=0))
    return np.mean(sigma_cond, axis=0)


@pytest.mark.parametrize(
    "mode, fit, shrinkage",
    [
        ("epochs", "train", "auto"),
        ("time", "train", "auto"),
        ("epochs", "train+test", "auto"),
        ("time", "train+test", 0.3),
    ],
)
def test_mvnn_whitening_equals_scikit_learn_ledoit_wolf(raw_root, mode, fit, shrinkage):
    from scipy.linalg import fractional_matrix_power

    from eegbench_plugins.things_eeg2.preprocess import epoch_session, whitening_matrix

    opts = PreprocessOptions(mvnn=mode, mvnn_fit=fit, mvnn_shrinkage=shrinkage)
    parts = {s: epoch_session(layout.raw_file(raw_root, 1, 2, s), opts)[:2] for s in ("train", "test")}
    fitted = ["train"] if fit == "train" else ["test", "train"]  # the authors' order; a mean either way
    sigma = np.mean([_authors_sigma(*parts[s], mode, shrinkage) for s in fitted], axis=0)
    expected = fractional_matrix_power(sigma, -0.5)
    assert np.isrealobj(expected) or np.abs(expected.imag).max() < 1e-12
    np.testing.assert_allclose(
        whitening_matrix(parts, opts), expected.real, rtol=1e-9, atol=1e-12 * np.abs(expected).max()
    )
    if shrinkage == "auto":  # Ledoit-Wolf is not a fixed shrinkage: the old 0.1 gives another matrix
        other = whitening_matrix(parts, PreprocessOptions(mvnn=mode, mvnn_fit=fit, mvnn_shrinkage=0.1))
        assert not np.allclose(other, expected.real, rtol=1e-3)


def test_preprocess_cli_whitens_with_the_ledoit_wolf_matrix(raw_root, tmp_path, capsys):
    """End to end: the test trials written for session 1 are the session's epochs times scikit-learn's Σ^-½."""
    from scipy.linalg import fractional_matrix_power

    from eegbench_plugins.things_eeg2.preprocess import epoch_session

    out = tmp_path / "lw"
    assert (
        main(["preprocess", "things-eeg-2", "--root", str(raw_root), "--out", str(out), "--mvnn-shrinkage", "auto"])
        == 0
    )
    capsys.readouterr()
    opts = PreprocessOptions()
    (train, train_codes, _, _), (test, test_codes, _, _) = (
        epoch_session(layout.raw_file(raw_root, 1, 1, s), opts) for s in ("train", "test")
    )
    w = fractional_matrix_power(_authors_sigma(train, train_codes, "epochs", "auto"), -0.5).real
    whitened = np.einsum("cd,ndt->nct", w, test)[np.argsort(test_codes, kind="stable")]
    per_session = P.test_repetitions // layout.N_SESSIONS
    written = load_pickled_npy(layout.preprocessed_file(out, 1, "test"))["preprocessed_eeg_data"][:, :per_session]
    np.testing.assert_allclose(written, whitened.reshape(written.shape), rtol=1e-8, atol=1e-10)
    sidecar = json.loads((layout.preprocessed_file(out, 1, "train").parent / "preprocessing.json").read_text())
    assert sidecar["mvnn_shrinkage"] == "ledoit-wolf" and sidecar["options"]["mvnn_fit"] == "train"
    # a bad value is one line at the command line
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "preprocess",
                "things-eeg-2",
                "--root",
                str(raw_root),
                "--out",
                str(tmp_path / "x"),
                "--mvnn-shrinkage",
                "2",
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--mvnn-shrinkage" in err and "[0, 1]" in err and len(err.strip().splitlines()) == 1


def test_bad_raw_eeg_is_one_line_naming_the_file_and_sample(raw_root, tmp_path):
    import shutil

    from eegbench_plugins.things_eeg2.safe_pickle import save_pickled_dict

    root = tmp_path / "copy"
    shutil.copytree(raw_root, root)
    path = layout.raw_file(root, 1, 1, "train")
    rec = load_pickled_npy(path)
    rec["raw_eeg_data"][10, 1234] = np.inf
    save_pickled_dict(path, rec)
    with pytest.raises(DataError) as err:
        preprocess(root, out_root=tmp_path / "out")
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "channel 10, sample 1234" in msg and "inf" in msg
    rec["raw_eeg_data"] = rec["raw_eeg_data"].astype(np.complex128)
    save_pickled_dict(path, rec)
    with pytest.raises(DataError, match="complex"):
        preprocess(root, out_root=tmp_path / "out")
    assert not layout.preprocessed_file(tmp_path / "out", 1, "train").exists()
