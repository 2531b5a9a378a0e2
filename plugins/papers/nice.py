"""NICE: the temporal-spatial convolution EEG encoder with its projection (Song et al., ICLR 2024).

Written from the paper and a reading of the authors' public code (github.com/eeyhsong/NICE-EEG,
``nice_stand.py``); no code copied.

Reference parameter count (the authors' ``Enc_eeg`` + ``Proj_eeg`` at 63 channels × 250 samples, output 768),
layer by layer:

====================================================  =========
``Conv2d(1, 40, (1, 25))``        40·25 + 40           1,040
``BatchNorm2d(40)``                                        80
``Conv2d(40, 40, (63, 1))``       40·40·63 + 40       100,840
``BatchNorm2d(40)``                                        80
``Conv2d(40, 40, (1, 1))``        40·40 + 40           1,640
``Linear(1440, 768)``             1440·768 + 768    1,106,688
``Linear(768, 768)`` (residual)   768·768 + 768       590,592
``LayerNorm(768)``                                      1,536
total                                               1,802,496
====================================================  =========

The authors' ``Proj_img`` (1,182,720 parameters) is handed to the optimiser but its ``forward`` returns its
input unchanged, so it is no part of the model; their ``logit_scale`` is never optimised (fixed
temperature 0.07). ``tests/test_papers.py`` asserts ``nice`` has exactly 1,802,496 parameters at that size.
"""

from __future__ import annotations

import torch
from torch import nn

from eegbench.errors import EegbenchError

from .blocks import TemporalSpatialConv, attach_projection, check_projection, check_shape

#: authors' count of the EEG encoder + projection at 63 × 250 → 768 (see the module docstring)
REFERENCE_PARAMS_63x250 = 1_802_496


class NICE(nn.Module):
    """NICE's EEG encoder: ``[B, n_chans, n_times]`` → ``[B, proj_dim]``.

    Architecture (braindecode-style summary): a temporal convolution (``n_filters`` × ``temporal_kernel``
    samples), average pooling (``pool``, stride ``pool_stride``), batch norm + ELU, a spatial convolution
    across all ``n_chans`` channels, batch norm + ELU + dropout, a 1×1 convolution to ``emb_size`` maps,
    flattened (1,440 features at 250 samples), then the projection ``Linear(·, proj_dim)`` + residual
    ``GELU → Linear → Dropout(proj_dropout)`` + ``LayerNorm``. With ``proj_dim = 0`` the projection is
    left out and the backbone returns the flattened convolution features.

    Tuned on: Things-EEG-2, 63 channels at 250 Hz, 0–1 s after onset (250 samples), repetition-averaged
    training trials, CLIP ViT-L/14 image features (768-d); Adam lr 2e-4, betas (0.5, 0.999), batch 1000,
    200 epochs. ``init = "normal"`` is the authors' initialisation (conv and linear weights N(0, 0.02),
    batch-norm weights N(1, 0.02), batch-norm biases 0); ``"default"`` keeps PyTorch's.

    Needs ``n_times >= temporal_kernel + pool - 1`` (75 samples with the defaults).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        *,
        n_filters: int,
        temporal_kernel: int,
        pool: int,
        pool_stride: int,
        emb_size: int,
        conv_dropout: float,
        proj_dim: int,
        proj_dropout: float,
        init: str,
    ) -> None:
        super().__init__()
        check_shape("nice", n_chans, n_times)
        if init not in ("normal", "default"):
            raise EegbenchError(f'backbone \'nice\': init must be "normal" or "default", got {init!r}')
        check_projection("nice", proj_dim, proj_dropout, optional=True)
        self.encoder = TemporalSpatialConv(
            n_chans, n_times, n_filters, temporal_kernel, pool, pool_stride, emb_size, conv_dropout, name="nice"
        )
        # the paper's projection MLP is inside the backbone (docs/papers.md)
        attach_projection(self, self.encoder.n_features, proj_dim, proj_dropout)
        if init == "normal":
            authors_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(x))


def authors_init(model: nn.Module) -> None:
    """The paper's initialisation: N(0, 0.02) conv/linear weights; BN weights N(1, 0.02), BN biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
