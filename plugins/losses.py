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

``center = true`` subtracts each embedding's mean over its features before the L2 normalisation, as the seed's
trainer does before calling its loss (``z - z.mean(-1)`` on both EEG and image embeddings); the default
(false) is CLIP's plain cosine.

Parity: ``tests/test_parity_seed.py`` checks both losses (value and gradient) against the seed's
``CLIPLoss`` / ``SoftCLIPLoss`` (NonaRjb/AlignVis ``src/training/training_utils.py``) as its trainer calls
them, with and without the centring. ``soft-clip`` is the seed's ``SoftCLIPLoss``, MindEye's soft CLIP loss;
the seed uses its loss temperature for the targets too, eegbench's ``target_temperature`` (default 0.04, the
seed's value) stays fixed when ``learn_temperature`` is on.
"""

from __future__ import annotations

import math
from typing import Any

from eegbench import Component, hookimpl
from eegbench.errors import EegbenchError

#: The accepted ``temperature_param`` values.
TEMPERATURE_PARAMS = ("log", "softplus", "softplus-scale")


@hookimpl
def eegbench_losses() -> list[Component]:
    return [
        Component(
            kind="loss",
            name="clip",
            summary="Symmetric InfoNCE on L2-normalised embeddings, logits = cosine / T (optional text term)",
            factory="eegbench_plugins.losses:build_clip",
            check="eegbench_plugins.losses:check_clip",
            citation=(
                "Radford et al. (2021), Learning Transferable Visual Models From Natural Language Supervision, ICML"
            ),
            notes="learn_temperature = true trains T (temperature_param: log-scale clamped at logit scale 100, "
            "softplus on T, or softplus-scale: softplus on 1/T as UBP); "
            "text_weight w > 0 gives (1-w) L(eeg, img) + w L(eeg, text); "
            "center = true subtracts each embedding's feature mean before normalising (the seed's trainer)",
        ),
        Component(
            kind="loss",
            name="soft-clip",
            summary="CLIP loss with soft targets: softmax of image-image cosine similarity / target_temperature",
            factory="eegbench_plugins.losses:build_soft_clip",
            check="eegbench_plugins.losses:check_soft_clip",
            citation="Scotti et al. (2023), Reconstructing the Mind's Eye (MindEye), NeurIPS (soft CLIP loss); "
            "the seed's SoftCLIPLoss",
            notes="targets row i = softmax_j(cos(img_i, img_j) / target_temperature), used in both directions; "
            "equals the seed's SoftCLIPLoss (tests/test_parity_seed.py)",
        ),
    ]


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_clip(
    *, temperature: Any, learn_temperature: Any, temperature_param: Any, text_weight: Any, center: Any
) -> None:
    """Refuse what ``clip`` cannot be built with, without importing torch (the plan checks a spec with this)."""
    if not isinstance(center, bool):
        raise EegbenchError(f"loss clip: center must be true or false, got {center!r}")
    if not (_finite_number(temperature) and temperature > 0):
        raise EegbenchError(f"loss clip: temperature must be a finite number > 0, got {temperature}")
    if temperature_param not in TEMPERATURE_PARAMS:
        choices = ", ".join(f'"{p}"' for p in TEMPERATURE_PARAMS)
        raise EegbenchError(f"loss clip: temperature_param must be one of {choices}, got {temperature_param!r}")
    if not (_finite_number(text_weight) and 0.0 <= text_weight <= 1.0):
        raise EegbenchError(f"loss clip: text_weight must be in [0, 1], got {text_weight}")


def check_soft_clip(*, target_temperature: Any, **clip: Any) -> None:
    """``soft-clip``'s counterpart of :func:`check_clip`."""
    check_clip(**clip)
    if not (_finite_number(target_temperature) and target_temperature > 0):
        raise EegbenchError(f"loss soft-clip: target_temperature must be a finite number > 0, got {target_temperature}")


def build_clip(
    *,
    temperature: float = 0.04,
    learn_temperature: bool = False,
    temperature_param: str = "log",
    text_weight: float = 0.0,
    center: bool = False,
):
    """``clip`` factory (see the module docstring); its signature holds the defaults (the seed's values)."""
    settings = dict(
        temperature=temperature,
        learn_temperature=learn_temperature,
        temperature_param=temperature_param,
        text_weight=text_weight,
        center=center,
    )
    check_clip(**settings)
    from .losses_nn import ClipLoss

    return ClipLoss(**settings)


def build_soft_clip(
    *,
    temperature: float = 0.04,
    learn_temperature: bool = False,
    temperature_param: str = "log",
    text_weight: float = 0.0,
    center: bool = False,
    target_temperature: float = 0.04,
):
    """``soft-clip`` factory."""
    settings = dict(
        temperature=temperature,
        learn_temperature=learn_temperature,
        temperature_param=temperature_param,
        text_weight=text_weight,
        center=center,
    )
    check_soft_clip(target_temperature=target_temperature, **settings)
    from .losses_nn import SoftClipLoss

    return SoftClipLoss(target_temperature=target_temperature, **settings)
