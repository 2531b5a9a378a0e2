"""Generic, vectorized split helpers over :class:`~eegbench.interfaces.EEGData` (any dataset).

Validation data is always drawn from the *training* split's images: whole images (or whole concepts) go to
one side, so no image is seen in both training and validation. All draws are seeded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import EegbenchError
from .interfaces import EEGData


def _draw(items: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded subset of ``items`` of size round(fraction * n) (at least 1 when fraction > 0 and n > 1)."""
    n = len(items)
    k = int(round(fraction * n))
    if fraction > 0 and n > 1:
        k = min(max(k, 1), n - 1)
    return items[rng.permutation(n)[:k]]


def validation_split(data: EEGData, fraction: float, seed: int, by: str = "image") -> tuple[EEGData, EEGData]:
    """Split training trials into (train, validation) by whole images or whole concepts.

    Args:
        data: trials of the training split (one or several subjects).
        fraction: share of the distinct images (``by="image"``) or concepts (``by="concept"``) held out.
        seed: the draw's seed; the same images are held out for every subject.
        by: ``"image"`` or ``"concept"``.
    Returns:
        ``(train, val)``; every trial of a held-out image is in ``val`` only.
    """
    if not 0.0 <= fraction < 1.0:
        raise EegbenchError(f"validation fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    images = np.unique(data.image_index)
    if by == "image":
        held = _draw(images, fraction, rng)
    elif by == "concept":
        concepts = np.asarray(data.images.concepts)[images]
        held_concepts = _draw(np.unique(concepts), fraction, rng)
        held = images[np.isin(concepts, held_concepts)]
    else:
        raise EegbenchError(f"validation split by {by!r}: choose 'image' or 'concept'")
    val = np.isin(data.image_index, held)
    return data.select(~val), data.select(val)


def training_subset(data: EEGData, ratio: float, seed: int) -> EEGData:
    """Keep a seeded fraction ``ratio`` of each subject's distinct images (all their trials).

    ``ratio == 1`` returns ``data`` unchanged; each subject's draw is seeded by ``(seed, subject)``.
    """
    if not 0.0 < ratio <= 1.0:
        raise EegbenchError(f"training ratio must be in (0, 1], got {ratio}")
    if ratio == 1.0:
        return data
    keep = np.zeros(len(data), dtype=bool)
    for subject in np.unique(data.subject):
        rows = data.subject == subject
        images = np.unique(data.image_index[rows])
        k = max(1, int(round(ratio * len(images))))
        chosen = np.random.default_rng([int(seed), int(subject)]).permutation(images)[:k]
        keep |= rows & np.isin(data.image_index, chosen)
    return data.select(keep)


@dataclass(frozen=True)
class Standardizer:
    """Per-channel mean/std fitted on training data, applied to any split."""

    mean: np.ndarray  # float32 [C]
    std: np.ndarray  # float32 [C]

    @classmethod
    def fit(cls, data: EEGData, eps: float = 1e-8) -> "Standardizer":
        """Statistics over trials and times of ``data`` (pass the training part only)."""
        eeg = data.eeg
        if len(eeg) == 0:
            raise EegbenchError("cannot fit standardisation on an empty training set")
        mean = np.mean(eeg, axis=(0, 2), dtype=np.float64)
        sq = np.mean(np.square(eeg, dtype=np.float64), axis=(0, 2))
        std = np.sqrt(np.maximum(sq - mean**2, 0.0))
        return cls(mean.astype(np.float32), np.maximum(std, eps).astype(np.float32))

    def apply(self, eeg: np.ndarray) -> np.ndarray:
        """float32 ``(eeg - mean) / std`` per channel of ``eeg [n, C, T]`` (a new array)."""
        if eeg.shape[-2] != len(self.mean):
            raise EegbenchError(f"standardiser fitted on {len(self.mean)} channels, EEG has {eeg.shape[-2]}")
        out = np.asarray(eeg, dtype=np.float32) - self.mean[:, None]
        out /= self.std[:, None]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Standardizer":
        return cls(np.asarray(values["mean"], dtype=np.float32), np.asarray(values["std"], dtype=np.float32))
