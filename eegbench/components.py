"""Component descriptions: what a plugin registers for each thing in the zoo.

A :class:`Component` is a frozen record (MTEB's ``ModelMeta``, timm's ``PretrainedCfg``): reading it imports
nothing heavy. Its ``factory`` is an import path ``"package.module:function"`` (or a callable) that is only
imported when the component is built, so ``eegbench list`` stays fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import EegbenchError

#: The component kinds, in the order the CLI lists them.
KINDS: tuple[str, ...] = ("dataset", "backbone", "image-encoder", "loss", "task", "executor")

#: Arguments the caller supplies when building a component of each kind (the "signal" or context
#: arguments, braindecode-style). They are not parameters: they are not in ``defaults`` and not hashed
#: from the component record, because the engine derives them from the data.
CONTEXT_ARGS: Mapping[str, tuple[str, ...]] = {
    "dataset": ("root",),
    "backbone": ("n_chans", "n_times", "sfreq", "chs_info", "subjects"),
    "image-encoder": (),
    "loss": (),
    "task": (),
    "executor": (),
}


@dataclass(frozen=True)
class Component:
    """One entry of the zoo.

    Attributes:
        kind: one of :data:`KINDS`.
        name: lowercase-with-dashes (``resnet1d``) or a family form (``braindecode:EEGNetv4``).
        summary: one line for tables.
        factory: ``"module:callable"`` imported on first use, or a callable. Called as
            ``factory(**context, **params)`` and returns the component object.
        defaults: the default parameters; the only parameter names accepted unless ``open_params``.
        citation: a short reference (authors, year, venue) or ``""``.
        open_params: accept parameters beyond ``defaults`` (families that forward kwargs to a library).
        notes: free-form remarks shown by ``eegbench info`` (e.g. an input constraint).
        plugin: the distribution that registered it; filled in by the registry.
        entry_point: the entry-point name of the plugin module; filled in by the registry.
        alias_of: for a short name, the canonical component it stands for (``atcnet`` → ``braindecode:ATCNet``);
            ``eegbench list`` folds it into that row.
        signal: what a backbone reads (``"EEG"``; ``"sEMG"`` for braindecode's EMG models), ``""`` if unsaid.
        fits: input shapes (``"17x128@100"``: channels x samples @ Hz) a build check recorded the backbone as
            building at; ``None`` when never checked. Recorded by the plugin's maintainer script or test,
            never computed when listing.
    """

    kind: str
    name: str
    summary: str
    factory: str | Callable[..., Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    citation: str = ""
    open_params: bool = False
    notes: str = ""
    plugin: str = ""
    entry_point: str = ""
    alias_of: str = ""
    signal: str = ""
    fits: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EegbenchError(f"component {self.name!r} has unknown kind {self.kind!r} (kinds: {', '.join(KINDS)})")
        if not self.name or self.name != self.name.strip():
            raise EegbenchError(f"invalid component name {self.name!r}")

    def load_factory(self) -> Callable[..., Any]:
        """Import and return the factory callable (the only place a component's heavy imports happen)."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        if not attr:
            raise EegbenchError(f"{self.kind} {self.name!r}: factory {self.factory!r} must look like 'module:function'")
        module = importlib.import_module(module_name)
        try:
            return getattr(module, attr)
        except AttributeError:
            raise EegbenchError(f"{self.kind} {self.name!r}: {module_name} has no {attr!r}") from None

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``; unknown parameter names are refused (None keeps the default)."""
        given = {k: v for k, v in params.items() if v is not None}
        if not self.open_params:
            unknown = sorted(set(given) - set(self.defaults))
            if unknown:
                allowed = ", ".join(sorted(self.defaults)) or "none"
                raise EegbenchError(
                    f"{self.kind} {self.name!r} has no parameter {unknown[0]!r} (parameters: {allowed}; "
                    f"see `eegbench info {self.name}`)"
                )
        for key, value in given.items():
            if key in self.defaults:
                self._check_type(key, value, self.defaults[key])
        return {**dict(self.defaults), **given}

    def _check_type(self, key: str, value: Any, default: Any) -> None:
        """A value must have its default's kind: numbers for numbers, booleans for booleans, lists for lists.

        Text defaults are often sentinels (``"auto"``, ``"all"``) that a list or number may replace, so they
        accept anything; the factory validates further.
        """
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, (list, tuple)):
            ok, want = isinstance(value, (list, tuple)), "a list"
        elif isinstance(default, Mapping):
            ok, want = isinstance(value, Mapping), "a table"
        else:
            return
        if not ok:
            raise EegbenchError(
                f"{self.kind} {self.name!r}: parameter {key!r} must be {want} (default {default!r}), got {value!r}"
            )

    def build(self, context: Mapping[str, Any] | None = None, **params: Any) -> Any:
        """Build the component: ``factory(**context, **resolved params)``."""
        resolved = self.resolve_params(params)
        return self.load_factory()(**dict(context or {}), **resolved)

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
