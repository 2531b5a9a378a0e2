"""The field's decoders (nice, atm-s, ubp-mlp) and their reported numbers (plugins/papers/reported.toml)."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import pytest

import eegbench
from eegbench.errors import EegbenchError

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
PAPER_BACKBONES = ("nice", "atm-s", "ubp-mlp")
#: Things-EEG-2 shapes: the release (17 x 100), the seed's interpolation (17 x 128), the papers' (63 x 250)
SHAPES = [(17, 100), (17, 128), (63, 250)]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_registered_with_citations_and_defaults():
    names = {c.name: c for c in eegbench.list_components("backbone")}
    for name in PAPER_BACKBONES:
        comp = names[name]
        assert comp.citation and any(year in comp.citation for year in ("2024", "2025"))
        assert comp.entry_point == "papers"
        assert comp.defaults, name
    assert eegbench.get_component("backbone", "atm-s").defaults["proj_dim"] == 1024
    assert eegbench.get_component("backbone", "nice").defaults["proj_dim"] == 768
    assert eegbench.get_component("backbone", "ubp-mlp").defaults["dropout"] == 0.3


@pytest.mark.parametrize("name", PAPER_BACKBONES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_forward_backward_at_things_shapes(name, shape):
    torch.manual_seed(0)
    n_chans, n_times = shape
    model = eegbench.create("backbone", name, n_chans=n_chans, n_times=n_times, sfreq=250.0)
    x = torch.randn(3, n_chans, n_times)
    out = model(x)
    assert out.shape == (3, model.n_features)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), f"{name}: a parameter takes no part in forward"
    assert any(g.abs().sum() > 0 for g in grads)
    # rows are independent in eval mode (no batch mixing, e.g. through attention over the wrong axis)
    model.eval()
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-5)


# Reference counts computed by reading the authors' public code, layer by layer; the arithmetic is in each
# module's docstring (plugins/papers/{nice,atm,ubp}.py) and in docs/papers.md.
@pytest.mark.parametrize(
    "name, shape, expected",
    [
        # NICE (eeyhsong/NICE-EEG): Enc_eeg 103,680 + Proj_eeg 1,698,816
        ("nice", (63, 250), 1_802_496),
        # ATM-S (dongyangli-del/EEG_Image_decode): ATMS() holds 3,202,413; minus the never-used
        # subject_wise_linear (125,500), time-feature embedding (1,000), the two mask tokens (500), the subject
        # table's unused rows (2,500 of Embedding(10, 250) + shared token, one token kept) and logit_scale (1)
        # = 3,072,912
        ("atm-s", (63, 250), 3_072_912),
        # UBP (HaitaoWuTJU/Uncertainty-aware-Blur-Prior) EEGProjectLayer at the paper's 17 x 250, without logit_scale
        ("ubp-mlp", (17, 250), 5_404_672),
        ("ubp-mlp", (63, 250), 17_180_672),
    ],
)
def test_parameter_count_equals_authors_implementation(name, shape, expected):
    model = eegbench.create("backbone", name, n_chans=shape[0], n_times=shape[1], sfreq=250.0)
    assert n_params(model) == expected


def test_reference_constants_agree_with_modules():
    from eegbench_plugins.papers import atm, nice, ubp

    assert nice.REFERENCE_PARAMS_63x250 == 1_802_496
    assert atm.REFERENCE_PARAMS_63x250 == 3_072_912
    # the dead parameters of the authors' ATMS module, listed in plugins/papers/atm.py
    assert atm.REFERENCE_MODULE_PARAMS_63x250 - atm.REFERENCE_PARAMS_63x250 == 125_500 + 1_000 + 500 + 2_500 + 1
    assert ubp.REFERENCE_PARAMS_17x250 == 5_404_672


def test_projection_is_inside_the_backbone_and_can_be_left_out():
    full = eegbench.create("backbone", "nice", n_chans=63, n_times=250)
    bare = eegbench.create("backbone", "nice", n_chans=63, n_times=250, proj_dim=0)
    assert full.includes_projection and not bare.includes_projection
    assert bare.n_features == 1440  # 40 maps x 36 patches, the papers' embedding_dim
    assert bare(torch.randn(2, 63, 250)).shape == (2, 1440)
    atm = eegbench.create("backbone", "atm-s", n_chans=63, n_times=250, proj_dim=0)
    assert atm.n_features == 1440


def test_nice_authors_init_is_normal_002():
    torch.manual_seed(0)
    model = eegbench.create("backbone", "nice", n_chans=63, n_times=250)
    w = model.projection.linear.weight
    assert abs(float(w.detach().std()) - 0.02) < 0.002
    default = eegbench.create("backbone", "nice", n_chans=63, n_times=250, init="default")
    assert float(default.projection.linear.weight.detach().std()) < 0.02  # PyTorch's U(+-1/sqrt(1440)) has std ~0.015


def test_too_short_input_is_one_line():
    with pytest.raises(EegbenchError, match="n_times=60 is too short"):
        eegbench.create("backbone", "nice", n_chans=17, n_times=60)
    with pytest.raises(EegbenchError, match="init must be"):
        eegbench.create("backbone", "nice", n_chans=17, n_times=100, init="xavier")
    with pytest.raises(EegbenchError, match="no parameter"):
        eegbench.create("backbone", "ubp-mlp", n_chans=17, n_times=100, depth=3)
    # ATM-S convolves the d_model-wide token map, so a short input still works
    assert eegbench.create("backbone", "atm-s", n_chans=17, n_times=60)(torch.randn(2, 17, 60)).shape == (2, 1024)


def test_atm_token_can_be_disabled_and_changes_the_count_by_d_model():
    with_token = eegbench.create("backbone", "atm-s", n_chans=63, n_times=250)
    without = eegbench.create("backbone", "atm-s", n_chans=63, n_times=250, token=False)
    assert n_params(with_token) - n_params(without) == 250
    assert without(torch.randn(2, 63, 250)).shape == (2, 1024)


def test_listing_imports_no_torch_model_modules():
    import subprocess
    import sys

    code = (
        "import sys, eegbench; eegbench.list_components('backbone');"
        "bad=[m for m in ('eegbench_plugins.papers.nice','eegbench_plugins.papers.atm',"
        "'eegbench_plugins.papers.ubp','torch') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------------------------------
# reported numbers (the reported-results format)
# --------------------------------------------------------------------------------------------------
REQUIRED = {
    "method": str,
    "citation": str,
    "dataset": str,
    "protocol": str,
    "stage": str,
    "n_way": int,
    "top1": float,
    "top5": float,
    "image_encoder": str,
    "input": str,
    "test_averaging": str,
    "selection": str,
    "notes": str,
}
#: the papers' tables (percent), as gathered in shared/things-eeg-2.md
PAPER_TABLE = {
    ("NICE", "intra"): (16.1, 43.6),
    ("NICE", "loso"): (6.2, 21.4),
    ("NICE-GA", "intra"): (15.6, 42.8),
    ("NICE-GA", "loso"): (5.9, 21.6),
    ("ATM-S", "intra"): (28.5, 60.4),
    ("ATM-S", "loso"): (11.8, 33.7),
    ("UBP", "intra"): (50.9, 79.7),
    ("UBP", "loso"): (12.4, 33.4),
}


def load_reported() -> list[dict]:
    return tomllib.loads((ROOT / "plugins" / "papers" / "reported.toml").read_text())["reported"]


def test_reported_parses_with_required_keys():
    rows = load_reported()
    assert len(rows) == len(PAPER_TABLE)
    for row in rows:
        kway = {k for k in row if re.fullmatch(r"top[15]_\d+way", k)}  # optional: the k-way numbers a paper gives
        assert set(row) - kway == set(REQUIRED), row.get("method")
        assert all(isinstance(row[k], float) and 0.0 < row[k] <= 1.0 for k in kway), row["method"]
        for key, kind in REQUIRED.items():
            assert isinstance(row[key], kind), (row["method"], key)
        assert row["dataset"] == "things-eeg-2"
        assert row["protocol"] in ("intra", "loso")
        assert row["stage"] == "pretrain" and row["n_way"] == 200 and row["test_averaging"] == "all"
        assert 0.0 < row["top1"] <= row["top5"] <= 1.0


def test_reported_matches_the_papers_tables():
    rows = load_reported()
    got = {(r["method"], r["protocol"]): (r["top1"], r["top5"]) for r in rows}
    assert set(got) == set(PAPER_TABLE)
    for key, (top1, top5) in PAPER_TABLE.items():
        assert math.isclose(got[key][0], top1 / 100, abs_tol=1e-9), key
        assert math.isclose(got[key][1], top5 / 100, abs_tol=1e-9), key
    # ATM-S reports the epoch with the best test accuracy: the row must say so
    assert all(r["selection"] == "test-set" for r in rows if r["method"] == "ATM-S")


@pytest.mark.parametrize("name, cls_path", [("nice", "nice:NICE"), ("atm-s", "atm:ATMS"), ("ubp-mlp", "ubp:UBPMLP")])
def test_defaults_live_once_in_the_factory(name, cls_path):
    """The factory's signature is the one source of defaults: the model class takes every parameter the
    factory has, and writes no default of its own."""
    import importlib
    import inspect

    import eegbench

    module, cls = cls_path.split(":")
    model_cls = getattr(importlib.import_module(f"eegbench_plugins.papers.{module}"), cls)
    own = {k: p.default for k, p in inspect.signature(model_cls).parameters.items() if k not in ("n_chans", "n_times")}
    assert set(own) == set(eegbench.get_component("backbone", name).defaults)
    assert all(default is inspect.Parameter.empty for default in own.values())
