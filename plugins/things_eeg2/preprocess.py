"""Raw Things-EEG-2 sessions → the preprocessed release format, with MNE.

Per session: ``RawArray`` → events from the ``stim`` channel → drop catch trials (99999) → pick channels →
``Epochs`` with a pre-stimulus baseline → resample → multivariate noise normalisation (MVNN) → sort by
condition. Sessions are then merged per condition (repetitions collected over sessions) and written as
``preprocessed_eeg_{training,test}.npy`` dicts, with ``preprocessing.json`` recording the options.

MVNN whitens each session with Σ^-½ as the dataset authors' ``mvnn`` (gifale95/eeg_encoding,
``02_eeg_preprocessing/preprocessing_utils.py``) does: one shrunk covariance per epoch over its time points
(``epochs``) or per time point over a condition's repetitions (``time``), averaged within each condition, then
over conditions, then over the fitted partitions. The shrinkage is scikit-learn's Ledoit–Wolf
(``_cov(X, shrinkage="auto")``: features standardised, ``ledoit_wolf``, rescaled) by default, or a fixed
coefficient (``shrunk_covariance`` of the empirical covariance). By default Σ is fitted on the session's
**training** epochs only; ``mvnn_fit="train+test"`` averages the training and test covariances as the authors'
pipeline does (a mild leak of test statistics, recorded in the sidecar).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eegbench.errors import DataError

from . import layout
from .safe_pickle import load_pickled_npy, save_pickled_dict

#: epochs (or condition × time points) per batch of covariance estimates: bounds the float64 temporaries
COV_BATCH = 1024


@dataclass(frozen=True)
class PreprocessOptions:
    sfreq: float = 100.0
    channels: str = "occipito-parietal"  # or "all"
    tmin: float = -0.2
    tmax: float = 0.8
    mvnn: str = "epochs"  # "epochs" | "time" | "none"
    mvnn_fit: str = "train"  # "train" | "train+test"
    mvnn_shrinkage: str | float = "auto"  # "auto" (Ledoit–Wolf) | a fixed coefficient in [0, 1]

    def __post_init__(self) -> None:
        if self.channels not in ("occipito-parietal", "all"):
            raise DataError(f"channels must be 'occipito-parietal' or 'all', got {self.channels!r}")
        if self.mvnn not in ("epochs", "time", "none"):
            raise DataError(f"mvnn must be 'epochs', 'time' or 'none', got {self.mvnn!r}")
        if self.mvnn_fit not in ("train", "train+test"):
            raise DataError(f"mvnn_fit must be 'train' or 'train+test', got {self.mvnn_fit!r}")
        if not (
            self.mvnn_shrinkage == "auto"
            or (
                isinstance(self.mvnn_shrinkage, (int, float))
                and not isinstance(self.mvnn_shrinkage, bool)
                and 0 <= self.mvnn_shrinkage <= 1
            )
        ):
            raise DataError(
                f"mvnn_shrinkage must be 'auto' (Ledoit-Wolf) or a number in [0, 1], got {self.mvnn_shrinkage!r}"
            )
        if not (math.isfinite(self.sfreq) and self.sfreq > 0):
            raise DataError(
                f"sfreq {self.sfreq}: the output sampling rate must be a positive number of Hz "
                f"(at most the raw {layout.RAW_SFREQ:g} Hz)"
            )
        if not (math.isfinite(self.tmin) and math.isfinite(self.tmax) and self.tmin < self.tmax):
            raise DataError(f"tmin {self.tmin}, tmax {self.tmax}: the epoch start must be before its end (seconds)")
        if not self.tmin < 0 < self.tmax:
            raise DataError(f"the epoch (tmin {self.tmin}, tmax {self.tmax}) must contain the stimulus onset (0 s)")


def epoch_session(path: Path, opts: PreprocessOptions) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(epochs [n, C, T] float64, condition codes [n], channel names, times) of one raw file."""
    import mne

    from .prepare import check_eeg

    rec = load_pickled_npy(path)
    try:
        data = np.asarray(rec["raw_eeg_data"])
        check_eeg(data, str(path), ("channel", "sample"))
        data = data.astype(np.float64, copy=False)
        names = [str(c) for c in rec["ch_names"]]
        types = [str(t) for t in rec.get("ch_types", ["eeg"] * (len(names) - 1) + ["stim"])]
        sfreq = float(rec["sfreq"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a raw Things-EEG-2 file (missing {exc})") from None
    if opts.sfreq > sfreq:
        raise DataError(
            f"{path}: sfreq {opts.sfreq:g} is above the recording's {sfreq:g} Hz; choose 0 < sfreq <= {sfreq:g}"
        )
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, types), verbose="error")
    events = mne.find_events(raw, stim_channel="stim", shortest_event=1, initial_event=True, verbose="error")
    events = events[events[:, 2] != layout.CATCH_CODE]
    if not len(events):
        raise DataError(f"{path}: no stimulus events in the 'stim' channel")
    picks = (
        list(layout.OCCIPITO_PARIETAL)
        if opts.channels == "occipito-parietal"
        else [n for n, t in zip(names, types, strict=True) if t == "eeg"]
    )
    missing = [c for c in picks if c not in names]
    if missing:
        raise DataError(f"{path}: channel {missing[0]!r} missing from the recording")
    raw.pick(picks)
    epochs = mne.Epochs(
        raw, events, tmin=opts.tmin, tmax=opts.tmax, baseline=(None, 0), preload=True, reject=None, verbose="error"
    )
    if opts.sfreq != sfreq:
        epochs.resample(opts.sfreq, verbose="error")
    return epochs.get_data(copy=True), epochs.events[:, 2].astype(np.int64), picks, epochs.times.copy()


