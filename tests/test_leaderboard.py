"""Leaderboards from results written through ResultStore (the engine's rows): summaries, ranking within a
comparison context, paired statistics, merging directories, reported rows and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from leaderboard_stores import cell_result

from eegbench.errors import EegbenchError
from eegbench.interfaces import stable_hash
from eegbench.results.leaderboard import Column, build, leaderboard, load_reported, load_results, reported_matches
from eegbench.results.store import CellRecord, ResultStore

CONFIGS = (
    # backbone, image encoder, loss, base top-1, backbone params
    ("resnet1d", "clip-vit-b-32", "clip", 0.12, {"depth": 4}),
    ("braindecode:EEGNetv4", "clip-vit-b-32", "clip", 0.08, {}),
)
SUBJECTS = (1, 2, 3)
SEEDS = (0, 1)
RATIOS = (0.1, 0.5, 1.0)


def make_context(**overrides):
    ctx = dict(
        dataset="things-eeg-2",
        synthetic=False,
        test_split="test",
        n_way=200,
        train_averaging="all",
        test_averaging="all",
        window=[0.0, 1.0],
        channels=["O1", "Oz", "O2", "Pz"],
        n_times=100,
        sfreq=100.0,
        standardize=True,
        selection="best-val",
        val_fraction=0.1,
        val_by="image",
        image_encoder="fp-abc",
        image_encoder_random_init=False,
    )
    ctx.update(overrides)
    return ctx


def score(base: float, subject: int, seed: int, ratio: float, k: int) -> float:
    """A deterministic score with a subject effect, a smaller seed effect and a ratio effect."""
    return round(
        min(
            1.0,
            base * k * (0.6 + 0.4 * ratio) * (1 + 0.1 * subject) + 0.011 * subject + 0.002 * seed * (subject % 2 + 1),
        ),
        6,
    )


def make_results(
    directory,
    configs=CONFIGS,
    *,
    subjects=SUBJECTS,
    seeds=SEEDS,
    ratios=RATIOS,
    context=None,
    protocols=("intra", "loso"),
    spec="quick",
    scorer=score,
) -> list[dict]:
    """Write one cell per (config, protocol, stage, ratio, seed, fold) through ResultStore.write_cell; a loso
    finetune column per ratio. Returns the rows written (independent of the store, for checks)."""
    store = ResultStore(directory)
    ctx = context or make_context()
    ck = stable_hash(ctx)
    written = []
    for backbone, encoder, loss, base, params in configs:
        for protocol in protocols:
            stages = [("pretrain", (1.0,))] + ([("finetune", ratios)] if protocol == "loso" else [])
            for stage, stage_ratios in stages:
                for ratio in stage_ratios:
                    for seed in seeds:
                        for s in subjects:
                            key = stable_hash(
                                [spec, backbone, params, encoder, loss, protocol, stage, ratio, seed, s, ck]
                            )
                            rows = []
                            for metric, k in (("top1", 1), ("top5", 5)):
                                rows.append(
                                    dict(
                                        spec_name=spec,
                                        spec_hash="h" + spec,
                                        dataset=ctx["dataset"],
                                        backbone=backbone,
                                        backbone_params=params,
                                        image_encoder=encoder,
                                        image_encoder_params={},
                                        image_encoder_fingerprint=ctx["image_encoder"],
                                        loss=loss,
                                        loss_params={"temperature": 0.04},
                                        task="retrieval",
                                        task_params={},
                                        protocol=protocol,
                                        fold=f"sub-{s:02d}",
                                        test_subject=s,
                                        train_subjects=[x for x in subjects if x != s] if protocol == "loso" else [s],
                                        stage=stage,
                                        training_ratio=ratio,
                                        seed=seed,
                                        context=ctx,
                                        context_key=ck,
                                        metric=metric,
                                        value=scorer(base, s, seed, ratio, k),
                                        chance=k / ctx["n_way"],
                                        epochs_run=3,
                                        device="cpu",
                                    )
                                )
                            store.write_cell(
                                CellRecord(
                                    cell_key=key,
                                    rows=rows,
                                    spec_name=spec,
                                    stage=stage,
                                    fold=f"sub-{s:02d}",
                                    seed=seed,
                                    training_ratio=ratio,
                                )
                            )
                            written += [dict(r, cell_key=key) for r in rows]
    return written


def expected(written, backbone, protocol, stage, ratio, metric="top1", context_key=None):
    vals = np.array(
        [
            r["value"]
            for r in written
            if r["backbone"] == backbone
            and r["protocol"] == protocol
            and r["stage"] == stage
            and r["training_ratio"] == ratio
            and r["metric"] == metric
            and (context_key is None or r["context_key"] == context_key)
        ]
    )
    return vals


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "results"
    written = make_results(d)
    return d, written


def test_summaries_match_the_written_scores(results):
    d, written = results
    table = leaderboard(d, reported=False)
    measured = table[table["source"] == "measured"]
    # 2 configs x (intra pretrain + loso pretrain + 3 loso finetune ratios)
    assert len(measured) == 2 * 5
    for r in measured.to_dict("records"):
        vals = expected(written, r["backbone"], r["protocol"], r["stage"], r["training_ratio"])
        assert r["n"] == vals.size == len(SUBJECTS) * len(SEEDS)
        assert r["mean"] == pytest.approx(vals.mean())
        assert r["std"] == pytest.approx(vals.std(ddof=1))
        assert r["n_subjects"] == len(SUBJECTS) and r["n_seeds"] == len(SEEDS)
        assert r["chance"] == pytest.approx(1 / 200)


def test_seed_spread_is_separate_from_subject_spread(tmp_path):
    # scores vary with the subject only: the seed spread must be zero, the subject spread not
    make_results(tmp_path, scorer=lambda base, s, seed, ratio, k: base + 0.01 * s, protocols=("intra",))
    t = leaderboard(tmp_path, reported=False)
    assert (t["sd_seeds"] == 0).all()
    assert t["sd_subjects"].to_numpy() == pytest.approx(np.std([0.01, 0.02, 0.03], ddof=1))


def test_best_rank_and_paired_statistics(results):
    d, written = results
    t = leaderboard(d, reported=False)
    for _, part in t.groupby(["context_key", "protocol", "stage", "training_ratio"]):
        assert part["best"].sum() == 1
        best = part[part["best"]].iloc[0]
        assert best["backbone"] == "resnet1d" and best["rank"] == 1 and best["mean"] == part["mean"].max()
        other = part[~part["best"]].iloc[0]
        assert other["rank"] == 2 and other["test"] == "permutation-exact" and other["n_pairs"] == len(SUBJECTS)
        # resnet1d beats EEGNet on every subject: the exact one-sided p is 2**-3
        assert other["p_value"] == pytest.approx(1 / 8)
        a = np.array(
            [
                expected(written, "resnet1d", best["protocol"], best["stage"], best["training_ratio"])
                .reshape(len(SUBJECTS), -1, order="F")[i]
                .mean()
                for i in range(len(SUBJECTS))
            ]
        )
        b = np.array(
            [
                expected(written, "braindecode:EEGNetv4", best["protocol"], best["stage"], best["training_ratio"])
                .reshape(len(SUBJECTS), -1, order="F")[i]
                .mean()
                for i in range(len(SUBJECTS))
            ]
        )
        diff = a - b
        assert diff.std() > 0
        assert other["smd"] == pytest.approx(diff.mean() / diff.std(ddof=1))


def test_different_contexts_are_never_ranked_together(tmp_path):
    make_results(tmp_path, CONFIGS[:1])
    # the weaker model on another test averaging: a different context, so it is best there, not ranked below
    make_results(tmp_path, CONFIGS[1:], context=make_context(test_averaging="none"))
    board = build(tmp_path, reported=False)
    assert len(board.contexts) == 2
    t = board.table
    for _, part in t.groupby(["context_key", "protocol", "stage", "training_ratio"]):
        assert len(part) == 1 and part["best"].all() and part["test"].eq("").all()
    from eegbench.results.report import render_markdown

    md = render_markdown(board)
    assert md.count("## Context ") == 2 and "**test trials averaged**: none" in md


def test_several_directories_merge_without_duplicate_cells(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    written_a = make_results(a, CONFIGS[:1])
    written_b = make_results(b, CONFIGS)  # includes a copy of every cell of a (same cell keys)
    merged = load_results([a, b])
    assert len(merged) == len({(r["cell_key"], r["test_subject"], r["metric"]) for r in written_a + written_b})
    assert not merged.duplicated(["cell_key", "test_subject", "metric"]).any()
    t_merged = leaderboard([a, b], reported=False)
    t_b = leaderboard(b, reported=False)
    cols = ["config", "protocol", "stage", "training_ratio", "mean", "std", "n"]
    assert t_merged[cols].equals(t_b[cols])
    assert leaderboard([b, b], reported=False)[cols].equals(t_b[cols])


def test_component_parameters_tell_configurations_apart(tmp_path):
    configs = (
        ("resnet1d", "clip-vit-b-32", "clip", 0.12, {"depth": 4}),
        ("resnet1d", "clip-vit-b-32", "clip", 0.10, {"depth": 8}),
    )
    make_results(tmp_path, configs, protocols=("intra",))
    t = leaderboard(tmp_path, reported=False)
    assert sorted(t["variant"]) == ["backbone.depth=4", "backbone.depth=8"]
    assert t.loc[t["best"], "config"].item() == "resnet1d / clip-vit-b-32 / clip (backbone.depth=4)"
    by_spec = leaderboard(tmp_path, by="backbone", reported=False)
    assert by_spec["config_id"].nunique() == 2


REPORTED = """
[[reported]]
method = "NICE"
citation = "Song et al. 2024, ICLR"
dataset = "things-eeg-2"
protocol = "loso"
stage = "pretrain"
n_way = 200
top1 = 0.061
top5 = 0.179
image_encoder = "CLIP ViT-H-14"
input = "63 ch, 250 Hz, 0-1 s"
test_averaging = "all"
selection = "test-set"
notes = "cross-subject"

