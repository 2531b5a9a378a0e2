"""The seed's EEG encoder: the residual 1-D network of Ribeiro et al. (2020), and its per-subject variant.

Architecture (``resnet1d``), for input ``[B, n_chans, n_times]``:

* stem: ``Conv1d(n_chans, filters[0], kernel)`` (stride ``ceil(n_times / lengths[0])``) + BatchNorm, with no
  activation: the BN output feeds both the first block's conv and its skip path (the seed's code);
* ``len(filters)`` residual blocks. Block *i* maps ``filters[i-1] x lengths[i-1]`` to
  ``filters[i] x lengths[i]``: conv (kernel, stride 1) -> BN -> ReLU -> dropout -> conv (kernel, stride
  ``ceil(lengths[i-1] / lengths[i])``), plus the skip path (max-pool by the stride, then a 1x1 conv when the width
  changes), added *before* the block's second BN -> ReLU -> dropout (the paper's pre-activation order: the
  un-normalised sum is carried on the skip path to the next block);
* flatten: ``filters[-1] * lengths[-1]`` features (5,120 for the seed) — the engine appends the projection
  head ``Linear(n_features, image_dim)``.

With the seed's configuration (17 channels x 128 samples; filters 64, 128, 196, 256, 320; lengths 128, 128,
64, 32, 16; kernel 17) the backbone has 6,925,024 parameters.

**Sequence lengths and ``n_times``.** ``lengths = "auto"`` (the default) gives the seed's downsampling
pattern for any input length: ``[n, n, ceil(n/2), ceil(n/4), ceil(n/8)]`` with ``n = n_times`` (for more or
fewer blocks: no downsampling in the first two stages, then halving), so 128 samples give 128, 128, 64, 32,
16 exactly as the seed. An explicit list is used as given: each stage's stride is ``ceil(L_prev / L_i)`` and must
reproduce ``L_i = ceil(L_prev / stride)``. Lengths that do not divide evenly are handled by extra padding on
the right of the strided conv and ``ceil_mode`` pooling on the skip path; when they divide evenly the
padding is the paper's symmetric ``(kernel - stride + 1) // 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

from eegbench import Component, hookimpl
from eegbench.errors import EegbenchError

CITATION = (
    "Ribeiro et al. (2020), Automatic diagnosis of the 12-lead ECG using a deep neural network, "
    "Nature Communications 11:1760"
)
#: the seed's block widths (the default of ``filters``)
SEED_FILTERS = (64, 128, 196, 256, 320)


@hookimpl
def eegbench_backbones() -> list[Component]:
    return [
        Component(
            kind="backbone",
            signal="EEG",
            fits=("17x128@100",),  # checked by tests/test_cli.py::test_recorded_fits_build
            name="resnet1d",
            summary=(
                "Residual 1-D CNN (the seed's encoder): 5 blocks, kernel 17, flattened 320x16 = 5,120 features "
                "at 128 samples"
            ),
            factory="eegbench_plugins.resnet1d:build",
            citation=CITATION,
            notes=(
                'lengths = "auto" is [n, n, n/2, n/4, n/8] for n = n_times (rounded up); '
                "6,925,024 parameters at 17 x 128"
            ),
        ),
        Component(
            kind="backbone",
            signal="EEG",
            fits=("17x128@100",),  # checked by tests/test_cli.py::test_recorded_fits_build
            name="resnet1d-subject",
            summary="resnet1d with a per-subject input layer (add a new subject's layer for finetuning)",
            factory="eegbench_plugins.resnet1d:build_subject",
            citation=CITATION,
            notes=(
                'subject_layer = "stem": each subject has its own first conv (n_chans -> filters[0]); '
                '"channel-mix": each subject has its own 1x1 channel mixing (identity-initialised) '
                "before the shared stem"
            ),
        ),
    ]


def build(
    n_chans: int,
    n_times: int,
    sfreq: float | None = None,
    chs_info=None,
    subjects=None,
    *,
    filters: Sequence[int] = SEED_FILTERS,
    lengths: str | Sequence[int] = "auto",
    kernel_size: int = 17,
    dropout: float = 0.5,
):
    """``resnet1d`` factory (the backbone factory contract); its signature holds the defaults."""
    from .resnet1d_nn import ResNet1d

    return ResNet1d(int(n_chans), int(n_times), filters, lengths, int(kernel_size), float(dropout))


def build_subject(
    n_chans: int,
    n_times: int,
    sfreq: float | None = None,
    chs_info=None,
    subjects=None,
    *,
    filters: Sequence[int] = SEED_FILTERS,
    lengths: str | Sequence[int] = "auto",
    kernel_size: int = 17,
    dropout: float = 0.5,
    subject_layer: str = "stem",
):
    """``resnet1d-subject`` factory: ``subjects`` (the training subjects' numbers) is required."""
    if not subjects:
        raise EegbenchError("resnet1d-subject needs the training subjects' numbers (context argument subjects=[...])")
    from .resnet1d_nn import SubjectResNet1d

    return SubjectResNet1d(
        int(n_chans),
        int(n_times),
        filters,
        lengths,
        int(kernel_size),
        float(dropout),
        [int(s) for s in subjects],
        subject_layer,
    )
