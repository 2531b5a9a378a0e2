"""The plan: a validated spec expanded into cells (fold × seed × stage × training ratio).

Each :class:`~eegbench.planning.recipe.Cell` is a frozen :class:`~eegbench.planning.recipe.Recipe` (components with
their defaults filled in, preparation, validation, training) and a :class:`~eegbench.planning.recipe.Placement` (fold,
seed, stage, ratio, subjects); its ``key`` is the stable hash of both, so a cell is identified by *what* it
computes, not by the spec file it came from. Building a plan resolves every component name and parameter through the
registry and checks the honest-protocol invariants, so a bad spec fails here, in one line, before anything trains.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eegbench.errors import EegbenchError, SpecError
from eegbench.interfaces import Dataset
from eegbench.planning.recipe import STAGES, Cell, ComponentRef, Placement, Preparation, Recipe, Training, Validation
from eegbench.planning.spec import Spec, load_spec

__all__ = ["STAGES", "Cell", "Plan", "build_plan"]


@dataclass
class Plan:
    spec: Spec
    cells: list[Cell]
    #: ``{cell key: variant name}`` when the spec has ``[[variants]]`` (a key several variants share: the first)
    variants: dict[str, str] = field(default_factory=dict)

    def select(self, only: Iterable[str] | Mapping[str, Any] | None) -> list[Cell]:
        """Cells matching every ``KEY=VALUE`` filter (keys: stage, fold, seed, ratio, test_subject,
        protocol, key), plus the stored-or-not dependencies they need (the runner skips stored ones)."""
        filters = _parse_only(only)
        if not filters:
            return list(self.cells)
        variant = filters.pop("variant", None)
        if variant is not None and variant not in set(self.variants.values()):
            import difflib

            names = list(dict.fromkeys(self.variants.values()))
            close = difflib.get_close_matches(variant, names, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise SpecError(
                f"--only variant={variant}: no such variant in {self.spec.name!r}{hint} "
                f"(variants: {', '.join(names) or 'none; the spec has no [[variants]]'})"
            )
        chosen = [
            c
            for c in self.cells
            if all(_matches(c, k, v) for k, v in filters.items())
            and (variant is None or self.variants.get(c.key) == variant)
        ]
        if not chosen:
            raise SpecError(
                f"--only {' '.join(f'{k}={v}' for k, v in filters.items())} matches no cell of {self.spec.name!r}"
            )
        by_key = {c.key: c for c in self.cells}
        keys = {c.key for c in chosen}
        for c in chosen:
            keys.update(c.depends_on)
        return [by_key[k] for k in by_key if k in keys]


_ONLY_KEYS = {"stage", "fold", "seed", "ratio", "training_ratio", "test_subject", "protocol", "key", "variant"}


def _parse_only(only: Iterable[str] | Mapping[str, Any] | None) -> dict[str, str]:
    if not only:
        return {}
    if isinstance(only, Mapping):
        items = list(only.items())
    else:
        items = []
        for o in only:
            key, sep, value = str(o).partition("=")
            if not sep or not key.strip() or not value.strip():
                raise SpecError(
                    f"--only {o!r} must look like KEY=VALUE, e.g. --only fold=sub-03 (fields: "
                    f"{', '.join(sorted(_ONLY_KEYS))})"
                )
            items.append((key, value))
    out = {}
    for k, v in items:
        k = str(k).strip()
        if k not in _ONLY_KEYS:
            import difflib

            close = difflib.get_close_matches(k, sorted(_ONLY_KEYS), n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"--only {k}: unknown cell field{hint} (fields: {', '.join(sorted(_ONLY_KEYS))})")
        out["training_ratio" if k == "ratio" else k] = str(v).strip()
    return out


def _matches(cell: Cell, key: str, value: str) -> bool:
    have = getattr(cell, key)
    if key == "key":
        return cell.key.startswith(value)
    if key == "fold" and value.isdigit():
        value = f"sub-{int(value):02d}"
    if isinstance(have, float):
        try:
            return abs(have - float(value)) < 1e-9
        except ValueError:
            return False
    return str(have) == value


def _resolve_component(kind: str, ref: Any, source: str, table: str) -> dict[str, Any]:
    from eegbench.components import CONTEXT_ARGS
    from eegbench.registry import get_registry

    try:
        comp = get_registry().get(kind, ref.name)
        # context arguments (a dataset's ``root``) are accepted beside the parameters and kept with them,
        # so they reach the factory and are part of the cell's identity
        context = {k: v for k, v in ref.params.items() if k in CONTEXT_ARGS[kind]}
        params = {**comp.resolve_params({k: v for k, v in ref.params.items() if k not in context}), **context}
    except SpecError:
        raise
    except Exception as exc:  # unknown name / parameter: keep the registry's one line, locate it
        msg = str(exc.args[0]) if exc.args else str(exc)
        raise SpecError(f"{source}: [{table}] {msg}") from None
    bad = _bad_param_value(params)
    if bad is not None:
        raise SpecError(f"{source}: [{table}] params.{bad[0]} = {bad[1]!r}: {bad[2]}")
    return {"name": comp.name, "params": params, "plugin": comp.plugin}


def _bad_param_value(value: Any, key: str = "") -> tuple[str, Any, str] | None:
    """The first (dotted key, value, why) inside a component's parameters that no component can take: inf or
    nan, or a TOML date/time (parameters are numbers, text, booleans, arrays and tables); None when all fit."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return key, value, "must be a finite number"
    if value is not None and not isinstance(value, (str, int, float, bool, list, tuple, Mapping)):
        return key, value, f"a {type(value).__name__} is not a parameter value (quote it to pass text)"
    items = (
        value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    )
    for k, v in items:
        found = _bad_param_value(v, f"{key}.{k}" if key else str(k))
        if found is not None:
            return found
    return None


