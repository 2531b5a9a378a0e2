"""Training throughput: eegbench's device-resident fit vs a seed-style Dataset/DataLoader loop (pytest-benchmark).

Figures go to docs/performance.md ("Training throughput"); nothing here asserts a time. With benchmarks
disabled (the default) every benchmark runs once as a correctness check; the last two tests check the
claims behind the fast path: one host read per epoch (the seed loop reads one per step) and both loops
learn the same toy relation.
Run: ``OMP_NUM_THREADS=1 pytest tests/test_training_bench.py --benchmark-enable -p no:randomly``.

What is compared, per round (one epoch, fresh model with the same seed):

* ``eegbench``: ``to_device`` of the prepared split (128 samples, interpolated once beforehand, as the cached
  preparation does) and ``fit`` for one epoch: on-device ``randperm``, batches gathered by index;
* ``seed-style``: a ``torch.utils.data.Dataset`` that per sample converts one raw 100-sample numpy trial,
  interpolates it to 128 samples with ``scipy.interpolate.interp1d`` and looks up its image embedding, a
  ``DataLoader`` (shuffle, same batch size, full batches, no workers) and the same model, loss and AdamW
  step, logging ``loss.item()`` every step.

The ``input pipeline`` pair times only the delivery of the epoch's batches (no model), which is the part the
fast path removes; the full-step pair shows how much of that survives when a CPU model step dominates.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d

from eegbench import create
from eegbench.execution.engine import EEGEncoder, build_encoder, fit, to_device

pytestmark = pytest.mark.benchmark

N_TRIALS, N_CHANS, RAW_TIMES, N_TIMES, DIM, N_IMAGES = 4000, 17, 100, 128, 768, 200
BATCH = 512  # the spec's default train.batch_size
# the real resnet1d, narrower so that a CPU round takes seconds (the seed's 64..320 filters: ~20x slower per step)
BACKBONE = {"name": "resnet1d", "params": {"filters": [8, 16, 16, 32, 32]}}
CFG = {
    "epochs": 1,
    "batch_size": BATCH,
    "lr": 1e-3,
    "min_lr": 1e-3,
    "weight_decay": 0.1,
    "optimizer": "adamw",
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "warmup_epochs": 0,
    "schedule": "constant",
    "plateau_factor": 0.1,
    "plateau_patience": 10,
    "patience": 0,
    "amp": "off",
    "grad_clip": 0.0,
    "compile": False,
}
SAMPLES_PER_EPOCH = (N_TRIALS // BATCH) * BATCH
DEVICE = torch.device("cpu")
RATES: dict[str, float] = {}  # samples/s by path, so the seed-style test can report the ratio


def _interp_to(x: np.ndarray, n_times: int) -> np.ndarray:
    """The seed's resampling: linear interp1d over the last axis onto ``n_times`` evenly spaced points."""
    return interp1d(np.arange(x.shape[-1]), x, axis=-1)(np.linspace(0, x.shape[-1] - 1, n_times)).astype(np.float32)


def _toy(n_trials: int = N_TRIALS, seed: int = 0) -> dict[str, np.ndarray]:
    """A learnable relation: each trial is a fixed random projection of its image's embedding, plus noise."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((N_IMAGES, DIM)).astype(np.float32)
    image_index = np.arange(n_trials) % N_IMAGES
    mix = rng.standard_normal((DIM, N_CHANS * RAW_TIMES)).astype(np.float32) / math.sqrt(DIM)
    raw = (emb[image_index] @ mix).reshape(n_trials, N_CHANS, RAW_TIMES)
    raw = raw + 0.5 * rng.standard_normal(raw.shape).astype(np.float32)
    return {
        "raw": raw,
        "prepared": _interp_to(raw, N_TIMES),
        "emb": emb,
        "image_index": image_index,
        "subject": np.ones(n_trials, dtype=np.int64),
    }


@pytest.fixture(scope="module")
def toy():
    return _toy()


def _model() -> tuple[EEGEncoder, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_encoder(
        BACKBONE, n_chans=N_CHANS, n_times=N_TIMES, sfreq=128.0, ch_names=None, image_dim=DIM, subjects=None
    )
    return model, create("loss", "clip")


class SeedStyleTrials(torch.utils.data.Dataset):
    """The seed's shape: raw trials in memory; conversion, interpolation and embedding lookup per sample."""

    def __init__(self, raw: np.ndarray, image_index: np.ndarray, emb: np.ndarray):
        self.raw, self.image_index, self.emb = raw, image_index, emb

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i):
        x = torch.from_numpy(_interp_to(self.raw[i], N_TIMES))
        return x, torch.from_numpy(self.emb[self.image_index[i]])


