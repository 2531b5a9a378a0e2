"""eegbench: fast, reproducible, comparable EEG-to-image alignment benchmarks.

The front door, in timm's shape::

    import eegbench
    eegbench.list_components("backbone", "braindecode:*")
    model = eegbench.create("backbone", "resnet1d", n_chans=17, n_times=128)
    table = eegbench.run("benchmarks/quick.toml", overrides={"train.epochs": 5})

Importing this package is cheap (no torch): heavy libraries load inside component factories.
"""
from __future__ import annotations

from typing import Any

import pluggy

from .components import CONTEXT_ARGS, KINDS, Component
from .errors import EegbenchError

__version__ = "0.1.0"

#: Plugins mark their hook implementations with this (``@eegbench.hookimpl``).
hookimpl = pluggy.HookimplMarker("eegbench")

__all__ = [
    "KINDS",
    "Component",
    "EegbenchError",
    "__version__",
    "create",
    "get_component",
    "hookimpl",
    "list_components",
    "run",
]


def list_components(kind: str | None = None, pattern: str | None = None, exclude: tuple[str, ...] = ()) -> list[Component]:
    """Registered components of ``kind`` whose names match the fnmatch ``pattern`` (natural order)."""
    from .registry import get_registry

    return get_registry().list_components(kind, pattern, exclude)


def get_component(kind: str, name: str) -> Component:
    """The :class:`Component` record of ``name``; unknown names raise with close matches."""
    from .registry import get_registry

    return get_registry().get(kind, name)


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build a component by name: ``create("backbone", "resnet1d", n_chans=17, n_times=128)``.

    Context arguments of the kind (for backbones ``n_chans, n_times, sfreq, chs_info``) are passed through;
    every other keyword must be one of the component's parameters (``None`` keeps the default).
    """
    from .registry import normalize_kind

    kind = normalize_kind(kind)
    comp = get_component(kind, name)
    context = {k: v for k, v in kwargs.items() if k in CONTEXT_ARGS[kind] and v is not None}
    if kind == "backbone":  # the signal every backbone is built for (braindecode's n_chans / n_times)
        missing = [k for k in ("n_chans", "n_times") if k not in context]
        if missing:
            raise EegbenchError(f"backbone {name!r} needs {' and '.join(missing)}, e.g. "
                                f"eegbench.create('backbone', {name!r}, n_chans=17, n_times=128)")
    params = {k: v for k, v in kwargs.items() if k not in CONTEXT_ARGS[kind]}
    return comp.build(context, **params)


def run(spec: Any, overrides: dict[str, Any] | None = None, **options: Any) -> Any:
    """Run a benchmark spec (path or parsed) and return its results as a pandas DataFrame.

    Mirrors ``eegbench run`` but prints nothing unless ``progress=True``; ``options`` are those of
    :func:`eegbench.runner.run_spec`.
    """
    from .runner import run_spec

    return run_spec(spec, overrides=overrides, **options)
