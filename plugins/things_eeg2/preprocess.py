"""Raw Things-EEG-2 sessions → the preprocessed release format, with MNE.

Per session: ``RawArray`` → events from the ``stim`` channel → drop catch trials (99999) → pick channels →
``Epochs`` with a pre-stimulus baseline → resample → multivariate noise normalisation (MVNN) → sort by
condition. Sessions are then merged per condition (repetitions collected over sessions) and written as
``preprocessed_eeg_{training,test}.npy`` dicts, with ``preprocessing.json`` recording the options.

MVNN whitens each session with Σ^-½, Σ a noise covariance averaged over conditions: per epoch over time
(``epochs``) or per time point over repetitions (``time``), shrunk towards a scaled identity. By default Σ is
fitted on the session's **training** epochs only; ``mvnn_fit="train+test"`` averages the training and test
covariances as the authors' pipeline does (a mild leak of test statistics, recorded in the sidecar).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from eegbench.errors import DataError

from . import layout
from .safe_pickle import load_pickled_npy, save_pickled_dict

#: shrinkage of the noise covariance towards trace/C · I (keeps Σ^-½ stable with few samples)
SHRINKAGE = 0.1


@dataclass(frozen=True)
class PreprocessOptions:
    sfreq: float = 100.0
    channels: str = "occipito-parietal"  # or "all"
    tmin: float = -0.2
    tmax: float = 0.8
    mvnn: str = "epochs"  # "epochs" | "time" | "none"
    mvnn_fit: str = "train"  # "train" | "train+test"

    def __post_init__(self) -> None:
        if self.channels not in ("occipito-parietal", "all"):
            raise DataError(f"channels must be 'occipito-parietal' or 'all', got {self.channels!r}")
        if self.mvnn not in ("epochs", "time", "none"):
            raise DataError(f"mvnn must be 'epochs', 'time' or 'none', got {self.mvnn!r}")
        if self.mvnn_fit not in ("train", "train+test"):
            raise DataError(f"mvnn_fit must be 'train' or 'train+test', got {self.mvnn_fit!r}")
        if not (math.isfinite(self.sfreq) and self.sfreq > 0):
            raise DataError(f"sfreq {self.sfreq}: the output sampling rate must be a positive number of Hz (at most the raw {layout.RAW_SFREQ:g} Hz)")
        if not (math.isfinite(self.tmin) and math.isfinite(self.tmax) and self.tmin < self.tmax):
            raise DataError(f"tmin {self.tmin}, tmax {self.tmax}: the epoch start must be before its end (seconds)")
        if not self.tmin < 0 < self.tmax:
            raise DataError(f"the epoch (tmin {self.tmin}, tmax {self.tmax}) must contain the stimulus onset (0 s)")


def epoch_session(path: Path, opts: PreprocessOptions) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(epochs [n, C, T] float64, condition codes [n], channel names, times) of one raw file."""
    import mne

    rec = load_pickled_npy(path)
    try:
        data = np.asarray(rec["raw_eeg_data"], dtype=np.float64)
        names = [str(c) for c in rec["ch_names"]]
        types = [str(t) for t in rec.get("ch_types", ["eeg"] * (len(names) - 1) + ["stim"])]
        sfreq = float(rec["sfreq"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a raw Things-EEG-2 file (missing {exc})") from None
    if opts.sfreq > sfreq:
        raise DataError(f"{path}: sfreq {opts.sfreq:g} is above the recording's {sfreq:g} Hz; choose 0 < sfreq <= {sfreq:g}")
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, types), verbose="error")
    events = mne.find_events(raw, stim_channel="stim", shortest_event=1, initial_event=True, verbose="error")
    events = events[events[:, 2] != layout.CATCH_CODE]
    if not len(events):
        raise DataError(f"{path}: no stimulus events in the 'stim' channel")
    picks = list(layout.OCCIPITO_PARIETAL) if opts.channels == "occipito-parietal" else [n for n, t in zip(names, types) if t == "eeg"]
    missing = [c for c in picks if c not in names]
    if missing:
        raise DataError(f"{path}: channel {missing[0]!r} missing from the recording")
    raw.pick(picks)
    epochs = mne.Epochs(raw, events, tmin=opts.tmin, tmax=opts.tmax, baseline=(None, 0), preload=True, reject=None, verbose="error")
    if opts.sfreq != sfreq:
        epochs.resample(opts.sfreq, verbose="error")
    return epochs.get_data(copy=True), epochs.events[:, 2].astype(np.int64), picks, epochs.times.copy()


