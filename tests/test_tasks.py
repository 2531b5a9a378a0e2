"""Tasks beyond 200-way top-k (issue 17): k-way retrieval curves, the seed's seen-concept test split
(``test_split = "train-heldout"``), classification with a linear probe and EEG -> concept-text retrieval."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from quick_spec import ONE_SEED, QUICK, SINGLE, TINY_TWIN

from eegbench.errors import EegbenchError
from eegbench_plugins.retrieval import RetrievalTask, kway_hit_rates

#: quick.toml's recipe on the tiny twin, one intra fold, a couple of epochs
INTRA = [
    SINGLE,
    ONE_SEED,
    TINY_TWIN,
    "train.epochs=2",
    "finetune.training_ratios=[]",
    'protocol.name="intra"',
    "protocol.folds=[2]",
]


@pytest.fixture
def twin_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


# --- k-way retrieval -----------------------------------------------------------------------------------------
def _noisy(n_way: int, n_subjects: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = torch.as_tensor(rng.standard_normal((n_way, 16)), dtype=torch.float32)
    idx = torch.arange(n_way).repeat(n_subjects)
    subj = torch.arange(1, n_subjects + 1).repeat_interleave(n_way)
    eeg = img[idx] + noise * torch.as_tensor(rng.standard_normal((len(idx), 16)), dtype=torch.float32)
    return eeg, img, idx, subj


def test_kway_top1_non_increasing_and_equal_to_top1_at_n_way():
    eeg, img, idx, subj = _noisy(200, 2, noise=1.5)
    task = RetrievalTask(kway=[2, 4, 10, 50, 100, 200, 300], kway_draws=20)
    for s in task.evaluate(eeg, img, idx, subj):
        m = s.metrics
        curve = [m[f"top1_{k}way"] for k in (2, 4, 10, 50, 100, 200)]
        assert curve == sorted(curve, reverse=True) and curve[0] > curve[-1], curve
        assert m["top1_200way"] == m["top1"] and m["top5_200way"] == m["top5"]  # exactly today's metric
        assert "top1_300way" not in m and "top5_4way" not in m and "top5_10way" in m  # k > gallery: skipped
        assert s.chance["top1_4way"] == 0.25 and s.chance["top5_10way"] == 0.5
        assert 0.0 < m["top1"] < m["top1_2way"] < 1.0


def test_kway_matches_the_hypergeometric_expectation_and_is_seeded():
    """Trial i beaten by b_i other images: P(top-1 in k-way) = C(m-1-b, k-1) / C(m-1, k-1)."""
    from math import comb

    m, k = 12, 4
    beats = torch.zeros(m, m, dtype=torch.bool)
    b = torch.arange(m) % 5  # trial i is beaten by b_i images, none of them its own
    for i in range(m):
        beats[i, i] = True
        beats[i, [(i + 1 + j) % m for j in range(int(b[i]))]] = True
    (hits, chance) = kway_hit_rates(beats, torch.arange(m), [k], draws=4000, seed=3)["top1_4way"]
    expected = torch.tensor([comb(m - 1 - int(x), k - 1) / comb(m - 1, k - 1) for x in b])
    assert chance == 0.25 and torch.allclose(hits, expected, atol=0.03)
    again = kway_hit_rates(beats, torch.arange(m), [k], draws=4000, seed=3)["top1_4way"][0]
    other = kway_hit_rates(beats, torch.arange(m), [k], draws=4000, seed=4)["top1_4way"][0]
    assert torch.equal(hits, again) and not torch.equal(hits, other)


def test_kway_settings_are_checked():
    for bad in ([1, 4], "2", [2.5]):
        with pytest.raises(EegbenchError, match="kway must be"):
            RetrievalTask(kway=bad)
    with pytest.raises(EegbenchError, match="kway_draws"):
        RetrievalTask(kway_draws=0)
    assert "top1_2way" not in RetrievalTask(kway=[]).evaluate(*_noisy(10, 1, 1.0))[0].metrics


def test_kway_on_the_twin_with_its_oracle_latents(twin_env):
    """A real cell on the synthetic twin, aligned to its oracle latents: the stored k-way curve falls with k
    and its k = n_way point is the cell's top-1."""
    from eegbench.runner import run_spec

    df = run_spec(
        QUICK, [*INTRA, 'task={name="retrieval", params={kway=[2, 4, 6]}}'], results_dir=twin_env / "res", quiet=True
    )
    assert not df.attrs["failed"]
    value = df.set_index("metric")["value"]
    assert df["context"].iloc[0]["n_way"] == 6
    assert value["top1_2way"] >= value["top1_4way"] >= value["top1_6way"] == value["top1"]
    assert df.set_index("metric")["chance"]["top1_4way"] == 0.25


