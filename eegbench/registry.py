"""The registry: pluggy over the ``eegbench`` entry-point group, flattened into one index of components.

Shape taken from pluggy's eggsample host and pytest: one :class:`pluggy.PluginManager`, the hookspec module
added, every entry point of the group loaded (our built-ins included), ``check_pending()`` run. The index
maps ``(kind, name)`` to a :class:`~eegbench.components.Component`; the same key from two distributions is
an error naming both. Prefix families (``braindecode:``, ``open_clip:``, ``timm:``) resolve through the
``eegbench_resolve_family`` firstresult hook.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from eegbench import hookspecs
from eegbench.components import CONTEXT_ARGS, KINDS, Component
from eegbench.errors import ComponentClashError, EegbenchError, UnknownComponentError

ENTRY_POINT_GROUP = "eegbench"
#: Comma-separated entry-point names not to load (pytest's ``-p no:name``).
DISABLE_ENV = "EEGBENCH_DISABLE_PLUGINS"
#: Set to 1 to load no entry points at all (pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).
NO_AUTOLOAD_ENV = "EEGBENCH_DISABLE_PLUGIN_AUTOLOAD"

HOOK_OF_KIND = {
    "dataset": "eegbench_datasets",
    "backbone": "eegbench_backbones",
    "image-encoder": "eegbench_image_encoders",
    "loss": "eegbench_losses",
    "task": "eegbench_tasks",
    "executor": "eegbench_executors",
}

#: Accepted spellings of each kind on the command line and in the API.
KIND_ALIASES = {
    **{k: k for k in KINDS},
    **{k + "s": k for k in KINDS},
    "image_encoder": "image-encoder",
    "image-encoders": "image-encoder",
    "image_encoders": "image-encoder",
    "encoder": "image-encoder",
    "model": "backbone",
    "models": "backbone",
}


def normalize_kind(kind: str) -> str:
    """``"backbones"`` → ``"backbone"``; an unknown kind is one clear line."""
    key = kind.strip().lower()
    if key in KIND_ALIASES:
        return KIND_ALIASES[key]
    close = difflib.get_close_matches(key, list(KINDS), n=1)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    raise EegbenchError(f"unknown kind {kind!r}{hint} (kinds: {', '.join(KINDS)})")


def natural_key(text: str) -> list[Any]:
    """Sort ``EEGNet2`` before ``EEGNet10`` (timm's natural order)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class Registry:
    """All components every loaded plugin registers."""

    def __init__(self, *, autoload: bool | None = None, blocked: Iterable[str] = (), plugins: Iterable[Any] = ()):
        self.pm = pluggy.PluginManager("eegbench")
        self.pm.add_hookspecs(hookspecs)
        blocked = set(blocked) | {b.strip() for b in os.environ.get(DISABLE_ENV, "").split(",") if b.strip()}
        for name in blocked:
            self.pm.set_blocked(name)
        self.autoload_env_off = False
        if autoload is None:
            autoload = os.environ.get(NO_AUTOLOAD_ENV, "") not in ("1", "true", "yes")
            self.autoload_env_off = not autoload
        if autoload:
            try:
                self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except Exception as exc:  # a broken third-party plugin must be named, not dumped
                raise EegbenchError(f"could not load an eegbench plugin: {type(exc).__name__}: {exc}") from exc
        for plugin in plugins:
            self.pm.register(plugin)
        self.pm.check_pending()
        self._dists = {id(plugin): _dist_name(dist) for plugin, dist in self.pm.list_plugin_distributions()}
        self._index: dict[tuple[str, str], Component] | None = None
        self._lock = threading.Lock()

    # -- building the index -------------------------------------------------------------------------
    def _plugin_label(self, plugin: Any) -> str:
        if id(plugin) in self._dists:
            return self._dists[id(plugin)]
        return self.pm.get_name(plugin) or str(getattr(plugin, "__name__", repr(plugin)))

    def _collect(self) -> dict[tuple[str, str], Component]:
        index: dict[tuple[str, str], Component] = {}
        for kind, hook_name in HOOK_OF_KIND.items():
            # in registration order (pluggy answers last registered first): a clash names the earlier plugin
            # first and suggests blocking the later one
            for components, plugin in reversed(self._list_answers(hook_name, kind)):
                label = self._plugin_label(plugin) if plugin is not None else ""
                ep_name = (self.pm.get_name(plugin) or "") if plugin is not None else ""
                if not isinstance(components, (list, tuple)):
                    raise EegbenchError(
                        f"plugin {label or '?'!r} returned {type(components).__name__} from "
                        f"{hook_name}, not a list of Components"
                    )
                for comp in components:
                    if not isinstance(comp, Component):
                        raise EegbenchError(
                            f"plugin {label!r} returned {type(comp).__name__} from {hook_name}, not a Component"
                        )
                    if comp.kind != kind:
                        raise EegbenchError(f"plugin {label!r} returned {comp.kind} {comp.name!r} from {hook_name}")
                    key = (kind, comp.name)
                    comp = _with_plugin(comp, label, ep_name)
                    if key in index:
                        first = index[key]
                        raise ComponentClashError(
                            f"{kind} {comp.name!r} is registered by both {first.plugin!r} (entry point "
                            f"{first.entry_point!r}) and {comp.plugin!r} (entry point {comp.entry_point!r}); uninstall "
                            f"one or block it with {DISABLE_ENV}={comp.entry_point or '<entry-point name>'}"
                        )
                    index[key] = comp
        return index

    def _list_answers(self, hook_name: str, kind: str) -> list[tuple[Any, Any]]:
        """``[(answer, plugin or None)]`` of one list hook, called through pluggy (wrappers, ordering apply).

        pluggy returns the non-None answers in call order, which is the reverse of ``get_hookimpls()``
        without the wrappers (last registered first; ``tryfirst``/``trylast`` applied): that order pairs each
        answer with the plugin that gave it. Answers a wrapper appended after them are the wrapper's (when the
        hook has exactly one, else unlabelled). Fewer answers than plugins (one answered None) cannot be paired
        by order: each plugin is then asked alone through ``subset_hook_caller``.
        """
        hook = getattr(self.pm.hook, hook_name)
        impls = hook.get_hookimpls()
        try:
            answers = hook()
        except EegbenchError:
            raise
        except Exception as exc:
            label = self._raiser(exc, impls)
            raise EegbenchError(
                f"plugin {label!r} failed to list its {kind} components: {type(exc).__name__}: {exc}"
            ) from exc
        callers = [i.plugin for i in reversed(impls) if not (i.wrapper or i.hookwrapper)]
        wrappers = [i.plugin for i in impls if i.wrapper or i.hookwrapper]
        if len(answers) < len(callers):
            # a plugin answered None (or a wrapper dropped an answer): the order no longer pairs them; ask each
            # plugin alone, still through pluggy (its wrappers included)
            out = []
            try:
                for plugin in callers:
                    alone = self.pm.subset_hook_caller(hook_name, [p for p in callers if p is not plugin])
                    out += [(a, plugin) for a in alone()]
            except TypeError:  # pluggy keeps the plugins to leave out in a set: unhashable plugin objects
                return [(a, None) for a in answers]
            return out
        extra_owner = wrappers[0] if len(wrappers) == 1 else None
        return [(a, callers[i] if i < len(callers) else extra_owner) for i, a in enumerate(answers)]

    @property
    def index(self) -> dict[tuple[str, str], Component]:
        with self._lock:
            if self._index is None:
                self._index = self._collect()
            return self._index

    # -- queries --------------------------------------------------------------------------------------
    def list_components(
        self, kind: str | None = None, pattern: str | None = None, exclude: Iterable[str] = ()
    ) -> list[Component]:
        """Components of ``kind`` (all kinds if None) whose name matches the fnmatch ``pattern``, natural order."""
        kinds = [normalize_kind(kind)] if kind else list(KINDS)
        exclude = list(exclude)
        out = []
        for (k, name), comp in self.index.items():
            if k not in kinds:
                continue
            if pattern and not fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                continue
            if any(fnmatch.fnmatchcase(name.lower(), e.lower()) for e in exclude):
                continue
            out.append(comp)
        return sorted(out, key=lambda c: (KINDS.index(c.kind), natural_key(c.name)))

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``; families resolve through their plugin; unknown → one line."""
        kind = normalize_kind(kind)
        if not isinstance(name, str) or not name:
            raise EegbenchError(f"{kind} name must be a non-empty string, got {name!r}")
        comp = self.index.get((kind, name))
        if comp is not None:
            return comp
        if ":" in name:
            found = self.pm.hook.eegbench_resolve_family(kind=kind, name=name)  # firstresult: the owner answers
            if found is not None:
                if not isinstance(found, Component) or found.kind != kind or found.name != name:
                    raise EegbenchError(
                        f"eegbench_resolve_family answered {found!r} for {kind} {name!r}: "
                        f"expected a {kind} Component named {name!r}"
                    )
                return self._label_family_member(found)
        elif "/" in name or os.sep in name or name.endswith((".py", ".pt", ".pth", ".toml")):
            # timm refuses a path-like name without a prefix rather than guessing
            raise UnknownComponentError(
                f"{kind} name {name!r} looks like a path; components are named (see `eegbench list {kind}`)"
            )
        raise UnknownComponentError(self._unknown_message(kind, name))

    def _raiser(self, exc: BaseException, impls: list[Any]) -> str:
        """The label of the plugin whose hook implementation raised ``exc`` (found in its traceback)."""
        codes = {getattr(i.function, "__code__", None): i.plugin for i in impls}
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code in codes:
                return self._plugin_label(codes[tb.tb_frame.f_code])
            tb = tb.tb_next
        return "?"

    def _label_family_member(self, found: Component) -> Component:
        """``found`` labelled with the plugin that answered: the first implementation in pluggy's call order
        that answers for this name (pluggy tells the answer, not who gave it; the answers are cheap records)."""
        if found.plugin:
            return found
        for impl in reversed(self.pm.hook.eegbench_resolve_family.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                continue
            answer = impl.function(**{a: getattr(found, a) for a in impl.argnames})
            if answer is not None:
                return _with_plugin(found, self._plugin_label(impl.plugin), self.pm.get_name(impl.plugin) or "")
        return found

    def find(self, name: str) -> list[Component]:
        """Every component called ``name``, whatever its kind (``eegbench info NAME``)."""
        found = [c for (k, n), c in self.index.items() if n == name]
        if not found and ":" in name:
            for kind in KINDS:
                with contextlib.suppress(UnknownComponentError):
                    found.append(self.get(kind, name))  # labels the family member with its plugin
        return found

    def _unknown_message(self, kind: str | None, name: str) -> str:
        names = [n for (k, n) in self.index if kind is None or k == kind]
        lowered = {n.lower(): n for n in names}
        close = _close_matches(name.lower(), list(lowered))
        what = f"{kind} " if kind else ""
        hint = " — did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?" if close else ""
        off = f"; plugin autoload is off ({NO_AUTOLOAD_ENV})" if self.autoload_env_off else ""
        return f"unknown {what}{name!r}{hint} (eegbench list{' ' + kind if kind else ''}{off})"

    def unknown_any(self, name: str) -> UnknownComponentError:
        return UnknownComponentError(self._unknown_message(None, name))


def _close_matches(word: str, candidates: list[str], n: int = 3) -> list[str]:
    """difflib's close matches, keeping only those nearly as close as the best one."""
    scored = sorted(((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in candidates), reverse=True)
    if not scored or scored[0][0] < 0.6:
        return []
    best = scored[0][0]
    return [c for score, c in scored[:n] if score >= max(0.6, best - 0.05)]


def _with_plugin(comp: Component, label: str, entry_point: str = "") -> Component:
    from dataclasses import replace

    return replace(comp, plugin=comp.plugin or label, entry_point=comp.entry_point or entry_point)


_default: Registry | None = None
_default_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def reset_registry() -> None:
    """Forget the process-wide registry (tests that install plugins call this)."""
    global _default
    with _default_lock:
        _default = None


def _dist_name(dist: Any) -> str:
    name = getattr(dist, "name", None) or getattr(dist, "project_name", None)
    if not name:
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = str(dist)
    return name


# --------------------------------------------------------------------------------------------------
# the front door (re-exported by ``eegbench``; modules of the package import them from here)
# --------------------------------------------------------------------------------------------------
def list_components(
    kind: str | None = None, pattern: str | None = None, exclude: tuple[str, ...] = ()
) -> list[Component]:
    """Registered components of ``kind`` whose names match the fnmatch ``pattern`` (natural order)."""
    return get_registry().list_components(kind, pattern, exclude)


def get_component(kind: str, name: str) -> Component:
    """The :class:`Component` record of ``name``; unknown names raise with close matches."""
    return get_registry().get(kind, name)


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build a component by name: ``create("backbone", "resnet1d", n_chans=17, n_times=128)``.

    Context arguments of the kind (for backbones ``n_chans, n_times, sfreq, chs_info``) are passed through;
    every other keyword must be one of the component's parameters (``None`` keeps the default).
    """
    comp, context, params = _split_arguments(kind, name, kwargs)
    return comp.build(context, **params)


def validate(kind: str, name: str, **kwargs: Any) -> None:
    """Raise what :func:`create` would raise for these arguments, without building where the component has a
    light ``check`` (:meth:`Component.validate`): how a plan checks a spec's loss without importing torch."""
    comp, context, params = _split_arguments(kind, name, kwargs)
    comp.validate(context, **params)


def _split_arguments(
    kind: str, name: str, kwargs: Mapping[str, Any]
) -> tuple[Component, dict[str, Any], dict[str, Any]]:
    kind = normalize_kind(kind)
    comp = get_component(kind, name)
    context = {k: v for k, v in kwargs.items() if k in CONTEXT_ARGS[kind] and v is not None}
    if kind == "backbone":  # the signal every backbone is built for (braindecode's n_chans / n_times)
        missing = [k for k in ("n_chans", "n_times") if k not in context]
        if missing:
            raise EegbenchError(
                f"backbone {name!r} needs {' and '.join(missing)}, e.g. "
                f"eegbench.create('backbone', {name!r}, n_chans=17, n_times=128)"
            )
    params = {k: v for k, v in kwargs.items() if k not in CONTEXT_ARGS[kind]}
    return comp, context, params