def noise_covariance(epochs: np.ndarray, codes: np.ndarray, mode: str) -> np.ndarray:
    """Σ [C, C] averaged over conditions (vectorized per condition group)."""
    covs = []
    for code in np.unique(codes):
        x = epochs[codes == code]  # [r, C, T]
        if mode == "epochs":  # covariance over time within each epoch, averaged over epochs
            xc = x - x.mean(axis=2, keepdims=True)
            covs.append(np.einsum("rct,rdt->cd", xc, xc) / (x.shape[0] * (x.shape[2] - 1)))
        elif len(x) > 1:  # "time": covariance over repetitions at each time point, averaged over time
            xc = x - x.mean(axis=0, keepdims=True)
            covs.append(np.einsum("rct,rdt->cd", xc, xc) / ((x.shape[0] - 1) * x.shape[2]))
    if not covs:
        raise DataError("MVNN 'time' needs at least 2 repetitions of a condition in a session")
    sigma = np.mean(covs, axis=0)
    target = np.trace(sigma) / len(sigma) * np.eye(len(sigma))
    return (1 - SHRINKAGE) * sigma + SHRINKAGE * target


def inverse_sqrt(sigma: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(sigma)
    return (vecs / np.sqrt(np.maximum(vals, 1e-12 * vals.max()))) @ vecs.T


def _sort(epochs: np.ndarray, codes: np.ndarray, n_conditions: int, source: str) -> list[np.ndarray]:
    """Per condition (0-based), its repetitions [r, C, T] in this session."""
    if codes.max() > n_conditions:
        raise DataError(f"{source}: event code {codes.max()} exceeds the {n_conditions} image conditions")
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(1, n_conditions + 2))
    return [epochs[order[bounds[c] : bounds[c + 1]]] for c in range(n_conditions)]


def preprocess_subject(root: Path, subject: int, opts: PreprocessOptions, out_root: Path, n_conditions: dict[str, int], progress: Callable[[str], None]) -> None:
    per_cond: dict[str, list[list[np.ndarray]]] = {s: [[] for _ in range(n_conditions[s])] for s in ("train", "test")}
    times = names = None
    for session in range(1, layout.N_SESSIONS + 1):
        parts = {}
        for split in ("train", "test"):
            path = layout.raw_file(root, subject, session, split)
            if not path.is_file():
                raise DataError(f"{path}: missing; {_raw_advice(root, [subject])}")
            parts[split] = epoch_session(path, opts)
            _, _, names, times = parts[split]
        if opts.mvnn != "none":
            fit = ["train"] if opts.mvnn_fit == "train" else ["train", "test"]
            sigma = np.mean([noise_covariance(parts[s][0], parts[s][1], opts.mvnn) for s in fit], axis=0)
            w = inverse_sqrt(sigma)
            for s in parts:
                parts[s] = (np.einsum("cd,ndt->nct", w, parts[s][0]), *parts[s][1:])
        for s, (ep, codes, _, _) in parts.items():
            for c, reps in enumerate(_sort(ep, codes, n_conditions[s], str(layout.raw_file(root, subject, session, s)))):
                if len(reps):
                    per_cond[s][c].append(reps)
        progress(f"{layout.sub(subject)} ses-{session:02d}: {len(parts['train'][1])} training + {len(parts['test'][1])} test epochs")
    for s in ("train", "test"):
        merged = [np.concatenate(r) if r else None for r in per_cond[s]]
        absent = [i + 1 for i, m in enumerate(merged) if m is None]
        if absent:
            raise DataError(f"{layout.sub(subject)} {s}: condition {absent[0]} never shown in any session")
        reps = min(len(m) for m in merged)  # the authors keep the same number of repetitions per condition
        data = np.stack([m[:reps] for m in merged])
        save_pickled_dict(
            layout.preprocessed_file(out_root, subject, s),
            {"preprocessed_eeg_data": data, "ch_names": list(names), "times": times},
        )
    sidecar = layout.preprocessed_file(out_root, subject, "train").parent / "preprocessing.json"
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"tool": "eegbench preprocess things-eeg-2", "options": asdict(opts), "source": str(root),
                                   "mvnn_shrinkage": SHRINKAGE, "test_statistics_in_mvnn": opts.mvnn_fit == "train+test"}, indent=2))
    os.replace(tmp, sidecar)  # atomic, like the arrays


