"""Hostile inputs: a broken run never stores a score, every bad input is one line, and the exit-code contract
(README "Exit codes": 2 the user's input, 1 a cell failed at run time, 130 Ctrl-C) holds."""

from __future__ import annotations

import os
import sqlite3
import zipfile

import numpy as np
import pytest
import torch
from quick_spec import QUICK, TINY_ONE_FOLD, as_cli

from eegbench.cli import main
from eegbench.errors import CellFailure, DataError, EegbenchError


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """Data and cache directories with the tiny twin generated once for the module."""
    root = tmp_path_factory.mktemp("hostile")
    mp = pytest.MonkeyPatch()
    mp.setenv("EEGBENCH_DATA", str(root / "data"))
    mp.setenv("EEGBENCH_CACHE", str(root / "cache"))
    from eegbench.execution.engine import build_dataset
    from eegbench.planning.plan import build_plan

    plan = build_plan(QUICK, TINY_ONE_FOLD)
    build_dataset(plan.cells[0].config).ensure_available([1, 2, 3, 4])
    yield root
    mp.undo()


def _run(capsys, results, *extra: str) -> tuple[int, list[str], str]:
    rc = main(["run", str(QUICK), *as_cli(TINY_ONE_FOLD), *extra, "--results", str(results), "--quiet"])
    cap = capsys.readouterr()
    return rc, [ln for ln in cap.err.splitlines() if ln.strip()], cap.out


def _stored_rows(results) -> int:
    path = results / "results.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as con:
        return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def _cell_errors(results) -> dict[str, str]:
    with sqlite3.connect(results / "results.sqlite") as con:
        return dict(con.execute("SELECT stage, error FROM cells WHERE status = 'failed'").fetchall())


# --------------------------------------------------------------------------------------------------
# a broken run never stores a score
# --------------------------------------------------------------------------------------------------
def test_diverging_lr_fails_the_cell_with_exit_1_and_stores_no_score(twin, tmp_path, capsys):
    rc, err, out = _run(capsys, tmp_path / "r", "--set", "train.lr=1e10")
    assert rc == 1
    assert out == ""  # --quiet: no tables, but the failures below
    pre = [ln for ln in err if ln.startswith("failed: pretrain")]
    assert len(pre) == 1 and "diverged at epoch" in pre[0] and "learning rate (1e+10)" in pre[0], err
    assert _stored_rows(tmp_path / "r") == 0
    assert "diverged" in _cell_errors(tmp_path / "r")["pretrain"]


def test_nan_in_training_eeg_is_a_data_error_exit_2_and_no_score(twin, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    import shutil

    shutil.copytree(twin / "data", data)
    monkeypatch.setenv("EEGBENCH_DATA", str(data))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    (f,) = data.glob("things-eeg-2-synthetic/*/eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_training.npy")
    payload = np.load(f, allow_pickle=True).item()
    payload["preprocessed_eeg_data"][5, 1, 3, 10] = np.nan
    np.save(f, payload, allow_pickle=True)
    rc, err, _ = _run(capsys, tmp_path / "r")
    assert rc == 2
    bad = [ln for ln in err if "finite" in ln or "nan" in ln.lower()]
    assert bad and all("Traceback" not in ln for ln in err), err
    assert "sub" in bad[0] and ("1" in bad[0]), bad[0]  # names the subject
    assert _stored_rows(tmp_path / "r") == 0


def test_retrieval_refuses_non_finite_embeddings():
    from eegbench_plugins.retrieval import RetrievalTask

    img = torch.randn(6, 4)
    idx, subj = torch.arange(6), torch.ones(6, dtype=torch.long)
    eeg = img.clone()
    eeg[2, 1] = float("nan")
    with pytest.raises(CellFailure, match=r"EEG embeddings .* not finite in 1 of 6 rows \(first: row 2\)"):
        RetrievalTask().evaluate(eeg, img, idx, subj)
    gallery = img.clone()
    gallery[4] = float("inf")
    with pytest.raises(CellFailure, match=r"image embeddings .* row 4"):
        RetrievalTask().evaluate(img, gallery, idx, subj)


def test_fit_names_the_non_finite_training_trial_and_the_diverged_epoch():
    from eegbench.execution.engine import DeviceSplit, EEGEncoder, fit
    from eegbench_plugins.losses import build_clip

    class Flat(torch.nn.Module):
        n_features = 8

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3 * 5, 8)

        def forward(self, x):
            return self.lin(x.flatten(1))

    cfg = {
        "epochs": 3,
        "batch_size": 8,
        "lr": 1e-3,
        "min_lr": 0.0,
        "weight_decay": 0.0,
        "optimizer": "adamw",
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "warmup_epochs": 0,
        "schedule": "constant",
        "plateau_factor": 0.1,
        "plateau_patience": 1,
        "patience": 0,
        "amp": "off",
        "grad_clip": 0.0,
        "compile": False,
    }
    x = torch.randn(16, 3, 5)
    x[11, 2, 4] = float("inf")
    split = DeviceSplit(x, torch.arange(16) % 4, torch.tensor([1] * 8 + [2] * 8))
    emb = torch.randn(4, 8)
    with pytest.raises(DataError, match=r"training EEG .* \(subject 2, trial 11 of the split"):
        fit(EEGEncoder(Flat(), 8), build_clip(), split, None, emb, cfg, seed=0, selection="last")
    split.x[11, 2, 4] = 0.0
    with pytest.raises(CellFailure, match=r"diverged at epoch \d: training loss = nan .*learning rate \(1e\+20\)"):
        fit(EEGEncoder(Flat(), 8), build_clip(), split, None, emb, {**cfg, "lr": 1e20}, seed=0, selection="last")