def _build_checked(kind: str, component: Mapping[str, Any], source: str, table: str) -> Any:
    """Build a cheap component at plan time; whatever its factory refuses becomes one line naming the table."""
    from eegbench.registry import create

    return _one_line_refusal(create, kind, component, source, table)


def _validate_checked(kind: str, component: Mapping[str, Any], source: str, table: str) -> None:
    """Check a component's parameters at plan time without keeping it (a loss with a light ``check`` is not even
    built, so no torch is imported); whatever it refuses becomes one line naming the table."""
    from eegbench.registry import validate

    _one_line_refusal(validate, kind, component, source, table)


def _one_line_refusal(
    action: Callable[..., Any], kind: str, component: Mapping[str, Any], source: str, table: str
) -> Any:
    try:
        return action(kind, component["name"], **component["params"])
    except EegbenchError as exc:
        raise SpecError(f"{source}: [{table}] {exc}") from None
    except (ValueError, TypeError, OverflowError, ZeroDivisionError, ArithmeticError) as exc:
        raise SpecError(
            f"{source}: [{table}] {component['name']!r} refuses its parameters "
            f"{dict(component['params'])}: {type(exc).__name__}: {exc}"
        ) from None


def input_identity(components: Mapping[str, Any]) -> dict[str, Any]:
    """What the cells read, by identity, so a stored cell is never reused after its inputs changed.

    ``data``: the dataset's ``source_identity()`` (changes with the content of the files it reads).
    ``files``: (path, size, sha256 of the bytes, memoised by ``paths.file_digest``) of every file an image
    encoder or backbone parameter names (a weights
    checkpoint, an embedding file), relative paths also looked up under the dataset root. Library weights
    named by a tag are identified by the tag itself.
    """
    from eegbench.registry import create

    data = ""
    roots: list[Path] = []
    try:
        dataset = create("dataset", components["dataset"]["name"], **components["dataset"]["params"])
        data = str(dataset.source_identity() or "")
        if getattr(dataset, "root", None):
            roots.append(Path(dataset.root))
    except EegbenchError:
        raise
    except Exception:
        data = ""
    files: dict[str, Any] = {}
    for kind in ("image_encoder", "backbone"):
        for key, value in components[kind]["params"].items():
            if not isinstance(value, str) or not value or len(value) > 4096:
                continue
            candidates = [Path(value).expanduser()] + [r / value for r in roots]
            for path in candidates:
                try:
                    if path.is_file():
                        from eegbench.paths import file_digest

                        files[f"{kind}.{key}"] = [str(path.resolve()), path.stat().st_size, file_digest(path)]
                        break
                except OSError:
                    continue
    return {"data": data, "files": files}


def dataset_subjects(spec: Spec) -> list[int]:
    """The spec's subject list; ``"all"`` asks the dataset (which may build its metadata)."""
    if spec.dataset.subjects != "all":
        return list(spec.dataset.subjects)
    from eegbench.registry import create

    try:
        ds = create("dataset", spec.dataset.name, **spec.dataset.params)
        subjects = sorted(int(s) for s in ds.subjects)
    except Exception as exc:
        raise SpecError(f'{spec.source}: [dataset] subjects = "all" needs the dataset\'s subject list: {exc}') from None
    if not subjects:
        raise SpecError(
            f"{spec.source}: [dataset] {spec.dataset.name!r} has no subjects; list them in [dataset] subjects"
        )
    return subjects


