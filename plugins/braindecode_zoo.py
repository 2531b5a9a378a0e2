"""Every braindecode model as an EEG backbone: ``braindecode:<ClassName>``, plus short aliases.

Listing must not import braindecode (it takes seconds and pulls in mne), so the model names come from a
static list, ``braindecode_models.json`` beside this module, generated from braindecode 1.8.1 with
``python -m eegbench_plugins.braindecode_zoo --write``; a test keeps it equal to the installed braindecode's
``models_dict``. The same run records, for each model, whether it can take the Things-EEG-2 shape
(17 channels x 128 samples at 100 Hz) and, if not, the constraint it reports: that goes into the
component's ``notes``.

Building (``factory(n_chans, n_times, sfreq, chs_info, **params)``): the braindecode class is built with the
signal arguments (``chs_info`` as MNE channel dicts; channel *names* are turned into dicts with
standard 10-20 positions), ``n_outputs`` set to a placeholder and any extra keyword arguments passed on.
The classification head (``final_layer``) is replaced by identities, so the module yields the features
the head would have seen, flattened to ``[B, F]``; ``n_features`` is found by a dry forward. A model that
cannot take the input fails at build time with one line naming the model and the constraint.
"""

from __future__ import annotations

import contextlib
import functools
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from eegbench import Component, hookimpl
from eegbench.errors import EegbenchError, first_line

from .things_eeg2.layout import OCCIPITO_PARIETAL

MODELS_FILE = Path(__file__).with_name("braindecode_models.json")
PREFIX = "braindecode:"
CITATION = (
    "Schirrmeister et al. (2017), Deep learning with convolutional neural networks for EEG decoding and "
    "visualization, Human Brain Mapping (braindecode)"
)
#: the placeholder class count: the head that uses it is removed
N_OUTPUTS = 4
#: the shape the catalogue's notes are checked at (Things-EEG-2 as the seed uses it)
CHECK_SHAPE = {"n_chans": 17, "n_times": 128, "sfreq": 100.0}
#: the same shape as recorded in each component's ``fits`` (``eegbench list --fits 17x128``)
CHECK_FITS = "17x128@100"
#: the channels of that shape: the release's 17 occipito-parietal ones
CHECK_CHANNELS = OCCIPITO_PARIETAL

#: short names for the models people reach for first
ALIASES: dict[str, str] = {
    "eegnet": "EEGNet",
    "shallow-fbcsp-net": "ShallowFBCSPNet",
    "deep4net": "Deep4Net",
    "eeg-conformer": "EEGConformer",
    "atcnet": "ATCNet",
    "eeg-inception": "EEGInceptionERP",
    "eeg-inception-mi": "EEGInceptionMI",
    "eegnex": "EEGNeX",
    "eeg-itnet": "EEGITNet",
    "eeg-tcnet": "EEGTCNet",
    "tidnet": "TIDNet",
    "tsception": "TSception",
    "ctnet": "CTNet",
    "sccnet": "SCCNet",
    "fbcnet": "FBCNet",
    "biot": "BIOT",
}


@lru_cache(maxsize=1)
def model_table() -> dict[str, dict[str, Any]]:
    """``{class name: {"summary", "notes", "fits", "signal"}}`` from the static list (no braindecode import)."""
    data = json.loads(MODELS_FILE.read_text())
    return data["models"]


def model_names() -> list[str]:
    return sorted(model_table())


def _component(name: str, cls_name: str) -> Component:
    entry = model_table()[cls_name]
    notes = entry.get("notes", "")
    if name != PREFIX + cls_name:
        notes = f"alias of {PREFIX}{cls_name}" + (f"; {notes}" if notes else "")
    return Component(
        kind="backbone",
        name=name,
        summary=entry.get("summary") or f"braindecode {cls_name} (classification head removed)",
        # the model's name is the one default; build's **params passes any other keyword to the class
        factory=functools.partial(build, model=cls_name),
        citation=entry.get("citation") or CITATION,
        notes=notes,
        alias_of=PREFIX + cls_name if name != PREFIX + cls_name else "",
        signal=entry.get("signal", "EEG"),
        fits=(CHECK_FITS,) if entry.get("fits") else (),
        imports=("braindecode.models",),  # seconds to import: worker processes do it once, up front
    )


def signal_of(application: str) -> str:
    """What a model reads, from braindecode's summary "Application" field: its EMG models say "(sEMG)"."""
    return "sEMG" if "emg" in application.lower() else "EEG"


@hookimpl
def eegbench_backbones() -> list[Component]:
    comps = [_component(PREFIX + n, n) for n in model_names()]
    comps += [_component(alias, cls) for alias, cls in ALIASES.items() if cls in model_table()]
    return comps


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------
def channel_dicts(chs_info: Any) -> list[dict] | None:
    """MNE channel dicts from names (standard 10-20 positions) or pass dicts through."""
    if chs_info is None:
        return None
    chs = list(chs_info)
    if chs and all(isinstance(c, str) for c in chs):
        import mne

        info = mne.create_info(chs, 100.0, "eeg")
        with contextlib.suppress(ValueError):  # names outside 10-20: no positions; models that need them say so
            info.set_montage("standard_1020", on_missing="ignore", verbose="error")
        return list(info["chs"])
    return chs


