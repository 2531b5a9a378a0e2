"""Benchmark specs: TOML files validated into a :class:`Spec` (pydantic, unknown keys refused).

A spec names components and numbers only (``docs/specs.md`` documents every key). Validation errors are
one line naming the file, the table and the key, with a "did you mean" for unknown keys and the allowed
values for closed choices. ``--set key=value`` overrides are parsed as TOML values (``seeds=[1,2]``,
``train.epochs=5``, ``dataset.params.root="/data"``).
"""

from __future__ import annotations

import copy
import difflib
import os
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from eegbench.errors import SpecError
from eegbench.interfaces import stable_hash


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
#: seeds feed numpy and torch generators (torch refuses seeds of 2**64 and more; 32 bits is plenty)
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
Averaging = Literal["all", "none"] | PositiveInt


#: A finite number (an int is read as a float; true/false, text, inf and nan are refused), and within bounds:
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Positive = Annotated[StrictFloat, Field(allow_inf_nan=False, gt=0.0)]  # > 0
NonNegative = Annotated[StrictFloat, Field(allow_inf_nan=False, ge=0.0)]  # >= 0
Ratio = Annotated[StrictFloat, Field(allow_inf_nan=False, gt=0.0, le=1.0)]  # (0, 1]
OpenFraction = Annotated[StrictFloat, Field(allow_inf_nan=False, gt=0.0, lt=1.0)]  # (0, 1)
Fraction = Annotated[StrictFloat, Field(allow_inf_nan=False, ge=0.0, lt=1.0)]  # [0, 1)


def _no_repeats(v: Any) -> Any:
    if isinstance(v, list) and len(set(v)) != len(v):
        raise ValueError("values repeat")
    return v


class ComponentSpec(_Strict):
    """A registered component: ``name`` plus parameters overriding its defaults."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DatasetSpec(ComponentSpec):
    """The dataset and how its EEG is prepared (every preparation key is part of the comparison context)."""

    subjects: Literal["all"] | list[PositiveInt] = "all"
    channels: Literal["all"] | list[str] = "all"
    window: Literal["all"] | tuple[Number, Number] = "all"
    n_times: NonNegInt = 0
    train_averaging: Averaging = "all"
    test_averaging: Averaging = "all"
    standardize: StrictBool = True
    #: "test": the dataset's separate test split (unseen concepts); "train-heldout": held-out images of the
    #: training concepts (the seed without --separate_test), heldout_fraction of each concept's images
    test_split: Literal["test", "train-heldout"] = "test"
    heldout_fraction: OpenFraction = 0.1
    heldout_seed: Seed = 0

    @field_validator("window")
    @classmethod
    def _window_order(cls, v: Any) -> Any:
        if v != "all" and not v[0] < v[1]:
            raise ValueError("window start must be before its end")
        return v

    @field_validator("subjects", "channels")
    @classmethod
    def _unique_subjects(cls, v: Any, info: Any) -> Any:
        if v != "all" and (not v or len(set(v)) != len(v)):
            raise ValueError(f'{info.field_name} must be a non-empty list without repeats, or "all"')
        return v


class ProtocolSpec(_Strict):
    """How subjects become folds."""

    name: Literal["intra", "loso", "pooled"] = "loso"
    folds: Literal["all"] | list[PositiveInt] = "all"

    @field_validator("folds")
    @classmethod
    def _unique_folds(cls, v: Any) -> Any:
        if v != "all" and not v:
            raise ValueError('folds must be a non-empty list of subjects, or "all"')
        return _no_repeats(v)


class ValidationSpec(_Strict):
    """The validation split used for model selection, early stopping and plateau schedules."""

    fraction: Fraction = 0.2
    by: Literal["image", "concept", "trial"] = "image"
    split: Literal["train", "test"] = "train"
    selection: Literal["best-val", "last"] = "best-val"


def _batch_cells_value(v: Any) -> Any:
    """``[train]``/``[finetune] batch_cells``, refused in one line naming every accepted form (rather than
    pydantic's error for one member of the union)."""
    if v is True or v is False or v == "auto" or (type(v) is int and v >= 1):
        return v
    raise ValueError('use false, true, "auto" or a number of cells >= 1')


class TrainSpec(_Strict):
    """Optimisation of one stage (AdamW/Adam, warmup then cosine or plateau, early stopping)."""

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 512
    lr: Positive = 1e-3
    min_lr: NonNegative = 1e-7
    weight_decay: NonNegative = 0.1
    optimizer: Literal["adamw", "adam"] = "adamw"
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)
    eps: Positive = 1e-8
    warmup_epochs: NonNegInt = 0
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    plateau_factor: OpenFraction = 0.1
    plateau_patience: NonNegInt = 10
    patience: NonNegInt = 0
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    grad_clip: NonNegative = 0.0
    compile: StrictBool = False
    text_prompt: str = "This picture is {concept}"
    #: drop the last partial batch of each epoch (a torch DataLoader's drop_last); False trains on every trial
    drop_last: StrictBool = True
    #: train cells of one recipe that differ only in placement together, as one stacked model (false, the default:
    #: one by one; "auto": up to 8 at a time where a timed step says it pays; N: up to N). Not part of any identity
    batch_cells: Literal["auto"] | StrictBool | PositiveInt = False

    @field_validator("batch_cells", mode="before")
    @classmethod
    def _batch_cells(cls, v: Any) -> Any:
        return _batch_cells_value(v)


