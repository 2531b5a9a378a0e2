"""torch modules of the ``clip`` and ``soft-clip`` losses (imported only when a loss is built).

See :mod:`eegbench_plugins.losses` for the contract and the temperature parameterisations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eegbench.errors import EegbenchError

#: CLIP clamps its logit scale at 100 (temperature >= 0.01).
MAX_LOGIT_SCALE = 100.0


def _inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` (y > 0), stable for large y: ``y + log(1 - exp(-y))``."""
    return y + math.log(-math.expm1(-y))


class ClipLoss(nn.Module):
    # the defaults live in the factories' signatures (eegbench_plugins.losses.build_clip / build_soft_clip)
    def __init__(
        self, *, temperature: float, learn_temperature: bool, temperature_param: str, text_weight: float, center: bool
    ):
        super().__init__()  # the parameters were checked by the factory (eegbench_plugins.losses.check_clip)
        self.center = center
        self.temperature_param = temperature_param
        self.learn_temperature = bool(learn_temperature)
        self.text_weight = float(text_weight)
        self.needs_text = self.text_weight > 0
        if temperature_param == "log":
            raw = torch.tensor(math.log(1.0 / temperature))
        elif temperature_param == "softplus":
            raw = torch.tensor(_inverse_softplus(temperature))  # softplus(raw) = T
        else:
            raw = torch.tensor(_inverse_softplus(1.0 / temperature))  # softplus(raw) = 1/T
        if self.learn_temperature:
            self.raw_temperature = nn.Parameter(raw.float())
        else:
            self.register_buffer("raw_temperature", raw.float())

    @property
    def logit_scale(self):
        """1 / T as a tensor (differentiable when learnt)."""
        if self.temperature_param == "log":
            return self.raw_temperature.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()
        if self.temperature_param == "softplus-scale":
            return F.softplus(self.raw_temperature)
        return 1.0 / F.softplus(self.raw_temperature)

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach())

    def _unit(self, x):
        """Rows L2-normalised; with ``center`` each row's mean over its features is subtracted first."""
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # float64 stays float64
        if self.center:
            x = x - x.mean(dim=-1, keepdim=True)
        return F.normalize(x, dim=-1)

    def _logits(self, a, b):
        return self.logit_scale * self._unit(a) @ self._unit(b).t()

    def _pair_loss(self, eeg, other):
        logits = self._logits(eeg, other)
        labels = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))

    def forward(self, eeg_emb, img_emb, text_emb=None):
        loss = self._pair_loss(eeg_emb, img_emb)
        if self.needs_text:
            if text_emb is None:
                raise EegbenchError("loss clip: text_weight > 0 but no text embeddings were passed (text_emb)")
            loss = (1.0 - self.text_weight) * loss + self.text_weight * self._pair_loss(eeg_emb, text_emb)
        return loss


class SoftClipLoss(ClipLoss):
    """Targets are a softmax over image-image similarities instead of the identity (one-hot)."""

    def __init__(self, *, target_temperature: float, **kwargs):
        super().__init__(**kwargs)
        self.target_temperature = float(target_temperature)

    def _pair_loss(self, eeg, other):
        logits = self._logits(eeg, other)
        with torch.no_grad():
            o = self._unit(other)
            targets = torch.softmax(o @ o.t() / self.target_temperature, dim=-1)  # symmetric
        # soft cross-entropy in both directions (targets are symmetric, so the same matrix serves both)
        l1 = -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        l2 = -(targets * F.log_softmax(logits.t(), dim=-1)).sum(-1).mean()
        return 0.5 * (l1 + l2)