def check_invariants(spec: Spec, subjects: Sequence[int], folds: Sequence[int]) -> None:
    """Refuse specs that would break the honest protocol (one line each).

    - validation is drawn from the *training* split only (never from test images);
    - choosing a checkpoint, stopping early or reducing the learning rate on a plateau needs a validation
      split (otherwise they would have to look at the test set);
    - under LOSO the test subject never trains the pretrain stage, and the finetune stage only uses the
      test subject's training split, whose images are disjoint from the test split's.
    """
    src = spec.source
    v = spec.validation
    if v.split != "train":
        raise SpecError(
            f"{src}: [validation] split = {v.split!r} would select checkpoints on the test images; "
            'validation must be drawn from training images (split = "train")'
        )
    stages = [("train", spec.train)] + ([("finetune", spec.finetune_train())] if spec.finetune else [])
    for table, tr in stages:
        needs = [
            what
            for what, on in (
                ('selection = "best-val"', v.selection == "best-val"),
                (f'[{table}] schedule = "plateau"', tr.schedule == "plateau"),
                (f"[{table}] patience = {tr.patience}", tr.patience > 0),
            )
            if on
        ]
        if needs and v.fraction <= 0:
            raise SpecError(
                f"{src}: [validation] fraction = 0 but {needs[0]} needs a validation split "
                '(set [validation] fraction > 0, or selection = "last" without plateau/early stopping)'
            )
        try:  # the prompt of text-aligned losses; a bad placeholder would fail inside every cell
            tr.text_prompt.format(concept="dog")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise SpecError(
                f"{src}: [{table}] text_prompt = {tr.text_prompt!r}: not a template with only "
                f"{{concept}} ({type(exc).__name__}: {exc}); write braces as {{{{ }}}}"
            ) from None
        if tr.warmup_epochs > tr.epochs:
            raise SpecError(f"{src}: [{table}] warmup_epochs = {tr.warmup_epochs} exceeds epochs = {tr.epochs}")
    missing = sorted(set(folds) - set(subjects))
    if missing:
        raise SpecError(f"{src}: [protocol] folds {missing} are not among [dataset] subjects {list(subjects)}")
    if spec.protocol.name == "loso" and len(subjects) < 2:
        raise SpecError(f'{src}: [protocol] name = "loso" needs at least 2 subjects, got {list(subjects)}')
    if spec.finetune is not None and spec.protocol.name != "loso":
        raise SpecError(
            f'{src}: [finetune] needs [protocol] name = "loso" (it adapts a fold\'s model to its held-out '
            "subject); drop the stage with --set finetune.training_ratios=[]"
        )