def shrunk_covariances(x: np.ndarray, shrinkage: str | float) -> np.ndarray:
    """Shrunk covariances of a batch of sample sets ``x [B, n samples, C features]`` → ``[B, C, C]``.

    Batched equal of scikit-learn's ``discriminant_analysis._cov(x[b], shrinkage)`` (what the authors call):
    ``"auto"`` standardises each feature (``StandardScaler``), takes the Ledoit–Wolf estimate
    (``covariance.ledoit_wolf``) and scales back; a number is ``shrunk_covariance(empirical_covariance(x[b]),
    shrinkage)``. Empirical covariances are biased (divided by n), as scikit-learn's are.
    """
    n, c = x.shape[1], x.shape[2]
    xc = x - x.mean(axis=1, keepdims=True)
    eye = np.eye(c)
    if shrinkage != "auto":
        emp = np.einsum("bnc,bnd->bcd", xc, xc) / n
        mu = np.trace(emp, axis1=1, axis2=2) / c
        return (1 - shrinkage) * emp + shrinkage * mu[:, None, None] * eye
    scale = np.sqrt((xc**2).mean(axis=1))  # [B, C]
    scale = np.where(scale < 10 * np.finfo(scale.dtype).eps, 1.0, scale)  # StandardScaler: constant features kept
    z = xc / scale[:, None, :]
    emp = np.einsum("bnc,bnd->bcd", z, z) / n
    trace = np.trace(emp, axis1=1, axis2=2)
    mu = trace / c
    # ledoit_wolf_shrinkage: beta_ = sum of <z², z²> = sum over samples of (row sum of z²)², delta_ = |emp|²_F
    beta_ = ((z**2).sum(axis=2) ** 2).sum(axis=1)
    delta_ = (emp**2).sum(axis=(1, 2))
    beta = (beta_ / n - delta_) / (c * n)
    delta = (delta_ - 2.0 * mu * trace + c * mu**2) / c
    beta = np.minimum(beta, delta)
    coef = np.divide(beta, delta, out=np.zeros_like(beta), where=beta != 0)
    if c == 1:
        coef = np.zeros_like(coef)
    lw = (1 - coef)[:, None, None] * emp + (coef * mu)[:, None, None] * eye
    return scale[:, :, None] * lw * scale[:, None, :]


