"""Output parity of the paper backbones (``nice``, ``atm-s`` with both token slices, ``ubp-mlp``) with their
authors' published code.

Each fixture ``tests/fixtures/papers_*.npz`` was made by running the authors' own model code (outside this
repository, eval mode, CPU) on weights whose every value is ``q * 2**e`` (an int8 mantissa ``q`` and one
exponent per tensor, so exact in float32); it holds those weights in eegbench's state-dict layout
(``param/<key>`` + ``exp/<key>``), the input, the authors' output(s) and, in ``meta`` (JSON), the reference
repository, commit, file and call, and the authors' → eegbench key mapping:

- ``papers_nice.npz``: github.com/eeyhsong/NICE-EEG @ a7709d81af9c4971c711b03fbee4e09e01477c4b,
  ``nice_stand.py``: ``Proj_eeg(embedding_dim=1440, proj_dim=32)(Enc_eeg()(x[:, None]))`` at 63 × 250
  (their ``Enc_eeg`` fixes 63 channels; ``proj_dim`` is an argument, kept small). Mapping:
  ``Enc_eeg.0.tsconv.{0,2,4,5}`` → ``encoder.net.{0,2,4,5}``, ``Enc_eeg.0.projection.0`` → ``encoder.net.8``,
  ``Proj_eeg.{0, 1.fn.1, 2}`` → ``projection.{linear, residual, norm}``.
- ``papers_ubp_mlp.npz``: github.com/HaitaoWuTJU/Uncertainty-aware-Blur-Prior @
  89d8b832ea6709e46fb537ee7c8c0e36bff8c8cc, ``base/eeg_backbone.py``:
  ``EEGProjectLayer(z_dim=64, c_num=17, timesteps=[0, 50])``. Mapping: ``model.{0, 1.f.1, 2}`` →
  ``projection.{linear, residual, norm}``; their ``logit_scale`` is the loss's.
- ``papers_atm_s.npz``: github.com/dongyangli-del/EEG_Image_decode @ 22c84ade268a30f7a6e28df6c3d99cbd8049554e,
  ``Retrieval/ATMS_retrieval.py`` (``ATMS``) + ``models/subject_layers/`` (its ``Transformer_EncDec.py`` read
  from the fork LisavilaLee/EEG_Image_decode @ 030f42229e1e147ebd0994b77741c46b04a2dee1, the upstream copy
  being unavailable to the maker): ``ATMS()(x, subject_ids=8)`` at the only size their code builds, 63 × 250 →
  1024. ``output_first`` is their unmodified forward (``enc_out[:, :63, :]``: eegbench ``tokens = "first"``);
  ``output_channels`` is their modules with that slice changed to ``[:, 1:64]`` (eegbench's default
  ``tokens = "channels"``). Mapping: ``subject_embedding.weight[8]`` → ``token``, the attention layer's
  ``{query,key,value,out}_projection`` → ``layers.0.{q,k,v,out}``, ``conv{1,2}`` (1×1 Conv1d) →
  ``layers.0.ff{1,2}``, ``norm{1,2}``, the encoder's final norm → ``norm``, TSConv and projection as NICE's.

A change that moves any of these models' outputs fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import eegbench

torch = pytest.importorskip("torch")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: (fixture, output array, extra backbone parameters)
CASES = [
    ("papers_nice.npz", "output", {}),
    ("papers_ubp_mlp.npz", "output", {}),
    ("papers_atm_s.npz", "output_first", {"tokens": "first"}),
    ("papers_atm_s.npz", "output_channels", {"tokens": "channels"}),
]


def load_fixture(name: str):
    with np.load(FIXTURES / name, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        state = {
            key[len("param/") :]: npz[key].astype(np.float64) * 2.0 ** int(npz["exp/" + key[len("param/") :]])
            for key in npz.files
            if key.startswith("param/")
        }
        arrays = {key: npz[key] for key in npz.files if not key.startswith(("param/", "exp/", "meta"))}
    return meta, state, arrays


def build_with_fixture_weights(meta, state, params):
    torch.manual_seed(0)
    model = eegbench.create(
        "backbone", meta["backbone"], n_chans=meta["n_chans"], n_times=meta["n_times"], **{**meta["params"], **params}
    )
    own = model.state_dict()
    assert set(state) == set(own), f"fixture keys differ from the model's: {set(state) ^ set(own)}"
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval()


@pytest.mark.parametrize("fixture,output,params", CASES, ids=[f"{c[0][7:-4]}-{c[1]}" for c in CASES])
def test_backbone_reproduces_authors_output(fixture, output, params):
    meta, state, arrays = load_fixture(fixture)
    assert meta["reference"]["repository"] and len(meta["reference"]["commit"]) == 40
    model = build_with_fixture_weights(meta, state, params)
    with torch.no_grad():
        out = model(torch.from_numpy(arrays["input"]))
    expected = torch.from_numpy(arrays[output])
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0.0, atol=1e-5)


def test_atm_token_slices_differ():
    """The two slices are different models on the same weights: the fixture can tell them apart."""
    _, _, arrays = load_fixture("papers_atm_s.npz")
    assert (np.abs(arrays["output_first"] - arrays["output_channels"]).max()) > 1e-2


def test_atm_rejects_unknown_token_slice():
    from eegbench.errors import EegbenchError

    with pytest.raises(EegbenchError, match="tokens must be one of 'channels', 'first'"):
        eegbench.create("backbone", "atm-s", n_chans=63, n_times=250, tokens="authors")
