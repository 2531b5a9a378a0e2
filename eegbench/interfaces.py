"""The contracts between the core and plugins (DESIGN.md's table).

The core only talks to components through these interfaces and the plain records below. This module
imports numpy but not torch: torch-facing contracts (backbones, losses) are :class:`typing.Protocol` s,
checked structurally (``isinstance``) by the engine, so listing and validating never import torch. Optional
capabilities are protocols of their own (:class:`SubjectAware`, :class:`GrowsSubjects`,
:class:`OwnProjection`, :class:`TextAligned`, :class:`TextEncoder`, :class:`ImageSetBound`): the engine asks
``isinstance(x, Capability)``, never ``getattr``.

=================  ==========================================  =============================================
interface          given                                       gives
=================  ==========================================  =============================================
Dataset            root, params                                :class:`EEGData` per (subject, split,
                                                               :class:`PrepOptions`); :class:`ImageSet` per
                                                               split
EEGBackbone        n_chans, n_times, sfreq, chs_info, params   ``nn.Module``: float32 ``[B, C, T]`` →
                                                               ``[B, F]`` on the module's device
ImageEncoder       params (model, weights tag or local file)   ``dim``, ``fingerprint``, ``encode(ImageSet)``
                                                               → float32 ``[n, dim]`` numpy, row i = image i
Loss               params                                      ``nn.Module``: ``(eeg [B, d], img [B, d])`` →
                                                               scalar tensor; may own parameters
Task               embeddings of a test split                  one :class:`TaskScore` per test subject
Executor           cells and a runner                          runs every cell, reports each end
=================  ==========================================  =============================================
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Split = Literal["train", "test"]


# --------------------------------------------------------------------------------------------------
# plain records
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSet:
    """The images of one split, in row order.

    ``ids`` are stable, unique identifiers (e.g. ``"test/00001_aircraft_carrier/aircraft_carrier_06s.jpg"``);
    every embedding matrix and every trial's ``image_index`` refers to rows of this order.
    """

    name: str
    ids: tuple[str, ...]
    files: tuple[str, ...]
    concepts: tuple[str, ...]
    root: str = ""

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.files) == len(self.concepts)):
            raise ValueError(f"image set {self.name!r}: ids, files and concepts differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """Identity of the set: its name and ids in order (a reordering is a different set)."""
        h = hashlib.sha256(self.name.encode())
        for image_id in self.ids:
            h.update(b"\0" + image_id.encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class EEGInfo:
    """What the EEG array's axes mean."""

    ch_names: tuple[str, ...]
    sfreq: float
    tmin: float
    tmax: float  # time of the last sample

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)


@dataclass(frozen=True)
class PrepOptions:
    """How a dataset prepares EEG (every field is part of the cache key and the result's context).

    Attributes:
        averaging: ``"all"`` (average every repetition of an image into one trial), ``"none"`` (one trial
            per repetition) or ``k`` (``int``: each trial is the mean of k repetitions drawn at random,
            seeded; as many trials as repetitions).
        channels: channel names to keep, in this order; ``None`` keeps the dataset's channels.
        window: ``(tmin, tmax)`` in seconds, inclusive; ``None`` keeps the whole epoch.
        n_times: resample (linear interpolation over the window) to this many samples; ``None`` keeps.
        seed: seed for random repetition draws.
    """

    averaging: str | int = "all"
    channels: tuple[str, ...] | None = None
    window: tuple[float, float] | None = None
    n_times: int | None = None
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "averaging": self.averaging,
            "channels": list(self.channels) if self.channels is not None else None,
            "window": list(self.window) if self.window is not None else None,
            "n_times": self.n_times,
            "seed": self.seed,
        }