def build_plan(spec: Spec | Any, overrides: Any = None) -> Plan:
    """Expand a spec (or a path / dict) into cells; refuse dishonest or unresolvable specs."""
    spec = load_spec(spec, overrides)
    if spec.variants:
        return _variants_plan(spec)
    src = spec.source
    components = {
        "dataset": _resolve_component("dataset", spec.dataset, src, "dataset"),
        "backbone": _resolve_component("backbone", spec.backbone, src, "backbone"),
        "image_encoder": _resolve_component("image-encoder", spec.image_encoder, src, "image_encoder"),
        "loss": _resolve_component("loss", spec.loss, src, "loss"),
        "task": _resolve_component("task", spec.task, src, "task"),
    }
    ft_task = (
        _resolve_component("task", spec.finetune.task, src, "finetune.task")
        if spec.finetune is not None and spec.finetune.task is not None
        else None
    )
    executor = _resolve_component("executor", spec.executor, src, "executor")
    # cheap to build: bad executor, loss or task settings fail at plan time (--dry-run), before training
    _validate_checked("executor", executor, src, "executor")
    _validate_checked("loss", components["loss"], src, "loss")
    _build_checked("task", components["task"], src, "task")
    for table, task_ref in (("task", components["task"]), ("finetune.task", ft_task)):
        if (
            task_ref is not None
            and spec.dataset.test_split != "train-heldout"
            and getattr(_build_checked("task", task_ref, src, table), "needs_seen_concepts", False)
        ):
            raise SpecError(
                f"{src}: [{table}] {task_ref['name']!r} scores test trials against the training concepts: "
                'it needs [dataset] test_split = "train-heldout" (held-out images of seen concepts)'
            )
    subjects = dataset_subjects(spec)
    folds = subjects if spec.protocol.folds == "all" else list(spec.protocol.folds)
    check_invariants(spec, subjects, folds)

    d = spec.dataset
    preparation = Preparation(
        channels=None if d.channels == "all" else tuple(d.channels),
        window=None if d.window == "all" else d.window,
        n_times=d.n_times or None,
        train_averaging=d.train_averaging,
        test_averaging=d.test_averaging,
        standardize=d.standardize,
        test_split=d.test_split,
        heldout_fraction=d.heldout_fraction if d.test_split == "train-heldout" else None,
        heldout_seed=d.heldout_seed if d.test_split == "train-heldout" else None,
    )
    # the spec's name is not part of a cell's identity: two specs planning the same computation share it
    refs = {slot: ComponentRef(c["name"], c["params"]) for slot, c in components.items()}
    pretrain_recipe = Recipe(
        dataset=refs["dataset"],
        backbone=refs["backbone"],
        image_encoder=refs["image_encoder"],
        loss=refs["loss"],
        task=refs["task"],
        preparation=preparation,
        validation=Validation.from_dict(spec.validation.model_dump(mode="json")),
        train=Training.from_dict(spec.train.model_dump(mode="json")),
    )
    finetune_recipe = (
        replace(
            pretrain_recipe,
            finetune=Training.from_dict(spec.finetune_train().model_dump(mode="json")),
            finetune_task=ComponentRef(ft_task["name"], ft_task["params"]) if ft_task else None,
        )
        if spec.finetune
        else None
    )
    inputs = input_identity(components)
    spec_hash = spec.hash()

    #: (fold, test subject or None, training subjects, test subjects)
    layout: list[tuple[str, int | None, tuple[int, ...], tuple[int, ...]]]
    if spec.protocol.name == "loso":
        layout = [(f"sub-{t:02d}", t, tuple(s for s in subjects if s != t), (t,)) for t in folds]
    elif spec.protocol.name == "intra":
        layout = [(f"sub-{t:02d}", t, (t,), (t,)) for t in folds]
    else:  # pooled: one model on every subject's training data, tested on each fold subject
        layout = [("pooled", None, tuple(subjects), tuple(folds))]

    cells: list[Cell] = []
    for fold, test_subject, train_subjects, test_subjects in layout:
        for seed in spec.seeds:
            placement = Placement(
                protocol=spec.protocol.name,
                fold=fold,
                test_subject=test_subject,
                test_subjects=test_subjects,
                seed=seed,
                stage="pretrain",
                train_subjects=train_subjects,
            )
            pre = Cell(
                pretrain_recipe,
                placement,
                spec_name=spec.name,
                inputs=inputs,
                spec_hash=spec_hash,
            )
            cells.append(pre)
            if spec.finetune is None or finetune_recipe is None or test_subject is None:  # finetune: LOSO only
                continue
            # training_ratio: the share of the held-out subject's labelled (training-split) images the cell
            # touches, training and validation together (the engine draws validation inside that budget)
            for ratio in spec.finetune.training_ratios:
                cells.append(
                    Cell(
                        finetune_recipe,
                        replace(
                            placement,
                            stage="finetune",
                            train_subjects=(test_subject,),
                            training_ratio=float(ratio),
                            pretrain_train_subjects=train_subjects,
                        ),
                        spec_name=spec.name,
                        inputs=inputs,
                        pretrain_key=pre.key,
                        spec_hash=spec_hash,
                    )
                )
    return Plan(spec=spec, cells=cells)


def _variants_plan(spec: Spec) -> Plan:
    """One plan of every ``[[variants]]`` entry: each variant planned as the spec it expands to, the cells
    concatenated in variant order (a cell two variants share is planned once)."""
    from eegbench.planning.spec import expand_variants

    cells: list[Cell] = []
    names: dict[str, str] = {}
    for name, one in expand_variants(spec):
        try:
            planned = build_plan(one)
        except SpecError as exc:  # name the variant whose tables are refused
            text = str(exc)
            head = f"{spec.source}: "
            raise SpecError(
                head + f"[[variants]] {name!r}: " + (text[len(head) :] if text.startswith(head) else text)
            ) from None
        for cell in planned.cells:
            if cell.key not in names:
                names[cell.key] = name
                cells.append(cell)
    return Plan(spec=spec, cells=cells, variants=names)


def build_dataset(
    dataset_ref: ComponentRef | Cell | Mapping[str, Any], cache_dir: str | os.PathLike[str] | None = None
) -> Dataset:
    """The dataset of a recipe (``dataset_ref``: the recipe's dataset, a cell, or a cell's plain config)."""
    from eegbench.registry import create

    if isinstance(dataset_ref, Cell):
        ref = dataset_ref.recipe.dataset
    elif isinstance(dataset_ref, ComponentRef):
        ref = dataset_ref
    else:
        ref = ComponentRef.from_dict(dataset_ref["dataset"])
    # --cache / [paths] cache holds prepared EEG too: the factory's cache_root context argument (dropped when None)
    dataset: Dataset = create(
        "dataset", ref.name, cache_root=Path(cache_dir) if cache_dir is not None else None, **ref.kwargs()
    )
    return dataset
