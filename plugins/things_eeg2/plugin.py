"""Things-EEG-2 plugin: the ``things-eeg-2`` and ``things-eeg-2-synthetic`` datasets and their commands.

Import-light by contract: this module builds component records and argparse parsers and holds the two
factories, whose signatures give the datasets' parameters and defaults; numpy-heavy work, MNE and pooch are
imported inside the factories' bodies and the command handlers.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from eegbench import hookimpl
from eegbench.components import Component

CITATION = (
    "Gifford, Dwivedi, Roig & Cichy (2022). A large and rich EEG dataset for modeling human visual object "
    "recognition. NeuroImage 264:119754"
)


@hookimpl
def eegbench_datasets():
    return [
        Component(
            kind="dataset",
            name="things-eeg-2",
            summary="Things-EEG-2 (10 subjects, 16,540 training + 200 test images; authors' preprocessed layout)",
            factory="eegbench_plugins.things_eeg2.plugin:build",
            citation=CITATION,
            notes=(
                "root (context argument): default <data dir>/things-eeg-2; get it with `eegbench download things-eeg-2`"
            ),
        ),
        Component(
            kind="dataset",
            name="things-eeg-2-synthetic",
            summary="Synthetic twin of Things-EEG-2: same layout, planted latent->EEG relation, oracle latents",
            factory="eegbench_plugins.things_eeg2.plugin:build_synthetic",
            citation="",
            notes=(
                "generated on first use under <data dir>/things-eeg-2-synthetic/<param hash> unless root is given; "
                "oracle embeddings at image_set/synthetic_latents.npz"
            ),
        ),
    ]


@hookimpl
def eegbench_cli(commands):
    from .commands import register

    register(commands, SYNTH_DEFAULTS)


def build(root: str | os.PathLike | None = None, cache_root: str | os.PathLike | None = None) -> Any:
    """``things-eeg-2``: the release under ``root`` (default ``<data dir>/things-eeg-2``)."""
    from . import loader

    return loader.build(root=root, cache_root=cache_root)


def build_synthetic(
    root: str | os.PathLike | None = None,
    cache_root: str | os.PathLike | None = None,
    *,
    subjects: int = 5,
    train_concepts: int = 200,
    images_per_concept: int = 4,
    test_images: int = 50,
    latent_dim: int = 32,
    n_components: int = 24,
    noise: float = 18.0,
    subject_variability: float = 1.2,
    latency_jitter: float = 0.02,
    train_repetitions: int = 4,
    test_repetitions: int = 80,
    image_size: int = 48,
    seed: int = 0,
) -> Any:
    """``things-eeg-2-synthetic``: the twin with these parameters (``synth.SynthParams``; generated on first use)."""
    from . import loader

    params = {k: v for k, v in locals().items() if k not in ("root", "cache_root", "loader")}
    return loader.build_synthetic(root=root, cache_root=cache_root, **params)


#: the synthetic twin's defaults, read from its factory (``eegbench synth``'s flags default to them;
#: tests/test_things_synth.py keeps them equal to ``synth.SynthParams``)
SYNTH_DEFAULTS: dict[str, Any] = {
    name: p.default for name, p in inspect.signature(build_synthetic).parameters.items() if p.kind is p.KEYWORD_ONLY
}
