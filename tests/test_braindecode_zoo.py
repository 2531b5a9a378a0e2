"""The braindecode zoo: every registered model by name, forward + backward at Things-EEG-2's shape."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

import eegbench
from eegbench.errors import EegbenchError
from eegbench_plugins.braindecode_zoo import ALIASES, CHECK_CHANNELS, PREFIX, model_names, model_table

SHAPE = dict(n_chans=17, n_times=128, sfreq=100.0, chs_info=list(CHECK_CHANNELS))
BACKBONES = [c.name for c in eegbench.list_components("backbone", PREFIX + "*")]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    # models that fetch files on first use (REVE's position bank) must neither download nor write in $HOME
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    monkeypatch.setenv("REVE_POSITIONS_PATH", str(tmp_path))


def test_static_list_equals_installed_braindecode():
    from braindecode.models.util import models_dict

    assert model_names() == sorted(models_dict)
    assert sorted(n[len(PREFIX) :] for n in BACKBONES) == model_names()


def test_recorded_signal_is_braindecodes_application():
    """The static list's "signal" (EEG, or sEMG for braindecode's EMG models) follows braindecode's own summary."""
    import csv
    from pathlib import Path

    import braindecode

    from eegbench_plugins.braindecode_zoo import signal_of

    with open(Path(braindecode.__file__).parent / "models" / "summary.csv", encoding="utf-8-sig") as f:
        apps = {r["Model"]: r["Application"] for r in csv.DictReader(f)}
    for name, entry in model_table().items():
        assert entry["signal"] == signal_of(apps.get(name, "")), name
    assert model_table()["NeuroPose"]["signal"] == "sEMG" and model_table()["EEGNet"]["signal"] == "EEG"


def test_listing_does_not_import_braindecode():
    code = (
        "import sys, eegbench; names = [c.name for c in eegbench.list_components('backbone', 'braindecode:*')]; "
        "assert len(names) > 40, names; print(','.join(m for m in ('braindecode', 'torch', 'mne') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_aliases_point_at_models():
    for alias, cls in ALIASES.items():
        comp = eegbench.get_component("backbone", alias)
        assert comp.defaults["model"] == cls and f"alias of {PREFIX}{cls}" in comp.notes


@pytest.mark.parametrize("name", BACKBONES)
def test_every_model_forward_backward_or_one_line_refusal(name):
    cls_name = name[len(PREFIX) :]
    fits = model_table()[cls_name]["fits"]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not fits:
            # the catalogue marks it, and building says why in one line naming the model
            assert "cannot take 17 ch x 128 samples" in eegbench.get_component("backbone", name).notes
            with pytest.raises(EegbenchError) as err:
                eegbench.create("backbone", name, **SHAPE)
            assert name in str(err.value) and "\n" not in str(err.value)
            return
        net = eegbench.create("backbone", name, **SHAPE)
        net.train()
        x = torch.randn(2, 17, 128)
        out = net(x)
    assert out.shape == (2, net.n_features) and net.n_features > 0
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_extra_params_reach_the_model():
    small = eegbench.create("backbone", "eegnet", **SHAPE)
    wide = eegbench.create("backbone", "eegnet", F1=16, D=2, **SHAPE)
    assert wide.n_features == 2 * small.n_features
    with pytest.raises(EegbenchError, match="braindecode:EEGNet: bad parameters"):
        eegbench.create("backbone", "eegnet", no_such_argument=1, **SHAPE)
