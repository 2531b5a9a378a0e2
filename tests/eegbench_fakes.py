"""Tiny in-test components for the engine's tests: a numpy dataset whose EEG is a noisy linear mixture of
known image latents, an encoder serving those latents, a small MLP backbone, a CLIP loss and an
in-process executor. Registered through a test-only pluggy plugin object, so engine tests need neither
the real dataset, nor the model zoo, nor the executors.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

import eegbench
from eegbench import hookimpl
from eegbench.components import Component
from eegbench.interfaces import Dataset, EEGData, EEGInfo, Executor, ImageEncoder, ImageSet

DIM = 8
N_CHANS = 4
N_TIMES = 16


def _latents(ids: tuple[str, ...]) -> np.ndarray:
    out = np.empty((len(ids), DIM), dtype=np.float32)
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng(_stable(image_id))
        out[i] = rng.standard_normal(DIM)
    return out


def _stable(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class FakeDataset(Dataset):
    """``n_subjects`` subjects; ``n_train`` training images (2 per concept) and ``n_test`` test images.

    ``events`` records every ``load`` call as ``("load", subject, split)`` (class-level, tests reset it).
    ``leak`` makes the test image set reuse training image ids (a broken dataset the engine must refuse).
    """

    name = "fake-eeg"
    events: ClassVar[list[tuple[str, int, str]]] = []

    def __init__(
        self,
        n_subjects: int = 3,
        n_train: int = 64,
        n_test: int = 16,
        noise: float = 0.5,
        leak: bool = False,
        reps: int = 2,
        cache_root=None,
    ):
        self.cache_root = cache_root  # the context argument the engine passes from --cache
        self.n_subjects, self.n_train, self.n_test, self.noise, self.leak, self.reps = (
            n_subjects,
            n_train,
            n_test,
            noise,
            leak,
            reps,
        )

    @property
    def subjects(self) -> list[int]:
        return list(range(1, self.n_subjects + 1))

    def image_set(self, split):
        if split == "test" and self.leak:  # the broken dataset: its "test" images are training images
            train = self.image_set("train")
            k = self.n_test
            return ImageSet(name="fake/leak", ids=train.ids[:k], files=train.files[:k], concepts=train.concepts[:k])
        n = self.n_train if split == "train" else self.n_test
        prefix = "training_images" if split == "train" else "test_images"
        concepts = tuple(
            f"{(i // 2) + 1:05d}_thing{i // 2}" if split == "train" else f"{i + 1:05d}_test{i}" for i in range(n)
        )
        ids = tuple(f"{prefix}/{c}/{i}.jpg" for i, c in enumerate(concepts))
        return ImageSet(name=f"fake/{split}", ids=ids, files=ids, concepts=concepts, root="")

    def load(self, subject, split, options):
        FakeDataset.events.append(("load", int(subject), split))
        images = self.image_set(split)
        lat = _latents(images.ids)
        rng = np.random.default_rng(1000 * subject + (0 if split == "train" else 1))
        mix = np.random.default_rng(7).standard_normal((DIM, N_CHANS * N_TIMES)).astype(np.float32)
        mix += 0.3 * np.random.default_rng(subject).standard_normal(mix.shape).astype(np.float32)
        reps = 1 if options.averaging == "all" else self.reps
        index = np.repeat(np.arange(len(images)), reps)
        clean = lat[index] @ mix
        eeg = (clean + self.noise * rng.standard_normal(clean.shape)).astype(np.float32).reshape(-1, N_CHANS, N_TIMES)
        info = EEGInfo(ch_names=tuple(f"C{i}" for i in range(N_CHANS)), sfreq=100.0, tmin=0.0, tmax=(N_TIMES - 1) / 100)
        return EEGData(eeg, index.astype(np.int64), np.full(len(index), subject, dtype=np.int64), images, info)

    def describe(self):
        return {"name": self.name, "synthetic": True}


class FakeEncoder(ImageEncoder):
    dim = DIM
    fingerprint = "fake-latents-v1"

    def encode(self, images, *, device="cpu", batch_size=64, progress=True):
        return _latents(images.ids)


def build_backbone(n_chans, n_times, sfreq=None, chs_info=None, subjects=None, hidden=32):
    import torch

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_chans * n_times, hidden), torch.nn.GELU())
    net.n_features = hidden
    return net


def build_loss(temperature=0.1):
    import torch
    import torch.nn.functional as F

    class Clip(torch.nn.Module):
        needs_text = False

        def forward(self, eeg, img, text=None):
            eeg, img = F.normalize(eeg, dim=1), F.normalize(img, dim=1)
            logits = eeg @ img.T / temperature
            target = torch.arange(len(eeg), device=eeg.device)
            return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    return Clip()


class InlineExecutor(Executor):
    name = "inline"

    def run(self, cells, runner):
        from eegbench.runner import CellOutcome

        outcomes, status = [], {}
        for cell in cells:
            bad = [d for d in cell.depends_on if status.get(d) == "failed"]
            out = CellOutcome(cell.key, "failed", f"dependency {bad[0][:8]} failed") if bad else runner(cell)
            status[cell.key] = out.status
            outcomes.append(out)
        return outcomes


class FakePlugin:
    @hookimpl
    def eegbench_datasets(self):
        return [Component(kind="dataset", name="fake-eeg", summary="fake", factory=FakeDataset)]

    @hookimpl
    def eegbench_backbones(self):
        return [Component(kind="backbone", name="fake-mlp", summary="fake", factory=build_backbone)]

    @hookimpl
    def eegbench_image_encoders(self):
        return [Component(kind="image-encoder", name="fake-latents", summary="fake", factory=FakeEncoder)]

    @hookimpl
    def eegbench_losses(self):
        return [Component(kind="loss", name="fake-clip", summary="fake", factory=build_loss)]

    @hookimpl
    def eegbench_executors(self):
        return [Component(kind="executor", name="inline", summary="fake", factory=InlineExecutor)]


def install(monkeypatch, tmp_path):
    """Make the fakes (plus every real plugin) the process registry; isolate cache/data/results dirs."""
    from eegbench import registry

    reg = registry.Registry(plugins=[FakePlugin()])
    monkeypatch.setattr(registry, "_default", reg)
    for var in ("EEGBENCH_CACHE", "EEGBENCH_DATA", "EEGBENCH_RESULTS"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    FakeDataset.events.clear()
    return reg


def spec_dict(**changes):
    """A small LOSO spec over the fakes (dotted keys in ``changes`` override)."""
    from eegbench.planning.spec import apply_overrides

    base = {
        "name": "fake-bench",
        "seeds": [0],
        "dataset": {"name": "fake-eeg", "subjects": [1, 2, 3]},
        "backbone": {"name": "fake-mlp"},
        "image_encoder": {"name": "fake-latents"},
        "loss": {"name": "fake-clip"},
        "protocol": {"name": "loso", "folds": [3]},
        "validation": {"fraction": 0.25},
        "train": {"epochs": 6, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 1},
        "executor": {"name": "inline"},
    }
    return apply_overrides(base, changes)


assert eegbench  # the package is imported for hookimpl's marker
