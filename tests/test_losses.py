"""clip / soft-clip: direct formulas on fixed inputs, symmetry, temperature handling, text term."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import eegbench
from eegbench.errors import EegbenchError


def fixed_inputs(b=5, d=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


def direct_infonce(eeg: np.ndarray, img: np.ndarray, t: float) -> float:
    """Textbook symmetric InfoNCE written out with numpy loops."""
    e = eeg / np.linalg.norm(eeg, axis=1, keepdims=True)
    v = img / np.linalg.norm(img, axis=1, keepdims=True)
    s = e @ v.T / t
    n = len(s)
    row = -np.mean([s[i, i] - math.log(sum(math.exp(s[i, j]) for j in range(n))) for i in range(n)])
    col = -np.mean([s[i, i] - math.log(sum(math.exp(s[j, i]) for j in range(n))) for i in range(n)])
    return 0.5 * (row + col)


def test_clip_matches_direct_formula():
    eeg, img, _ = fixed_inputs()
    loss = eegbench.create("loss", "clip")
    assert not loss.needs_text
    assert loss.temperature == pytest.approx(0.04)
    value = loss(eeg, img)
    assert value.ndim == 0
    assert value.item() == pytest.approx(direct_infonce(eeg.double().numpy(), img.double().numpy(), 0.04), rel=1e-5)
    # the embeddings are L2-normalised: scaling an input changes nothing
    assert loss(3 * eeg, 0.5 * img).item() == pytest.approx(value.item(), rel=1e-5)


def test_clip_symmetry():
    eeg, img, _ = fixed_inputs()
    loss = eegbench.create("loss", "clip", temperature=0.1)
    assert loss(eeg, img).item() == pytest.approx(loss(img, eeg).item(), rel=1e-6)
    perm = torch.tensor([2, 0, 4, 1, 3])  # permuting the pairs together does not change the loss
    assert loss(eeg[perm], img[perm]).item() == pytest.approx(loss(eeg, img).item(), rel=1e-5)


def test_clip_temperature_fixed_by_default_and_learns_when_asked():
    eeg, img, _ = fixed_inputs()
    fixed = eegbench.create("loss", "clip")
    assert list(fixed.parameters()) == []  # nothing for the optimiser, as the seed in practice
    for param in ("log", "softplus", "softplus-scale"):
        loss = eegbench.create("loss", "clip", learn_temperature=True, temperature_param=param, temperature=0.5)
        assert loss.temperature == pytest.approx(0.5, rel=1e-5)
        params = list(loss.parameters())
        assert len(params) == 1
        opt = torch.optim.SGD(params, lr=0.5)
        # aligned pairs: a sharper softmax (lower T) lowers the loss, so T must decrease
        before = loss.temperature
        for _ in range(20):
            opt.zero_grad()
            loss(eeg, eeg + 0.01 * img).backward()
            opt.step()
        assert loss.temperature < before


def test_clip_softplus_scale_matches_direct_formula():
    """ "softplus-scale" is UBP's logit scale softplus(raw), starting at the given temperature."""
    eeg, img, _ = fixed_inputs()
    t0 = 0.01146  # the UBP recipe's start: 1/T = 87.26 (large enough that a naive log(expm1) would be lossy)
    loss = eegbench.create("loss", "clip", learn_temperature=True, temperature_param="softplus-scale", temperature=t0)
    assert loss.temperature == pytest.approx(t0, rel=1e-5)
    raw = float(loss.raw_temperature.detach())
    assert math.log1p(math.exp(raw)) == pytest.approx(1.0 / t0, rel=1e-5)  # softplus(raw) = 1/T
    with torch.no_grad():
        loss.raw_temperature.fill_(1.5)  # a raw value where softplus is far from the identity
    scale = math.log1p(math.exp(1.5))
    assert loss.temperature == pytest.approx(1.0 / scale, rel=1e-5)
    expected = direct_infonce(eeg.double().numpy(), img.double().numpy(), 1.0 / scale)
    assert loss(eeg, img).item() == pytest.approx(expected, rel=1e-5)
    # the gradient reaches raw through the logit scale: d loss / d raw = d loss / d scale * sigmoid(raw)
    loss.zero_grad()
    loss(eeg, img).backward()
    s = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    e = torch.nn.functional.normalize(eeg.double(), dim=-1)
    v = torch.nn.functional.normalize(img.double(), dim=-1)
    logits = s * e @ v.t()
    labels = torch.arange(len(logits))
    ref = 0.5 * (
        torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.t(), labels)
    )
    ref.backward()
    sig = 1.0 / (1.0 + math.exp(-1.5))
    assert loss.raw_temperature.grad.item() == pytest.approx(s.grad.item() * sig, rel=1e-4)
    # the softplus on T is a different parametrisation: same start, different raw and gradient
    on_t = eegbench.create("loss", "clip", learn_temperature=True, temperature_param="softplus", temperature=t0)
    assert on_t.temperature == pytest.approx(t0, rel=1e-5)
    assert float(on_t.raw_temperature.detach()) != pytest.approx(
        float(
            eegbench.create(
                "loss", "clip", learn_temperature=True, temperature_param="softplus-scale", temperature=t0
            ).raw_temperature.detach()
        )
    )


