"""What one cell computes, and where: a :class:`Recipe` and a :class:`Placement`, frozen and typed.

The planner (:mod:`eegbench.planning.plan`) makes one :class:`Cell` per fold × seed × stage × training ratio; every
later step reads it and none rebuilds it: executors carry it (it pickles), the engine reads its fields,
the runner writes its keys into the results store, the leaderboard groups on those keys.

``Recipe``     the method: components with resolved parameters, preparation, validation, training (and for
               a finetune cell the finetune stage's training), plus the engine's head once known. Its hash
               is the ``recipe_key``; a finetune recipe also names the recipe it builds on
               (``pretrain_recipe_key``). Where the data lives (a dataset's ``root``) is not part of it.
``Placement``  where the recipe runs: protocol, fold, test and training subjects, seed, stage, training
               ratio (the labelled fraction of the test subject's training images for a finetune).
``Cell``       both, plus what the cell reads by identity (``inputs``); its ``key`` — the results store's
               identity for skip-if-stored — is the hash of :attr:`Cell.config`, the plain-JSON form
               eegbench has always hashed, so keys of unchanged recipes stay what earlier versions stored.

This module imports no torch and no registry: a cell is a plain value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from eegbench.interfaces import canonical_json, stable_hash

#: the component slots of a recipe, in order, and the registry kind of each
COMPONENT_KINDS: Mapping[str, str] = {
    "dataset": "dataset",
    "backbone": "backbone",
    "image_encoder": "image-encoder",
    "loss": "loss",
    "task": "task",
}
STAGES = ("pretrain", "finetune")
#: the key under which a finetune recipe keeps the finetune stage's training settings (leaderboard labels show
#: them as ``finetune.lr`` ...)
FINETUNE_KEY = "finetune"


# --------------------------------------------------------------------------------------------------
# frozen plain values
# --------------------------------------------------------------------------------------------------
class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes (so a frozen recipe's parameters cannot be edited in place); pickles and
    serialises as a plain dict."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a recipe is frozen: build another with dataclasses.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(canonical_json(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


def freeze(value: Any) -> Any:
    """``value`` with every dict made a :class:`FrozenDict` and every list a tuple (same canonical JSON)."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON form of a frozen value: dicts and lists (what factories and the store receive)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ComponentRef:
    """A registered component: its name and its resolved parameters (defaults filled in)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze(self.params))

    def kwargs(self) -> dict[str, Any]:
        """The parameters as plain keyword arguments for the component's factory."""
        return {k: thaw(v) for k, v in self.params.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.kwargs()}

    def without(self, names: tuple[str, ...]) -> ComponentRef:
        """This component without the parameters ``names`` (context arguments such as a dataset's ``root``)."""
        if not any(n in self.params for n in names):
            return self
        return ComponentRef(self.name, {k: v for k, v in self.params.items() if k not in names})

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ComponentRef:
        return cls(str(value["name"]), value.get("params") or {})


@dataclass(frozen=True)
class Preparation:
    """How the dataset prepares EEG (``[dataset]``'s preparation keys)."""

    channels: tuple[str, ...] | None = None
    window: tuple[float, float] | None = None
    n_times: int | None = None
    train_averaging: str | int = "all"
    test_averaging: str | int = "all"
    standardize: bool = True
    test_split: str = "test"
    #: the seen-concept test split (``test_split = "train-heldout"``): the share of each training concept's
    #: images held out, and the seed of that draw
    heldout_fraction: float | None = None
    heldout_seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channels": list(self.channels) if self.channels is not None else None,
            "window": list(self.window) if self.window is not None else None,
            "n_times": self.n_times,
            "train_averaging": self.train_averaging,
            "test_averaging": self.test_averaging,
            "standardize": self.standardize,
            "test_split": self.test_split,
        }
        if self.test_split == "train-heldout":  # only then: the keys of every other spec's cells stay as they were
            out.update(heldout_fraction=self.heldout_fraction, heldout_seed=self.heldout_seed)
        return out

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Preparation:
        return cls(
            channels=tuple(value["channels"]) if value.get("channels") is not None else None,
            window=tuple(value["window"]) if value.get("window") is not None else None,
            n_times=value.get("n_times"),
            train_averaging=value.get("train_averaging", "all"),
            test_averaging=value.get("test_averaging", "all"),
            standardize=value.get("standardize", True),
            test_split=value.get("test_split", "test"),
            heldout_fraction=value.get("heldout_fraction"),
            heldout_seed=value.get("heldout_seed"),
        )


