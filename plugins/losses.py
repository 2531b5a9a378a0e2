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

from eegbench import Component, hookimpl


@hookimpl
def eegbench_losses() -> list[Component]:
    return [
        Component(
            kind="loss",
            name="clip",
            summary="Symmetric InfoNCE on L2-normalised embeddings, logits = cosine / T (optional text term)",
            factory="eegbench_plugins.losses:build_clip",
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
            citation="Scotti et al. (2023), Reconstructing the Mind's Eye (MindEye), NeurIPS (soft CLIP loss); "
            "the seed's SoftCLIPLoss",
            notes="targets row i = softmax_j(cos(img_i, img_j) / target_temperature), used in both directions; "
            "equals the seed's SoftCLIPLoss (tests/test_parity_seed.py)",
        ),
    ]


def build_clip(
    *,
    temperature: float = 0.04,
    learn_temperature: bool = False,
    temperature_param: str = "log",
    text_weight: float = 0.0,
    center: bool = False,
):
    """``clip`` factory (see the module docstring); its signature holds the defaults (the seed's values)."""
    from .losses_nn import ClipLoss

    return ClipLoss(
        temperature=temperature,
        learn_temperature=learn_temperature,
        temperature_param=temperature_param,
        text_weight=text_weight,
        center=center,
    )


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
    from .losses_nn import SoftClipLoss

    return SoftClipLoss(
        temperature=temperature,
        learn_temperature=learn_temperature,
        temperature_param=temperature_param,
        text_weight=text_weight,
        center=center,
        target_temperature=target_temperature,
    )
