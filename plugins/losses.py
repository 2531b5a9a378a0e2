"""Alignment losses: CLIP's symmetric InfoNCE and a soft-target variant.

Contract (``eegbench.interfaces``): an ``nn.Module`` with
``forward(eeg_emb [B, d], img_emb [B, d], text_emb=None) -> scalar``; rows i of the inputs are a positive
pair. ``needs_text`` tells the engine whether to pass ``text_emb`` (``text_weight > 0``).

Temperature: logits are ``cos(eeg_i, img_j) / T``. With ``learn_temperature = false`` (the default, which is
what the seed does in practice: its logit scale is never given to the optimiser) ``T`` is a buffer. With
``true`` it is a parameter ``raw``, in one of three parametrisations (``temperature_param``), each initialised
so the starting temperature equals ``temperature``:

- ``"log"``: ``1/T = exp(raw)``, ``raw`` clamped so the logit scale stays <= 100, as CLIP does;
- ``"softplus"``: ``T = softplus(raw)`` (a softplus on the temperature);
- ``"softplus-scale"``: ``1/T = softplus(raw)`` (a softplus on the logit scale, as UBP does).
"""
from __future__ import annotations

from typing import Any

from eegbench import Component, hookimpl

CLIP_DEFAULTS: dict[str, Any] = {
    "temperature": 0.04,
    "learn_temperature": False,
    "temperature_param": "log",
    "text_weight": 0.0,
}
#: The accepted ``temperature_param`` values.
TEMPERATURE_PARAMS = ("log", "softplus", "softplus-scale")
#: CLIP clamps its logit scale at 100 (temperature >= 0.01).
MAX_LOGIT_SCALE = 100.0


@hookimpl
def eegbench_losses() -> list[Component]:
    return [
        Component(
            kind="loss",
            name="clip",
            summary="Symmetric InfoNCE on L2-normalised embeddings, logits = cosine / T (optional text term)",
            factory="eegbench_plugins.losses:build_clip",
            defaults=dict(CLIP_DEFAULTS),
            citation="Radford et al. (2021), Learning Transferable Visual Models From Natural Language Supervision, ICML",
            notes="learn_temperature = true trains T (temperature_param: log-scale clamped at logit scale 100, "
            "softplus on T, or softplus-scale: softplus on 1/T as UBP); "
            "text_weight w > 0 gives (1-w) L(eeg, img) + w L(eeg, text)",
        ),
        Component(
            kind="loss",
            name="soft-clip",
            summary="CLIP loss with soft targets: softmax of image-image cosine similarity / target_temperature",
            factory="eegbench_plugins.losses:build_soft_clip",
            defaults={**CLIP_DEFAULTS, "target_temperature": 0.04},
            citation="Benchetrit et al. (2024), Brain decoding: toward real-time reconstruction of visual perception, ICLR (soft CLIP targets)",
            notes="targets row i = softmax_j(cos(img_i, img_j) / target_temperature), used in both directions",
        ),
    ]


def build_clip(**params):
    """``clip`` factory: see the module docstring."""
    from .losses_nn import ClipLoss as cls

    return cls(**params)


def build_soft_clip(**params):
    """``soft-clip`` factory."""
    from .losses_nn import SoftClipLoss as cls

    return cls(**params)