@dataclass
class EEGData:
    """Prepared trials of one or more subjects of one split.

    Attributes:
        eeg: float32 ``[n, n_chans, n_times]`` (may be a read-only memory map).
        image_index: int64 ``[n]``: row of ``images`` each trial shows.
        subject: int64 ``[n]``: subject number of each trial.
        images: the split's image set.
        info: channel names, sampling rate, times.
    """

    eeg: np.ndarray
    image_index: np.ndarray
    subject: np.ndarray
    images: ImageSet
    info: EEGInfo

    def __post_init__(self) -> None:
        n = len(self.eeg)
        if self.eeg.ndim != 3:
            raise ValueError(f"EEG must be [n, chans, times], got shape {self.eeg.shape}")
        if len(self.image_index) != n or len(self.subject) != n:
            raise ValueError("eeg, image_index and subject differ in length")

    def __len__(self) -> int:
        return len(self.eeg)

    def select(self, rows: np.ndarray) -> EEGData:
        """The trials at ``rows`` (an index array or boolean mask)."""
        return EEGData(np.asarray(self.eeg[rows]), self.image_index[rows], self.subject[rows], self.images, self.info)

    @staticmethod
    def concat(parts: Sequence[EEGData]) -> EEGData:
        """Trials of several subjects of the same split (same image set and info)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.images.fingerprint() != first.images.fingerprint() or p.info != first.info:
                raise ValueError("cannot concatenate EEG prepared with different images or channel/time layouts")
        return EEGData(
            np.concatenate([np.asarray(p.eeg) for p in parts]),
            np.concatenate([p.image_index for p in parts]),
            np.concatenate([p.subject for p in parts]),
            first.images,
            first.info,
        )


@dataclass(frozen=True)
class TaskScore:
    """A task's result for one test subject."""

    subject: int
    metrics: Mapping[str, float]
    chance: Mapping[str, float]
    n_way: int
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CellOutcome:
    """How one cell ended, as executors report it: ``done``, ``failed`` (with a one-line ``error``) or
    ``skipped`` (already stored, or deferred to a live owner: ``error`` then says which).

    ``user_error``: the failure is the user's input (a data file, a checkpoint, a setting found wrong inside the
    cell: exit code 2), not a run-time failure (exit code 1)."""

    key: str
    status: str
    error: str | None = None
    seconds: float = 0.0
    user_error: bool = False


# --------------------------------------------------------------------------------------------------
# component interfaces
# --------------------------------------------------------------------------------------------------
class Dataset(ABC):
    """An EEG–image dataset. Knows its files, not protocols: splits into folds are the spec's business.

    Implementations must return trials whose ``image_index`` always refers to the split's own
    :class:`ImageSet`, so test sets of several subjects never mix up images.
    """

    #: registry name, e.g. ``"things-eeg-2"``
    name: str = ""
    #: where prepared EEG is cached: the factory's ``cache_root`` context argument, which the engine passes from
    #: ``--cache`` / ``[paths] cache`` when the run names one (None: ``EEGBENCH_CACHE`` or the per-user cache)
    cache_root: Any = None

    @property
    @abstractmethod
    def subjects(self) -> list[int]:
        """Subject numbers available under the root (1-based)."""

    @abstractmethod
    def image_set(self, split: Split) -> ImageSet:
        """The images of ``split`` in the order ``image_index`` refers to."""

    @abstractmethod
    def load(self, subject: int, split: Split, options: PrepOptions) -> EEGData:
        """Prepared float32 trials of one subject (cached on disk by the implementation)."""

    def ensure_available(self, subjects: Iterable[int] | None = None) -> None:
        """Raise :class:`~eegbench.errors.DataError` naming what is missing and how to get it."""

    def declared_size(self, split: Split) -> int | None:
        """Images of ``split`` as the dataset declares them, known without reading or generating any file
        (``eegbench run --dry-run`` counts each cell's training and validation images from it); None when
        only the files can tell, and the dry run then reads :meth:`image_set`."""
        return None

    def repetitions(self, split: Split) -> int | None:
        """Repetitions per image of ``split`` when known without reading the EEG (``eegbench run --dry-run``
        counts training trials from it); None when unknown."""
        return None

    def source_identity(self) -> str:
        """A string that changes when the underlying files change (part of every cache key)."""
        return ""

    def describe(self) -> dict[str, Any]:
        """Facts recorded with results (e.g. root, version, synthetic or real)."""
        return {"name": self.name}


class ImageEncoder(ABC):
    """A frozen image encoder.

    ``fingerprint`` identifies model + weights (file hash or tag) + preprocessing + output choice: two
    encoders with the same fingerprint produce the same embeddings, so embeddings are cached by it.
    """

    dim: int
    fingerprint: str
    #: True when built with ``weights = "none"``; recorded with every result.
    random_init: bool = False

    @abstractmethod
    def encode(
        self, images: ImageSet, *, device: str = "cpu", batch_size: int = 64, progress: bool = True
    ) -> np.ndarray:
        """float32 ``[len(images), dim]``, row i embedding ``images.files[i]``."""

    def describe(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "dim": self.dim, "random_init": self.random_init}


