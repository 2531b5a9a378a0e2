"""ATM-S: channel-wise attention + temporal-spatial convolution + projection (Li et al., NeurIPS 2024).

Written from the paper ("Visual Decoding and Reconstruction via EEG Embeddings with Guided Diffusion") and a
reading of the authors' public code (github.com/dongyangli-del/EEG_Image_decode, ``Retrieval/ATMS_retrieval.py``
and ``models/subject_layers/``); no code copied.

The model: each channel's time series is one token. A linear "value embedding" maps the ``n_times``
samples of every channel to ``d_model`` (250); a learned token is prepended; one post-norm transformer
encoder layer (4 heads of ``d_model // 4`` = 62 dims, feed-forward 256, GELU, dropout 0.25) and a final
LayerNorm mix the channel tokens; the channel tokens (now ``[B, n_chans, d_model]``) go through NICE's
temporal-spatial convolution (1,440 features) and the projection to 1,024 (ATM's image space, open_clip
ViT-H-14).

Reference parameter count at 63 channels × 250 samples, output 1,024. The authors' ``ATMS()`` module holds
3,202,413 parameters; 129,501 of them never take part in ``forward`` (or are the loss temperature):

=============================================================  =========  ========
authors' module part                                            params     used
=============================================================  =========  ========
value embedding ``Linear(250, 250)``                            62,750     yes
subject token (``Embedding(10, 250)`` + shared + mask token)    3,000      250 (one row per run)
``mask_token`` (masking is never used)                          250        no
time-feature embedding ``Linear(4, 250, bias=False)``           1,000      no (no time marks)
attention q, k, v ``Linear(250, 248)`` ×3                       186,744    yes
attention out ``Linear(248, 250)``                              62,250     yes
feed-forward ``Conv1d(250, 256, 1)``, ``Conv1d(256, 250, 1)``   128,506    yes
2 × ``LayerNorm(250)`` in the layer + final ``LayerNorm(250)``  1,500      yes
``subject_wise_linear``: 2 × ``Linear(250, 250)``               125,500    no
TSConv (as NICE, 63 channels)                                   103,680    yes
``Linear(1440, 1024)`` + ``Linear(1024, 1024)`` + LayerNorm     2,527,232  yes
``logit_scale``                                                 1          loss
total                                                           3,202,413  3,072,912
=============================================================  =========  ========

``atm-s`` has exactly the 3,072,912 parameters the authors' forward pass uses (asserted in
``tests/test_papers.py``). The authors' run feeds every trial of a run the same subject token (the test
subject's, or the shared one for subject 10), so one learned token is what the model really has.
"""

from __future__ import annotations

import torch
from torch import nn

from eegbench.errors import EegbenchError

from .blocks import TemporalSpatialConv, attach_projection, check_projection, check_shape

#: authors' parameters used by the forward pass at 63 × 250 → 1024 (see the module docstring)
REFERENCE_PARAMS_63x250 = 3_072_912
#: every parameter of the authors' ``ATMS()`` module, dead ones included
REFERENCE_MODULE_PARAMS_63x250 = 3_202_413
#: which ``n_chans`` tokens reach the convolution after attention (``tokens``)
TOKEN_SLICES = ("channels", "first")


