"""The training engine: learns, is deterministic on CPU, never looks at the test set before training ends,
refuses validation images that are test images, and writes checkpoints that rebuild the encoder."""

from __future__ import annotations

import math
from itertools import pairwise

import eegbench_fakes as fakes
import numpy as np
import pytest
import torch

from eegbench.errors import EegbenchError
from eegbench.execution.engine import EpochSchedule, load_encoder, run_cell
from eegbench.planning.plan import build_plan


@pytest.fixture
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)
    return tmp_path


def _cell(**changes):
    plan = build_plan(fakes.spec_dict(**changes))
    return plan.cells[0]


def test_learns_well_above_chance(env):
    cell = _cell(**{"train.epochs": 15})
    res = run_cell(cell, results_dir=env / "res", device="cpu")
    (score,) = res.scores
    assert score.subject == 3 and score.n_way == 16
    assert score.metrics["top1"] >= 4 * score.chance["top1"], score.metrics
    assert res.context["selection"] == "best-val" and 1 <= res.best_epoch <= res.epochs_run == 15
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_same_seed_same_metrics_and_other_seed_differs(env):
    a = run_cell(_cell(), results_dir=env / "a", device="cpu")
    b = run_cell(_cell(), results_dir=env / "b", device="cpu")
    assert [s.metrics for s in a.scores] == [s.metrics for s in b.scores]
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    c = run_cell(_cell(seeds=[5]), results_dir=env / "c", device="cpu")
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


def test_test_split_is_loaded_only_after_training_ends(env):
    events = fakes.FakeDataset.events
    run_cell(_cell(), results_dir=env / "r", device="cpu", progress=lambda rec: events.append(("epoch", rec["epoch"])))
    epochs = [i for i, e in enumerate(events) if e[0] == "epoch"]
    tests = [i for i, e in enumerate(events) if e[0] == "load" and e[2] == "test"]
    trains = [i for i, e in enumerate(events) if e[0] == "load" and e[2] == "train"]
    assert len(epochs) == 6 and len(tests) == 1
    assert max(trains) < min(epochs) and min(tests) > max(epochs)
    assert {e[1] for e in events if e[0] == "load" and e[2] == "train"} == {1, 2}  # LOSO: subject 3 never trains


def test_validation_overlapping_test_images_is_refused(env):
    with pytest.raises(EegbenchError, match=r"validation would use .* test image"):
        run_cell(_cell(**{"dataset.params.leak": True}), results_dir=env / "r", device="cpu")
    assert not any(e[2] == "test" for e in fakes.FakeDataset.events if e[0] == "load")


def test_early_stopping_and_last_selection(env):
    res = run_cell(
        _cell(**{"train.epochs": 40, "train.patience": 2, "train.lr": 0.5, "train.schedule": "constant"}),
        results_dir=env / "r",
        device="cpu",
    )
    assert res.epochs_run < 40 and res.best_epoch <= res.epochs_run
    last = run_cell(
        _cell(**{"validation.selection": "last", "validation.fraction": 0.0}), results_dir=env / "l", device="cpu"
    )
    assert last.best_epoch == last.epochs_run == 6 and last.context["val_fraction"] == 0.0


def test_checkpoint_rebuilds_the_selected_encoder(env):
    cell = _cell()
    res = run_cell(cell, results_dir=env / "r", device="cpu")
    model, meta = load_encoder(res.checkpoint)
    assert meta["cell_key"] == cell.key and meta["config"]["stage"] == "pretrain"
    assert meta["ch_names"] == ["C0", "C1", "C2", "C3"] and meta["standardizer"]
    x = torch.randn(5, 4, 16)
    assert model(x).shape == (5, fakes.DIM)
    payload = torch.load(res.checkpoint, weights_only=True)  # safe loading only
    assert torch.equal(payload["state_dict"]["head.weight"], model.head.weight.detach())


def test_finetune_starts_from_pretrain_checkpoint(env):
    plan = build_plan(fakes.spec_dict(**{"finetune": {"training_ratios": [0.5], "epochs": 3, "lr": 1e-3}}))
    pre, ft = plan.cells
    assert ft.depends_on == (pre.key,) and ft.train_subjects == (3,)
    with pytest.raises(EegbenchError, match=r"checkpoint .* not found"):
        run_cell(ft, results_dir=env / "r", device="cpu")
    run_cell(pre, results_dir=env / "r", device="cpu")
    fakes.FakeDataset.events.clear()
    res = run_cell(ft, results_dir=env / "r", device="cpu")
    assert res.epochs_run == 3
    assert {e[1] for e in fakes.FakeDataset.events if e[0] == "load"} == {3}


def _schedule_lrs(epochs, val_losses=None, **settings):
    import torch

    from eegbench.planning.recipe import Training

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings["lr"])
    schedule = EpochSchedule(opt, Training(epochs=epochs, **settings))
    lrs = []
    for epoch in range(epochs):
        lrs.append(schedule.lr)
        opt.step()  # torch expects an optimiser step before each scheduler step
        schedule.end_epoch(epoch, None if val_losses is None else val_losses[epoch])
    return lrs