class Task(ABC):
    """A downstream evaluation on the test split, run once after training.

    Optional capabilities (declared, so the core needs no knowledge of a particular task):

    - :meth:`setup` is called at the start of a cell, before training, with the image sets and the image
      encoder: a task that needs more than embeddings (a text tower, concept names) gets them here and
      refuses an unusable encoder before anything trains.
    - ``needs_training_data = True``: after training, before :meth:`evaluate`, the engine calls :meth:`fit`
      with the trained encoder's embeddings of the cell's training and validation trials and the training
      image row of each (a probe fitted on them; the test split is never given to ``fit``).
    - ``needs_seen_concepts = True``: the task scores test trials against the *training* concepts, so the
      plan refuses it unless ``[dataset] test_split = "train-heldout"`` (held-out images of seen concepts).
    - ``needs_encoder = True`` (may be set per instance): instead of :meth:`fit`, the engine calls
      :meth:`fit_encoder` with the selected EEG encoder and the cell's training and validation trials; the task
      trains its own copy (the cell's checkpoint stays the selected encoder) and returns it, and the test
      embeddings given to :meth:`evaluate` are that copy's.
    """

    name: str = ""
    #: call :meth:`fit` with training and validation embeddings before :meth:`evaluate`
    needs_training_data: bool = False
    #: the test images' concepts must be training concepts (``test_split = "train-heldout"``)
    needs_seen_concepts: bool = False
    #: call :meth:`fit_encoder` (instead of :meth:`fit`) and embed the test trials with the encoder it returns
    needs_encoder: bool = False

    def setup(
        self,
        *,
        train_images: ImageSet,
        test_images: ImageSet,
        image_encoder: Any,
        cache_root: Any = None,
        device: str = "cpu",
    ) -> None:
        """Prepare from the cell's image sets (``train_images``: the training split's images, the rows that
        :meth:`fit`'s image indices refer to; ``test_images``: the gallery ``evaluate`` ranks) and image
        encoder. Raise :class:`~eegbench.errors.EegbenchError` (one line) for an encoder the task cannot use."""

    def fit(self, train_emb: Any, train_image_index: Any, val_emb: Any | None, val_image_index: Any | None) -> None:
        """Fit on training trials (float tensor ``[n, d]`` and int64 rows of ``train_images``); select on the
        validation trials only (``None`` when the spec has no validation split)."""

    def fit_encoder(self, model: Any, train: Any, val: Any | None) -> Any:
        """Train a copy of ``model`` (the selected EEG encoder, ``nn.Module``: ``model(x, subject)`` →
        ``[B, d]``) on ``train`` (the cell's training trials on the device: ``.x``, ``.image_index`` rows of
        ``train_images``, ``.subject``), select on ``val`` only (``None`` without a validation split), and return
        the copy; ``model`` itself must not change."""
        raise TypeError(
            f"task {self.name!r} declares needs_encoder = True but defines no fit_encoder (a plugin "
            "error: define fit_encoder or drop needs_encoder)"
        )

    @abstractmethod
    def evaluate(self, eeg_emb: Any, image_emb: Any, image_index: Any, subjects: Any) -> list[TaskScore]:
        """Score test embeddings.

        Args:
            eeg_emb: float tensor ``[n, d]`` (torch, any device): one row per test trial.
            image_emb: float tensor ``[m, d]``: one row per image of the test :class:`ImageSet`.
            image_index: int64 tensor ``[n]``: the image each trial shows.
            subjects: int64 tensor ``[n]``: the subject of each trial.
        Returns:
            one :class:`TaskScore` per distinct subject, in ascending subject order.
        """

    # No ``context()``: a task's settings are its resolved parameters, part of the recipe (``task_params``,
    # ``recipe_key``), and what makes scores comparable across tasks (n-way) is in each TaskScore.


