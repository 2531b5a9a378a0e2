"""Generic, vectorized split helpers over :class:`~eegbench.interfaces.EEGData` (any dataset).

Validation data is always drawn from the *training* split: whole images (or whole concepts) go to one side,
so no image is seen in both training and validation, or (``by="trial"``, the seed project's split) whole
(subject, image) pairs, so an image held out for one subject may still be trained on through another. All
draws are seeded. A cell's labelled budget (:func:`labelled_split`) is drawn first and validation inside it,
so a cell at training ratio r touches r of each subject's training images, never more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eegbench.errors import EegbenchError
from eegbench.interfaces import EEGData, ImageSet

#: the validation split modes (``[validation] by``)
VALIDATION_BY = ("image", "concept", "trial")


def draw_size(n: int, fraction: float) -> int:
    """How many of ``n`` items a validation draw holds out: round(fraction * n), at least 1 and at most
    n - 1 when fraction > 0 and n > 1 (the dry run's counts use the same arithmetic)."""
    k = round(fraction * n)
    if fraction > 0 and n > 1:
        k = min(max(k, 1), n - 1)
    return k


def subset_size(n: int, ratio: float) -> int:
    """How many of a subject's ``n`` images :func:`training_subset` keeps at ``ratio`` (at least one)."""
    return n if ratio >= 1.0 else max(1, round(ratio * n))


def _draw(items: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded subset of ``items`` of size :func:`draw_size`."""
    n = len(items)
    return items[rng.permutation(n)[: draw_size(n, fraction)]]


def validation_split(data: EEGData, fraction: float, seed: int, by: str = "image") -> tuple[EEGData, EEGData]:
    """Split training trials into (train, validation) by whole images, whole concepts or (subject, image) pairs.

    Args:
        data: trials of the training split (one or several subjects).
        fraction: share of the distinct images (``by="image"``), concepts (``by="concept"``) or
            (subject, image) pairs (``by="trial"``) held out.
        seed: the draw's seed; with ``"image"``/``"concept"`` the same images are held out for every subject.
        by: ``"image"``, ``"concept"`` or ``"trial"``. ``"trial"`` is the seed project's split of its
            (subject, image) rows at random: every repetition of a held-out pair goes to validation, but the
            image may stay in training through other subjects (with one subject it is an image split).
    Returns:
        ``(train, val)``; every trial of a held-out image (or pair) is in ``val`` only.
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
    elif by == "trial":
        # one code per (subject, image) pair, so a pair's repetitions stay on one side
        pairs = np.asarray(data.subject, dtype=np.int64) * (int(data.image_index.max(initial=0)) + 1) + data.image_index
        codes, pair_of_row = np.unique(pairs, return_inverse=True)
        held_pairs = _draw(np.arange(len(codes)), fraction, rng)
        val = np.isin(pair_of_row.reshape(-1), held_pairs)
        return data.select(~val), data.select(val)
    else:
        raise EegbenchError(f"validation split by {by!r}: choose {', '.join(repr(b) for b in VALIDATION_BY)}")
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
        k = subset_size(len(images), ratio)
        chosen = np.random.default_rng([int(seed), int(subject)]).permutation(images)[:k]
        keep |= rows & np.isin(data.image_index, chosen)
    return data.select(keep)


def labelled_split(
    data: EEGData, ratio: float, fraction: float, seed: int, by: str = "image"
) -> tuple[EEGData, EEGData | None]:
    """A cell's labelled budget and its split: ``(train, val)`` with ``val`` None when ``fraction`` is 0.

    First the seeded ``ratio`` of each subject's images (:func:`training_subset`), then validation drawn
    inside that subset (:func:`validation_split`), as the seed project does: at ratio r, training and
    validation together hold r of the subject's labelled images.
    """
    labelled = training_subset(data, ratio, seed)
    if fraction <= 0:
        return labelled, None
    return validation_split(labelled, fraction, seed, by=by)


def budget_counts(n_images: int, n_subjects: int, ratio: float, fraction: float, by: str) -> tuple[int, int, bool]:
    """(training pairs, validation pairs, exact) of :func:`labelled_split` from sizes alone (no data read).

    A pair is a (subject, image): for one subject, its images. Exact for ``"trial"``, and for ``"image"``
    unless several subjects draw their own subsets (ratio < 1); ``"concept"`` depends on how many images
    each concept has, so its count is the image fraction's (an estimate).
    """
    per_subject = subset_size(int(n_images), ratio)
    pairs = per_subject * int(n_subjects)
    if fraction <= 0:
        return pairs, 0, True
    if by == "trial":
        val = draw_size(pairs, fraction)
        return pairs - val, val, True
    val = draw_size(per_subject, fraction) * int(n_subjects)
    exact = by == "image" and (ratio >= 1.0 or n_subjects == 1)
    return pairs - val, val, exact


@dataclass(frozen=True)
class Standardizer:
    """Per-channel mean/std fitted on training data, applied to any split."""

    mean: np.ndarray  # float32 [C]
    std: np.ndarray  # float32 [C]

    @classmethod
    def fit(cls, data: EEGData, eps: float = 1e-8) -> Standardizer:
        """Statistics over trials and times of ``data`` (pass the training part only)."""
        eeg = data.eeg
        if len(eeg) == 0:
            raise EegbenchError("cannot fit standardisation on an empty training set")
        mean: np.ndarray = eeg.mean(axis=(0, 2), dtype=np.float64)
        sq: np.ndarray = np.square(eeg, dtype=np.float64).mean(axis=(0, 2))
        std = np.sqrt(np.maximum(sq - mean**2, 0.0))
        return cls(mean.astype(np.float32), np.maximum(std, eps).astype(np.float32))

    def apply(self, eeg: np.ndarray) -> np.ndarray:
        """float32 ``(eeg - mean) / std`` per channel of ``eeg [n, C, T]`` (a new array)."""
        if eeg.shape[-2] != len(self.mean):
            raise EegbenchError(f"standardiser fitted on {len(self.mean)} channels, EEG has {eeg.shape[-2]}")
        out: np.ndarray = np.asarray(eeg, dtype=np.float32) - self.mean[:, None]
        out /= self.std[:, None]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Standardizer:
        return cls(np.asarray(values["mean"], dtype=np.float32), np.asarray(values["std"], dtype=np.float32))


# --------------------------------------------------------------------------------------------------
# the seen-concept test split (``[dataset] test_split = "train-heldout"``, the seed without --separate_test)
# --------------------------------------------------------------------------------------------------
def heldout_image_rows(images: ImageSet, fraction: float, seed: int) -> np.ndarray:
    """Sorted rows of ``images`` held out as the seen-concept test split.

    Per concept, :func:`draw_size` (round(fraction x its images), at least one, at most all but one) of its
    images, drawn with ``seed`` alone (the same images for every cell, subject and training seed), so every
    test image's concept keeps training images. A concept with a single image stays in training.
    """
    concepts = np.asarray(images.concepts)
    _, concept_of, counts = np.unique(concepts, return_inverse=True, return_counts=True)
    rng = np.random.default_rng([int(seed), 0x4E1D])
    # a random order within each concept: sort by (concept, random key), then each image's place in its concept
    order = np.lexsort((rng.random(len(concepts)), concept_of))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    place = np.empty(len(concepts), dtype=np.int64)
    place[order] = np.arange(len(concepts)) - starts[concept_of[order]]
    quota = np.array([draw_size(int(c), fraction) if c > 1 else 0 for c in counts], dtype=np.int64)
    return np.flatnonzero(place < quota[concept_of])


def image_subset(images: ImageSet, rows: np.ndarray, name: str) -> ImageSet:
    """The images at ``rows`` (in that order) as their own set; ids, files and concepts unchanged."""
    return ImageSet(
        name=name,
        ids=tuple(images.ids[i] for i in rows),
        files=tuple(images.files[i] for i in rows),
        concepts=tuple(images.concepts[i] for i in rows),
        root=images.root,
    )


def without_images(data: EEGData, rows: np.ndarray) -> EEGData:
    """``data`` without any trial of the images at ``rows`` (image indices keep referring to ``data.images``)."""
    return data.select(~np.isin(data.image_index, rows))


def only_images(data: EEGData, rows: np.ndarray, subset: ImageSet) -> EEGData:
    """The trials of the images at ``rows``, their ``image_index`` renumbered to rows of ``subset`` (the set
    :func:`image_subset` made from the same rows)."""
    position = np.full(len(data.images), -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    keep = position[data.image_index] >= 0
    return EEGData(np.asarray(data.eeg[keep]), position[data.image_index[keep]], data.subject[keep], subset, data.info)
