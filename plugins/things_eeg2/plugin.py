"""Things-EEG-2 plugin: the ``things-eeg-2`` and ``things-eeg-2-synthetic`` datasets and their commands.

Import-light by contract: this module builds component records and argparse parsers only; numpy-heavy
work, MNE and pooch are imported inside factories and command handlers.
"""
from __future__ import annotations

from eegbench import hookimpl
from eegbench.components import Component

CITATION = (
    "Gifford, Dwivedi, Roig & Cichy (2022). A large and rich EEG dataset for modeling human visual object "
    "recognition. NeuroImage 264:119754"
)

#: defaults of the synthetic twin (kept equal to synth.SynthParams; tests/test_things_synth.py checks it)
SYNTH_DEFAULTS = {
    "subjects": 5,
    "train_concepts": 200,
    "images_per_concept": 4,
    "test_images": 50,
    "latent_dim": 32,
    "n_components": 24,
    "noise": 18.0,
    "subject_variability": 1.2,
    "latency_jitter": 0.02,
    "train_repetitions": 4,
    "test_repetitions": 80,
    "image_size": 48,
    "seed": 0,
}


@hookimpl
def eegbench_datasets():
    return [
        Component(
            kind="dataset",
            name="things-eeg-2",
            summary="Things-EEG-2 (10 subjects, 16,540 training + 200 test images; authors' preprocessed layout)",
            factory="eegbench_plugins.things_eeg2.loader:build",
            defaults={},
            citation=CITATION,
            notes="root (context argument): default <data dir>/things-eeg-2; get it with `eegbench download things-eeg-2`",
        ),
        Component(
            kind="dataset",
            name="things-eeg-2-synthetic",
            summary="Synthetic twin of Things-EEG-2: same layout, planted latent->EEG relation, oracle latents",
            factory="eegbench_plugins.things_eeg2.loader:build_synthetic",
            defaults=dict(SYNTH_DEFAULTS),
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

    register(commands)