class ChannelAttentionLayer(nn.Module):
    """Post-norm transformer encoder layer over channel tokens (the iTransformer layer ATM uses).

    ``x = LN1(x + Drop(MHA(x)))``; ``x = LN2(x + Drop(W2 Drop(GELU(W1 x))))``. Heads have ``d_model //
    n_heads`` dims (62 for 250 / 4), so q/k/v map 250 → 248, as the authors' layer does.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        inner = self.d_head * n_heads
        self.q = nn.Linear(d_model, inner)
        self.k = nn.Linear(d_model, inner)
        self.v = nn.Linear(d_model, inner)
        self.out = nn.Linear(inner, d_model)
        self.attn_drop = dropout
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (proj(x).view(b, n, self.n_heads, self.d_head).transpose(1, 2) for proj in (self.q, self.k, self.v))
        a = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = self.norm1(x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, -1))))
        y = self.drop(self.ff2(self.drop(self.act(self.ff1(x)))))
        return self.norm2(x + y)


class ATMS(nn.Module):
    """ATM-S's EEG encoder: ``[B, n_chans, n_times]`` → ``[B, proj_dim]``.

    Architecture (braindecode-style summary): channel-wise attention — every channel's ``n_times``
    samples embedded linearly to ``d_model``, a learned token prepended (``token``), ``n_layers`` post-norm
    transformer layers (``n_heads`` heads, feed-forward ``d_ff``, GELU, dropout ``attn_dropout``), a final
    LayerNorm — then NICE's temporal-spatial convolution over the ``[n_chans, d_model]`` token map (1,440
    features at ``d_model = 250``) and the projection ``Linear(·, proj_dim)`` + residual GELU MLP
    (dropout ``proj_dropout``) + LayerNorm. ``proj_dim = 0`` leaves the projection out.

    ``tokens`` chooses the ``n_chans`` attended tokens the convolution sees: ``"channels"`` (default) the
    channel tokens; ``"first"`` the first ``n_chans`` tokens — the learned token and channels 1 to
    ``n_chans - 1`` — as the authors' ``enc_out[:, :63, :]`` does (their model exactly, with ``token = true``;
    ``tests/test_parity_papers.py``). Without a token both are the channel tokens.

    Tuned on: Things-EEG-2, 63 channels at 250 Hz, 0–1 s (250 samples), single-trial training (4
    repetitions per image kept apart), open_clip ViT-H-14 (laion2b_s32b_b79k) image features (1024-d) with
    a 0.99 image + 0.01 text CLIP loss; AdamW lr 3e-4, batch 64, 40 epochs.

    Because the convolution runs over ``d_model`` (not ``n_times``) any input length works; ``d_model``
    must be at least 75 and divisible enough for ``n_heads`` (``d_model >= n_heads``).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        *,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        attn_dropout: float,
        token: bool,
        tokens: str,
        proj_dim: int,
        proj_dropout: float,
        conv_dropout: float,
    ) -> None:
        super().__init__()
        check_shape("atm-s", n_chans, n_times)
        if n_heads < 1 or d_model < n_heads:
            raise EegbenchError(f"backbone 'atm-s': d_model ({d_model}) must be >= n_heads ({n_heads}) >= 1")
        check_projection("atm-s", proj_dim, proj_dropout, optional=True)
        if tokens not in TOKEN_SLICES:
            raise EegbenchError(
                f"backbone 'atm-s': tokens must be one of {', '.join(map(repr, TOKEN_SLICES))}, got {tokens!r} "
                '("channels": the channel tokens; "first": the first n_chans tokens, the authors\' slice)'
            )
        self.tokens = tokens
        token = bool(token)
        self.value_embedding = nn.Linear(n_times, d_model)
        self.token = nn.Parameter(torch.randn(1, 1, d_model)) if token else None
        self.embed_drop = nn.Dropout(attn_dropout)
        self.layers = nn.ModuleList(
            ChannelAttentionLayer(d_model, n_heads, d_ff, attn_dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        # the attended channel tokens are a [n_chans, d_model] "signal" for NICE's convolution
        self.encoder = TemporalSpatialConv(n_chans, d_model, dropout=conv_dropout, name="atm-s")
        attach_projection(self, self.encoder.n_features, proj_dim, proj_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.value_embedding(x)  # [B, C, d_model]: one token per channel
        if self.token is not None:
            h = torch.cat([self.token.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.embed_drop(h)
        for layer in self.layers:
            h = layer(h)
        h = self.norm(h)
        if self.token is not None:
            # "channels": the n_chans channel tokens; "first": the authors' [:, :n_chans], i.e. the learned token
            # and channels 1..n_chans-1 (the last channel's token is dropped)
            h = h[:, 1:] if self.tokens == "channels" else h[:, : h.shape[1] - 1]
        return self.projection(self.encoder(h))