@runtime_checkable
class CellLike(Protocol):
    """What an executor reads of a cell (:class:`eegbench.planning.recipe.Cell` has it, so do test stand-ins):
    its ``key``, the keys it ``depends_on``, the placement fields the store records, its ``config`` (plain
    JSON: the store keeps it; packing groups cells by its components) and ``label()``, how messages name it."""

    @property
    def key(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...

    @property
    def stage(self) -> str: ...

    @property
    def fold(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def training_ratio(self) -> float: ...

    @property
    def spec_name(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    def label(self) -> str: ...


@runtime_checkable
class CellRunner(Protocol):
    """Runs one cell and records it: what an executor is given (``eegbench.runner.CellRunner`` is the real
    one). Picklable; ``results_dir`` is the results store executors read each cell's status from; ``force``
    recomputes cells already done; ``device`` (``auto``, ``cpu``, ``cuda[:N]``) is where cells train, which an
    executor may size its parallelism by. It writes the cell's rows itself, so an executor never changes a
    result."""

    results_dir: str
    force: bool
    device: str

    def __call__(self, cell: CellLike) -> CellOutcome: ...


@runtime_checkable
class GroupingRunner(Protocol):
    """A :class:`CellRunner` that can train several cells as one (``eegbench.runner.CellRunner`` is one):
    ``groups(cells)`` splits cells into groups that may train together, ``run_group(cells)`` runs one group and
    returns an outcome per cell, each cell exactly as it would be run alone. Executors hand it groups."""

    def groups(self, cells: Sequence[CellLike]) -> list[list[CellLike]]: ...

    def run_group(self, cells: Sequence[CellLike]) -> list[CellOutcome]: ...


@runtime_checkable
class PreloadingRunner(Protocol):
    """A :class:`CellRunner` that names the modules its cells will import (torch, the engine, the components'
    heavy libraries): an executor starting worker processes may import them once, before the first cell."""

    def worker_imports(self, cells: Sequence[CellLike]) -> list[str]: ...


class Executor(ABC):
    """Runs cells of a plan somewhere (in process, worker processes, Slurm, Ray)."""

    name: str = ""

    @abstractmethod
    def run(self, cells: Sequence[CellLike], runner: CellRunner) -> list[CellOutcome]:
        """Run every cell respecting ``cell.depends_on``; return the outcomes in ``cells`` order."""

    def start(self, cells: Sequence[CellLike], runner: CellRunner) -> None:
        """Optional: begin in the background what :meth:`run` will need for ``cells`` (the cells likely to run;
        e.g. worker processes importing their libraries) while the caller still prepares data; :meth:`run`
        follows with the same runner. By default nothing."""


# --------------------------------------------------------------------------------------------------
# torch-facing contracts (structural: no torch import at this level) and their optional capabilities
# --------------------------------------------------------------------------------------------------
@runtime_checkable
class EEGBackbone(Protocol):
    """A ``torch.nn.Module`` built by ``factory(n_chans, n_times, sfreq, chs_info=None, subjects=None,
    **params)``; ``forward(x)`` with float32 ``x [B, n_chans, n_times]`` returns ``[B, n_features]``.

    Required: ``n_features`` (a positive int, fixed for the model). The engine appends the projection head
    ``Linear(n_features, image_dim)`` (none for an :class:`OwnProjection` backbone at the image width).
    Optional capabilities, each a protocol below: :class:`SubjectAware`, :class:`GrowsSubjects`,
    :class:`OwnProjection` (as braindecode's ``EEGModuleMixin`` declares its signal attributes on the model).
    """

    n_features: int

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class SubjectAware(Protocol):
    """A backbone declaring ``takes_subject``; when True it is called ``forward(x, subject)`` with an int64
    ``subject [B]``."""

    takes_subject: bool


@runtime_checkable
class GrowsSubjects(Protocol):
    """A subject-aware backbone that can add an input layer for a subject it was not built with (a held-out
    subject under LOSO), initialised by its own rule (e.g. the mean of the trained subjects')."""

    @property
    def subjects(self) -> list[int]: ...

    def add_subject(self, number: int, init_from: int | None = None) -> None: ...


@runtime_checkable
class OwnProjection(Protocol):
    """A backbone that ends with its own projection into an embedding space: when ``includes_projection`` is
    True and ``n_features`` equals the image width, the engine adds no head."""

    includes_projection: bool
    n_features: int


@runtime_checkable
class Loss(Protocol):
    """A ``torch.nn.Module``: ``forward(eeg_emb [B, d], img_emb [B, d]) -> scalar``; rows i of both are a
    positive pair. Parameters it owns (a learnable temperature) are optimised with the encoder."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def parameters(self) -> Any: ...


@runtime_checkable
class TextAligned(Protocol):
    """A loss declaring ``needs_text``; when True it is called ``forward(eeg, img, text)`` with the text
    embeddings of each image's concept prompt (the image encoder must then be a :class:`TextEncoder`)."""

    needs_text: bool


@runtime_checkable
class TextEncoder(Protocol):
    """An image encoder that also embeds text: ``encode_text(prompts) -> float32 [n, dim]``."""

    fingerprint: str

    def encode_text(self, prompts: list[str]) -> np.ndarray: ...


@runtime_checkable
class ImageSetBound(Protocol):
    """An image encoder whose identity depends on the image set (an embedding file served by image id):
    ``for_images(images)`` returns the encoder bound to that set, with its fingerprint."""

    def for_images(self, images: ImageSet) -> ImageEncoder: ...


def canonical_json(value: Any) -> str:
    """Canonical serialisation for hashing: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def to_jsonable(value: Any, number: Callable[[float], Any] | None = None) -> Any:
    """Plain JSON data from nested dicts, lists and tuples: keys as text, numpy scalars as Python numbers,
    floats through ``number`` when given (the report rounds them), any other object as its text."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, number) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, number) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and number is not None:
        return number(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} in a config")


def stable_hash(value: Any, length: int = 16) -> str:
    """sha256 of :func:`canonical_json` (never ``repr``)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]
