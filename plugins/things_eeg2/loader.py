"""The Things-EEG-2 :class:`~eegbench.interfaces.Dataset`: the release's layout, read safely, prepared fast.

One class serves the real release (``things-eeg-2``) and its synthetic twin (``things-eeg-2-synthetic``):
the twin is the same layout on disk, generated on first use, and goes through exactly this loader.

A prepared split is cached with :class:`eegbench.execution.cache.Cache` (namespace ``"things-eeg-2"``) under a key
of every preparation option that changes the output plus the source files' content identity (place in the
layout, size, sha256 of the bytes — memoised, so touching a file changes nothing); the seed is part of the key only
when ``averaging`` is a number (random repetition draws), so ``"all"``/``"none"`` share one entry across seeds. Its
sidecar records the options, channels and times. A second load memory-maps the cached ``.npy``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import DataError
from eegbench.execution.cache import Cache
from eegbench.interfaces import Dataset, EEGData, EEGInfo, ImageSet, PrepOptions
from eegbench.paths import data_dir, file_digest

from . import layout
from .prepare import check_eeg, prepare
from .safe_pickle import load_pickled_npy

#: bump when preparation changes its output for the same options (part of every cache key)
PREP_VERSION = 1
CACHE_NAMESPACE = "things-eeg-2"
REAL_NAME = "things-eeg-2"
SYNTH_NAME = "things-eeg-2-synthetic"


def _identity(path: Path, root: Path, cache_root: Any = None) -> list[Any]:
    """A file's content identity: its place under ``root``, size and sha256 (memoised by path, size, mtime)."""
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [name, None, None]  # absent: its arrival changes the identity
    return [name, size, file_digest(path, cache_root)]


def _uses_seed(averaging: Any) -> bool:
    """True when preparation draws repetitions at random (``averaging`` is a number), i.e. the seed matters."""
    return isinstance(averaging, (int, np.integer)) and not isinstance(averaging, bool)


def _key_options(options: PrepOptions) -> dict[str, Any]:
    """The options that change the prepared array: all of them, less the seed when nothing is random."""
    out = options.as_dict()
    if not _uses_seed(options.averaging):
        out.pop("seed", None)
    return out