def _seed_loader(data, batch_size: int = BATCH, seed: int = 0) -> torch.utils.data.DataLoader:
    ds = SeedStyleTrials(data["raw"], data["image_index"], data["emb"])
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )


def _seed_epochs(model, loss_fn, loader, epochs: int = 1, lr: float = CFG["lr"]) -> list[float]:
    """The seed's loop: the same AdamW step as ``fit``; the running loss is read on the host every step."""
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=CFG["betas"], eps=CFG["eps"], weight_decay=CFG["weight_decay"]
    )
    means = []
    for _ in range(epochs):
        model.train()
        running, steps = 0.0, 0
        for x, img in loader:
            loss = loss_fn(model(x), img)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item()
            steps += 1
        means.append(running / steps)
    return means


def _report(benchmark, path: str, samples: int) -> None:
    """samples/s from the mean round (only when benchmarks ran; disabled runs have no stats)."""
    stats = getattr(benchmark, "stats", None)
    if not stats:
        return
    rate = samples / stats.stats.mean
    RATES[path] = rate
    benchmark.extra_info["samples_per_epoch"] = samples
    benchmark.extra_info["samples_per_second"] = round(rate, 1)
    benchmark.extra_info["torch"] = torch.__version__
    benchmark.extra_info["threads"] = torch.get_num_threads()
    fast = RATES.get(path.replace("seed-style", "eegbench"))
    if path.startswith("seed-style") and fast:
        benchmark.extra_info["eegbench_speedup"] = round(fast / rate, 2)
        print(f"\n{path}: eegbench {fast:.0f} samples/s vs seed-style {rate:.0f} samples/s = {fast / rate:.2f}x")


# --------------------------------------------------------------------------------------------------
# full training step: fit vs the seed-style loop
# --------------------------------------------------------------------------------------------------
@pytest.mark.benchmark(group="training epoch")
def test_eegbench_fit_epoch(benchmark, toy):
    def one_epoch(model, loss_fn):
        train = to_device(toy["prepared"], toy["image_index"], toy["subject"], DEVICE)
        return fit(model, loss_fn, train, None, torch.as_tensor(toy["emb"]), CFG, seed=0, selection="last")

    res = benchmark.pedantic(one_epoch, setup=lambda: (_model(), {}), rounds=5, iterations=1)
    assert res.samples_seen == SAMPLES_PER_EPOCH and res.epochs_run == 1
    assert math.isfinite(res.history[0]["train_loss"])
    _report(benchmark, "eegbench", SAMPLES_PER_EPOCH)


@pytest.mark.benchmark(group="training epoch")
def test_seed_style_loop_epoch(benchmark, toy):
    def one_epoch(model, loss_fn):
        return _seed_epochs(model, loss_fn, _seed_loader(toy))

    (mean_loss,) = benchmark.pedantic(one_epoch, setup=lambda: (_model(), {}), rounds=5, iterations=1)
    assert math.isfinite(mean_loss)
    _report(benchmark, "seed-style", SAMPLES_PER_EPOCH)


