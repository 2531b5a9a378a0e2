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

from eegbench.components import KINDS, Component
from eegbench.errors import EegbenchError
from eegbench.registry import create, get_component, list_components
from eegbench.version import __version__

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


def run(spec: Any, overrides: dict[str, Any] | None = None, **options: Any) -> Any:
    """Run a benchmark spec (path or parsed) and return its results as a pandas DataFrame.

    Mirrors ``eegbench run`` but prints nothing unless ``progress=True``; ``options`` are those of
    :func:`eegbench.runner.run_spec`.
    """
    from eegbench.runner import run_spec

    return run_spec(spec, overrides=overrides, **options)
