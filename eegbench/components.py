"""Component descriptions: what a plugin registers for each thing in the zoo.

A :class:`Component` is a frozen record (MTEB's ``ModelMeta``, timm's ``PretrainedCfg``): reading it imports
nothing heavy. Its ``factory`` is an import path ``"package.module:function"`` (or a callable) that is only
imported when needed, so ``eegbench list`` stays fast.

A component's parameters and their defaults live once, in its factory's signature (as braindecode's and timm's
do): :attr:`Component.defaults` reads them by introspection on first use, and :meth:`Component.resolve_params`
validates given values against the signature with a pydantic model (strict types, unknown names refused).
A factory therefore lives in a light module (heavy imports inside its body), so reading its signature stays
cheap. What is not a user parameter: the kind's context arguments (:data:`CONTEXT_ARGS`), ``*args``, and
arguments whose names start with ``_`` (bound by the plugin, e.g. with :func:`functools.partial`). A
``**kwargs`` in the signature makes the component accept further parameters (families forwarding to a library).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from eegbench.errors import EegbenchError

#: The component kinds, in the order the CLI lists them.
KINDS: tuple[str, ...] = ("dataset", "backbone", "image-encoder", "loss", "task", "executor")

#: Arguments the caller supplies when building a component of each kind (the "signal" or context
#: arguments, braindecode-style). They are not parameters: they are not in ``defaults`` and not hashed
#: from the component record, because the engine derives them from the data.
CONTEXT_ARGS: Mapping[str, tuple[str, ...]] = {
    "dataset": ("root", "cache_root"),
    "backbone": ("n_chans", "n_times", "sfreq", "chs_info", "subjects"),
    "image-encoder": (),
    "loss": (),
    "task": (),
    "executor": (),
}

#: How a pydantic error type reads in a one-line message ("parameter 'x' must be <this>").
_WANTS = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "sequence_str": "a list",
    "dict_type": "a table",
    "mapping_type": "a table",
}


@dataclass(frozen=True)
class Component:
    """One entry of the zoo.

    Attributes:
        kind: one of :data:`KINDS`.
        name: lowercase-with-dashes (``resnet1d``) or a family form (``braindecode:EEGNetv4``).
        summary: one line for tables.
        factory: ``"module:callable"`` imported on first use, or a callable. Called as
            ``factory(**context, **params)`` and returns the component object; its signature gives the
            parameters and their defaults.
        citation: a short reference (authors, year, venue) or ``""``.
        notes: free-form remarks shown by ``eegbench info`` (e.g. an input constraint).
        plugin: the distribution that registered it; filled in by the registry.
        entry_point: the entry-point name of the plugin module; filled in by the registry.
        alias_of: for a short name, the canonical component it stands for (``atcnet`` → ``braindecode:ATCNet``);
            ``eegbench list`` folds it into that row.
        signal: what a backbone reads (``"EEG"``; ``"sEMG"`` for braindecode's EMG models), ``""`` if unsaid.
        fits: input shapes (``"17x128@100"``: channels x samples @ Hz) a build check recorded the backbone as
            building at; ``None`` when never checked. Recorded by the plugin's maintainer script or test,
            never computed when listing.
        imports: modules the factory imports when it builds (a heavy library, e.g. ``("braindecode.models",)``):
            the local executor's worker processes import them once, in their fork server, before any cell.
        check: for a component whose build imports torch, ``"module:callable"`` (or a callable) from a light
            module that refuses, as building would, the parameters it cannot be built with: called with the
            resolved parameters by :meth:`validate`, so checking a spec does not build it.
    """

    kind: str
    name: str
    summary: str
    factory: str | Callable[..., Any]
    citation: str = ""
    notes: str = ""
    plugin: str = ""
    entry_point: str = ""
    alias_of: str = ""
    signal: str = ""
    fits: tuple[str, ...] | None = None
    imports: tuple[str, ...] = ()
    check: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EegbenchError(f"component {self.name!r} has unknown kind {self.kind!r} (kinds: {', '.join(KINDS)})")
        if not self.name or self.name != self.name.strip():
            raise EegbenchError(f"invalid component name {self.name!r}")

    def __getstate__(self) -> dict[str, Any]:
        # the fields only: what is read from the signature (a pydantic model class among it) is rebuilt on use
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def load_factory(self) -> Callable[..., Any]:
        """Import and return the factory callable (the only place a component's plugin module is imported)."""
        return self._load("factory", self.factory)

    def _load(self, field: str, target: str | Callable[..., Any]) -> Callable[..., Any]:
        if callable(target):
            return target
        module_name, _, attr = target.partition(":")
        if not attr:
            raise EegbenchError(f"{self.kind} {self.name!r}: {field} {target!r} must look like 'module:function'")
        module = importlib.import_module(module_name)
        try:
            loaded: Callable[..., Any] = getattr(module, attr)
        except AttributeError:
            raise EegbenchError(f"{self.kind} {self.name!r}: {module_name} has no {attr!r}") from None
        return loaded

    # -- the parameters, read from the factory's signature ---------------------------------------------
    @functools.cached_property
    def _parameters(self) -> tuple[list[inspect.Parameter], bool]:
        """(the user parameters of the factory's signature, whether it takes ``**kwargs``)."""
        factory = self.load_factory()
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError) as exc:
            raise EegbenchError(f"{self.kind} {self.name!r}: cannot read the factory's signature ({exc})") from None
        context = set(CONTEXT_ARGS[self.kind])
        params, open_params = [], False
        for p in signature.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                open_params = True
            elif (
                p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.name not in context
                and not p.name.startswith("_")
            ):
                params.append(p)
        return params, open_params

    @functools.cached_property
    def defaults(self) -> dict[str, Any]:
        """The default parameters, from the factory's signature, as TOML-like values (tuples read as lists)."""
        return {p.name: _plain(p.default) for p in self._parameters[0] if p.default is not p.empty}

    @property
    def open_params(self) -> bool:
        """Whether parameters beyond the signature's are accepted (the factory takes ``**kwargs``)."""
        return self._parameters[1]

    @functools.cached_property
    def _validator(self) -> Any:
        """A pydantic model of the signature's parameters: strict types, extra names refused unless open."""
        from pydantic import ConfigDict, Field, create_model

        hints = _type_hints(self.load_factory())
        spec: dict[str, Any] = {}
        for i, p in enumerate(self._parameters[0]):
            hint = hints.get(p.name, _hint_from_default(p.default))
            # fields named p0, p1, ... with the parameter's name as alias: a parameter may be called anything
            # (``copy``, ``model_name``) without clashing with pydantic's own attributes
            spec[f"p{i}"] = (hint, Field(... if p.default is p.empty else _plain(p.default), alias=p.name))
        config = ConfigDict(strict=True, arbitrary_types_allowed=True, extra="allow" if self.open_params else "forbid")
        return create_model("ComponentParams", __config__=config, **spec)

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``, validated against the factory's signature (None keeps the default).

        The given values are returned as given (validation does not convert them: a cell's identity is what the
        spec said); unknown names and wrong types are one line naming the parameter and the value.
        """
        given = {k: v for k, v in params.items() if v is not None}
        names = [p.name for p in self._parameters[0]]
        if not self.open_params:
            unknown = sorted(set(given) - set(names))
            if unknown:
                close = difflib.get_close_matches(unknown[0], names, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else ""
                allowed = ", ".join(sorted(names)) or "none"
                raise EegbenchError(
                    f"{self.kind} {self.name!r} has no parameter {unknown[0]!r}{hint} (parameters: {allowed}; "
                    f"see `eegbench info {self.name}`)"
                )
        from pydantic import ValidationError

        try:
            self._validator(**given)
        except ValidationError as exc:
            raise EegbenchError(self._type_message(exc.errors(), given)) from None
        return {**self.defaults, **given}

    def _type_message(self, errors: Sequence[Any], given: Mapping[str, Any]) -> str:
        """pydantic's errors of the first parameter at fault as one line: what it must be, its default, the value."""
        key = errors[0]["loc"][0]
        wants: list[str] = []
        for err in errors:
            if err["loc"][:1] != (key,):
                continue
            if err["type"] == "missing":
                return f"{self.kind} {self.name!r}: parameter {key!r} is required (see `eegbench info {self.name}`)"
            want = _WANTS.get(err["type"]) or str(err["msg"]).removeprefix("Input should be ").removeprefix(
                "Value error, "
            )
            items = [f"[{i}]" for i in err["loc"][1:] if isinstance(i, int)]
            if items:  # an element of a list or table is at fault: say which
                want = f"a list ({want} at {''.join(items)})"
            if want not in wants:
                wants.append(want)
        default = f" (default {self.defaults[key]!r})" if key in self.defaults else ""
        return (
            f"{self.kind} {self.name!r}: parameter {key!r} must be {' or '.join(wants)}{default}, "
            f"got {given.get(key)!r}"
        )

    def build(self, context: Mapping[str, Any] | None = None, **params: Any) -> Any:
        """Build the component: ``factory(**context, **resolved params)``."""
        resolved = self.resolve_params(params)
        return self.load_factory()(**dict(context or {}), **resolved)

    def validate(self, context: Mapping[str, Any] | None = None, **params: Any) -> None:
        """Raise what :meth:`build` would raise for these parameters: through :attr:`check` when the component
        has one (nothing is built), else by building it."""
        if self.check is None:
            self.build(context, **params)
        else:
            self._load("check", self.check)(**self.resolve_params(params))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "entry_point": self.entry_point,
            "summary": self.summary,
            "citation": self.citation,
            "defaults": dict(self.defaults),
            "notes": self.notes,
            "alias_of": self.alias_of,
            "signal": self.signal,
            "fits": None if self.fits is None else list(self.fits),
        }


def _plain(value: Any) -> Any:
    """A signature default as a TOML-like value: tuples as lists, mappings as dicts (recursively)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's evaluated annotations; none (types inferred from defaults) when they cannot be evaluated."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    if isinstance(target, type):  # a class as factory: its constructor's annotations
        target = typing.cast(type[Any], target).__init__
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation naming what only a type checker imports: fall back to the defaults
        return {}


def _hint_from_default(default: Any) -> Any:
    """The type an unannotated parameter's default implies: numbers for numbers, booleans for booleans, lists for
    lists; text defaults are often sentinels (``"auto"``, ``"all"``) that a list or number may replace."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, (list, tuple)):
        return Sequence[Any]
    if isinstance(default, Mapping):
        return Mapping[str, Any]
    return Any