def test_reported_file_accepts_kway_metrics(tmp_path):
    from eegbench.results.leaderboard import load_reported

    entry = (
        '[[reported]]\nmethod = "X"\ncitation = "c"\ndataset = "things-eeg-2"\nprotocol = "intra"\n'
        'stage = "pretrain"\nn_way = 200\n'
    )
    path = tmp_path / "reported.toml"
    path.write_text(entry + "top1_2way = 0.9\ntop5_10way = 0.95\n")
    (row,) = load_reported(path)
    assert row["top1_2way"] == 0.9
    path.write_text(entry + "top1_4way = 71.2\n")  # a percentage, not a fraction
    with pytest.raises(EegbenchError, match=re.escape("top1_4way = 71.2 must be a fraction")):
        load_reported(path)


# --- the seen-concept split (test_split = "train-heldout") -----------------------------------------------------
def _twin(twin_env):
    from eegbench.execution.engine import build_dataset
    from eegbench.planning.plan import build_plan

    cell = build_plan(QUICK, [*INTRA, 'dataset.test_split="train-heldout"', "dataset.heldout_fraction=0.3"]).cells[0]
    return cell, build_dataset(cell.config)


def test_heldout_split_shares_no_image_with_training_or_validation(twin_env):
    """The engine's steps on the twin's real training split: held-out images (per concept, seeded) are gone
    from training and validation for every subject, and the test trials are exactly theirs."""
    from eegbench.execution.engine import load_subjects, prep_options
    from eegbench.execution.splits import heldout_image_rows, image_subset, labelled_split, only_images, without_images

    cell, dataset = _twin(twin_env)
    prep = cell.recipe.preparation
    assert prep.test_split == "train-heldout" and prep.heldout_fraction == 0.3 and prep.heldout_seed == 0
    dataset.ensure_available([1, 2, 3, 4])
    train_all = load_subjects(dataset, [1, 2, 3, 4], "train", prep_options(prep, "train", 0))
    held = heldout_image_rows(train_all.images, 0.3, 0)
    assert np.array_equal(held, heldout_image_rows(train_all.images, 0.3, 0))  # the stored seed draws them again
    assert not np.array_equal(held, heldout_image_rows(train_all.images, 0.3, 1))
    concepts = np.asarray(train_all.images.concepts)
    assert set(concepts[held]) == set(concepts)  # every concept tested, and each keeps training images
    train, val = labelled_split(without_images(train_all, held), 1.0, 0.2, 0, by="image")
    ids = lambda data: {data.images.ids[i] for i in np.unique(data.image_index)}
    test_set = image_subset(train_all.images, held, "train-heldout")
    test = only_images(load_subjects(dataset, [2], "train", prep_options(prep, "test", 0)), held, test_set)
    assert ids(train) and ids(val) and not (ids(train) | ids(val)) & set(test_set.ids)
    assert ids(test) == set(test_set.ids) and set(test.subject) == {2}
    seen = np.unique(np.concatenate([train.image_index, val.image_index]))
    assert set(concepts[seen]) == set(concepts)  # each tested concept keeps labelled (training or validation) images


def test_heldout_rows_are_never_ranked_with_unseen_concept_rows(twin_env):
    from eegbench.runner import run_spec

    seen = run_spec(QUICK, [*INTRA, 'dataset.test_split="train-heldout"'], results_dir=twin_env / "res", quiet=True)
    unseen = run_spec(QUICK, INTRA, results_dir=twin_env / "res", quiet=True)
    ctx = seen["context"].iloc[0]
    assert ctx["test_split"] == "train-heldout" and ctx["heldout_fraction"] == 0.1 and ctx["heldout_seed"] == 0
    assert ctx["n_way"] == 12  # one held-out image per training concept of the tiny twin
    assert set(seen["context_key"]).isdisjoint(set(unseen["context_key"]))


# --- classification --------------------------------------------------------------------------------------------
def test_classification_needs_the_seen_concept_split():
    from eegbench.planning.plan import build_plan

    with pytest.raises(EegbenchError, match=r'\[task\] .classification. .*test_split = "train-heldout"'):
        build_plan(QUICK, [*INTRA, 'task={name="classification"}'])
    with pytest.raises(EegbenchError, match=r"\[finetune.task\] .classification."):
        build_plan(QUICK, [SINGLE, ONE_SEED, TINY_TWIN, 'finetune.task={name="classification"}'])