@dataclass(frozen=True)
class Validation:
    """The validation split (``[validation]``): drawn from training images, read by selection only."""

    fraction: float = 0.2
    by: str = "image"
    split: str = "train"
    selection: str = "best-val"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Validation:
        return cls(**{f.name: value[f.name] for f in dataclasses.fields(cls) if f.name in value})


#: the most cells ``batch_cells = "auto"`` trains as one (beyond it the speed-up per member levels off on CPUs,
#: and each member's data and optimiser state stay on the device while the group trains)
AUTO_BATCHED_CELLS = 8


@dataclass(frozen=True)
class Training:
    """One stage's optimisation (``[train]``, or ``[finetune]`` over it): the fields of
    :data:`eegbench.planning.spec.TRAIN_FIELDS`, validated there."""

    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    min_lr: float = 1e-7
    weight_decay: float = 0.1
    optimizer: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_epochs: int = 0
    schedule: str = "cosine"
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    patience: int = 0
    amp: str = "auto"
    grad_clip: float = 0.0
    compile: bool = False
    text_prompt: str = "This picture is {concept}"
    drop_last: bool = True
    #: how many cells of this recipe may train together (see :mod:`eegbench.execution.batched`): batching never
    #: changes a result, so it is left out of :meth:`as_dict` (no key, no stored config holds it)
    batch_cells: str | bool | int = field(default=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        del out["batch_cells"]
        return out

    @property
    def max_batched_cells(self) -> int:
        """The most cells trained as one: 8 for ``"auto"`` (or ``true``), 1 for ``false``, else the number given."""
        if self.batch_cells is False:
            return 1
        if self.batch_cells == "auto" or self.batch_cells is True:
            return AUTO_BATCHED_CELLS
        return max(1, int(self.batch_cells))

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Training:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"training settings {unknown} are not fields of Training")
        kwargs = dict(value)
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------------
# recipe and placement
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """What a cell computes (see the module docstring). ``train`` is the pretrain stage's training (the only
    stage's, without ``[finetune]``); ``finetune`` the finetune stage's, set on finetune cells only.

    ``head``: the engine's head on the backbone (``"linear"`` or ``"identity"``, see
    :func:`eegbench.execution.engine.head_kind_for`), decided from the backbone and the image width when the cell runs:
    ``"auto"`` in a planned recipe, the kind chosen in the recipe stored with results
    (:meth:`with_head`)."""

    dataset: ComponentRef
    backbone: ComponentRef
    image_encoder: ComponentRef
    loss: ComponentRef
    task: ComponentRef
    preparation: Preparation
    validation: Validation
    train: Training
    finetune: Training | None = None
    #: the task a finetune stage evaluates when it names its own (``[finetune.task]``); else ``task``
    finetune_task: ComponentRef | None = None
    head: str = "auto"

    def components(self, *, stage: bool = False) -> Iterator[tuple[str, ComponentRef]]:
        """``(slot, component)`` for dataset, backbone, image encoder, loss and task (with ``stage``: the task
        this recipe's cell evaluates, see :attr:`stage_task`)."""
        for slot in COMPONENT_KINDS:
            yield slot, self.stage_task if stage and slot == "task" else getattr(self, slot)

    @property
    def stage_training(self) -> Training:
        """The training settings of the stage this recipe's cell trains (finetune's on a finetune cell)."""
        return self.finetune if self.finetune is not None else self.train

    @property
    def stage_task(self) -> ComponentRef:
        """The task this recipe's cell evaluates (the finetune stage's own on a finetune cell that names one)."""
        return self.finetune_task if self.finetune is not None and self.finetune_task is not None else self.task

    def pretrain(self) -> Recipe:
        """The recipe a finetune recipe builds on (itself for a pretrain recipe)."""
        if self.finetune is None:
            return self
        return dataclasses.replace(self, finetune=None, finetune_task=None)

    def with_head(self, head: str) -> Recipe:
        return dataclasses.replace(self, head=head)

    def as_dict(self) -> dict[str, Any]:
        """The recipe as plain values, as the results store keeps it (column ``recipe``) and the leaderboard
        labels configurations from: components without their context arguments (where the data lives is
        not the method), preparation, validation, training, head, and ``finetune`` on a finetune recipe."""
        from eegbench.components import CONTEXT_ARGS

        out: dict[str, Any] = {
            slot: c.without(CONTEXT_ARGS.get(COMPONENT_KINDS[slot], ())).as_dict() for slot, c in self.components()
        }
        out.update(
            prep=self.preparation.as_dict(),
            validation=self.validation.as_dict(),
            train=self.train.as_dict(),
            head=self.head,
        )
        if self.finetune is not None:
            out[FINETUNE_KEY] = self.finetune.as_dict()
            if self.finetune_task is not None:
                out[FINETUNE_KEY + "_task"] = self.finetune_task.as_dict()
        return out

    @property
    def recipe_key(self) -> str:
        """The hash of :meth:`as_dict`: rows with the same key computed the same thing."""
        return stable_hash(self.as_dict())

    @property
    def pretrain_recipe_key(self) -> str:
        """The key of the recipe this one builds on: a finetune's pretrain recipe (its own key for a pretrain)."""
        return self.pretrain().recipe_key