def test_schedule_warmup_then_cosine():
    cfg = {"lr": 1.0, "min_lr": 0.0, "warmup_epochs": 2, "schedule": "cosine"}
    lrs = _schedule_lrs(10, **cfg)
    assert lrs[0] == 0.0 and lrs[1] == 0.5 and lrs[2] == 1.0
    assert all(a >= b for a, b in pairwise(lrs[2:])) and lrs[-1] > 0
    assert math.isclose(_schedule_lrs(10, [1.0] * 10, **{**cfg, "schedule": "plateau"})[5], 1.0)


def test_plateau_reduces_lr_on_validation(env):
    res = run_cell(
        _cell(
            **{
                "train.epochs": 12,
                "train.schedule": "plateau",
                "train.plateau_patience": 0,
                "train.lr": 3.0,
                "train.warmup_epochs": 0,
            }
        ),
        results_dir=env / "r",
        device="cpu",
    )
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] == pytest.approx(3.0) and min(lrs) < 3.0
    vals = [h["val_loss"] for h in res.history]
    first_cut = next(i for i, lr in enumerate(lrs) if lr < 3.0)  # history records the lr each epoch used
    assert vals[first_cut - 1] >= min(vals[: first_cut - 1])  # cut only after a non-improving epoch


def test_retrieval_task_counts_ties_against_and_groups_subjects():
    from eegbench_plugins.retrieval import RetrievalTask

    img = torch.eye(4)
    eeg = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    idx = torch.tensor([0, 1, 2, 3])
    subj = torch.tensor([1, 1, 2, 2])
    s1, s2 = RetrievalTask().evaluate(eeg, img, idx, subj)
    assert s1.subject == 1 and s1.metrics["top1"] == 1.0 and s1.n_way == 4 and s1.chance["top1"] == 0.25
    # subject 2: one miss (rank 3 of 4... true image 2 is orthogonal), one 4-way tie (counts as rank 3)
    assert s2.metrics["top1"] == 0.0 and s2.metrics["top3"] == 0.0 and s2.metrics["top5"] == 1.0
    assert s2.chance["top5"] == 1.0 and np.isclose(s2.chance["top3"], 0.75)


class _ProjectingBackbone(torch.nn.Module):
    """A backbone that ends with its own projection (like the paper models), width ``dim``."""

    def __init__(self, dim: int, includes_projection: bool = True):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 16, dim))
        self.n_features = dim
        self.includes_projection = includes_projection

    def forward(self, x):
        return self.net(x)


def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_backbone_with_its_projection_at_the_image_width_gets_no_head():
    from eegbench.execution.engine import EEGEncoder

    backbone = _ProjectingBackbone(fakes.DIM)
    model = EEGEncoder(backbone, fakes.DIM)
    assert model.head_kind == "identity"
    assert _n_params(model) == _n_params(backbone)  # exactly the backbone: no extra layer
    assert not any(k.startswith("head.") for k in model.state_dict())
    x = torch.randn(3, 4, 16)
    assert torch.equal(model(x), backbone(x))


def test_mismatched_width_or_no_projection_gets_the_linear_head():
    from eegbench.execution.engine import EEGEncoder

    for backbone, image_dim in (
        (_ProjectingBackbone(6), fakes.DIM),
        (_ProjectingBackbone(fakes.DIM, False), fakes.DIM),
    ):
        model = EEGEncoder(backbone, image_dim)
        assert model.head_kind == "linear"
        assert isinstance(model.head, torch.nn.Linear)
        assert (model.head.in_features, model.head.out_features) == (backbone.n_features, image_dim)
        assert _n_params(model) == _n_params(backbone) + backbone.n_features * image_dim + image_dim
    # an explicit kind rebuilds a stored model; an identity head of the wrong width is refused in one line
    assert EEGEncoder(_ProjectingBackbone(fakes.DIM), fakes.DIM, head="linear").head_kind == "linear"
    with pytest.raises(EegbenchError, match=r"n_features .*6.* image-embedding dimension .*8"):
        EEGEncoder(_ProjectingBackbone(6), fakes.DIM, head="identity")


def test_resnet1d_whole_encoder_count_with_768d_target():
    from eegbench.execution.engine import build_encoder

    model = build_encoder(
        {"name": "resnet1d", "params": {}},
        n_chans=17,
        n_times=128,
        sfreq=100.0,
        ch_names=None,
        image_dim=768,
        subjects=None,
    )
    assert model.head_kind == "linear"
    assert _n_params(model) == 10_857_952