#: Training keys: name -> (type, default), read from :class:`TrainSpec`. Shared by ``[train]`` and (all optional)
#: ``[finetune]``.
TRAIN_FIELDS: dict[str, tuple[Any, Any]] = {
    name: (typing.get_type_hints(TrainSpec, include_extras=True)[name], field.default)
    for name, field in TrainSpec.model_fields.items()
}


class _FinetuneStage(_Strict):
    """The finetune stage's own keys (:data:`FinetuneSpec` adds every training key, optional)."""

    training_ratios: list[Ratio] = [1.0]  # [] drops the stage (e.g. --set finetune.training_ratios=[])
    task: ComponentSpec | None = None  # the finetune cells' task (default: [task])

    @field_validator("training_ratios")
    @classmethod
    def _unique_ratios(cls, v: Any) -> Any:
        return _no_repeats(v)

    @field_validator("batch_cells", mode="before", check_fields=False)  # a training key FinetuneSpec adds
    @classmethod
    def _batch_cells(cls, v: Any) -> Any:
        return v if v is None else _batch_cells_value(v)


if TYPE_CHECKING:  # the training keys are read through Spec.finetune_train(), as a TrainSpec
    FinetuneSpec = _FinetuneStage
else:
    FinetuneSpec = create_model(
        "FinetuneSpec", __base__=_FinetuneStage, **{k: (t | None, None) for k, (t, _) in TRAIN_FIELDS.items()}
    )
    FinetuneSpec.__doc__ = "Finetune stage: training keys not given here are inherited from [train]."


class ExecutorSpec(ComponentSpec):
    """``[executor]``: ``name`` plus parameters, given under ``params`` or inline
    (``--set executor.partition=gpu`` is ``--set executor.params.partition=gpu``)."""

    name: str = "local"

    @model_validator(mode="before")
    @classmethod
    def _inline_params(cls, data: Any) -> Any:
        if isinstance(data, dict):
            inline = {k: v for k, v in data.items() if k not in ("name", "params")}
            if inline:
                params = dict(data.get("params") or {})
                params.update(inline)
                data = {"name": data.get("name", "local"), "params": params}
        return data


class PathsSpec(_Strict):
    results: str = ""
    cache: str = ""


#: the components a spec gets when it names none (its ``[loss]`` / ``[task]`` tables are optional)
DEFAULT_COMPONENTS = {"loss": "clip", "task": "retrieval"}