def _n_conditions(root: Path, subject: int) -> dict[str, int]:
    meta_path = layout.metadata_file(root)
    if meta_path.is_file():
        meta = load_pickled_npy(meta_path)
        return {"train": len(meta["train_img_files"]), "test": len(meta["test_img_files"])}
    raise DataError(f"{meta_path}: missing (needed for the number of image conditions); run `eegbench download things-eeg-2 --root {root} --parts images`")


def _raw_advice(root: Path, subjects: list[int] | None) -> str:
    """How to get raw sessions into ``root``: the release's download, or the twin's own regeneration."""
    from .synth import read_params, twin_advice

    twin = read_params(root)
    if twin is not None:
        return twin_advice(root, twin, subjects=subjects, raw=True)
    cmd = f"eegbench download things-eeg-2 --root {root} --parts raw"
    return f"run `{cmd}{' --subjects ' + ' '.join(map(str, subjects)) if subjects else ''}`"


def preprocess(root: str | os.PathLike, opts: PreprocessOptions | None = None, *, subjects: Iterable[int] | None = None,
               out_root: str | os.PathLike | None = None, overwrite: bool = False,
               progress: Callable[[str], None] | None = None) -> list[int]:
    """Preprocess raw sessions of ``subjects`` (default: every subject with raw data) into ``out_root``.

    Existing ``preprocessed_eeg_*.npy`` under ``out_root`` (by default ``root`` itself, where the release's
    own files live) are never replaced unless ``overwrite``: a one-line DataError names the first one before
    any work starts. Every file is written atomically (temporary file, then rename).
    """
    root = Path(root).expanduser()
    opts = opts or PreprocessOptions()
    out = Path(out_root).expanduser() if out_root else root
    raw_dir = root / "eeg_dataset" / "raw_data"
    if subjects is None:
        subjects = sorted(int(p.name[4:]) for p in raw_dir.glob("sub-*") if p.name[4:].isdigit()) if raw_dir.is_dir() else []
    subjects = list(subjects)
    if not subjects:
        raise DataError(f"{raw_dir}: no raw sessions; {_raw_advice(root, None)}")
    from .download import check_subjects

    check_subjects(subjects)
    if not overwrite:
        taken = [p for s in subjects for split in ("train", "test") if (p := layout.preprocessed_file(out, s, split)).exists()]
        if taken:
            raise DataError(
                f"{taken[0]}: already exists and would be overwritten ({len(taken)} file(s)); write elsewhere with "
                "`--out DIR2` (then set dataset.params.root=DIR2), or pass --overwrite to replace them"
            )
    for s in subjects:
        preprocess_subject(root, s, opts, out, _n_conditions(root, s), progress or (lambda m: None))
    _share_images(root, out)
    return subjects


def _share_images(root: Path, out: Path) -> None:
    """Make ``out`` a complete dataset root: its ``image_set`` links to the source's (nothing is copied)."""
    src, dest = layout.image_set_dir(root), layout.image_set_dir(out)
    if out.resolve() == root.resolve() or dest.exists() or dest.is_symlink() or not src.is_dir():
        return
    try:
        os.symlink(src.resolve(), dest, target_is_directory=True)
    except OSError:  # no symlinks here (some filesystems): the metadata alone lets the EEG load
        import shutil

        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(layout.metadata_file(root), layout.metadata_file(out))