# --------------------------------------------------------------------------------------------------
# spec numbers: one line naming the key, exit 2, at plan time
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, named",
    [
        ("train.lr=inf", "[train] lr"),
        ("train.lr=nan", "[train] lr"),
        ("train.lr=0", "[train] lr"),
        ("finetune.lr=-1e-3", "[finetune] lr"),
        ("train.weight_decay=-0.1", "[train] weight_decay"),
        ("train.eps=inf", "[train] eps"),
        ("train.betas=[0.9, nan]", "[train] betas"),
        ("train.epochs=0", "[train] epochs"),
        ("train.batch_size=0", "[train] batch_size"),
        ("train.lr=true", "[train] lr"),
        ("loss.params.temperature=inf", "[loss] params.temperature"),
        ("loss.params.temperature=0", "[loss]"),
        ("backbone.params.dropout=nan", "[backbone] params.dropout"),
        ("seeds=[-1]", "seeds"),
        ("seeds=[0, 0]", "seeds"),
        ("seeds=[18446744073709551616]", "seeds"),
        ("finetune.training_ratios=[0.5, 0.5]", "[finetune] training_ratios"),
        ("finetune.training_ratios=[0]", "[finetune] training_ratios"),
        ("finetune.training_ratios=[1.5]", "[finetune] training_ratios"),
        ("validation.fraction=1.0", "[validation] fraction"),
        ("validation.fraction=-inf", "[validation] fraction"),
        ("dataset.window=[0.0, inf]", "[dataset] window"),
        ("protocol.folds=[3, 3]", "[protocol] folds"),
        ('train.text_prompt="a {thing}"', "[train] text_prompt"),
    ],
)
def test_bad_spec_numbers_are_one_line_naming_the_key(override, named, capsys, tmp_path):
    rc = main(["run", str(QUICK), "--set", override, "--dry-run", "--results", str(tmp_path)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("eegbench: error: ") and named in err[0] and "internal error" not in err[0], err


# --------------------------------------------------------------------------------------------------
# files: embedding files, checkpoints, weights files
# --------------------------------------------------------------------------------------------------
def _bad_npz(kind: str, path) -> None:
    good = path.with_name("good.npz")
    np.savez(good, ids=np.array(["a", "b"]), embeddings=np.ones((2, 3), np.float32))
    raw = good.read_bytes()
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("ids,embeddings\n")
    elif kind == "npy":
        np.save(path.with_suffix(".npy"), np.ones(3))
        path.with_suffix(".npy").rename(path)
    elif kind == "object":
        np.savez(path, ids=np.array(["a", 1], dtype=object), embeddings=np.ones((2, 3)))
    elif kind == "raw-member":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("ids.npy", "not an array")
            z.writestr("embeddings.npy", "x")
    elif kind == "bad-crc":
        data = bytearray(raw)
        at = raw.find(b"NUMPY") + 60
        data[at : at + 16] = b"x" * 16
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "npy", "object", "raw-member", "bad-crc"])
def test_unreadable_embedding_files_are_one_line_naming_the_file(kind, tmp_path):
    from eegbench.execution.embedding import read_embedding_file

    path = tmp_path / f"{kind}.npz"
    _bad_npz(kind, path)
    with pytest.raises(DataError) as info:
        read_embedding_file(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg


def test_truncated_embedding_file_in_a_run_exits_2(twin, tmp_path, capsys):
    path = tmp_path / "latents.npz"
    _bad_npz("truncated", path)
    rc, err, _ = _run(capsys, tmp_path / "r", "--set", f'image_encoder.params.path="{path}"')
    assert rc == 2
    assert any(str(path) in ln and "truncated or corrupt" in ln for ln in err), err
    assert _stored_rows(tmp_path / "r") == 0


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if unpickled unsafely


def _bad_checkpoint(kind: str, path, tmp_path) -> None:
    if kind == "pickle":
        torch.save({"format": "eegbench-encoder-1", "x": _RunsCode(tmp_path / "ran")}, path)
    elif kind == "truncated":
        torch.save({"format": "eegbench-encoder-1", "w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello")
    elif kind == "other-format":
        torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    elif kind == "damaged-payload":
        torch.save({"format": "eegbench-encoder-1", "cell_key": "k", "backbone": "{not json"}, path)


@pytest.mark.parametrize("kind", ["pickle", "truncated", "empty", "text", "other-format", "damaged-payload"])
def test_bad_checkpoints_are_one_line_naming_the_file(kind, tmp_path):
    from eegbench.execution.engine import load_encoder

    path = tmp_path / f"{kind}.pt"
    _bad_checkpoint(kind, path, tmp_path)
    with pytest.raises(DataError) as info:
        load_encoder(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    assert not (tmp_path / "ran").exists()  # nothing in the file ran
    if kind == "pickle":
        assert "refused by the safe loader" in msg


def test_finetune_refuses_a_checkpoint_of_another_recipe(twin, tmp_path, capsys):
    from eegbench.execution.engine import build_encoder, save_checkpoint
    from eegbench.planning.plan import build_plan

    results = tmp_path / "r"
    rc, err, _ = _run(capsys, results, "--only", "stage=pretrain")
    assert rc == 0, err
    pre = next(c for c in build_plan(QUICK, TINY_ONE_FOLD).cells if c.stage == "pretrain")
    ckpt = results / "checkpoints" / f"{pre.key}.pt"
    # another architecture's checkpoint put where the finetune looks for its pretrain cell's
    other = {"name": "resnet1d", "params": {"filters": [8, 8], "kernel_size": 3}}
    model = build_encoder(
        other,
        n_chans=17,
        n_times=64,
        sfreq=64.0,
        ch_names=[f"c{i}" for i in range(17)],
        image_dim=16,
        subjects=[1, 2, 3],
    )
    save_checkpoint(
        ckpt,
        model,
        cfg={"backbone": other},
        cell_key="f" * 64,
        n_chans=17,
        n_times=64,
        sfreq=64.0,
        ch_names=[f"c{i}" for i in range(17)],
        image_dim=16,
        subjects=[1, 2, 3],
    )
    rc, err, _ = _run(capsys, results, "--only", "stage=finetune")
    assert rc == 2
    line = next(ln for ln in err if ln.startswith("failed: finetune"))
    assert str(ckpt) in line and "was written by cell ffffffffffff (backbone 'resnet1d')" in line, line
    assert _stored_rows(results) == 5  # the pretrain cell's rows only (one test subject x top1/3/5 + 2- and 4-way top1)


@pytest.mark.parametrize("kind", ["pickle", "truncated", "text"])
def test_bad_clip_weights_files_are_one_line_naming_the_file(kind, tmp_path):
    from eegbench import create
    from eegbench.errors import WeightsError

    path = tmp_path / f"{kind}.pt"
    _bad_checkpoint(kind, path, tmp_path)
    with pytest.raises(WeightsError) as info:
        create("image-encoder", "clip-vit-b-32", weights=str(path))
    msg = str(info.value)
    assert f"weights file {str(path)!r} is " in msg and "\n" not in msg
    assert not (tmp_path / "ran").exists()


# --------------------------------------------------------------------------------------------------
# exit codes: Ctrl-C, deferral on the console
# --------------------------------------------------------------------------------------------------
def test_ctrl_c_exits_130(monkeypatch, capsys):
    import eegbench.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_spec", interrupted)
    assert main(["run", str(QUICK)]) == 130
    assert capsys.readouterr().err.strip() == "eegbench: interrupted"


def test_user_error_exit_code_is_on_the_class():
    assert EegbenchError("x").exit_code == 2 and DataError("x").exit_code == 2 and CellFailure("x").exit_code == 1


def test_a_cell_deferred_to_a_live_owner_is_said_on_the_console(twin, tmp_path, capsys):
    from eegbench.planning.plan import build_plan
    from eegbench.results.store import ResultStore

    results = tmp_path / "r"
    pre = next(c for c in build_plan(QUICK, TINY_ONE_FOLD).cells if c.stage == "pretrain")
    ResultStore(results).mark_running(pre.key, stage="pretrain")
    with sqlite3.connect(results / "results.sqlite") as con:  # held by a live process that is not this one
        con.execute("UPDATE cells SET pid = ? WHERE cell_key = ?", (os.getppid(), pre.key))
    rc, err, _ = _run(capsys, results, "--only", "stage=pretrain")
    assert rc == 0
    assert any(ln.startswith("deferred: pretrain sub-04") and f"pid {os.getppid()}" in ln for ln in err), err