def test_a_classification_finetune_stage_stores_rows_beside_retrieval(twin_env, capsys):
    """LOSO pretrain (retrieval) + finetune named classification, on the seen-concept split; the leaderboard
    shows each task's metric."""
    import json

    from eegbench.cli import main
    from eegbench.runner import run_spec

    df = run_spec(
        QUICK,
        [
            SINGLE,
            ONE_SEED,
            TINY_TWIN,
            "train.epochs=2",
            "finetune.epochs=1",
            "finetune.training_ratios=[1.0]",
            "protocol.folds=[4]",
            'dataset.test_split="train-heldout"',
            'finetune.task={name="classification", params={epochs=20}}',
        ],
        results_dir=twin_env / "res",
        quiet=True,
    )
    assert not df.attrs["failed"]
    by_stage = df.groupby("stage")["metric"].apply(set)
    assert {"class_top1", "class_top5"} == by_stage["finetune"] and "top1" in by_stage["pretrain"]
    cls = df[df.metric == "class_top1"].iloc[0]
    assert cls["task"] == "classification" and cls["chance"] == pytest.approx(1 / 12)
    assert 0.0 <= cls["value"] <= 1.0 and cls["context"]["test_split"] == "train-heldout"
    for metric in ("class_top1", "top1"):
        assert (
            main(["leaderboard", str(twin_env / "res"), "--metric", metric, "--format", "json", "--no-reported"]) == 0
        )
        board = json.loads(capsys.readouterr().out)
        stages = {r["stage"] for c in board["contexts"] for r in c["rows"]}
        assert stages == ({"finetune"} if metric == "class_top1" else {"pretrain"})


