"""The field's EEG–image decoders as eegbench backbones: ``nice``, ``atm-s``, ``ubp-mlp``.

Each backbone includes its paper's projection MLP up to the paper's output width (``proj_dim``) and sets
``includes_projection``: with an image encoder of that width the engine adds no head (the model is the
paper's), otherwise its head ``Linear(proj_dim, image_dim)`` maps to the image encoder's dimension
(docs/papers.md explains the choice). The factories below hold each model's parameters and their defaults (the
papers' values) in their signatures; the model classes take them all explicitly. Listing and reading defaults
import nothing heavy: the model modules (torch) load inside the factories.
Paper recipes live in ``benchmarks/papers/``; the papers' own numbers in ``reported.toml`` next to this module
(package data; the leaderboard's default reported rows, through the ``eegbench_reported_results`` hook).
"""

from __future__ import annotations

from typing import Any

from eegbench import hookimpl
from eegbench.components import Component

NICE_CITATION = (
    "Song, Y., Liu, B., Li, X., Zhi, N., Wang, Y., Gao, X. (2024). Decoding Natural Images from EEG for "
    "Object Recognition. ICLR 2024. arXiv:2308.13234"
)
ATM_CITATION = (
    "Li, D., Wei, C., Li, S., Zou, J., Liu, Q. (2024). Visual Decoding and Reconstruction via EEG Embeddings "
    "with Guided Diffusion. NeurIPS 2024. arXiv:2403.07721"
)
UBP_CITATION = (
    "Wu, H., Li, Q., Zhang, C., He, Z., Ying, X. (2025). Bridging the Vision-Brain Gap with an "
    "Uncertainty-Aware Blur Prior. CVPR 2025, 2246-2257. arXiv:2503.04207"
)


@hookimpl
def eegbench_backbones() -> list[Component]:
    return [
        Component(
            kind="backbone",
            signal="EEG",
            fits=("17x128@100",),  # checked by tests/test_cli.py::test_recorded_fits_build
            name="nice",
            summary=(
                "NICE: temporal-spatial conv (ShallowNet-like, 1,440 features at 250 samples) "
                "+ residual projection to 768"
            ),
            factory="eegbench_plugins.papers:build_nice",
            citation=NICE_CITATION,
            notes=(
                "Includes the paper's projection MLP (proj_dim=0 leaves it out). Tuned on Things-EEG-2 63 ch x 250 "
                "samples (250 Hz, 0-1 s), CLIP ViT-L/14; needs n_times >= 75. 1,802,496 parameters at 63x250 "
                "(= authors' Enc_eeg + Proj_eeg)."
            ),
        ),
        Component(
            kind="backbone",
            signal="EEG",
            fits=("17x128@100",),  # checked by tests/test_cli.py::test_recorded_fits_build
            name="atm-s",
            summary=(
                "ATM-S: channel-wise attention (1 transformer layer over channel tokens) + NICE's conv "
                "+ projection to 1024"
            ),
            factory="eegbench_plugins.papers:build_atm_s",
            citation=ATM_CITATION,
            notes=(
                "Includes the paper's projection MLP (proj_dim=0 leaves it out). Tuned on Things-EEG-2 63 ch x 250 "
                "samples, single trials, open_clip ViT-H-14 + 0.01 text term. 3,072,912 parameters at 63x250 "
                "(= the authors' parameters used in forward; their module holds 3,202,413)."
            ),
        ),
        Component(
            kind="backbone",
            signal="EEG",
            fits=("17x128@100",),  # checked by tests/test_cli.py::test_recorded_fits_build
            name="ubp-mlp",
            summary="UBP: flattened input -> Linear -> residual GELU MLP -> LayerNorm (1024)",
            factory="eegbench_plugins.papers:build_ubp_mlp",
            citation=UBP_CITATION,
            notes=(
                "The whole model is the paper's projection. Tuned on Things-EEG-2 17 ch x 250 samples whitened on "
                "training data, open_clip RN50 (openai), learnable logit scale softplus(raw). 5,404,672 parameters at "
                "17x250 (= authors' EEGProjectLayer without its logit scale)."
            ),
        ),
    ]


# --------------------------------------------------------------------------------------------------
# factories (the backbone contract): torch and the model modules load only when a model is built
# --------------------------------------------------------------------------------------------------
def build_nice(
    n_chans: int,
    n_times: int,
    sfreq: float | None = None,
    chs_info: Any = None,
    subjects: Any = None,
    *,
    n_filters: int = 40,
    temporal_kernel: int = 25,
    pool: int = 51,
    pool_stride: int = 5,
    emb_size: int = 40,
    conv_dropout: float = 0.5,
    proj_dim: int = 768,
    proj_dropout: float = 0.5,
    init: str = "normal",
):
    """``nice`` (see :class:`eegbench_plugins.papers.nice.NICE`)."""
    from .nice import NICE

    return NICE(
        n_chans,
        n_times,
        n_filters=n_filters,
        temporal_kernel=temporal_kernel,
        pool=pool,
        pool_stride=pool_stride,
        emb_size=emb_size,
        conv_dropout=conv_dropout,
        proj_dim=proj_dim,
        proj_dropout=proj_dropout,
        init=init,
    )


def build_atm_s(
    n_chans: int,
    n_times: int,
    sfreq: float | None = None,
    chs_info: Any = None,
    subjects: Any = None,
    *,
    d_model: int = 250,
    n_heads: int = 4,
    d_ff: int = 256,
    n_layers: int = 1,
    attn_dropout: float = 0.25,
    token: bool = True,
    tokens: str = "channels",
    conv_dropout: float = 0.5,
    proj_dim: int = 1024,
    proj_dropout: float = 0.5,
):
    """``atm-s`` (see :class:`eegbench_plugins.papers.atm.ATMS`)."""
    from .atm import ATMS

    return ATMS(
        n_chans,
        n_times,
        d_model=d_model,
        n_heads=n_heads,
        d_ff=d_ff,
        n_layers=n_layers,
        attn_dropout=attn_dropout,
        token=token,
        tokens=tokens,
        conv_dropout=conv_dropout,
        proj_dim=proj_dim,
        proj_dropout=proj_dropout,
    )


def build_ubp_mlp(
    n_chans: int,
    n_times: int,
    sfreq: float | None = None,
    chs_info: Any = None,
    subjects: Any = None,
    *,
    proj_dim: int = 1024,
    dropout: float = 0.3,
):
    """``ubp-mlp`` (see :class:`eegbench_plugins.papers.ubp.UBPMLP`)."""
    from .ubp import UBPMLP

    return UBPMLP(n_chans, n_times, proj_dim=proj_dim, dropout=dropout)


@hookimpl
def eegbench_reported_results() -> str | None:
    """The field's published numbers (``reported.toml``, shipped with this package)."""
    from importlib.resources import files

    shipped = files(__name__) / "reported.toml"
    return str(shipped) if shipped.is_file() else None
