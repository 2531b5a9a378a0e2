"""The hook specifications: the only place eegbench defines hooks.

A plugin is any module (or object) listed under the ``eegbench`` entry-point group that implements some of
these hooks with :data:`eegbench.hookimpl`. Our built-in plugins register exactly like a third party would,
through ``[project.entry-points.eegbench]`` in ``pyproject.toml``.

Every "list" hook takes no arguments and returns a list of :class:`eegbench.components.Component`
records (one per component; an empty list, never None, for none: pluggy drops None answers, and the registry
pairs each answer with the plugin that gave it by pluggy's call order). Records are cheap: building the list
must not import torch, mne or any model library; the heavy import happens inside the component's factory.

The registry calls every hook through pluggy (``pm.hook.<name>(...)``, keyword arguments only), so
``firstresult``, ``tryfirst``/``trylast`` and hook wrappers (``@hookimpl(wrapper=True)``) behave as pluggy
documents: a wrapper of a list hook receives the list of answers (one list per plugin, last registered
first) and may return it changed.
"""

from __future__ import annotations

import pluggy

from eegbench.components import Component

hookspec = pluggy.HookspecMarker("eegbench")


@hookspec
def eegbench_datasets() -> list[Component]:
    """Datasets (kind ``dataset``).

    Factory contract: ``factory(root=None, **params) -> eegbench.interfaces.Dataset``.
    """


@hookspec
def eegbench_backbones() -> list[Component]:
    """EEG backbones (kind ``backbone``).

    Factory contract: ``factory(n_chans, n_times, sfreq, chs_info=None, subjects=None, **params) ->
    torch.nn.Module`` mapping float32 ``[B, n_chans, n_times]`` to ``[B, features]`` (see
    :class:`eegbench.interfaces.EEGBackbone`).
    """


@hookspec
def eegbench_image_encoders() -> list[Component]:
    """Frozen image encoders (kind ``image-encoder``).

    Factory contract: ``factory(**params) -> eegbench.interfaces.ImageEncoder``.
    """


@hookspec
def eegbench_losses() -> list[Component]:
    """Alignment losses (kind ``loss``). Factory: ``factory(**params) -> eegbench.interfaces.Loss``."""


@hookspec
def eegbench_tasks() -> list[Component]:
    """Downstream tasks (kind ``task``). Factory: ``factory(**params) -> eegbench.interfaces.Task``."""


@hookspec
def eegbench_executors() -> list[Component]:
    """Executors that run a plan's cells (kind ``executor``).

    Factory: ``factory(**params) -> eegbench.interfaces.Executor``.
    """


@hookspec(firstresult=True)
def eegbench_resolve_family(kind: str, name: str) -> Component | None:
    """Resolve a prefixed family name not listed explicitly (``open_clip:ViT-L-14/openai``, ``timm:resnet18``).

    Called only when ``name`` is not registered by a list hook. The plugin owning the prefix returns a
    :class:`Component` for it, or ``None``; the first non-None answer wins.
    """


@hookspec(firstresult=True)
def eegbench_reported_results() -> str | None:
    """The path of a file of published results (the reported-results TOML format, ``[[reported]]`` tables)
    that the leaderboard shows as reference rows by default; the first plugin that answers wins. A plugin
    ships it as package data and resolves it with :mod:`importlib.resources` (the core names no plugin)."""


@hookspec
def eegbench_list_family(kind: str, pattern: str) -> list[Component]:
    """Members of a prefixed family that ``pattern`` (an fnmatch pattern on names) asks for.

    ``eegbench list image-encoder 'open_clip*'`` lists open_clip's architecture/tag pairs: the plugin owning a
    family answers from the library itself (which may import it) only when the pattern's literal head names
    that family (``'open_clip*'``, ``'timm:vit*'``; never ``'*'``), and ``[]`` otherwise, so a plain
    ``eegbench list`` imports nothing heavy.
    """


@hookspec
def eegbench_cli(commands: CommandGroups) -> None:
    """Add command-line subcommands.

    ``commands`` has argparse sub-parser collections: ``root`` (``eegbench X``), ``download``
    (``eegbench download X``), ``preprocess`` (``eegbench preprocess X``) and ``verify``
    (``eegbench data verify X``). Each added parser must ``set_defaults(func=handler)`` where
    ``handler(args) -> int`` is the exit status. Keep imports inside the handler: this hook runs on every
    invocation of the CLI.
    """


class CommandGroups:  # documented shape of the eegbench_cli argument
    root: object
    download: object
    preprocess: object
    verify: object