def test_probe_learns_separable_concepts_and_selects_on_validation():
    from eegbench.interfaces import ImageSet
    from eegbench_plugins.classification import ClassificationTask

    rng = np.random.default_rng(0)
    concepts = tuple(f"{c:05d}_c{c}" for c in range(10) for _ in range(4))
    images = ImageSet("train", tuple(map(str, range(40))), tuple(map(str, range(40))), concepts)
    centres = rng.standard_normal((10, 16)) * 3
    rows = np.arange(40).repeat(3)
    emb = torch.as_tensor(centres[rows // 4] + rng.standard_normal((len(rows), 16)), dtype=torch.float32)
    held = np.arange(0, 40, 4)
    test_set = ImageSet(
        "train-heldout",
        tuple(images.ids[i] for i in held),
        tuple(images.files[i] for i in held),
        tuple(concepts[i] for i in held),
    )
    task = ClassificationTask(epochs=60, lr=0.05)
    task.setup(train_images=images, test_images=test_set, image_encoder=None)
    train = ~np.isin(rows, held)
    task.fit(emb[train], torch.as_tensor(rows[train]), emb[train][:20], torch.as_tensor(rows[train][:20]))
    test_rows = np.isin(rows, held)
    position = {r: i for i, r in enumerate(held)}
    (score,) = task.evaluate(
        emb[test_rows],
        None,
        torch.tensor([position[r] for r in rows[test_rows]]),
        torch.ones(int(test_rows.sum()), dtype=torch.long),
    )
    assert (
        score.metrics["class_top1"] > 0.8
        and score.chance["class_top1"] == 0.1
        and 1 <= score.extra["probe_epoch"] <= 60
    )


class _ToyEncoder(torch.nn.Module):
    """The engine's encoder contract (``model(x, subject)`` -> ``[B, d]``) with dropout, for the finetune mode."""

    def __init__(self, n_in: int, dim: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.1), torch.nn.Linear(n_in, dim))

    def forward(self, x, subject=None):
        return self.net(x)


def _finetune_problem(seed: int = 0):
    """10 concepts x 4 images x 3 trials of [4, 8] EEG around a concept centre; every 4th image held out."""
    from eegbench.execution.engine import DeviceSplit
    from eegbench.interfaces import ImageSet

    rng = np.random.default_rng(seed)
    concepts = tuple(f"{c:05d}_c{c}" for c in range(10) for _ in range(4))
    images = ImageSet("train", tuple(map(str, range(40))), tuple(map(str, range(40))), concepts)
    held = np.arange(0, 40, 4)
    test_set = ImageSet(
        "train-heldout",
        tuple(images.ids[i] for i in held),
        tuple(images.files[i] for i in held),
        tuple(concepts[i] for i in held),
    )
    rows = np.arange(40).repeat(3)
    eeg = rng.standard_normal((10, 4, 8))[rows // 4] * 2 + rng.standard_normal((len(rows), 4, 8))
    split = lambda m: DeviceSplit(
        torch.as_tensor(eeg[m], dtype=torch.float32),
        torch.as_tensor(rows[m]),
        torch.ones(int(m.sum()), dtype=torch.long),
    )
    labelled = ~np.isin(rows, held)
    val_mask = labelled & (np.arange(len(rows)) % 3 == 0)
    test = split(np.isin(rows, held))
    position = {r: i for i, r in enumerate(held)}
    test_index = torch.tensor([position[r] for r in rows[np.isin(rows, held)]])
    return images, test_set, split(labelled & ~val_mask), split(val_mask), test, test_index


def test_finetune_mode_trains_a_copy_with_its_head_and_selects_on_validation():
    from eegbench.execution.engine import DeviceSplit, embed_eeg
    from eegbench_plugins.classification import ClassificationTask

    images, test_set, train, val, test, test_index = _finetune_problem()
    model = _ToyEncoder(32)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def run(val_split, **params):
        task = ClassificationTask(mode="finetune", lr=0.05, finetune_lr=0.01, batch_size=16, **params)
        assert task.needs_encoder
        task.setup(train_images=images, test_images=test_set, image_encoder=None)
        tuned = task.fit_encoder(model, train, val_split)
        (score,) = task.evaluate(embed_eeg(tuned, test), None, test_index, test.subject)
        return task, tuned, score

    task, tuned, score = run(val, finetune_epochs=40, patience=40)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the engine's model is untouched
    assert tuned is not model and not torch.equal(tuned.net[2].weight, model.net[2].weight)
    assert score.metrics["class_top1"] > 0.8 and score.chance["class_top1"] == 0.1
    assert 1 <= score.extra["finetune_epoch"] <= 40 and "probe_epoch" not in score.extra
    # selection reads validation only: the same run with the validation labels scrambled keeps another epoch, and
    # stops early (patience) once its loss stops falling; without validation the last epoch is kept
    scrambled = DeviceSplit(
        val.x, val.image_index[torch.randperm(len(val), generator=torch.Generator().manual_seed(1))], val.subject
    )
    bad, _, _ = run(scrambled, finetune_epochs=40, patience=2)
    assert bad.selected_epoch < task.selected_epoch
    none, _, _ = run(None, finetune_epochs=7)
    assert none.selected_epoch == 7
    with pytest.raises(EegbenchError, match="mode must be one of 'probe', 'finetune'"):
        ClassificationTask(mode="tune")
    with pytest.raises(EegbenchError, match="fit_encoder, not fit"):
        task.fit(torch.zeros(2, 8), torch.zeros(2), None, None)


def test_probe_and_finetune_modes_are_different_recipes(twin_env):
    from eegbench.planning.plan import build_plan

    base = [*INTRA, 'dataset.test_split="train-heldout"']
    keys = {
        mode: {
            c.recipe.recipe_key
            for c in build_plan(QUICK, [*base, f'task={{name="classification", params={{mode="{mode}"}}}}']).cells
        }
        for mode in ("probe", "finetune")
    }
    assert keys["probe"] and keys["finetune"] and keys["probe"].isdisjoint(keys["finetune"])
    with pytest.raises(EegbenchError, match="mode"):
        build_plan(QUICK, [*base, 'task={name="classification", params={mode="linear"}}'])


def test_a_classification_finetune_mode_run_stores_rows_above_chance(twin_env):
    """``eegbench run`` with the task in finetune mode on the seen-concept split of the twin: rows stored with the
    mode in their task parameters, above chance, and the cell's checkpoint is the contrastively selected encoder
    (the same as the probe-mode cell's of the same recipe)."""
    from eegbench.execution.engine import load_encoder
    from eegbench.runner import run_spec

    # the tiny twin has one training image per concept here: too few trials to learn concepts from
    twin = (
        "dataset.params={noise=1.0, subjects=4, train_concepts=12, images_per_concept=6, test_images=6, "
        "test_repetitions=4}"
    )
    base = [*INTRA, twin, "train.epochs=4", 'dataset.test_split="train-heldout"', "dataset.heldout_fraction=0.3"]
    rows = {}
    for mode in ("probe", "finetune"):
        df = run_spec(
            QUICK,
            [
                *base,
                f'task={{name="classification", params={{mode="{mode}", epochs=30, '
                f"finetune_epochs=30, batch_size=16, lr=0.01, finetune_lr=0.001}}}}",
            ],
            results_dir=twin_env / "res",
            quiet=True,
        )
        assert not df.attrs["failed"]
        rows[mode] = df[df.metric == "class_top1"].iloc[0]
    ft = rows["finetune"]
    assert ft["task_params"]["mode"] == "finetune" and rows["probe"]["task_params"]["mode"] == "probe"
    assert ft["recipe_key"] != rows["probe"]["recipe_key"]
    assert ft["value"] > 3 * ft["chance"] and ft["value"] != rows["probe"]["value"]
    models = [load_encoder(twin_env / "res" / "checkpoints" / f"{rows[m]['cell_key']}.pt")[0] for m in rows]
    a, b = (m.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the finetune mode tuned a copy, not the cell's encoder


# --- EEG -> concept text ---------------------------------------------------------------------------------------
def test_concept_text_refuses_an_encoder_without_a_text_tower(twin_env):
    import sqlite3

    from eegbench.runner import run_spec

    df = run_spec(QUICK, [*INTRA, 'task={name="concept-text"}'], results_dir=twin_env / "res", quiet=True)
    assert len(df.attrs["failed"]) == 1 and len(df) == 0
    with sqlite3.connect(twin_env / "res" / "results.sqlite") as con:
        ((status, error, epochs),) = con.execute(
            "SELECT status, error, (SELECT count(*) FROM results) FROM cells"
        ).fetchall()
    assert status == "failed" and "has no text tower (encode_text)" in error and "\n" not in error and epochs == 0


class _TextTower:
    """An encoder stand-in with a text tower: each prompt's embedding is a fixed random vector of its text."""

    fingerprint = "text-tower"

    def __init__(self, output="embedding"):
        self.output = output
        self.prompts = []

    def encode_text(self, prompts, *, device=None):
        self.prompts += list(prompts)
        return np.stack([np.random.default_rng(sum(map(ord, p))).standard_normal(8) for p in prompts]).astype(
            np.float32
        )


def test_concept_text_ranks_concepts_by_their_prompt_embeddings():
    from eegbench.interfaces import ImageSet
    from eegbench_plugins.concept_text import ConceptTextTask

    concepts = ("00001_aircraft_carrier", "00002_bee", "00003_cake", "00003_cake")
    test_set = ImageSet("test", ("a", "b", "c", "d"), ("a", "b", "c", "d"), concepts)
    tower = _TextTower()
    task = ConceptTextTask(topk=[1, 2])
    task.setup(train_images=test_set, test_images=test_set, image_encoder=tower)
    assert tower.prompts == ["a photo of a aircraft carrier", "a photo of a bee", "a photo of a cake"]
    text = torch.as_tensor(tower.encode_text(tower.prompts[:3]))
    idx = torch.tensor([0, 1, 2, 3])
    (s,) = task.evaluate(text[[0, 1, 2, 2]] * 2.0, None, idx, torch.zeros(4, dtype=torch.long))
    assert s.metrics == {"text_top1": 1.0, "text_top2": 1.0} and s.n_way == 3 and s.chance["text_top1"] == 1 / 3
    (s,) = task.evaluate(text[[1, 2, 0, 0]], None, idx, torch.zeros(4, dtype=torch.long))
    assert s.metrics["text_top1"] == 0.0
    with pytest.raises(EegbenchError, match=r"output = 'cls'.*output = \"embedding\""):
        ConceptTextTask().setup(train_images=test_set, test_images=test_set, image_encoder=_TextTower("cls"))
    with pytest.raises(EegbenchError, match=re.escape("no {concept} placeholder")):
        ConceptTextTask(prompt="a photo")


@pytest.mark.slow
def test_concept_text_runs_through_an_open_clip_text_tower(twin_env):
    """A real cell with a (randomly initialised, offline) open_clip ViT-B-32: its text tower embeds the twin's
    test concepts and the rows are stored with concept-text metrics."""
    from eegbench.runner import run_spec

    df = run_spec(
        QUICK,
        [*INTRA, 'task={name="concept-text"}', 'image_encoder={name="clip-vit-b-32", params={weights="none"}}'],
        results_dir=twin_env / "res",
        quiet=True,
    )
    assert not df.attrs["failed"] and set(df.metric) == {"text_top1", "text_top5"}
    assert df.set_index("metric")["chance"]["text_top1"] == pytest.approx(1 / 6)