def test_paper_model_without_head_trains_checkpoints_and_rebuilds_identically(env):
    from eegbench.runner import result_rows

    # ubp-mlp ends with its projection; at the image width (8) the trained model is the backbone alone
    cell = _cell(**{"backbone": {"name": "ubp-mlp", "params": {"proj_dim": fakes.DIM}}, "train.epochs": 2})
    res = run_cell(cell, results_dir=env / "r", device="cpu")
    assert res.head == "identity" and "head" not in res.context
    rows = result_rows(cell, res)
    assert rows and all(r["config"]["head"] == "identity" for r in rows)
    assert "head" not in cell.config  # the planned config (and so the cell key) is untouched
    model, meta = load_encoder(res.checkpoint)
    assert meta["head"] == "identity" and model.head_kind == "identity"
    payload = torch.load(res.checkpoint, weights_only=True)
    assert payload["head"] == "identity" and not any(k.startswith("head.") for k in payload["state_dict"])
    assert _n_params(model) == _n_params(model.backbone)
    model.eval()
    x = torch.randn(5, 4, 16)
    again, _ = load_encoder(res.checkpoint)
    again.eval()
    assert torch.equal(model(x), again(x))
    # a different width keeps the Linear head, also through the checkpoint
    wide = _cell(**{"backbone": {"name": "ubp-mlp", "params": {"proj_dim": 6}}, "train.epochs": 1})
    res_w = run_cell(wide, results_dir=env / "w", device="cpu")
    model_w, meta_w = load_encoder(res_w.checkpoint)
    assert res_w.head == meta_w["head"] == model_w.head_kind == "linear"
    assert result_rows(wide, res_w)[0]["config"]["head"] == "linear"


def test_checkpoint_without_stored_head_kind_loads_with_the_linear_head(env):
    """Checkpoints written before the head kind was stored always had the Linear head."""
    res = run_cell(_cell(**{"train.epochs": 1}), results_dir=env / "r", device="cpu")
    payload = torch.load(res.checkpoint, weights_only=True)
    del payload["head"]
    torch.save(payload, res.checkpoint)
    model, meta = load_encoder(res.checkpoint)
    assert meta["head"] == "linear" and isinstance(model.head, torch.nn.Linear)


@pytest.mark.parametrize("drop_last, per_epoch", [(True, 8), (False, 10)])
def test_drop_last_keeps_or_drops_the_last_partial_batch(drop_last, per_epoch):
    """[train] drop_last: 10 trials in batches of 4 train on 2 full batches (8 trials) per epoch when true,
    on 3 batches (every trial, the last of 2) when false; the weights after one epoch differ accordingly."""
    from torch import nn

    from eegbench import create
    from eegbench.execution.engine import EEGEncoder, _batches, fit, to_device
    from eegbench.planning.spec import TrainSpec

    assert _batches(10, 4, drop_last=drop_last) == [(0, 4), (4, 8)] + ([] if drop_last else [(8, 10)])
    assert _batches(3, 4, drop_last=drop_last) == [(0, 3)]  # a split smaller than a batch is one batch

    def trained(drop: bool):
        torch.manual_seed(0)
        backbone = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5, 6))
        backbone.n_features = 6
        model = EEGEncoder(backbone, 3)
        rng = np.random.default_rng(0)
        data = to_device(
            rng.standard_normal((10, 2, 5)).astype(np.float32),
            np.arange(10),
            np.ones(10, np.int64),
            torch.device("cpu"),
        )
        emb = torch.as_tensor(rng.standard_normal((10, 3)).astype(np.float32))
        cfg = TrainSpec(epochs=3, batch_size=4, drop_last=drop, amp="off").model_dump()
        return fit(model, create("loss", "clip"), data, None, emb, cfg, seed=1, selection="last")

    result = trained(drop_last)
    assert result.samples_seen == 3 * per_epoch
    other = trained(not drop_last)
    assert any(not torch.equal(result.state[k], other.state[k]) for k in result.state)


def test_the_dataset_gets_cache_root_at_creation(env, monkeypatch):
    from eegbench.execution.engine import build_dataset

    cell = _cell()  # planning builds the dataset too
    seen = []
    original = fakes.FakeDataset.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("cache_root"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(fakes.FakeDataset, "__init__", spy)
    assert build_dataset(cell, cache_dir=env / "c").cache_root == env / "c" and seen == [env / "c"]
    assert build_dataset(cell).cache_root is None and seen[-1] is None  # no --cache: the factory's default


def test_the_fast_path_fuses_the_optimiser_step_and_autotunes_cudnn_on_cuda_only():
    import torch

    from eegbench.execution.engine import fast_path

    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert fast_path(torch.device("cpu")) == {"fused": True}
        assert torch.backends.cudnn.benchmark is False  # the CPU touches no cuDNN setting
        assert fast_path(torch.device("cuda")) == {"fused": True}  # what fit passes to Adam/AdamW there
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before
    # the fused CPU step is AdamW's update (to rounding), not another optimiser
    torch.manual_seed(0)
    start, grads = torch.randn(3, 5, dtype=torch.float64), [torch.randn(3, 5, dtype=torch.float64) for _ in range(4)]
    ends = []
    for extra in ({}, fast_path(torch.device("cpu"))):
        p = torch.nn.Parameter(start.clone())
        opt = torch.optim.AdamW([p], lr=1e-2, weight_decay=0.05, **extra)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        ends.append(p.detach())
    assert not torch.equal(ends[1], start)
    torch.testing.assert_close(ends[1], ends[0], rtol=0, atol=1e-12)