class Spec(_Strict):
    """A validated benchmark spec (see docs/specs.md)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    description: str = ""
    seeds: Annotated[list[Seed], Field(min_length=1)] = Field(default_factory=lambda: [0])
    dataset: DatasetSpec
    backbone: ComponentSpec
    image_encoder: ComponentSpec
    loss: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name=DEFAULT_COMPONENTS["loss"]))
    task: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name=DEFAULT_COMPONENTS["task"]))
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    finetune: FinetuneSpec | None = None
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    paths: PathsSpec = Field(default_factory=PathsSpec)
    #: ``[[variants]]``: configurations compared in one plan, each a ``name`` plus overrides of the tables
    #: above (see :func:`expand_variants`); empty: the spec is one configuration
    variants: list[dict[str, Any]] = Field(default_factory=list)

    #: where the spec came from (for messages and relative paths); not part of any hash
    source: str = Field(default="<dict>", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _default_component_names(cls, data: Any) -> Any:
        """A ``[loss]``/``[task]`` table without a ``name`` (``--set task.params.kway=[2, 4]`` on a spec that
        leaves the task to its default) keeps the default component's name."""
        if isinstance(data, dict):
            for table in DEFAULT_COMPONENTS:
                value = data.get(table)
                if isinstance(value, dict) and "name" not in value:
                    data = {**data, table: {"name": DEFAULT_COMPONENTS[table], **value}}
        return data

    @model_validator(mode="after")
    def _no_ratios_no_finetune(self) -> Spec:
        if self.finetune is not None and not self.finetune.training_ratios:
            self.finetune = None
        return self

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import re

        names = []
        for i, variant in enumerate(v):
            name = variant.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:+-]*", name):
                raise ValueError(f"variant {i + 1} needs a name (letters, digits, . _ : + -), got {name!r}")
            unknown = sorted(set(variant) - {"name"} - set(VARIANT_KEYS))
            if unknown:
                close = difflib.get_close_matches(unknown[0], VARIANT_KEYS, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"variant {name!r}: {unknown[0]!r} cannot vary{hint} (a variant sets "
                    f"{', '.join(VARIANT_KEYS)}; the rest is shared)"
                )
            names.append(name)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names repeat: {', '.join(repeated)}")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds repeat: {v}")
        return v

    def finetune_train(self) -> TrainSpec:
        """The finetune stage's training settings: ``[finetune]`` keys over ``[train]``."""
        if self.finetune is None:
            raise SpecError(f"{self.source}: no [finetune] table")
        merged = self.train.model_dump()
        merged.update({k: v for k, v in self.finetune.model_dump().items() if k in TRAIN_FIELDS and v is not None})
        return TrainSpec(**merged)

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain TOML-able values (defaults filled in)."""
        return self.model_dump(mode="json")

    def hash(self) -> str:
        return stable_hash(self.as_dict())


#: what a ``[[variants]]`` entry may set; the dataset, executor and paths are shared by every variant (one
#: comparison context, one data check, one results store)
VARIANT_KEYS = ("backbone", "image_encoder", "loss", "task", "protocol", "validation", "train", "finetune", "seeds")
#: tables that name a component: a variant's table with a ``name`` replaces the base's (its parameters start
#: from the new component's defaults); without one it is merged into the base's
_COMPONENT_TABLES = ("backbone", "image_encoder", "loss", "task")


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def expand_variants(spec: Spec) -> list[tuple[str, Spec]]:
    """``[(variant name, its complete spec)]``: the spec's ``[[variants]]`` applied to its other tables.

    A variant's component table with a ``name`` (``backbone = {name = "eegnet"}``) replaces the base's; any
    other table is merged key by key into the base's (``train = {lr = 0.01}`` changes only ``lr``). Each
    result is validated as a spec of its own and has no variants; a spec without variants is one variant,
    named after its backbone. The cells of a variant are those of the same spec written without variants,
    so identical recipes keep their cell keys.
    """
    if not spec.variants:
        return [(spec.backbone.name, spec)]
    base = spec.model_dump(mode="python", exclude={"variants"})
    out = []
    for variant in spec.variants:
        data = copy.deepcopy(base)
        for key, value in variant.items():
            if key == "name":
                continue
            if key in _COMPONENT_TABLES and isinstance(value, dict) and "name" in value:
                data[key] = copy.deepcopy(value)
            elif key == "finetune" and value is None:
                data[key] = None
            else:
                data[key] = _merge(data.get(key), value)
        where = f"{spec.source} [[variants]] {variant['name']!r}"
        try:
            one = Spec(**data)
        except ValidationError as exc:
            raise SpecError(format_error(exc, where)) from None
        one.source = spec.source
        out.append((str(variant["name"]), one))
    return out


# --------------------------------------------------------------------------------------------------
# loading, overrides, messages
# --------------------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (``5``, ``[1, 2]``, ``"x"``, ``true``); a bare word stays a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(
    data: dict[str, Any], overrides: Iterable[str] | Mapping[str, Any] | None, source: str = ""
) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key overrides set (``["train.epochs=5"]`` or ``{"train.epochs": 5}``)."""
    out = copy.deepcopy(data)
    if not overrides:
        return out
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=5")
            items.append((key.strip(), parse_value(value.strip())))
    for key, value in items:
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise SpecError(f"{source}: --set {key}: {'.'.join(parts[: i + 1])} is a value, not a table")
            node = child
        node[parts[-1]] = value
    return out


