"""Command-line parsers of the Things-EEG-2 plugin (handlers import their heavy modules when run).

Below :mod:`eegbench_plugins.things_eeg2.plugin`, which registers them: what they need of it (the synthetic
twin's defaults, read from its factory) is handed to :func:`register`, never imported back."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Mapping
from typing import Any


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


#: the synthetic twin's parameters ``eegbench synth`` takes as flags: (parameter, type, help before its default)
_SYNTH_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("subjects", int, "number of subjects (sub-01 ...)"),
    ("train_concepts", int, "training concepts"),
    ("images_per_concept", int, "training images per concept"),
    ("test_images", int, "test images (one per test concept; the n-way of retrieval)"),
    ("noise", float, "repetition noise relative to the signal"),
    (
        "subject_variability",
        float,
        "how much each subject's mixing of the latent components differs from the shared one",
    ),
    ("test_repetitions", int, "repetitions per test image (a multiple of the 4 sessions)"),
    ("seed", int, "random seed of the generator"),
)


def register(commands, synth_defaults: Mapping[str, Any]) -> None:
    """Add this plugin's commands; ``synth_defaults``: the synthetic twin's factory defaults (the flags'
    defaults and the parameters ``eegbench synth`` writes)."""
    defaults = dict(synth_defaults)
    p = commands.root.add_parser(
        "synth",
        help="write the synthetic twin of Things-EEG-2 (the release's layout)",
        description="Write a synthetic twin of Things-EEG-2: the release's files and layout (preprocessed EEG, "
        "image folders, optionally raw sessions) with a planted image-latent -> EEG relation and the oracle "
        "latents at image_set/synthetic_latents.npz. By default it goes where the things-eeg-2-synthetic dataset "
        "generates it on first use (<data dir>/things-eeg-2-synthetic/<parameter hash>), so a spec naming the same "
        "parameters finds it there.",
    )
    p.add_argument(
        "--root",
        default=None,
        help="folder to write (must not exist, be empty, or hold this same twin); default: "
        "<data dir>/things-eeg-2-synthetic/<parameter hash>, data dir = $EEGBENCH_DATA or the user data dir",
    )
    for key, type_, help_ in _SYNTH_FLAGS:
        flag = "--" + key.replace("_", "-")
        p.add_argument(flag, type=type_, default=defaults[key], help=f"{help_} (default: %(default)s)")
    p.add_argument("--raw", action="store_true", help="also write raw 1000 Hz sessions (eeg_dataset/raw_data)")
    p.add_argument("--force", action="store_true", help="replace a twin with other parameters already at --root")
    p.set_defaults(func=functools.partial(cmd_synth, synth_defaults=defaults))

    p = commands.download.add_parser("things-eeg-2", help="download the Things-EEG-2 release (OSF; figshare mirror)")
    _add_release_files(p)
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="also place files the host publishes no hash for (with a warning; their sha256 is recorded "
        "in <root>/.downloads/<name>.done)",
    )
    p.set_defaults(func=cmd_download)

    p = commands.verify.add_parser("things-eeg-2", help="list present, missing and corrupt Things-EEG-2 files")
    _add_release_files(p)
    p.set_defaults(func=cmd_verify)

    p = commands.preprocess.add_parser(
        "things-eeg-2", help="raw Things-EEG-2 sessions -> preprocessed release format (MNE)"
    )
    p.add_argument("--root", help="dataset root holding eeg_dataset/raw_data (default: <data dir>/things-eeg-2)")
    p.add_argument("--out", help="root to write eeg_dataset/preprocessed_data into (default: --root)")
    p.add_argument(
        "--subjects", nargs="+", metavar="N", help="subject numbers, commas or spaces (default: all with raw data)"
    )
    p.add_argument("--sfreq", type=float, default=100.0, help="output rate in Hz (0 < sfreq <= the raw 1000 Hz)")
    p.add_argument(
        "--channels",
        choices=["occipito-parietal", "all"],
        default="occipito-parietal",
        help="the 17 occipito-parietal channels of the authors' preprocessing (default) or all 63",
    )
    p.add_argument("--tmin", type=float, default=-0.2, help="epoch start in seconds from image onset (default -0.2)")
    p.add_argument("--tmax", type=float, default=0.8, help="epoch end in seconds from image onset (default 0.8)")
    p.add_argument(
        "--mvnn",
        choices=["epochs", "time", "none"],
        default="epochs",
        help="multivariate noise normalisation: a noise covariance per epoch over time (epochs, the "
        "authors' default), per time point over repetitions (time), or none",
    )
    p.add_argument(
        "--mvnn-fit",
        choices=["train", "train+test"],
        default="train",
        help="partitions the covariance is fitted on: train (default; no test statistics) or train+test "
        "(the authors' original, averaging both)",
    )
    p.add_argument(
        "--mvnn-shrinkage",
        type=_shrinkage,
        default="auto",
        metavar="auto|FLOAT",
        help="covariance shrinkage: auto = Ledoit-Wolf via scikit-learn (the authors', NICE's and UBP's; "
        "default), or a fixed coefficient in [0, 1]",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing preprocessed_eeg_*.npy under the output root"
    )
    p.set_defaults(func=cmd_preprocess)


def _add_release_files(p: argparse.ArgumentParser) -> None:
    """The options naming release files on disk (``download`` and ``verify``): --root, --parts, --subjects."""
    p.add_argument("--root", help="dataset root (default: <data dir>/things-eeg-2)")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["preprocessed,images"],
        metavar="PART",
        help="preprocessed, images, raw: commas or spaces (default: preprocessed,images)",
    )
    p.add_argument("--subjects", nargs="+", metavar="N", help="subject numbers, commas or spaces (default: 1-10)")


def _root(args: argparse.Namespace):
    from pathlib import Path

    from eegbench.paths import data_dir

    return Path(args.root).expanduser() if args.root else data_dir() / "things-eeg-2"


def _shrinkage(text: str):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:  # nan fails too
        raise argparse.ArgumentTypeError(f"{text!r}: give auto (Ledoit-Wolf) or a number in [0, 1]")
    return value


def _items(values) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``: list options take commas, spaces or both."""
    if isinstance(values, str):
        values = [values]
    return [item.strip() for value in values or () for item in str(value).split(",") if item.strip()]