@dataclass(frozen=True)
class Placement:
    """Where a recipe runs: one fold, one seed, one stage, one training ratio.

    ``training_ratio``: the fraction of each training subject's labelled images the cell uses, training and
    validation together (a finetune's labelled fraction of its held-out subject); 1.0 for pretrain cells.
    ``pretrain_train_subjects``: a finetune cell's pretrain cell's training subjects (empty otherwise).
    """

    protocol: str
    fold: str
    test_subject: int | None
    test_subjects: tuple[int, ...]
    train_subjects: tuple[int, ...]
    seed: int
    stage: str = "pretrain"
    training_ratio: float = 1.0
    pretrain_train_subjects: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        for name in ("test_subjects", "train_subjects", "pretrain_train_subjects"):
            object.__setattr__(self, name, tuple(int(s) for s in getattr(self, name)))

    @property
    def labelled_fraction(self) -> float:
        return float(self.training_ratio)


@dataclass(frozen=True)
class Cell:
    """One unit of work: train one stage of one fold with one seed, then evaluate (see the module docstring).

    ``inputs``: what the cell reads, by identity (:func:`eegbench.planning.plan.input_identity`); part of the key, so a
    stored cell is never reused after its data changed; not part of the recipe (it differs per machine).
    ``pretrain_key``: a finetune cell's pretrain cell, whose checkpoint it starts from.
    ``spec_hash``: hash of the resolved spec (recorded with results, not part of ``key``).
    """

    recipe: Recipe
    placement: Placement
    spec_name: str = ""
    inputs: Mapping[str, Any] = field(default_factory=FrozenDict)
    pretrain_key: str | None = None
    spec_hash: str = ""
    key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", freeze(self.inputs))
        if (self.placement.stage == "finetune") != (self.recipe.finetune is not None):
            raise ValueError("a finetune cell needs a recipe with finetune settings, and only a finetune cell has them")
        if (self.placement.stage == "finetune") != (self.pretrain_key is not None):
            raise ValueError("a finetune cell names its pretrain cell (pretrain_key), and only a finetune cell does")
        object.__setattr__(self, "key", stable_hash(self.config))

    # -- the placement's fields, read directly (executors, messages, --only filters) -----------------
    @property
    def stage(self) -> str:
        return self.placement.stage

    @property
    def protocol(self) -> str:
        return self.placement.protocol

    @property
    def fold(self) -> str:
        return self.placement.fold

    @property
    def test_subject(self) -> int | None:
        return self.placement.test_subject

    @property
    def test_subjects(self) -> tuple[int, ...]:
        return self.placement.test_subjects

    @property
    def train_subjects(self) -> tuple[int, ...]:
        return self.placement.train_subjects

    @property
    def seed(self) -> int:
        return self.placement.seed

    @property
    def training_ratio(self) -> float:
        return self.placement.training_ratio

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Keys of cells that must finish first (a finetune cell's pretrain cell)."""
        return (self.pretrain_key,) if self.pretrain_key else ()

    def label(self) -> str:
        ratio = f" ratio={self.training_ratio:g}" if self.stage == "finetune" else ""
        return f"{self.stage} {self.fold} seed={self.seed}{ratio}"

    @property
    def config(self) -> dict[str, Any]:
        """The cell as plain JSON values: what its ``key`` hashes, what the ``cells`` table and checkpoints
        keep. The layout earlier versions stored (so stored keys stay valid): components with all their
        parameters, ``prep``, ``validation``, ``inputs``, the placement's fields, ``train`` = the stage's
        training, and on a finetune cell ``pretrain`` = its pretrain cell's key and training subjects."""
        r, p = self.recipe, self.placement
        out: dict[str, Any] = {slot: c.as_dict() for slot, c in r.components()}
        out.update(
            prep=r.preparation.as_dict(),
            validation=r.validation.as_dict(),
            inputs=thaw(self.inputs),
            protocol=p.protocol,
            fold=p.fold,
            test_subject=p.test_subject,
            test_subjects=list(p.test_subjects),
            seed=p.seed,
            stage=p.stage,
            train_subjects=list(p.train_subjects),
            training_ratio=float(p.training_ratio),
            labelled_fraction=p.labelled_fraction,
            train=r.stage_training.as_dict(),
        )
        if p.stage == "finetune":
            out["pretrain"] = {"key": self.pretrain_key, "train_subjects": list(p.pretrain_train_subjects)}
            out["task"] = r.stage_task.as_dict()
        return out


# --------------------------------------------------------------------------------------------------
# stores written before recipes were typed: their keys, from the configs they kept
# --------------------------------------------------------------------------------------------------
#: keys of a stored cell config that place it (fold, subjects, seed, stage, ratio, the link to its pretrain cell)
#: or say which files it read (differs per machine): not part of the recipe
PER_CELL_KEYS = frozenset(
    {
        "fold",
        "test_subject",
        "test_subjects",
        "train_subjects",
        "seed",
        "stage",
        "training_ratio",
        "labelled_fraction",
        "protocol",
        "pretrain",
        "key",
        "inputs",
    }
)


def stripped_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored cell config without its per-cell keys and its components' context arguments (the same
    recipe on two machines is one recipe)."""
    from eegbench.components import CONTEXT_ARGS

    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if k in PER_CELL_KEYS:
            continue
        drop = CONTEXT_ARGS.get(COMPONENT_KINDS.get(k, ""), ())
        if drop and isinstance(v, dict) and isinstance(v.get("params"), dict) and any(p in v["params"] for p in drop):
            v = {**v, "params": {p: x for p, x in v["params"].items() if p not in drop}}
        out[k] = v
    return out


class StoredRecipes:
    """The recipe, ``recipe_key`` and ``pretrain_recipe_key`` of result rows written before the store kept
    them, from each row's stored config (the rules the leaderboard applied before recipes were typed, so the
    keys — and every leaderboard built on them — are unchanged).

    A pretrain row's recipe is its config without :data:`PER_CELL_KEYS`; a finetune row's is its pretrain
    cell's (found through ``config["pretrain"]["key"]`` in ``cell_configs``; ``train = "unknown"`` when no
    store has it) plus the finetune stage's training under ``finetune``. Rows without a config (an older
    writer) fall back to their component names and parameters. Each distinct config is done once.
    """

    def __init__(self, cell_configs: Mapping[str, Mapping[str, Any]]):
        self.cell_configs = cell_configs
        self._stripped: dict[str, tuple[dict[str, Any], str]] = {}
        self._done: dict[tuple[Any, ...], tuple[dict[str, Any], str, str]] = {}

    def _strip(self, cfg: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        text = canonical_json(cfg)
        hit = self._stripped.get(text)
        if hit is None:
            own = stripped_config(cfg)
            hit = self._stripped[text] = (own, canonical_json(own))
        return hit

    def of(self, cfg: Any, stage: Any, row: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
        """``(recipe, recipe_key, pretrain_recipe_key)`` of one stored row."""
        import hashlib

        recipe: dict[str, Any]
        if not isinstance(cfg, dict) or not cfg:
            recipe = {
                col: {
                    "name": None if _isnull(row.get(col)) else row.get(col),
                    "params": row.get(col + "_params") if isinstance(row.get(col + "_params"), dict) else {},
                }
                for col in COMPONENT_KINDS
                if col in row
            }
            rid = stable_hash(recipe)
            return recipe, rid, rid
        own, own_text = self._strip(cfg)
        if stage != "finetune":
            hit = self._done.get(("pretrain", own_text))
            if hit is None:
                rid = hashlib.sha256(own_text.encode()).hexdigest()[:16]
                hit = self._done[("pretrain", own_text)] = (own, rid, rid)
            return hit
        link = cfg.get("pretrain")
        pre_cfg = self.cell_configs.get(str(link.get("key"))) if isinstance(link, dict) else None
        pre_stripped, pre_text = self._strip(pre_cfg) if pre_cfg else (None, None)
        key = ("finetune", own_text, pre_text)
        hit = self._done.get(key)
        if hit is None:
            # a cells-table config lacks what the runner adds to its rows (the engine's ``head``): the stages share it
            base = {k: v for k, v in own.items() if k != "train"}
            pre = {**base, **pre_stripped} if pre_stripped is not None else {**base, "train": "unknown"}
            recipe = {**pre, FINETUNE_KEY: own.get("train")}
            # anything else the finetune stage changed (the plan shares all but ``train``; kept so it never merges)
            extra = {k: v for k, v in own.items() if k != "train" and pre.get(k) != v}
            if extra:
                recipe[FINETUNE_KEY + "_stage"] = extra
            hit = self._done[key] = (recipe, stable_hash(recipe), stable_hash(pre))
        return hit


def _isnull(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
