"""UBP's EEG encoder: a residual MLP projection of the flattened input (Wu et al., CVPR 2025).

Written from the paper ("Bridging the Vision-Brain Gap with an Uncertainty-Aware Blur Prior") and a reading
of the authors' public code (github.com/HaitaoWuTJU/Uncertainty-aware-Blur-Prior, ``EEGProjectLayer`` in
``base/eeg_backbone.py``, run by ``scripts/exp.sh``); no code copied. The paper's gains come from the
uncertainty-aware blur prior on the *images*; the EEG side is this small MLP.

Reference parameter count (the authors' ``EEGProjectLayer`` at their input, 17 channels × 250 samples, and
their output width for open_clip RN50, 1,024):

===============================================  ==========
``Linear(17·250 = 4250, 1024)``  4250·1024+1024   4,353,024
``Linear(1024, 1024)`` (residual) 1024·1024+1024  1,049,600
``LayerNorm(1024)``                                   2,048
total                                             5,404,672
===============================================  ==========

Their module also holds the loss's ``logit_scale`` (1 parameter, read through a softplus); in eegbench the
temperature belongs to the loss (``clip`` with ``learn_temperature = true``, ``temperature_param =
"softplus-scale"``, the same softplus on the logit scale). At 63 × 250 the same arithmetic gives
15750·1024+1024 + 1,049,600 + 2,048 = 17,180,672.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import attach_projection, check_projection, check_shape

#: authors' EEGProjectLayer at 17 × 250 → 1024 (the paper's input), logit scale excluded
REFERENCE_PARAMS_17x250 = 5_404_672
#: the same layer at 63 × 250 → 1024
REFERENCE_PARAMS_63x250 = 17_180_672


class UBPMLP(nn.Module):
    """UBP's EEG encoder: ``[B, n_chans, n_times]`` → ``[B, proj_dim]``.

    Architecture (braindecode-style summary): the trial flattened to ``n_chans * n_times`` values,
    ``Linear(n_chans * n_times, proj_dim)``, a residual ``GELU → Linear(proj_dim, proj_dim) →
    Dropout(dropout)`` branch, ``LayerNorm(proj_dim)``. No convolution, no pooling: any shape works.

    Tuned on: Things-EEG-2 whitened on training data, the 17 occipital/parietal channels at 250 Hz, 0–1 s
    (250 samples), repetition-averaged trials, open_clip RN50 (openai) image features of blurred images
    (1024-d); AdamW lr 1e-4 (intra-subject) / 1e-5 (inter-subject), weight decay 1e-4, batch 1024, up to
    50 epochs with early stopping (patience 5), learnable logit scale ``softplus(raw)``.
    """

    def __init__(self, n_chans: int, n_times: int, *, proj_dim: int, dropout: float) -> None:
        super().__init__()
        check_shape("ubp-mlp", n_chans, n_times)
        check_projection("ubp-mlp", proj_dim, dropout, optional=False)
        attach_projection(self, n_chans * n_times, proj_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x.flatten(1))
