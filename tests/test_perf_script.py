"""benchmarks/perf/train_speed.py runs end to end at its CI size (no timing asserts: figures go to
docs/performance.md)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "perf" / "train_speed.py"


@pytest.fixture(scope="module")
def train_speed():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_speed"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("train_speed", None)


def test_ci_size_gives_a_row_per_path(train_speed, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "speed.json"
    try:
        report = train_speed.main(
            [
                *("--size", "ci", "--trials", "128", "--epochs", "1", "--warmup", "0"),
                *("--ks", "2", "--processes", "2", "--json", str(out)),
            ]
        )
    finally:
        torch.set_num_threads(threads)  # the script sizes torch's pool to the process's share
    rows = {(r["path"], r["k"]): r for r in report["rows"]}
    assert set(rows) == {("seed-style", 1), ("eegbench single", 1), ("eegbench parallel", 2), ("eegbench batched", 2)}
    for (_, k), row in rows.items():
        assert row["samples"] == k * (128 // 64) * 64  # full batches, K x for K members
        assert math.isfinite(row["samples_per_s"]) and row["samples_per_s"] > 0
        assert row["gflop_per_s"] == pytest.approx(row["samples_per_s"] * report["meta"]["train_flop_per_sample"] / 1e9)
        assert math.isfinite(row["vs_seed_style"]) and math.isfinite(row["vs_single"])
    assert rows[("seed-style", 1)]["vs_seed_style"] == pytest.approx(1.0)
    assert rows[("eegbench single", 1)]["vs_single"] == pytest.approx(1.0)
    meta = report["meta"]
    assert meta["command"].startswith("python benchmarks/perf/train_speed.py --size ci")
    assert meta["device"].startswith("cpu") and meta["torch"] == torch.__version__ and meta["threads"] >= 1
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    printed = capsys.readouterr().out
    assert (
        "| seed-style | 1 |" in printed
        and "| eegbench single | 1 |" in printed
        and "| eegbench batched | 2 |" in printed
        and "| eegbench parallel | 2 |" in printed
    )


def test_seed_style_dataset_serves_the_trials_eegbench_trains_on(train_speed):
    """The seed-style Dataset interpolates each raw trial on the fly to exactly the prepared (cached) trial."""
    size = train_speed.replace(train_speed.SIZES["ci"], trials=8)
    data = train_speed.make_data(size)
    ds = train_speed.SeedStyleTrials(data.raw, data.image_index, data.emb, size.n_times)
    for i in (0, 7):
        x, y = ds[i]
        assert x.shape == (size.n_chans, size.n_times)
        torch.testing.assert_close(x, torch.from_numpy(data.prepared[i]))
        torch.testing.assert_close(y, torch.from_numpy(data.emb[data.image_index[i]]))
    # linear interpolation keeps the end points
    torch.testing.assert_close(ds[3][0][:, [0, -1]], data.raw[3][:, [0, -1]])


def test_bad_arguments_are_one_line_errors(train_speed, capsys):
    for argv, what in ((["--ks", "2,x"], "--ks"), (["--epochs", "0"], "--epochs"), (["--paths", "gpu"], "--paths")):
        with pytest.raises(SystemExit):
            train_speed.main(argv)
        assert what in capsys.readouterr().err


def test_batch_cells_auto_measures_or_names_why_not(train_speed):
    """``--batch-cells auto`` lets fit_batched time one step first: the row has a rate or fit_batched's reason."""
    threads = torch.get_num_threads()
    try:
        argv = ["--size", "ci", "--trials", "128", "--epochs", "1", "--warmup", "0", "--ks", "2"]
        report = train_speed.main([*argv, "--paths", "batched", "--batch-cells", "auto"])
    finally:
        torch.set_num_threads(threads)
    (row,) = report["rows"]
    assert (row["path"], row["k"]) == ("eegbench batched", 2)
    if row["samples_per_s"] is None:
        assert row["note"].startswith("skipped: a batched step of 2 takes")
    else:
        assert row["samples_per_s"] > 0 and row["vs_single"] is None and row["vs_seed_style"] is None