def noise_covariance(epochs: np.ndarray, codes: np.ndarray, mode: str, shrinkage: str | float = "auto") -> np.ndarray:
    """Σ [C, C] of one partition: per condition the mean of its shrunk covariances, then the mean over conditions.

    ``mode="epochs"``: one covariance per epoch over its time points (samples = times); ``"time"``: one per time
    point over the condition's repetitions (samples = repetitions; conditions shown once are skipped).
    """
    c = epochs.shape[1]
    uniq, inverse = np.unique(codes, return_inverse=True)
    if mode == "epochs":
        per_epoch = np.empty((len(epochs), c, c))
        for start in range(0, len(epochs), COV_BATCH):
            batch = epochs[start : start + COV_BATCH].transpose(0, 2, 1)  # [b, T, C]: the authors' cond_data[e].T
            per_epoch[start : start + COV_BATCH] = shrunk_covariances(batch, shrinkage)
        sums = np.zeros((len(uniq), c, c))
        np.add.at(sums, inverse, per_epoch)
        return (sums / np.bincount(inverse)[:, None, None]).mean(axis=0)
    counts = np.bincount(inverse)
    per_cond = []
    for reps in np.unique(counts[counts > 1]):  # conditions with the same number of repetitions, batched
        group = np.nonzero(counts == reps)[0]
        idx = np.stack([np.nonzero(inverse == g)[0] for g in group])  # [k, reps]
        step = max(1, COV_BATCH // epochs.shape[2])
        for start in range(0, len(group), step):
            x = epochs[idx[start : start + step]]  # [k, reps, C, T]
            k, t = len(x), x.shape[3]
            samples = x.transpose(0, 3, 1, 2).reshape(k * t, reps, c)  # the authors' cond_data[:, :, t]
            per_cond.append(shrunk_covariances(samples, shrinkage).reshape(k, t, c, c).mean(axis=1))
    if not per_cond:
        raise DataError("MVNN 'time' needs at least 2 repetitions of a condition in a session")
    return np.concatenate(per_cond).mean(axis=0)


def inverse_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Σ^-½ of a symmetric positive definite Σ (what ``scipy.linalg.fractional_matrix_power(Σ, -0.5)`` gives)."""
    vals, vecs = np.linalg.eigh(sigma)
    return (vecs / np.sqrt(np.maximum(vals, 1e-12 * vals.max()))) @ vecs.T


def whitening_matrix(parts: dict[str, tuple[np.ndarray, np.ndarray]], opts: PreprocessOptions) -> np.ndarray:
    """Σ^-½ of one session from its ``{"train": (epochs, codes), "test": ...}``: Σ averaged over the fitted
    partitions (``mvnn_fit``), each partition's Σ from :func:`noise_covariance`."""
    fit = ["train"] if opts.mvnn_fit == "train" else ["train", "test"]
    sigma = np.mean([noise_covariance(*parts[s], opts.mvnn, opts.mvnn_shrinkage) for s in fit], axis=0)
    return inverse_sqrt(sigma)


def _sort(epochs: np.ndarray, codes: np.ndarray, n_conditions: int, source: str) -> list[np.ndarray]:
    """Per condition (0-based), its repetitions [r, C, T] in this session."""
    if codes.max() > n_conditions:
        raise DataError(f"{source}: event code {codes.max()} exceeds the {n_conditions} image conditions")
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(1, n_conditions + 2))
    return [epochs[order[bounds[c] : bounds[c + 1]]] for c in range(n_conditions)]


