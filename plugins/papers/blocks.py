"""Building blocks shared by the field's decoders (NICE, ATM-S, UBP).

All three papers end their EEG encoder with the same projection: ``Linear(in, d)`` followed by a residual
``GELU -> Linear(d, d) -> Dropout`` branch and a ``LayerNorm(d)``; NICE and ATM-S share the
temporal-spatial convolution ("TSConv", a ShallowNet variant) in front of it. Written here once, from the
papers' descriptions, so the three backbones differ only where the papers differ.

This module imports torch: only the backbone factories import it.
"""

from __future__ import annotations

import torch
from torch import nn

from eegbench.errors import EegbenchError


class ResidualProjection(nn.Module):
    """``Linear(in_features, dim)`` → ``x + Dropout(Linear(GELU(x)))`` → ``LayerNorm(dim)``.

    Parameters: ``in_features*dim + dim`` + ``dim*dim + dim`` + ``2*dim``.
    """

    def __init__(self, in_features: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, dim)
        self.act = nn.GELU()
        self.residual = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        x = x + self.drop(self.residual(self.act(x)))
        return self.norm(x)


class TemporalSpatialConv(nn.Module):
    """NICE's patch embedding: temporal conv, average pooling, spatial conv over all channels, 1×1 conv.

    ``[B, C, T]`` → ``Conv2d(1, F, (1, k))`` → ``AvgPool2d((1, pool), (1, stride))`` → BN → ELU →
    ``Conv2d(F, F, (C, 1))`` → BN → ELU → Dropout → ``Conv2d(F, emb, 1)`` → flatten to ``emb * L`` features,
    ``L = (T - k + 1 - pool) // stride + 1`` (36 at T = 250, so 40 × 36 = 1,440 features).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_filters: int = 40,
        kernel: int = 25,
        pool: int = 51,
        pool_stride: int = 5,
        emb_size: int = 40,
        dropout: float = 0.5,
        name: str = "tsconv",
    ) -> None:
        super().__init__()
        after_conv = n_times - kernel + 1
        if after_conv < pool:
            raise EegbenchError(
                f"backbone {name!r}: n_times={n_times} is too short for its temporal conv ({kernel}) and "
                f"pooling ({pool}); it needs at least {kernel + pool - 1} samples (use a longer window or more samples)"
            )
        self.n_patches = (after_conv - pool) // pool_stride + 1
        self.n_features = emb_size * self.n_patches
        self.net = nn.Sequential(
            nn.Conv2d(1, n_filters, (1, kernel)),
            nn.AvgPool2d((1, pool), (1, pool_stride)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Conv2d(n_filters, n_filters, (n_chans, 1)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Dropout(dropout),
            nn.Conv2d(n_filters, emb_size, (1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net(x.unsqueeze(1))  # [B, emb, 1, L]
        # patch-major order (b, L, emb) flattened, as the papers' Rearrange('b e h w -> b (h w) e') does
        return x.flatten(2).transpose(1, 2).reshape(x.shape[0], -1)


def attach_projection(model: nn.Module, in_features: int, proj_dim: int, dropout: float) -> None:
    """Give ``model`` the papers' projection to ``proj_dim`` (or none for ``proj_dim = 0``).

    Sets ``model.projection`` (a :class:`ResidualProjection`, or ``nn.Identity`` for 0), ``model.n_features``
    (``proj_dim``, or ``in_features`` without the projection) and ``model.includes_projection`` (the engine
    adds no head when it is true and ``n_features`` equals the image-embedding dimension).
    """
    if proj_dim:
        model.projection = ResidualProjection(in_features, proj_dim, dropout)
        model.n_features = proj_dim
    else:
        model.projection = nn.Identity()
        model.n_features = in_features
    model.includes_projection = bool(proj_dim)


def check_projection(name: str, proj_dim: int, dropout: float, *, optional: bool) -> None:
    """One line for an impossible projection width (``optional``: 0 leaves it out) or dropout."""
    if optional and proj_dim < 0:
        raise EegbenchError(f"backbone {name!r}: proj_dim must be >= 0 (0 = no projection), got {proj_dim}")
    if not optional and proj_dim < 1:
        raise EegbenchError(f"backbone {name!r}: proj_dim must be >= 1 (it is the MLP's width), got {proj_dim}")
    if not 0.0 <= dropout < 1.0:
        raise EegbenchError(f"backbone {name!r}: the projection's dropout must be in [0, 1), got {dropout}")


def check_shape(name: str, n_chans: int, n_times: int) -> None:
    """One line for an impossible input shape."""
    if not isinstance(n_chans, int) or not isinstance(n_times, int) or n_chans < 1 or n_times < 1:
        raise EegbenchError(
            f"backbone {name!r}: n_chans and n_times must be positive integers, got {n_chans!r} x {n_times!r}"
        )


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (what the papers' tables and our count tests compare)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