def _parts(values) -> list[str]:
    from eegbench.errors import EegbenchError

    parts = _items(values)
    bad = [p for p in parts if p not in ("preprocessed", "images", "raw")]
    if bad or not parts:
        raise EegbenchError(
            f"--parts {' '.join(_items(values)) or values!r}: choose from preprocessed, images, raw (commas or spaces)"
        )
    return parts


def _subjects(values) -> list[int] | None:
    """``--subjects 1 2``, ``--subjects 1,2`` or both → ``[1, 2]``; None when not given."""
    from eegbench.errors import EegbenchError

    if values is None:
        return None
    items = _items(values)
    try:
        subjects = [int(item) for item in items]
    except ValueError:
        raise EegbenchError(f"--subjects {' '.join(values)!r}: give subject numbers, e.g. 1 2 or 1,2") from None
    if not subjects or any(n < 1 for n in subjects):
        raise EegbenchError(f"--subjects {' '.join(values)!r}: subject numbers start at 1")
    return subjects


def cmd_synth(args: argparse.Namespace, synth_defaults: Mapping[str, Any]) -> int:
    from .synth import SynthParams, write_twin

    params = SynthParams.from_dict({**synth_defaults, **{key: getattr(args, key) for key, _, _ in _SYNTH_FLAGS}})
    root = args.root or default_twin_root(params)
    root = write_twin(root, params, raw=args.raw, force=args.force, progress=_progress)
    print(f"synthetic twin {params.content_hash()} at {root}")
    return 0


def default_twin_root(params):
    """Where the things-eeg-2-synthetic dataset looks for (and generates) a twin with ``params``."""
    from eegbench.paths import data_dir

    from .loader import SYNTH_NAME

    return data_dir() / SYNTH_NAME / params.content_hash()


def cmd_download(args: argparse.Namespace) -> int:
    from .download import download

    download(
        _root(args),
        parts=_parts(args.parts),
        subjects=_subjects(args.subjects),
        progress=True,
        allow_unverified=args.allow_unverified,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .download import verify

    report = verify(_root(args), parts=_parts(args.parts), subjects=_subjects(args.subjects))
    for row in report:
        line = f"{row.status:8s} {row.path}"
        if row.fix:
            line += f"   -> {row.fix}"
        print(line)
    bad = [r for r in report if r.status != "present"]
    print(
        f"{len(report) - len(bad)} present, {sum(r.status == 'missing' for r in bad)} missing, "
        f"{sum(r.status == 'corrupt' for r in bad)} corrupt"
        + (
            f", {sum(r.status == 'unsafe' for r in bad)} unsafe (not loaded)"
            if any(r.status == "unsafe" for r in bad)
            else ""
        )
    )
    return 1 if bad else 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    from .preprocess import PreprocessOptions, preprocess

    opts = PreprocessOptions(
        sfreq=args.sfreq,
        channels=args.channels,
        tmin=args.tmin,
        tmax=args.tmax,
        mvnn=args.mvnn,
        mvnn_fit=args.mvnn_fit,
        mvnn_shrinkage=args.mvnn_shrinkage,
    )
    root = _root(args)
    preprocess(
        root,
        opts,
        subjects=_subjects(args.subjects),
        out_root=args.out or None,
        overwrite=args.overwrite,
        progress=_progress,
    )
    return 0