def test_clip_unknown_temperature_param_is_refused():
    with pytest.raises(EegbenchError, match="softplus-scale"):
        eegbench.create("loss", "clip", temperature_param="exp")


def test_clip_log_scale_is_clamped_like_clip():
    loss = eegbench.create("loss", "clip", learn_temperature=True, temperature=0.001)
    assert loss.logit_scale.item() == pytest.approx(100.0)
    assert loss.temperature == pytest.approx(0.01)


def test_clip_text_term():
    eeg, img, txt = fixed_inputs()
    w = 0.25
    loss = eegbench.create("loss", "clip", text_weight=w)
    assert loss.needs_text
    plain = eegbench.create("loss", "clip")
    expected = (1 - w) * plain(eeg, img) + w * plain(eeg, txt)
    assert loss(eeg, img, txt).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(EegbenchError, match="no text embeddings"):
        loss(eeg, img)


def test_soft_clip_direct_formula_and_limit():
    eeg, img, _ = fixed_inputs()
    t, tt = 0.1, 0.2
    loss = eegbench.create("loss", "soft-clip", temperature=t, target_temperature=tt)
    e = eeg.double().numpy() / np.linalg.norm(eeg.double().numpy(), axis=1, keepdims=True)
    v = img.double().numpy() / np.linalg.norm(img.double().numpy(), axis=1, keepdims=True)
    s = e @ v.T / t
    q = np.exp(v @ v.T / tt)
    q /= q.sum(1, keepdims=True)
    log_row = s - np.log(np.exp(s).sum(1, keepdims=True))
    log_col = s.T - np.log(np.exp(s.T).sum(1, keepdims=True))
    expected = 0.5 * (-(q * log_row).sum(1).mean() - (q * log_col).sum(1).mean())
    assert loss(eeg, img).item() == pytest.approx(expected, rel=1e-5)
    # very sharp targets are one-hot: soft-clip becomes clip
    sharp = eegbench.create("loss", "soft-clip", temperature=t, target_temperature=1e-4)
    hard = eegbench.create("loss", "clip", temperature=t)
    assert sharp(eeg, img).item() == pytest.approx(hard(eeg, img).item(), rel=1e-5)
    # the targets are constants: with the image side frozen, only the EEG side receives gradient
    eeg_g = eeg.clone().requires_grad_(True)
    loss(eeg_g, img).backward()
    assert eeg_g.grad is not None and eeg_g.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [{"temperature": 0}, {"temperature_param": "linear"}, {"text_weight": 2.0}])
def test_clip_bad_params(bad):
    with pytest.raises(EegbenchError, match="loss clip"):
        eegbench.create("loss", "clip", **bad)


@pytest.mark.parametrize("name", ["clip", "soft-clip"])
def test_center_subtracts_each_embeddings_feature_mean(name):
    """center = true equals the plain loss on mean-centred inputs (what the seed's trainer feeds its loss)."""
    eeg, img, _ = fixed_inputs()
    eeg, img = eeg + 1.5, img - 0.7
    centred = eegbench.create("loss", name, center=True)
    plain = eegbench.create("loss", name)
    by_hand = plain(eeg - eeg.mean(1, keepdim=True), img - img.mean(1, keepdim=True))
    assert centred(eeg, img).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert abs(centred(eeg, img).item() - plain(eeg, img).item()) > 1e-3
    with pytest.raises(EegbenchError, match="'center' must be true or false"):
        eegbench.create("loss", name, center=1)