class ThingsEEG2(Dataset):
    """Things-EEG-2 in the dataset authors' layout under ``root``.

    Args:
        root: the dataset root (``eeg_dataset/`` and ``image_set/`` inside).
        synthetic: the twin's generation parameters (``SynthParams``); None for the real release.
        cache_root: cache directory for prepared EEG (default: ``EEGBENCH_CACHE`` or the per-user cache).
    """

    def __init__(self, root: str | os.PathLike, *, synthetic: Any = None, cache_root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser()
        self.synthetic = synthetic
        self.name = SYNTH_NAME if synthetic is not None else REAL_NAME
        self.cache_root = cache_root
        self._meta: dict[str, Any] | None = None
        self._image_sets: dict[str, ImageSet] = {}
        self._lock = threading.Lock()
        if synthetic is not None:
            from .synth import read_params

            self._check_twin(read_params(self.root))

    # ---------------------------------------------------------------- availability
    def _check_twin(self, recorded: Any) -> None:
        """Refuse a root whose twin was generated with other parameters than ours (one-line DataError).

        Using it silently would run on other data than the result row says; the same parameters pass.
        """
        if recorded is None or recorded.content_hash() == self.synthetic.content_hash():
            return
        old, new = recorded.as_dict(), self.synthetic.as_dict()
        diff = [k for k in new if old.get(k) != new[k]]
        shown = ", ".join(f"{k}={old.get(k)} (asked {new[k]})" for k in diff[:3]) or "its generator version"
        raise DataError(
            f"{self.root}: holds a synthetic twin generated with {shown}; set dataset.params to the twin's "
            "values, point root at another folder, or drop root so the twin lives under its own parameter hash"
        )

    def _generate_if_absent(self) -> None:
        if self.synthetic is None:
            return
        from .synth import read_params, write_twin

        with self._lock:
            recorded = read_params(self.root)
            if recorded is None:
                write_twin(self.root, self.synthetic)
            else:
                self._check_twin(recorded)  # another process may have written a twin since construction

    @property
    def content_name(self) -> str:
        """Identity of the image content: ``things-eeg-2`` or ``things-eeg-2-synthetic-<param hash>``."""
        if self.synthetic is None:
            return REAL_NAME
        self._generate_if_absent()
        return f"{SYNTH_NAME}-{self.synthetic.content_hash()}"

    @property
    def subjects(self) -> list[int]:
        """Subjects on disk; before anything is on disk, the release's 1–10 (or the twin's 1–N)."""
        if self.synthetic is not None:
            return list(range(1, self.synthetic.subjects + 1))
        found = layout.subjects_on_disk(self.root)
        return found or list(range(1, layout.N_SUBJECTS + 1))

    def missing(self, subjects: Iterable[int] | None = None, splits: Iterable[str] = ("train", "test")) -> list[Path]:
        """Files a load of ``subjects`` (default: all) needs that are not under the root."""
        subjects = list(self.subjects if subjects is None else subjects)
        need = [layout.metadata_file(self.root)]
        need += [layout.preprocessed_file(self.root, s, split) for s in subjects for split in splits]
        return [p for p in need if not p.is_file()]

    def ensure_available(
        self, subjects: Iterable[int] | None = None, splits: Iterable[str] = ("train", "test")
    ) -> None:
        """Raise a one-line DataError naming the missing files and the download command (the twin is generated)."""
        self._generate_if_absent()
        missing = self.missing(subjects, splits)
        if missing:
            from .synth import read_params, twin_advice

            twin = read_params(self.root) if layout.synth_params_file(self.root).is_file() else None
            if twin is not None:  # a generated root: the release's download is the wrong advice
                wanted = sorted({int(p.parent.name[4:]) for p in missing if p.parent.name.startswith("sub-")})
                raise DataError(
                    f"{self.name}: {len(missing)} file(s) missing, e.g. {missing[0]}; "
                    f"{twin_advice(self.root, twin, subjects=wanted)}"
                )
            subs = sorted({int(p.parent.name[4:]) for p in missing if p.parent.name.startswith("sub-")})
            parts = ["preprocessed"] if subs else []
            if layout.metadata_file(self.root) in missing:
                parts.append("images")
            cmd = f"eegbench download things-eeg-2 --root {self.root} --parts {','.join(parts)}"
            if subs:
                cmd += " --subjects " + " ".join(map(str, subs))
            raise DataError(
                f"{self.name}: {len(missing)} file(s) missing under {self.root}, e.g. {missing[0]}; run `{cmd}` "
                "(or point root at an existing copy; `eegbench data verify things-eeg-2 --root DIR` lists them all)"
            )

    # ---------------------------------------------------------------- images
    def _metadata(self) -> dict[str, Any]:
        if self._meta is None:
            path = layout.metadata_file(self.root)
            self._generate_if_absent()
            if not path.is_file():
                raise DataError(
                    f"{path}: image metadata missing; "
                    f"run `eegbench download things-eeg-2 --root {self.root} --parts images`"
                )
            meta = load_pickled_npy(path)
            if not isinstance(meta, dict):
                raise DataError(f"{path}: expected a pickled dict, found {type(meta).__name__}")
            for keys in layout.META_KEYS.values():
                for key in keys[:2]:
                    if key not in meta:
                        raise DataError(f"{path}: key {key!r} missing (keys: {', '.join(sorted(meta))})")
            self._meta = meta
        return self._meta

    def image_set(self, split: str) -> ImageSet:
        """Images of ``split`` in the EEG's condition order; ids ``training_images/<concept>/<file>``."""
        if split not in layout.SPLIT_FILE:
            raise DataError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        if split not in self._image_sets:
            meta = self._metadata()
            files_key, concepts_key, _ = layout.META_KEYS[split]
            files = [str(f) for f in meta[files_key]]
            concepts = [str(c) for c in meta[concepts_key]]
            if len(files) != len(concepts):
                raise DataError(f"{layout.metadata_file(self.root)}: {files_key} and {concepts_key} differ in length")
            ids = tuple(f"{layout.IMAGE_DIR[split]}/{c}/{f}" for c, f in zip(concepts, files, strict=True))
            base = layout.image_set_dir(self.root)
            self._image_sets[split] = ImageSet(
                name=f"{self.content_name}/{split}",
                ids=ids,
                files=tuple(str(base / i) for i in ids),
                concepts=tuple(concepts),
                root=str(self.root),
            )
        return self._image_sets[split]

    # ---------------------------------------------------------------- EEG
    def source_identity(self) -> str:
        """Identity of the data's content: changes when the bytes of any file a load reads change.

        Covers ``image_metadata.npy``, every subject's preprocessed train/test file and, for the twin,
        ``synthetic_latents.npz`` (its parameters are in the label): each file's place in the layout, size and
        sha256, so neither a touched mtime nor another root with the same files changes it; a missing file
        counts as absent (its arrival changes the identity). The digests are memoised (``file_digest``), so
        only the first call after a file changed reads it. Never generates: a twin not generated yet is
        ``things-eeg-2-synthetic-<param hash>:absent``, which changes once it is written.
        """
        from eegbench.interfaces import stable_hash

        if self.synthetic is not None:
            label = f"{SYNTH_NAME}-{self.synthetic.content_hash()}"
            if not layout.synth_params_file(self.root).is_file():
                return f"{label}:absent"
            extra = [layout.latents_file(self.root)]
        else:
            label, extra = REAL_NAME, []
        files = [layout.metadata_file(self.root), *extra] + [
            layout.preprocessed_file(self.root, s, split) for s in self.subjects for split in ("train", "test")
        ]
        return f"{label}:{stable_hash([_identity(p, self.root, self.cache_root) for p in files])}"

    def cache_fields(self, subject: int, split: str, options: PrepOptions) -> dict[str, Any]:
        """Everything the prepared array depends on (the cache key)."""
        src = layout.preprocessed_file(self.root, subject, split)
        return {
            "dataset": self.name,
            "prep_version": PREP_VERSION,
            "subject": int(subject),
            "split": split,
            "options": _key_options(options),
            "source": [_identity(p, self.root, self.cache_root) for p in (src, layout.metadata_file(self.root))],
        }

    def load(self, subject: int, split: str, options: PrepOptions | None = None) -> EEGData:
        """Prepared float32 trials ``[n, C, T]`` of one subject; cached, memory-mapped on reload."""
        options = options or PrepOptions()
        images = self.image_set(split)
        self.ensure_available([subject], [split])
        cache = Cache(CACHE_NAMESPACE, self.cache_root)
        fields = self.cache_fields(subject, split, options)
        entry = cache.get(fields)
        if entry is None:
            entry = self._prepare(cache, fields, subject, split, options, len(images))
        meta = entry.meta
        eeg = entry.array("eeg")
        image_index = np.asarray(entry.array("image_index", mmap=False))
        info = EEGInfo(tuple(meta["ch_names"]), float(meta["sfreq"]), float(meta["tmin"]), float(meta["tmax"]))
        return EEGData(eeg, image_index, np.full(len(eeg), int(subject), dtype=np.int64), images, info)

    def _prepare(self, cache: Cache, fields: dict, subject: int, split: str, options: PrepOptions, n_images: int):
        path = layout.preprocessed_file(self.root, subject, split)
        record = load_pickled_npy(path)
        if not isinstance(record, dict) or "preprocessed_eeg_data" not in record:
            keys = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
            raise DataError(f"{path}: expected a dict with 'preprocessed_eeg_data' (found {keys})")
        data = np.asarray(record["preprocessed_eeg_data"])
        ch_names = [str(c) for c in record.get("ch_names", layout.OCCIPITO_PARIETAL)]
        times = np.asarray(record.get("times", np.arange(-20, 80) * 0.01), dtype=np.float64)
        if data.ndim != 4 or len(data) != n_images:
            raise DataError(
                f"{path}: preprocessed_eeg_data has shape {data.shape}; expected [{n_images} images, repetitions, "
                "channels, times] matching image_metadata.npy"
            )
        # checked once, here: a prepared (cached) entry is known good, and bad values never reach training
        check_eeg(
            data, f"{path} (subject {subject}, {split})", ("condition", "repetition", "channel", "time"), {2: ch_names}
        )
        rng = np.random.default_rng([int(options.seed), int(subject), 0 if split == "train" else 1])
        eeg, image_index, names, kept = prepare(
            data,
            ch_names=ch_names,
            times=times,
            averaging=options.averaging,
            channels=options.channels,
            window=options.window,
            n_times=options.n_times,
            rng=rng,
            source=str(path),
        )
        del record, data
        sfreq = (len(kept) - 1) / (kept[-1] - kept[0])
        meta = {
            "dataset": self.name,
            "subject": int(subject),
            "split": split,
            "options": _key_options(options),  # the entry serves every seed when no draw is random
            "ch_names": list(names),
            "sfreq": float(sfreq),
            "tmin": float(kept[0]),
            "tmax": float(kept[-1]),
            "shape": list(eeg.shape),
            "source_file": str(path),
        }
        return cache.put(fields, {"eeg": eeg, "image_index": image_index}, meta)

    def declared_size(self, split: str) -> int | None:
        """Images of ``split`` without reading or generating anything: the twin's from its parameters; the
        release's 16,540 / 200 while its metadata is absent (a root holding metadata, e.g. a preprocessed twin,
        is read instead: None)."""
        if split not in layout.SPLIT_FILE:
            raise DataError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        if self.synthetic is not None:
            p = self.synthetic
            return int(p.train_concepts * p.images_per_concept if split == "train" else p.test_images)
        if layout.metadata_file(self.root).is_file():
            return None
        return layout.N_IMAGES[split]

    def repetitions(self, split: str) -> int | None:
        """Repetitions per image of ``split`` when known without reading the EEG (the synthetic twin's
        parameters); None for the release or a preprocessed root, whose files must be loaded to tell."""
        if self.synthetic is None:
            return None
        return int(self.synthetic.train_repetitions if split == "train" else self.synthetic.test_repetitions)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "root": str(self.root),
            "synthetic": self.synthetic is not None,
            "layout": "authors",
        }
        if self.synthetic is not None:
            out["synthetic_params"] = self.synthetic.as_dict()
            out["content_hash"] = self.synthetic.content_hash()
        return out


def build(root: str | os.PathLike | None = None, cache_root: str | os.PathLike | None = None) -> ThingsEEG2:
    """Factory of ``things-eeg-2``: the release under ``root`` (default ``data_dir()/things-eeg-2``)."""
    return ThingsEEG2(Path(root) if root else data_dir() / REAL_NAME, cache_root=cache_root)


def build_synthetic(
    root: str | os.PathLike | None = None, cache_root: str | os.PathLike | None = None, **params: Any
) -> ThingsEEG2:
    """Factory of ``things-eeg-2-synthetic``: the twin with ``params`` (see ``SynthParams``).

    Without ``root`` it lives under ``data_dir()/things-eeg-2-synthetic/<content hash>`` and is generated on
    first use; with ``root``, one is generated there unless already there with the same parameters; a twin
    there with other parameters is refused (DataError naming the root and the differing parameter).
    """
    from .synth import SynthParams

    p = SynthParams.from_dict(params)
    where = Path(root) if root else data_dir() / SYNTH_NAME / p.content_hash()
    return ThingsEEG2(where, synthetic=p, cache_root=cache_root)
