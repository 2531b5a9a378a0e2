"""run_spec / CellRunner / `eegbench run`: results rows, skipping stored cells, resuming, one-line errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import eegbench_fakes as fakes
import pytest

from eegbench.cli import main
from eegbench.planning.plan import build_plan
from eegbench.results.store import RESULT_COLUMNS, ResultStore
from eegbench.runner import CellOutcome, CellRunner, run_spec

CONTEXT_KEYS = {
    "dataset",
    "synthetic",
    "test_split",
    "n_way",
    "train_averaging",
    "test_averaging",
    "window",
    "channels",
    "n_times",
    "sfreq",
    "standardize",
    "selection",
    "val_fraction",
    "val_by",
    "image_encoder",
    "image_encoder_random_init",
}
ROOT = Path(__file__).parents[1]


@pytest.fixture
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)
    return tmp_path


def _spec(**changes):
    return fakes.spec_dict(
        **{"protocol.folds": [2, 3], "finetune": {"training_ratios": [0.5, 1.0], "epochs": 2}, **changes}
    )


def test_run_writes_contract_rows_then_skips_everything(env):
    df = run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True)
    assert (
        len(df) == 6 * 7
    )  # 2 folds x (pretrain + 2 ratios) x top1/3/5 + k-way top1 at 2, 4, 10 and top5 at 10 (n_way 16)
    assert set(df.columns) >= set(RESULT_COLUMNS)
    row = df[(df.stage == "finetune") & (df.metric == "top1")].iloc[0]
    assert set(row.context) == CONTEXT_KEYS and row.context["selection"] == "best-val" and row.context["n_way"] == 16
    assert row.context["synthetic"] is True and row.context["channels"] == ["C0", "C1", "C2", "C3"]
    assert row.protocol == "loso" and row.fold in ("sub-02", "sub-03") and row.training_ratio in (0.5, 1.0)
    assert row.chance == pytest.approx(1 / 16) and 0 <= row.value <= 1 and row.config["stage"] == "finetune"
    assert row.versions["eegbench"] and row.spec_hash and row.epochs_run == 2
    assert df.context_key.nunique() == 1
    store = ResultStore(env / "res")
    assert set(store.cell_status().values()) == {"done"}
    ckpts = {c["checkpoint"] for c in store.cells()}
    assert all(Path(p).is_file() for p in ckpts) and len(list((env / "res" / "logs").glob("*.log"))) == 1
    fakes.FakeDataset.events.clear()
    again = run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True)
    assert not any(e[0] == "load" for e in fakes.FakeDataset.events)  # nothing retrained
    assert sorted(again.value) == sorted(df.value)


def test_interrupted_run_resumes_only_missing_cells(env, monkeypatch):
    import eegbench.execution.engine as engine

    real = engine.run_cell
    calls = []

    def dies_on_second_finetune(cell, **kw):
        calls.append(cell.key)
        if cell.stage == "finetune" and cell.training_ratio == 1.0 and cell.fold == "sub-02":
            raise KeyboardInterrupt
        return real(cell, **kw)

    monkeypatch.setattr(engine, "run_cell", dies_on_second_finetune)
    with pytest.raises(KeyboardInterrupt):
        run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True)
    store = ResultStore(env / "res")
    status = store.cell_status()
    assert sorted(status.values()).count("done") == 2 and "failed" in status.values()
    monkeypatch.setattr(engine, "run_cell", real)
    plan = build_plan(_spec())
    before = set(k for k, s in status.items() if s == "done")
    fakes.FakeDataset.events.clear()
    df = run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True)
    assert len(df) == 6 * 7 and set(store.cell_status().values()) == {"done"}
    assert len({c.key for c in plan.cells} - before) == 4


def test_same_seed_twice_gives_identical_metrics(env):
    a = run_spec(fakes.spec_dict(), results_dir=env / "a", device="cpu", quiet=True)
    b = run_spec(fakes.spec_dict(), results_dir=env / "b", device="cpu", quiet=True)
    assert list(a.value) == list(b.value) and list(a.cell_key) == list(b.cell_key)


def test_force_and_only_and_dry_run(env, capsys):
    plan_df = run_spec(_spec(), results_dir=env / "res", dry_run=True, progress=True)
    out = capsys.readouterr().out
    assert len(plan_df) == 6 and set(plan_df.stored) == {"-"} and "work:" in out and "sub-02" in out
    assert plan_df.loc[plan_df.stage == "pretrain", "samples"].iloc[0] == int(64 * 0.75 * 2)
    df = run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True, only=["stage=pretrain", "fold=3"])
    assert set(df.stage) == {"pretrain"} and set(df.fold) == {"sub-03"}
    again = run_spec(_spec(), results_dir=env / "res", dry_run=True, quiet=True)
    assert sorted(again.stored) == ["-"] * 5 + ["done"]
    first = ResultStore(env / "res").cells()[0]["finished_at"]
    run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True, only=["stage=pretrain", "fold=3"], force=True)
    assert ResultStore(env / "res").cells()[0]["finished_at"] > first


def test_failed_cell_is_recorded_and_dependents_fail(env):
    df = run_spec(_spec(**{"dataset.params.leak": True}), results_dir=env / "res", device="cpu", quiet=True)
    assert df.empty and len(df.attrs["failed"]) == 6
    errors = {c["error"] for c in ResultStore(env / "res").cells()}
    assert any("validation would use" in (e or "") for e in errors)


def test_cell_runner_pickles_without_its_display(env):
    runner = CellRunner(env / "res", device="cpu", progress=lambda *a: None)
    clone = pickle.loads(pickle.dumps(runner))
    assert clone.progress is None and clone.results_dir == str(env / "res") and clone.force is False
    cell = build_plan(fakes.spec_dict()).cells[0]
    out = clone(cell)
    assert isinstance(out, CellOutcome) and out.status == "done" and out.error is None
    assert clone(cell).status == "skipped"


def test_cli_run_prints_table_and_user_errors_are_one_line(env, capsys):
    import tomli_w

    spec_path = env / "bench.toml"
    spec_path.write_bytes(tomli_w.dumps(fakes.spec_dict()).encode())
    assert (
        main(["run", str(spec_path), "--results", str(env / "res"), "--device", "cpu", "--set", "train.epochs=2"]) == 0
    )
    out = capsys.readouterr().out
    assert "top1" in out and "sub-03" in out
    for args, message in [
        (["--set", "train.epoch=3"], "[train] unknown key 'epoch' — did you mean 'epochs'?"),
        (["--set", "train.epochs=-1"], "[train] epochs: input should be greater than or equal to 1"),
        (
            ["--set", "finetune.training_ratios=[1.5]"],
            "[finetune] training_ratios: input should be less than or equal to 1",
        ),
        (["--set", 'backbone.name="resnet1"'], "[backbone] unknown backbone 'resnet1'"),
        (["--only", "fold=9"], "matches no cell"),
    ]:
        assert main(["run", str(spec_path), "--results", str(env / "res"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("name", ["things_loso", "things_finetune", "things_intra", "quick"])
def test_shipped_specs_plan(name, env, capsys):
    df = run_spec(ROOT / "benchmarks" / f"{name}.toml", results_dir=env / "res", dry_run=True, progress=True)
    assert len(df) > 0 and "work:" in capsys.readouterr().out


def test_seed_recipe_settings():
    from eegbench.planning.spec import load_spec

    spec = load_spec(ROOT / "benchmarks" / "things_loso.toml")
    assert spec.dataset.name == "things-eeg-2" and spec.dataset.n_times == 128 and spec.dataset.train_averaging == "all"
    assert spec.backbone.name == "resnet1d" and spec.image_encoder.name == "clip-vit-b-32"
    assert spec.image_encoder.params.get("output") == "cls"
    assert (
        spec.loss.name == "clip"
        and spec.loss.params["temperature"] == 0.04
        and spec.loss.params["learn_temperature"] is False
    )
    t = spec.train
    assert (
        t.epochs,
        t.batch_size,
        t.lr,
        t.weight_decay,
        t.warmup_epochs,
        t.schedule,
        t.plateau_factor,
        t.plateau_patience,
        t.optimizer,
    ) == (300, 512, 0.005, 0.1, 20, "plateau", 0.1, 25, "adamw")
    assert spec.seeds == [42, 43, 44] and spec.validation.fraction == 0.2 and spec.validation.by == "trial"
    assert t.drop_last is True  # the seed's training DataLoader drops the last partial batch
    assert spec.protocol.name == "loso" and spec.dataset.subjects == list(range(1, 11))
    ft = load_spec(ROOT / "benchmarks" / "things_finetune.toml")
    f = ft.finetune_train()
    assert (f.epochs, f.lr, f.warmup_epochs) == (30, 0.0005, 5) and ft.finetune.training_ratios


def test_dry_run_shows_the_finetune_budget_per_ratio_without_the_data(env, capsys, monkeypatch):
    """`eegbench run benchmarks/things_finetune.toml --dry-run` with no release on disk: per ratio, the held-out
    subject's training + validation images sum to ratio x 16,540 (the release's declared size)."""
    monkeypatch.setenv("EEGBENCH_DATA", str(env / "nodata"))
    assert (
        main(["run", str(ROOT / "benchmarks" / "things_finetune.toml"), "--dry-run", "--results", str(env / "res")])
        == 0
    )
    out = capsys.readouterr().out
    assert not (env / "nodata").exists()  # nothing downloaded or generated
    for ratio, train, val in ((0.05, 662, 165), (0.1, 1323, 331), (0.25, 3308, 827), (1, 13232, 3308)):
        assert (
            f"finetune ratio {ratio:g}: {train + val:,} of the held-out subject's 16,540 training images labelled = "
            f"{train:,} training + {val:,} validation"
        ) in out
        assert train + val == round(ratio * 16540)
    df = run_spec(ROOT / "benchmarks" / "things_finetune.toml", results_dir=env / "res", dry_run=True, quiet=True)
    ft = df[df.stage == "finetune"]
    assert ((ft.train_images + ft.val_images) == (ft.ratio * 16540).round()).all() and len(ft) == 10 * 3 * 5
    pre = df[df.stage == "pretrain"].iloc[0]  # 9 subjects' (subject, image) pairs, 20 % of them held out
    assert (pre.train_images, pre.val_images) == (148860 - 29772, 29772)


def test_dry_run_of_the_synthetic_twin_counts_without_generating_it(env, capsys):
    assert main(["run", str(ROOT / "benchmarks" / "quick.toml"), "--dry-run", "--results", str(env / "res")]) == 0
    out = capsys.readouterr().out
    # quick.toml's twin declares 100 concepts x 4 images; it finetunes at 0.25 and 1.0 with 20 % validation
    assert (
        "finetune ratio 0.25: 100 of the held-out subject's 400 training images labelled = 80 training + 20 validation"
        in out
    )
    assert (
        "finetune ratio 1: 400 of the held-out subject's 400 training images labelled = 320 training + 80 validation"
        in out
    )
    assert not any((env / "eegbench_data").rglob("*.npy"))


def test_result_rows_record_the_labelled_fraction(env):
    df = run_spec(_spec(), results_dir=env / "res", device="cpu", quiet=True, only=["fold=3"])
    fractions = {(r.stage, r.training_ratio): r.config["labelled_fraction"] for r in df.itertuples()}
    assert fractions and all(v == ratio for (stage, ratio), v in fractions.items())
    assert any(stage == "finetune" and ratio < 1 for stage, ratio in fractions)


def test_real_release_absent_fails_in_one_line_before_training(env):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eegbench.cli",
            "run",
            str(ROOT / "benchmarks" / "things_loso.toml"),
            "--results",
            str(env / "res"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "EEGBENCH_DATA": str(env / "nodata")},
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "download" in lines[0], proc.stderr


def test_dry_run_work_counts_trials_times_repetitions(env, monkeypatch, capsys):
    from eegbench.runner import trials_per_image

    assert trials_per_image("all", None) == (1, True) and trials_per_image("all", 4) == (1, True)
    assert trials_per_image("none", 4) == (4, True) and trials_per_image(2, 4) == (4, True)
    assert trials_per_image("none", None) == (1, False)
    # the fake dataset keeps 2 repetitions per image apart unless averaged; 64 images, 25% validation, 2 subjects
    monkeypatch.setattr(fakes.FakeDataset, "repetitions", lambda self, split: self.reps, raising=False)
    for averaging, per_image in (("all", 1), ("none", 2), (2, 2)):
        df = run_spec(
            _spec(**{"dataset.train_averaging": averaging}), results_dir=env / "res", dry_run=True, quiet=True
        )
        pre = df[df.stage == "pretrain"].iloc[0]
        assert pre.samples == int(64 * per_image * 0.75 * 2) and pre.counted == "trials"
        assert pre.work == pre.samples * 6
    # a dataset that cannot tell its repetitions: counted per averaged image and labelled as an estimate
    monkeypatch.delattr(fakes.FakeDataset, "repetitions")
    df = run_spec(_spec(**{"dataset.train_averaging": "none"}), results_dir=env / "res", dry_run=True, progress=True)
    out = capsys.readouterr().out
    pre = df[df.stage == "pretrain"].iloc[0]
    assert pre.samples == int(64 * 0.75 * 2) and pre.counted == "averaged images (estimate)"
    assert "estimate per averaged image" in out
    df = run_spec(_spec(), results_dir=env / "res", dry_run=True, progress=True)
    assert set(df.counted) == {"trials"} and "estimate" not in capsys.readouterr().out


def test_things_eeg2_tells_repetitions_only_when_known_without_loading(tmp_path):
    from eegbench_plugins.things_eeg2 import loader

    twin = loader.build_synthetic(
        root=tmp_path / "twin", cache_root=tmp_path / "cache", train_repetitions=2, test_repetitions=8
    )
    assert twin.repetitions("train") == 2 and twin.repetitions("test") == 8
    assert not (tmp_path / "twin").exists() or not any((tmp_path / "twin").rglob("*.npy"))  # nothing generated
    real = loader.build(root=tmp_path / "real", cache_root=tmp_path / "cache")
    assert real.repetitions("train") is None


def test_run_summary_is_in_percent_pretrain_first_without_ratio_then_ratios_ascending():
    import io

    import pandas as pd
    from rich.console import Console

    from eegbench.runner import _print_summary

    rows = []
    for stage, ratio, value in (("finetune", 1.0, 0.70), ("pretrain", 1.0, 0.42), ("finetune", 0.25, 0.55)):
        for seed in (0, 1):
            for metric, v in (("top1", value), ("top5", value + 0.2)):
                rows.append(
                    dict(
                        stage=stage,
                        training_ratio=ratio,
                        fold="sub-04",
                        test_subject=4,
                        metric=metric,
                        value=v + 0.01 * seed,
                        chance=0.02,
                        seed=seed,
                    )
                )
    out = io.StringIO()
    _print_summary(pd.DataFrame(rows), Console(file=out, width=200, color_system=None))
    lines = [line for line in out.getvalue().splitlines() if "sub-04" in line]
    cells = [[c.strip() for c in line.replace("│", "|").split("|") if c.strip()] for line in lines]
    assert [c[:2] for c in cells] == [["pretrain", "sub-04"], ["finetune", "25 %"], ["finetune", "100 %"]]
    assert cells[0][3:6] == ["42.5", "62.5", "2.0"]  # top1, top5, chance@1 in percent, one decimal
    assert cells[1][4:6] == ["55.5", "75.5"] and cells[2][4] == "70.5"


def test_the_real_runner_names_what_its_workers_import():
    """Worker processes import torch, the engine and the components' declared imports once, up front."""
    from eegbench.planning.plan import build_plan
    from eegbench.runner import CellRunner

    plan = build_plan(Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml")
    runner = CellRunner("unused", None, device="cpu")
    mods = runner.worker_imports(plan.cells)
    assert mods[0] == "torch" and {"torch._dynamo", "eegbench.execution.engine"} <= set(mods)
    assert "braindecode.models" in mods  # the EEGNet variant is braindecode's
    resnet_only = [c for c in plan.cells if plan.variants.get(c.key) == "resnet1d"]
    assert "braindecode.models" not in runner.worker_imports(resnet_only)


def test_the_executor_is_started_for_the_cells_not_yet_stored(tmp_path):
    """run_spec starts the executor (its workers' imports) for what the store says still runs; forced, all."""
    from eegbench.runner import _likely_to_run
    from eegbench_plugins.executors.testing import FakeRunner, fake_plan

    cells = fake_plan(n_folds=2, seeds=(0,))
    assert _likely_to_run(cells, tmp_path, force=False) == cells  # no store yet: every cell
    FakeRunner(str(tmp_path))(cells[0])  # stores the first cell as done
    assert _likely_to_run(cells, tmp_path, force=False) == cells[1:]
    assert _likely_to_run(cells, tmp_path, force=True) == cells


def test_background_imports_load_what_they_can_and_raise_nothing(monkeypatch):
    import sys
    import threading

    from eegbench import runner

    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    before = set(threading.enumerate())
    runner._import_in_background(["eegbench_no_such_module", "colorsys"])  # a failure is left to the real import
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=30)
    assert "colorsys" in sys.modules