def preprocess_subject(
    root: Path,
    subject: int,
    opts: PreprocessOptions,
    out_root: Path,
    n_conditions: dict[str, int],
    progress: Callable[[str], None],
) -> None:
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
            w = whitening_matrix({s: parts[s][:2] for s in parts}, opts)
            for s in parts:
                parts[s] = (np.einsum("cd,ndt->nct", w, parts[s][0]), *parts[s][1:])
        for s, (ep, codes, _, _) in parts.items():
            for c, reps in enumerate(
                _sort(ep, codes, n_conditions[s], str(layout.raw_file(root, subject, session, s)))
            ):
                if len(reps):
                    per_cond[s][c].append(reps)
        progress(
            f"{layout.sub(subject)} ses-{session:02d}: {len(parts['train'][1])} training + "
            f"{len(parts['test'][1])} test epochs"
        )
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
    tmp.write_text(
        json.dumps(
            {
                "tool": "eegbench preprocess things-eeg-2",
                "options": asdict(opts),
                "source": str(root),
                "mvnn_shrinkage": "ledoit-wolf" if opts.mvnn_shrinkage == "auto" else opts.mvnn_shrinkage,
                "test_statistics_in_mvnn": opts.mvnn_fit == "train+test",
            },
            indent=2,
        )
    )
    os.replace(tmp, sidecar)  # atomic, like the arrays


def _n_conditions(root: Path, subject: int) -> dict[str, int]:
    meta_path = layout.metadata_file(root)
    if meta_path.is_file():
        meta = load_pickled_npy(meta_path)
        return {"train": len(meta["train_img_files"]), "test": len(meta["test_img_files"])}
    raise DataError(
        f"{meta_path}: missing (needed for the number of image conditions); "
        f"run `eegbench download things-eeg-2 --root {root} --parts images`"
    )


def _raw_advice(root: Path, subjects: list[int] | None) -> str:
    """How to get raw sessions into ``root``: the release's download, or the twin's own regeneration."""
    from .synth import read_params, twin_advice

    twin = read_params(root)
    if twin is not None:
        return twin_advice(root, twin, subjects=subjects, raw=True)
    cmd = f"eegbench download things-eeg-2 --root {root} --parts raw"
    return f"run `{cmd}{' --subjects ' + ' '.join(map(str, subjects)) if subjects else ''}`"


def preprocess(
    root: str | os.PathLike,
    opts: PreprocessOptions | None = None,
    *,
    subjects: Iterable[int] | None = None,
    out_root: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[int]:
    """Preprocess raw sessions of ``subjects`` (default: every subject with raw data) into ``out_root``.

    Existing ``preprocessed_eeg_*.npy`` under ``out_root`` (by default ``root`` itself, where the release's
    own files live) are never replaced unless ``overwrite``: a one-line DataError names the first one before
    any work starts. Every file is written atomically (temporary file, then rename), under a file lock
    beside ``out_root`` so two runs into one output take turns (the second then finds the first's files).
    """
    root = Path(root).expanduser()
    opts = opts or PreprocessOptions()
    out = Path(out_root).expanduser() if out_root else root
    raw_dir = root / "eeg_dataset" / "raw_data"
    if subjects is None:
        subjects = (
            sorted(int(p.name[4:]) for p in raw_dir.glob("sub-*") if p.name[4:].isdigit()) if raw_dir.is_dir() else []
        )
    subjects = list(subjects)
    if not subjects:
        raise DataError(f"{raw_dir}: no raw sessions; {_raw_advice(root, None)}")
    from .download import check_subjects

    check_subjects(subjects)
    with layout.generation_lock(out, progress):  # one writer per output root; a second then finds its files
        _preprocess_locked(root, opts, subjects, out, overwrite, progress)
    return subjects


def _preprocess_locked(
    root: Path,
    opts: PreprocessOptions,
    subjects: list[int],
    out: Path,
    overwrite: bool,
    progress: Callable[[str], None] | None,
) -> None:
    if not overwrite:
        taken = [
            p
            for s in subjects
            for split in ("train", "test")
            if (p := layout.preprocessed_file(out, s, split)).exists()
        ]
        if taken:
            raise DataError(
                f"{taken[0]}: already exists and would be overwritten ({len(taken)} file(s)); write elsewhere with "
                "`--out DIR2` (then set dataset.params.root=DIR2), or pass --overwrite to replace them"
            )
    for s in subjects:
        preprocess_subject(root, s, opts, out, _n_conditions(root, s), progress or (lambda m: None))
    _share_images(root, out)


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