def load_spec(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any] | Spec,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> Spec:
    """Read and validate a spec (a TOML path, a parsed dict or a Spec) with optional overrides.

    Raises :class:`~eegbench.errors.SpecError` with one line naming file, table and key.
    """
    if isinstance(path_or_dict, Spec):
        if not overrides:
            return path_or_dict
        source = path_or_dict.source
        data = path_or_dict.as_dict()
    elif isinstance(path_or_dict, Mapping):
        source = "<dict>"
        data = dict(path_or_dict)
    else:
        path = Path(path_or_dict)
        source = str(path)
        if path.is_dir():
            specs = sorted(p.name for p in path.glob("*.toml"))[:5]
            hint = f" (specs there: {', '.join(specs)})" if specs else ""
            raise SpecError(f"{source} is a directory; give a spec file, e.g. {source}/quick.toml{hint}")
        if not path.is_file():
            raise SpecError(f"spec file {source} not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{source}: not valid TOML: {exc}") from None
        data.setdefault("name", path.stem.lower().replace("_", "-"))
    data = apply_overrides(data, overrides, source)
    data.pop("source", None)
    try:
        spec = Spec(**data)
    except ValidationError as exc:
        raise SpecError(format_error(exc, source)) from None
    spec.source = source
    if spec.variants:
        expand_variants(spec)  # each variant's settings are checked now, naming the variant
    return spec


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class a location's last key belongs to."""
    model: type[BaseModel] | None = Spec
    for part in loc[:-1]:
        if not isinstance(part, str) or model is None:
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def format_error(exc: ValidationError, source: str) -> str:
    """One line for the first validation error: ``file: [table] key: problem``."""
    errors = exc.errors()
    err = errors[0]
    # inside a union (e.g. "all" or a list), report the branch that matches the value's kind
    if err["type"] == "literal_error" and not isinstance(err.get("input"), str):
        others = [e for e in errors if e["type"] != "literal_error" and e["loc"][:2] == err["loc"][:2]]
        if others:
            err = others[0]
    loc = tuple(
        p
        for p in err["loc"]
        if not (
            isinstance(p, str)
            and (p.startswith(("literal[", "list[", "tuple[", "function-")) or p in ("int", "str", "float", "bool"))
        )
    )
    keys = [p for p in loc if isinstance(p, str)]
    table = ".".join(keys[:-1])
    key = keys[-1] if keys else ""
    where = f"{source}: " + (f"[{table}] " if table else "") + (key or "(top level)")
    etype = err["type"]
    if etype == "extra_forbidden":
        model = _model_at(tuple(keys))
        allowed = sorted(model.model_fields) if model else []
        allowed = [a for a in allowed if a != "source"]
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        return (
            f"{source}: " + (f"[{table}] " if table else "") + f"unknown key {key!r}{hint} (keys: {', '.join(allowed)})"
        )
    if etype == "missing":
        if isinstance(err["loc"][-1], int):
            return f"{where}: too few values"
        return f"{where}: missing (required)"
    literal_errors = [
        e
        for e in errors
        if e["type"] == "literal_error" and tuple(e["loc"][: len(keys)]) == tuple(err["loc"][: len(keys)])
    ]
    if etype == "literal_error" or (literal_errors and isinstance(err.get("input"), str)):
        expected = (literal_errors or [err])[0].get("ctx", {}).get("expected", "")
        choices = [c.strip().strip("'\"") for c in expected.replace(" or ", ",").split(",") if c.strip()]
        value = err.get("input")
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value, choices, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
        extra = " or a positive integer" if key in ("train_averaging", "test_averaging") else ""
        return f"{where}: {value!r} is not allowed{hint} (allowed: {', '.join(repr(c) for c in choices)}{extra})"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{where}: {msg[0].lower() + msg[1:] if msg else msg} (got {err.get('input')!r})"