[[reported]]
method = "NICE"
citation = "Song et al. 2024, ICLR"
dataset = "things-eeg-2"
protocol = "intra"
stage = "pretrain"
n_way = 200
top1 = 0.139
top5 = 0.399

[[reported]]
method = "Other-100way"
citation = "Someone 2023"
dataset = "things-eeg-2"
protocol = "intra"
stage = "pretrain"
n_way = 100
top1 = 0.5
"""


def test_reported_rows_only_where_protocol_dataset_nway_and_stage_match(results, tmp_path):
    d, _ = results
    path = tmp_path / "reported.toml"
    path.write_text(REPORTED)
    t = leaderboard(d, reported=path)
    rep = t[t["source"] == "reported"]
    assert sorted(zip(rep["protocol"], rep["stage"], rep["mean"], strict=True)) == [
        ("intra", "pretrain", 0.139),
        ("loso", "pretrain", 0.061),
    ]
    assert not rep["best"].any() and (rep["training_ratio"] == 1.0).all()
    assert rep["config"].str.endswith("[reported]").all()
    # measured ranking is unaffected by the reported rows
    assert t[t["source"] == "measured"].groupby(["protocol", "stage", "training_ratio"])["best"].sum().eq(1).all()
    top5 = leaderboard(d, metric="top5", reported=path)
    assert sorted(top5.loc[top5["source"] == "reported", "mean"]) == [0.179, 0.399]
    # a synthetic context never gets published numbers
    syn = tmp_path / "syn"
    make_results(syn, CONFIGS[:1], context=make_context(dataset="things-eeg-2", synthetic=True))
    assert (leaderboard(syn, reported=path)["source"] == "measured").all()
    assert (leaderboard(d, reported=False)["source"] == "measured").all()


def test_reported_rows_of_one_method_share_a_row(results, tmp_path):
    d, _ = results
    path = tmp_path / "reported.toml"
    path.write_text(REPORTED)
    rep = leaderboard(d, reported=path).query("source == 'reported'")
    assert rep["config_id"].nunique() == 1 and set(rep["protocol"]) == {"intra", "loso"}


def test_the_repository_reported_file_is_valid():
    from eegbench.results.leaderboard import default_reported_path

    path = default_reported_path()
    if path is None or not path.is_file():
        pytest.skip("plugins/papers/reported.toml not present")
    entries = load_reported(path)
    assert entries and all(0 <= e["top1"] <= 1 for e in entries if "top1" in e)


def test_reported_match_rule():
    entry = {"dataset": "things-eeg-2", "n_way": 200, "protocol": "loso", "stage": "pretrain", "test_averaging": "all"}
    ctx = make_context()
    assert reported_matches(entry, ctx, Column("loso", "pretrain", 1.0))
    assert not reported_matches(entry, ctx, Column("intra", "pretrain", 1.0))
    assert not reported_matches(entry, ctx, Column("loso", "finetune", 1.0))
    assert not reported_matches(entry, make_context(n_way=50), Column("loso", "pretrain", 1.0))
    assert not reported_matches(entry, make_context(test_averaging="none"), Column("loso", "pretrain", 1.0))
    assert not reported_matches(entry, make_context(dataset="other"), Column("loso", "pretrain", 1.0))


def test_reported_file_validation(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text(REPORTED.replace("top1 = 0.061", "top1 = 6.1"))
    with pytest.raises(EegbenchError, match=re.escape("top1 = 6.1 must be a fraction")):
        load_reported(bad)
    missing = tmp_path / "missing.toml"
    missing.write_text(
        '[[reported]]\nmethod = "X"\ncitation = ""\ndataset = "d"\nprotocol = "loso"\nstage = "pretrain"\n'
    )
    with pytest.raises(EegbenchError, match="lacks n_way"):
        load_reported(missing)
    with pytest.raises(EegbenchError, match="does not exist"):
        load_reported(tmp_path / "nope.toml")
    good = tmp_path / "good.toml"
    good.write_text(REPORTED)
    monkeypatch.setenv("EEGBENCH_REPORTED", str(good))
    assert [e["method"] for e in load_reported()] == ["NICE", "NICE", "Other-100way"]


def run_cli(*args, env_extra=None):
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "eegbench.cli", "leaderboard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_missing_or_empty_results_give_one_line(tmp_path):
    missing = run_cli(str(tmp_path / "nowhere"))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    no_db = run_cli(str(empty_dir))
    ResultStore(tmp_path / "nodata")  # a database without rows
    no_rows = run_cli(str(tmp_path / "nodata"))
    for proc, words in ((missing, "does not exist"), (no_db, "no results database"), (no_rows, "no results in")):
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_unknown_metric_or_column_is_one_line(results):
    d, _ = results
    with pytest.raises(EegbenchError, match=r"metrics present: top1, top5"):
        build(d, metric="top10", reported=False)
    with pytest.raises(EegbenchError, match="not a result column"):
        build(d, by="backbone,nosuch", reported=False)


def test_default_results_dir_comes_from_the_environment(results, monkeypatch, capsys):
    from eegbench.cli import main

    d, _ = results
    monkeypatch.setenv("EEGBENCH_RESULTS", str(d))
    assert main(["leaderboard", "--no-reported", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("context_key,") and "resnet1d" in out


def test_modules_import_nothing_heavy():
    code = (
        "import sys; import eegbench.results.leaderboard, eegbench.results.report, eegbench.results.plots, "
        "eegbench.results.stats; "
        "heavy = [m for m in ('pandas', 'matplotlib', 'scipy', 'torch') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_exact_ties_are_all_marked_best(tmp_path):
    configs = (("net-a", "clip-vit-b-32", "clip", 0.1, {}), ("net-b", "clip-vit-b-32", "clip", 0.1, {}))
    make_results(tmp_path, configs, protocols=("intra",))
    t = leaderboard(tmp_path, reported=False)
    assert t["best"].all() and (t["rank"] == 1).all()
    other = t[t["backbone"] == "net-b"].iloc[0]
    assert other["p_value"] == 1.0 and other["smd"] == 0.0


# --------------------------------------------------------------------------------------------------
# recipes: rows whose resolved configs differ are never averaged together
# --------------------------------------------------------------------------------------------------
QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"


def write_plan(directory, overrides=None, *, stages=("pretrain", "finetune"), offset=0.0, with_rows=True):
    """Rows exactly as the runner stores them (``build_plan`` cells through ``result_rows``), with made-up
    scores instead of training: the QA scenario without the minutes of training."""

    from eegbench.interfaces import TaskScore
    from eegbench.planning.plan import build_plan
    from eegbench.runner import result_rows

    store = ResultStore(directory)
    context = make_context(dataset="things-eeg-2-synthetic", synthetic=True, n_way=50)
    written = []
    # quick.toml's own recipe (its [backbone], one seed), not the variants it compares
    single = (
        {"variants": [], "seeds": [0], **overrides}
        if isinstance(overrides, dict)
        else ["variants=[]", "seeds=[0]", *(overrides or [])]
    )
    for cell in build_plan(QUICK, single).cells:
        if cell.stage not in stages:
            continue
        scores = [
            TaskScore(
                subject=s,
                metrics={
                    "top1": round(0.3 + offset + 0.01 * s + 0.2 * cell.training_ratio * (cell.stage == "finetune"), 6)
                },
                chance={"top1": 0.02},
                n_way=50,
            )
            for s in cell.test_subjects
        ]
        result = cell_result(context, scores)
        rows = result_rows(cell, result) if with_rows else []
        store.write_cell(
            CellRecord(
                cell_key=cell.key,
                rows=rows,
                spec_name=cell.spec_name,
                stage=cell.stage,
                fold=cell.fold,
                seed=cell.seed,
                training_ratio=cell.training_ratio,
                config=dict(cell.config),
            )
        )
        written += rows
    return written


def measured(board, stage=None):
    t = board.table[board.table["source"] == "measured"]
    return t if stage is None else t[t["stage"] == stage]


def test_runs_differing_only_in_train_epochs_are_two_configurations(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    d = tmp_path / "results"
    write_plan(d)  # eegbench run benchmarks/quick.toml
    write_plan(d, {"train.epochs": 5}, offset=0.1)  # eegbench.run(..., overrides={"train.epochs": 5})
    board = build(d, reported=False)
    t = measured(board)
    assert board.table["context_key"].nunique() == 1  # one context: only the recipe tells them apart
    assert t["config_id"].nunique() == 2
    assert sorted(set(t["config"])) == [
        "resnet1d / embedding-file / clip (train.epochs=10)",
        "resnet1d / embedding-file / clip (train.epochs=5)",
    ]
    # each configuration spans its pretrain and finetune columns, 2 test subjects x 1 seed in each
    for _, part in t.groupby(["protocol", "stage", "training_ratio"]):
        assert len(part) == 2 and (part["n"] == 2).all() and (part["n_subjects"] == 2).all()
    five = t[t["variant"] == "train.epochs=5"]
    assert len(five) == 3 and set(five["stage"]) == {"pretrain", "finetune"}
    pre5 = five[five["stage"] == "pretrain"].iloc[0]
    assert pre5["mean"] == pytest.approx(np.mean([0.3 + 0.1 + 0.03, 0.3 + 0.1 + 0.04]))
    assert t.loc[t["stage"] == "pretrain"].sort_values("mean").iloc[-1]["variant"] == "train.epochs=5"


def test_the_finetune_column_carries_its_pretrain_settings(tmp_path, monkeypatch):
    # the finetune cells' own configs are identical but for their pretrain cell's key: still two rows
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    d = tmp_path / "results"
    write_plan(d, {"train.lr": 0.003})
    write_plan(d, {"train.lr": 0.01}, offset=0.1)
    ft = measured(build(d, reported=False), "finetune")
    assert len(ft) == 4 and (ft["n"] == 2).all()
    assert sorted(set(ft["variant"])) == ["train.lr=0.003", "train.lr=0.01"]


def test_a_finetune_setting_varied_over_one_pretraining(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    d = tmp_path / "results"
    write_plan(d)
    write_plan(d, {"finetune.lr": 0.0005}, offset=0.1)  # the same pretrain cells (same keys), new finetune cells
    board = build(d, reported=False)
    ft = measured(board, "finetune")
    assert len(ft) == 4 and (ft["n"] == 2).all()
    assert sorted(set(ft["variant"])) == ["finetune.lr=0.0005", "finetune.lr=0.001"]
    # the shared pretraining is one row of its own, counted once, not copied into both finetune rows
    pre = measured(board, "pretrain")
    assert len(pre) == 1 and pre["n"].item() == 2 and pre["config"].item() == "resnet1d / embedding-file / clip"
    assert not set(pre["config_id"]) & set(ft["config_id"])


def test_one_recipe_keeps_one_row_across_directories_and_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    a, b = tmp_path / "a", tmp_path / "b"
    write_plan(a, stages=("pretrain",))
    write_plan(b, stages=("finetune",), with_rows=True)  # b's finetune rows point at a's pretrain cells
    write_plan(b, stages=("pretrain",), with_rows=False)  # b knows those pretrain cells' configs (no rows)
    t = measured(build([a, b], reported=False))
    assert t["config_id"].nunique() == 1 and (t["variant"] == "").all()
    assert sorted(t["stage"]) == ["finetune", "finetune", "pretrain"] and (t["n"] == 2).all()
    # b alone, or finetune rows alone: each row's recipe carries its pretrain settings, no pretrain cell needed
    # (stores written before recipes were stored: see tests/test_store_migration.py)
    assert set(measured(build(b, reported=False))["config_id"]) == set(t["config_id"])
    lone = tmp_path / "lone"
    write_plan(lone, stages=("finetune",))
    assert set(measured(build(lone, reported=False))["config_id"]) == set(t["config_id"])
    # the same recipe run again elsewhere (another data root, so other cell keys) joins that row: twice the scores
    c = tmp_path / "c"
    write_plan(c, {"dataset.params.root": str(tmp_path / "elsewhere")})
    t2 = measured(build([a, b, c], reported=False))
    assert t2["config_id"].nunique() == 1 and (t2["n"] == 4).all() and (t2["n_subjects"] == 2).all()
    assert (t2["n_cells"] == 4).all()


def test_explicit_by_never_merges_different_recipes(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    d = tmp_path / "results"
    write_plan(d, stages=("pretrain",))
    write_plan(d, {"loss.params.temperature": 0.1, "train.epochs": 5}, stages=("pretrain",), offset=0.1)
    t = measured(build(d, by="backbone", reported=False))
    assert len(t) == 2 and (t["n"] == 2).all()
    assert sorted(t["config"]) == [
        "resnet1d (loss.temperature=0.07, train.epochs=10)",
        "resnet1d (loss.temperature=0.1, train.epochs=5)",
    ]


def test_out_with_an_unknown_suffix_is_one_line(results, tmp_path, capsys):
    from eegbench.cli import main

    d, _ = results
    assert main(["leaderboard", str(d), "--no-reported", "--out", str(tmp_path / "x.pdf")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".pdf" in err and ".md" in err and ".html" in err
    assert not (tmp_path / "x.pdf").exists()
    assert main(["leaderboard", str(d), "--no-reported", "--format", "md", "--out", str(tmp_path / "x.pdf")]) == 0
    assert (tmp_path / "x.pdf").read_text().startswith("#")


# --------------------------------------------------------------------------------------------------
# like with like: only configurations measured on the same (test subject, seed) set are ranked
# --------------------------------------------------------------------------------------------------
def test_configurations_on_different_subjects_are_not_ranked_against_each_other(tmp_path):
    # the reviewer's case: A measured on subject 3 only, B (higher mean) on subject 4 only, one context
    make_results(
        tmp_path, (("net-a", "clip-vit-b-32", "clip", 0.10, {}),), subjects=(3,), seeds=(0,), protocols=("intra",)
    )
    make_results(
        tmp_path, (("net-b", "clip-vit-b-32", "clip", 0.15, {}),), subjects=(4,), seeds=(0,), protocols=("intra",)
    )
    t = leaderboard(tmp_path, reported=False)
    assert t["context_key"].nunique() == 1 and len(t) == 2
    assert not t["best"].any() and not t["ranked"].any() and (t["rank"] == 0).all()
    assert t["p_value"].isna().all() and (t["n_pairs"] == 0).all() and t["test"].eq("").all()
    b = t[t["backbone"] == "net-b"].iloc[0]
    assert b["mean"] > t[t["backbone"] == "net-a"].iloc[0]["mean"]
    assert b["rank_note"].startswith("not ranked:") and "subjects 4" in b["rank_note"]


def test_partial_coverage_is_flagged_while_complete_configurations_are_ranked(tmp_path):
    full = (("net-a", "clip-vit-b-32", "clip", 0.10, {}), ("net-b", "clip-vit-b-32", "clip", 0.12, {}))
    make_results(tmp_path, full, subjects=(1, 2, 3, 4), protocols=("intra",))
    # the strongest configuration, but measured on 3 of the 4 subjects: it must not become the best
    make_results(tmp_path, (("net-c", "clip-vit-b-32", "clip", 0.30, {}),), subjects=(1, 2, 3), protocols=("intra",))
    t = leaderboard(tmp_path, reported=False).set_index("backbone")
    assert t.loc["net-c", "mean"] > t.loc["net-b", "mean"] > t.loc["net-a", "mean"]
    assert t.loc["net-b", "best"] and t.loc["net-b", "rank"] == 1 and t.loc["net-a", "rank"] == 2
    assert t.loc["net-a", "n_pairs"] == 4 and t.loc["net-a", "test"] == "permutation-exact"
    assert t.loc["net-a", "p_value"] == pytest.approx(1 / 16)  # 4 subjects, every difference favours net-b
    c = t.loc["net-c"]
    assert not c["ranked"] and not c["best"] and c["rank"] == 0 and np.isnan(c["p_value"]) and c["n_pairs"] == 0
    assert c["rank_note"] == "not ranked: subjects differ (3 of the reference's 4; n=6)"
    assert t.loc[["net-a", "net-b"], "rank_note"].eq("").all() and t.loc[["net-a", "net-b"], "ranked"].all()


def test_missing_seeds_are_flagged_too(tmp_path):
    make_results(
        tmp_path,
        (("net-a", "clip-vit-b-32", "clip", 0.10, {}), ("net-b", "clip-vit-b-32", "clip", 0.12, {})),
        protocols=("intra",),
    )
    make_results(tmp_path, (("net-c", "clip-vit-b-32", "clip", 0.30, {}),), seeds=(0,), protocols=("intra",))
    t = leaderboard(tmp_path, reported=False).set_index("backbone")
    assert t.loc["net-b", "best"] and not t.loc["net-c", "ranked"]
    assert t.loc["net-c", "rank_note"] == "not ranked: seeds differ (1 of the reference's 2; n=3)"