# --------------------------------------------------------------------------------------------------
# input pipeline only: delivering one epoch of (eeg, image embedding) batches
# --------------------------------------------------------------------------------------------------
@pytest.mark.benchmark(group="input pipeline (no model)")
def test_eegbench_input_pipeline(benchmark, toy):
    """What ``fit`` does per batch before the forward pass: permutation slice, gathers of x and targets."""
    emb = torch.as_tensor(toy["emb"])

    def one_epoch():
        train = to_device(toy["prepared"], toy["image_index"], toy["subject"], DEVICE)
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        total = torch.zeros(())
        for start in range(0, SAMPLES_PER_EPOCH, BATCH):
            rows = perm[start : start + BATCH]
            total += train.x[rows].sum() + emb[train.image_index[rows]].sum()
        return total, perm[:SAMPLES_PER_EPOCH].numpy()

    total, rows = benchmark(one_epoch)
    expected = (
        toy["prepared"][rows].astype(np.float64).sum() + toy["emb"][toy["image_index"][rows]].astype(np.float64).sum()
    )
    assert abs(float(total) - expected) <= 1e-4 * np.abs(toy["prepared"]).sum()
    _report(benchmark, "eegbench input pipeline", SAMPLES_PER_EPOCH)


@pytest.mark.benchmark(group="input pipeline (no model)")
def test_seed_style_input_pipeline(benchmark, toy):
    def one_epoch():
        n = 0
        for x, img in _seed_loader(toy):
            n += len(x)
            assert x.shape == (BATCH, N_CHANS, N_TIMES) and img.shape == (BATCH, DIM)
        return n

    assert benchmark(one_epoch) == SAMPLES_PER_EPOCH
    _report(benchmark, "seed-style input pipeline", SAMPLES_PER_EPOCH)


# --------------------------------------------------------------------------------------------------
# the claims behind the numbers
# --------------------------------------------------------------------------------------------------
_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")


def _count_host_reads(monkeypatch, callers: tuple[str, ...]) -> dict[str, int]:
    """Count tensor → host reads (``.item()``, ``float(t)``, ``.cpu()``, ...) made from modules in ``callers``.

    Only calls from those modules count: torch's own optimiser reads its CPU step counters with ``.item()``,
    which is not a device synchronisation.
    """
    counts = dict.fromkeys(_READS, 0)
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith(callers):
                counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_fit_reads_the_host_once_per_epoch_and_the_seed_loop_once_per_step(monkeypatch):
    data = _toy(n_trials=1024, seed=1)
    epochs, batch = 2, 128
    steps = epochs * (1024 // batch)
    counts = _count_host_reads(monkeypatch, ("eegbench", "eegbench_plugins"))
    model, loss_fn = _model()
    train = to_device(data["prepared"], data["image_index"], data["subject"], DEVICE)
    fit(
        model,
        loss_fn,
        train,
        None,
        torch.as_tensor(data["emb"]),
        {**CFG, "epochs": epochs, "batch_size": batch},
        seed=0,
        selection="last",
    )
    assert sum(counts.values()) <= 2 * epochs, counts  # fit's train loss: one .item() per epoch
    assert counts["item"] >= 1, counts  # the counter does see eegbench's reads

    seed_counts = _count_host_reads(monkeypatch, (__name__,))
    model, loss_fn = _model()
    _seed_epochs(model, loss_fn, _seed_loader(data, batch_size=batch), epochs=epochs)
    assert seed_counts["item"] == steps, seed_counts


def test_both_loops_learn_the_toy_relation():
    data = _toy(n_trials=1024, seed=2)
    epochs, batch = 3, 128
    cfg = {**CFG, "epochs": epochs, "batch_size": batch, "lr": 3e-3, "min_lr": 3e-3}
    model, loss_fn = _model()
    train = to_device(data["prepared"], data["image_index"], data["subject"], DEVICE)
    fast = [
        h["train_loss"]
        for h in fit(model, loss_fn, train, None, torch.as_tensor(data["emb"]), cfg, seed=0, selection="last").history
    ]
    model, loss_fn = _model()
    seed = _seed_epochs(model, loss_fn, _seed_loader(data, batch_size=batch), epochs=epochs, lr=3e-3)
    chance = math.log(batch)  # InfoNCE of an untrained encoder
    assert fast[-1] < 0.9 * fast[0] and fast[-1] < chance, fast
    assert seed[-1] < 0.9 * seed[0] and seed[-1] < chance, seed