def _strip_head(net):
    from torch import nn

    from eegbench_plugins.braindecode_nn import Passthrough

    head = getattr(net, "final_layer", None)
    if head is None:
        return False
    if isinstance(head, nn.ModuleList):
        net.final_layer = nn.ModuleList(Passthrough() for _ in head)
    else:
        net.final_layer = Passthrough()
    return True


def _first_line(exc: BaseException) -> str:
    return first_line(exc, 300) or type(exc).__name__


def build(
    n_chans: int, n_times: int, sfreq: float | None = None, chs_info=None, subjects=None, *, model: str, **params: Any
):
    """Build ``braindecode:<model>`` as a feature extractor (the backbone factory contract)."""
    import torch

    from eegbench_plugins.braindecode_nn import BraindecodeEmbedder

    name = PREFIX + model
    shape = f"{n_chans} channels x {n_times} samples" + (f" at {sfreq:g} Hz" if sfreq else "")
    try:
        import warnings

        with warnings.catch_warnings():  # braindecode's import-time deprecation notices (MNE montage names) are
            warnings.simplefilter("ignore", FutureWarning)  # not the user's to act on: keep run output clean
            from braindecode.models.util import models_dict
    except ImportError as exc:
        raise EegbenchError(
            f"backbone {name}: braindecode is not importable ({exc}); pip install braindecode"
        ) from None
    cls = models_dict.get(model)
    if cls is None:
        raise EegbenchError(f"backbone {name}: the installed braindecode has no model {model!r}")
    kwargs: dict[str, Any] = {"n_chans": int(n_chans), "n_times": int(n_times), "n_outputs": N_OUTPUTS, **params}
    if sfreq:
        kwargs["sfreq"] = float(sfreq)
    chs = channel_dicts(chs_info)
    if chs is not None:
        kwargs["chs_info"] = chs
    try:
        net = cls(**kwargs)
    except TypeError as exc:
        raise EegbenchError(f"backbone {name}: bad parameters ({_first_line(exc)})") from None
    except Exception as exc:
        raise EegbenchError(f"backbone {name} cannot take {shape}: {_first_line(exc)}") from None
    if not _strip_head(net):
        raise EegbenchError(f"backbone {name}: the model has no final_layer to remove")
    embedder = BraindecodeEmbedder(net, model)
    was_training = embedder.training
    embedder.eval()
    try:
        with torch.no_grad():
            out = embedder(torch.zeros(2, int(n_chans), int(n_times)))
    except Exception as exc:
        raise EegbenchError(f"backbone {name} cannot take {shape}: {_first_line(exc)}") from None
    embedder.train(was_training)
    embedder.n_features = int(out.shape[1])
    return embedder


# --------------------------------------------------------------------------------------------------
# regenerating the static list (python -m eegbench_plugins.braindecode_zoo --write)
# --------------------------------------------------------------------------------------------------
def scan_installed() -> dict[str, Any]:
    """Build every installed braindecode model at :data:`CHECK_SHAPE`; the static list's content."""
    import csv
    import importlib.metadata
    import warnings

    import braindecode
    from braindecode.models.util import models_dict

    summary_csv = Path(braindecode.__file__).parent / "models" / "summary.csv"
    rows = {}
    if summary_csv.is_file():
        with open(summary_csv, encoding="utf-8-sig") as f:
            rows = {r["Model"]: r for r in csv.DictReader(f)}
    models = {}
    for name in sorted(models_dict):
        row = rows.get(name, {})
        kind = ", ".join(x for x in (row.get("Application", ""), row.get("Categorization", "").replace(",", "/")) if x)
        summary = f"braindecode {name}" + (f" ({kind})" if kind else "") + ", classification head removed"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                build(**CHECK_SHAPE, chs_info=list(CHECK_CHANNELS), model=name)
            fits, notes = True, ""
        except EegbenchError as exc:
            reason = str(exc).split(": ", 1)[-1]
            if "download" in reason.lower():  # not a shape constraint: a file fetched on first use
                reason = "needs a file braindecode downloads on first use (unavailable offline when this list was made)"
            fits, notes = (
                False,
                f"cannot take 17 ch x 128 samples @ 100 Hz (braindecode {braindecode.__version__}): {reason}",
            )
        models[name] = {
            "summary": summary,
            "fits": fits,
            "notes": notes,
            "signal": signal_of(row.get("Application", "")),
        }
    return {"braindecode_version": importlib.metadata.version("braindecode"), "models": models}


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"rewrite {MODELS_FILE.name}")
    args = p.parse_args(argv)
    data = scan_installed()
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if args.write:
        MODELS_FILE.write_text(text)
        print(f"wrote {MODELS_FILE} ({len(data['models'])} models)")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
