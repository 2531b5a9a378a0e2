"""The synthetic twin of Things-EEG-2: the release's exact layout, with a planted EEG–image relation.

Generative model (deterministic by seed):

* each image has a latent ``z`` (unit norm, ``latent_dim``): training images are ``images_per_concept``
  noisy copies of a concept centre, each test image is its own concept (as in the release);
* the EEG of an image is a sum of ``n_components`` components: component j has a spatial pattern over
  the 63 channels (a **shared** pattern plus a **subject-specific deviation** of relative size
  ``subject_variability``), a temporal response kernel (a damped oscillation at its own latency, shifted a
  little per subject) and an amplitude ``tanh(w_j · z)``; the whole signal is scaled to unit RMS, and an
  image-independent evoked response is added;
* every repetition adds spatially and temporally correlated noise of standard deviation ``noise``
  (relative to the image-specific signal's RMS).

The images are real JPEGs rendered from the latents, and the latents are written as the oracle embedding
file ``image_set/synthetic_latents.npz`` (``ids``, ``embeddings``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import DataError
from eegbench.interfaces import stable_hash

from . import layout
from .safe_pickle import save_pickled_dict

#: bump when the generator's output changes for the same parameters (part of the content hash)
GENERATOR_VERSION = 1

_TAG_LATENT, _TAG_MODEL, _TAG_SUBJECT, _TAG_NOISE, _TAG_IMAGE, _TAG_RAW = range(1, 7)


@dataclass(frozen=True)
class SynthParams:
    """Generation parameters of the twin (every field is part of its content hash)."""

    subjects: int = 5
    train_concepts: int = 200
    images_per_concept: int = 4
    test_images: int = 50
    latent_dim: int = 32
    n_components: int = 24
    noise: float = 18.0
    subject_variability: float = 1.2
    latency_jitter: float = 0.02
    train_repetitions: int = 4
    test_repetitions: int = 80
    image_size: int = 48
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("noise", "subject_variability", "latency_jitter", "seed"):
                if value < 0:
                    raise DataError(f"synthetic twin: {f.name} must be >= 0, got {value}")
            elif value < 1:
                raise DataError(f"synthetic twin: {f.name} must be >= 1, got {value}")
        if self.test_repetitions % layout.N_SESSIONS or self.train_repetitions % 2:
            raise DataError(
                f"synthetic twin: test_repetitions ({self.test_repetitions}) must be a multiple of {layout.N_SESSIONS} "
                f"and train_repetitions ({self.train_repetitions}) even, to split them over sessions like the release"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def content_hash(self) -> str:
        return stable_hash({"generator": GENERATOR_VERSION, **self.as_dict()}, length=12)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SynthParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(
                f"synthetic twin: unknown parameter {unknown[0]!r} (parameters: {', '.join(sorted(known))})"
            )
        return cls(**values)


def _rng(params: SynthParams, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([params.seed, *tags]))


def concept_names(params: SynthParams) -> tuple[list[str], list[str]]:
    """Concept folder names (``00001_syn0001`` …) of the training and test partitions."""
    train = [f"{k + 1:05d}_syn{k + 1:04d}" for k in range(params.train_concepts)]
    test = [f"{k + 1:05d}_tst{k + 1:04d}" for k in range(params.test_images)]
    return train, test


def metadata(params: SynthParams) -> dict[str, list[str]]:
    """``image_metadata.npy`` content with all six keys of the release."""
    train_c, test_c = concept_names(params)
    m = params.images_per_concept
    train_files = [f"{c.split('_', 1)[1]}_{j + 1:02d}s.jpg" for c in train_c for j in range(m)]
    test_files = [f"{c.split('_', 1)[1]}_01s.jpg" for c in test_c]
    # THINGS numbering: the release's concepts are a subset of THINGS' 1..1854; here train then test
    return {
        "train_img_files": train_files,
        "train_img_concepts": [c for c in train_c for _ in range(m)],
        "train_img_concepts_THINGS": [
            f"{k + 1:05d}_{c.split('_', 1)[1]}" for k, c in enumerate(train_c) for _ in range(m)
        ],
        "test_img_files": test_files,
        "test_img_concepts": list(test_c),
        "test_img_concepts_THINGS": [
            f"{params.train_concepts + k + 1:05d}_{c.split('_', 1)[1]}" for k, c in enumerate(test_c)
        ],
    }


def image_ids(params: SynthParams, split: str) -> list[str]:
    meta = metadata(params)
    files_key, concepts_key, _ = layout.META_KEYS[split]
    return [f"{layout.IMAGE_DIR[split]}/{c}/{f}" for c, f in zip(meta[concepts_key], meta[files_key], strict=True)]


class Model:
    """The twin's generative model: latents, shared and per-subject forward models, noise."""

    def __init__(self, params: SynthParams):
        self.p = params
        d, k = params.latent_dim, params.n_components
        rng = _rng(params, _TAG_LATENT)
        n_tr = params.train_concepts * params.images_per_concept
        centres = rng.standard_normal((params.train_concepts, d))
        train = np.repeat(centres, params.images_per_concept, axis=0) + 0.6 * rng.standard_normal((n_tr, d))
        test = rng.standard_normal((params.test_images, d)) + 0.6 * rng.standard_normal((params.test_images, d))
        self.latents = {"train": _unit(train), "test": _unit(test)}
        rng = _rng(params, _TAG_MODEL)
        self.weights = rng.standard_normal((k, d)) * 1.5  # amplitude = tanh(w·z): mildly nonlinear
        self.patterns = rng.standard_normal((len(layout.ALL_63), k))
        self.latency = rng.uniform(0.07, 0.45, k)
        self.width = rng.uniform(0.025, 0.07, k)
        self.freq = rng.uniform(0.0, 9.0, k)
        self.phase = rng.uniform(0, 2 * np.pi, k)
        self.erp_pattern = rng.standard_normal(len(layout.ALL_63))
        self._subject: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def subject(self, subject: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patterns [63, k], latency shifts [k], noise covariance [63, 63]) of one subject."""
        if subject not in self._subject:
            rng = _rng(self.p, _TAG_SUBJECT, subject)
            dev = rng.standard_normal(self.patterns.shape)
            a = _unit_cols(self.patterns) + self.p.subject_variability * _unit_cols(dev)
            shift = rng.normal(0.0, self.p.latency_jitter, self.p.n_components)
            n = len(layout.ALL_63)
            low_rank = rng.standard_normal((n, 6))
            cov = 0.5 * np.eye(n) + low_rank @ low_rank.T / 6
            self._subject[subject] = (_unit_cols(a), shift, cov)
        return self._subject[subject]

    def kernels(self, subject: int, times: np.ndarray) -> np.ndarray:
        """Temporal response kernels [k, len(times)] of a subject."""
        _, shift, _ = self.subject(subject)
        lat = (self.latency + shift)[:, None]
        t = times[None, :] - lat
        return np.exp(-0.5 * (t / self.width[:, None]) ** 2) * np.cos(
            2 * np.pi * self.freq[:, None] * t + self.phase[:, None]
        )

    def erp(self, times: np.ndarray) -> np.ndarray:
        """Image-independent evoked response over 63 channels [63, T]."""
        wave = np.exp(-0.5 * ((times - 0.1) / 0.03) ** 2) - 0.7 * np.exp(-0.5 * ((times - 0.17) / 0.04) ** 2)
        return _unit(self.erp_pattern)[:, None] * wave[None, :] * 2.0

    def signal(self, subject: int, split: str, times: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """Noise-free EEG [n_images, len(channels), T] (image-specific part at unit RMS, plus the ERP)."""
        a, _, _ = self.subject(subject)
        amp = np.tanh(self.latents[split] @ self.weights.T)  # [n, k]
        kern = self.kernels(subject, times)  # [k, T]
        spatial = a[channels]  # [C, k]
        sig = np.einsum("nk,ck,kt->nct", amp, spatial, kern, optimize=True)
        scale = self.signal_scale(subject)
        return sig / scale + self.erp(times)[channels][None]

    def signal_scale(self, subject: int) -> float:
        """RMS of the image-specific signal over the 17 channels at 100 Hz (the normalising constant)."""
        times = _release_times()
        a, _, _ = self.subject(subject)
        ch = _channel_index(layout.OCCIPITO_PARIETAL)
        amp = np.tanh(self.latents["train"] @ self.weights.T)
        sig = np.einsum("nk,ck,kt->nct", amp, a[ch], self.kernels(subject, times), optimize=True)
        return float(np.sqrt(np.mean(sig**2)))

    def noise_mixing(self, subject: int, channels: np.ndarray) -> np.ndarray:
        """Cholesky factor of the subject's noise covariance over ``channels``, scaled to unit variances."""
        _, _, cov = self.subject(subject)
        sub = cov[np.ix_(channels, channels)]
        d = np.sqrt(np.diag(sub))
        return np.linalg.cholesky(sub / d[:, None] / d[None, :])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _unit_cols(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=0, keepdims=True)


def _channel_index(names: tuple[str, ...]) -> np.ndarray:
    pos = {n: i for i, n in enumerate(layout.ALL_63)}
    return np.array([pos[n] for n in names])


def _release_times() -> np.ndarray:
    # the release's times: -0.2 … 0.79 s at 100 Hz, computed the way MNE does (with float noise)
    return np.arange(-20, 80) * 0.01


def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], mixing: np.ndarray, ar: float) -> np.ndarray:
    """Gaussian noise [..., C, T] with spatial mixing and AR(1) temporal correlation, unit variance."""
    white = rng.standard_normal(shape)
    white = np.einsum("dc,...ct->...dt", mixing, white, optimize=True)
    # AR(1) filter normalised to unit stationary variance; start from the stationary distribution
    white[..., 0] /= np.sqrt(1 - ar**2)
    return ar1_filter(white, np.sqrt(1 - ar**2), ar)


def ar1_filter(x: np.ndarray, gain: float, ar: float) -> np.ndarray:
    """``y[t] = gain * x[t] + ar * y[t-1]`` along the last axis, from rest: ``scipy.signal.lfilter([gain],
    [1, -ar], x, axis=-1)`` to the last bit (the same two roundings per sample, tested) without importing
    scipy.signal (seconds, on the path of a first run)."""
    time_major = np.moveaxis(x, -1, 0)
    y = np.empty(time_major.shape, dtype=np.result_type(x, gain))  # C order: each step is one contiguous vector
    np.multiply(time_major, gain, out=y)
    for t in range(1, y.shape[0]):
        y[t] += ar * y[t - 1]
    return np.ascontiguousarray(np.moveaxis(y, 0, -1))


def preprocessed_arrays(model: Model, subject: int, split: str) -> np.ndarray:
    """float64 [n_images, repetitions, 17, 100] of one subject and split."""
    p = model.p
    times = _release_times()
    ch = _channel_index(layout.OCCIPITO_PARIETAL)
    sig = model.signal(subject, split, times, ch)
    reps = p.train_repetitions if split == "train" else p.test_repetitions
    rng = _rng(p, _TAG_NOISE, subject, 0 if split == "train" else 1)
    noise = correlated_noise(rng, (len(sig), reps, len(ch), len(times)), model.noise_mixing(subject, ch), ar=0.6)
    out = noise
    out *= p.noise
    out += sig[:, None]
    return out


def render_image(latent: np.ndarray, projection: np.ndarray, size: int):
    """A PIL image whose colours and layout are a smooth function of the latent."""
    from PIL import Image, ImageDraw

    grid = 1 / (1 + np.exp(-3 * (projection[:48] @ latent)))  # 4 x 4 x 3 colours in (0, 1)
    img = Image.fromarray((grid.reshape(4, 4, 3) * 255).astype(np.uint8), "RGB").resize((size, size), Image.BICUBIC)
    shape = 1 / (1 + np.exp(-3 * (projection[48:54] @ latent)))
    draw = ImageDraw.Draw(img)
    x0, y0 = shape[0] * size * 0.5, shape[1] * size * 0.5
    x1, y1 = x0 + size * (0.2 + 0.3 * shape[2]), y0 + size * (0.2 + 0.3 * shape[3])
    colour = tuple(int(255 * v) for v in shape[3:6])
    (draw.ellipse if shape[4] > 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return img


def write_twin(
    root: str | os.PathLike,
    params: SynthParams,
    *,
    raw: bool = False,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the twin under ``root`` (atomically: built in a sibling folder, then renamed into place).

    ``root`` must not exist or be empty. Generation holds a file lock beside ``root``, so concurrent first
    uses produce one twin. If it already holds a twin with the same content hash nothing is
    rewritten (with ``raw``, only missing raw sessions are added); a twin with other parameters is replaced
    only with ``force`` (otherwise a one-line DataError names the differing parameter). Returns ``root``.
    """
    root = Path(root)
    progress = progress or (lambda msg: None)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: a threaded matrix product splits its sums by thread count, so the twin's bytes (and
    # with them every cell key and figure on it) would depend on the machine's cores
    with layout.generation_lock(root), threadpool_limits(limits=1, user_api="blas"):
        return _write_twin_locked(root, params, raw=raw, force=force, progress=progress)


def _write_twin_locked(
    root: Path, params: SynthParams, *, raw: bool, force: bool, progress: Callable[[str], None]
) -> Path:
    existing = read_params(root)
    if existing is not None and existing.content_hash() == params.content_hash():
        if raw and not _has_raw(root, params):
            _add_raw(root, params, progress)
        return root
    if existing is not None and not force:
        old, new = existing.as_dict(), params.as_dict()
        field = next((k for k in new if old[k] != new[k]), "generator")
        raise DataError(
            f"{root}: already holds a synthetic twin with {field}={old.get(field, GENERATOR_VERSION)} (asked "
            f"{field}={new.get(field, GENERATOR_VERSION)}); pick another --root, or pass --force to replace it"
        )
    if root.exists() and any(root.iterdir()) and existing is None:
        raise DataError(f"{root}: not empty and not a synthetic twin; pick another --root or delete it first")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _write(tmp, params, raw=raw, progress=progress)
        if root.exists():
            shutil.rmtree(root)  # an empty folder, or (force) a twin with other parameters that we replace
        try:
            os.rename(tmp, root)
        except OSError:
            if read_params(root) is None or read_params(root).content_hash() != params.content_hash():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process published the same twin first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _add_raw(root: Path, params: SynthParams, progress: Callable[[str], None]) -> None:
    """Add the raw sessions to an existing twin without touching its other files (built aside, then moved)."""
    model = Model(params)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.raw.", dir=root.parent))
    try:
        for subject in range(1, params.subjects + 1):
            write_raw_subject(tmp, model, subject)
            progress(f"{layout.sub(subject)} raw sessions written")
        dest = root / "eeg_dataset" / "raw_data"
        if dest.exists():
            shutil.rmtree(dest)  # the twin's own (incomplete) raw sessions, regenerated identically
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp / "eeg_dataset" / "raw_data", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write_record(root, params, raw=True)


def _write_record(root: Path, params: SynthParams, *, raw: bool) -> None:
    record = {
        "generator": GENERATOR_VERSION,
        "content_hash": params.content_hash(),
        "params": params.as_dict(),
        "raw": raw,
    }
    path = layout.synth_params_file(root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, path)


#: twin parameters that ``eegbench synth`` takes as flags
CLI_FLAGS = (
    "subjects",
    "train_concepts",
    "images_per_concept",
    "test_images",
    "noise",
    "subject_variability",
    "test_repetitions",
    "seed",
)


def synth_command(root: str | os.PathLike, params: SynthParams, *, raw: bool = False) -> str:
    """The ``eegbench synth`` command line that writes ``params`` (flags only where they differ from defaults)."""
    default = SynthParams().as_dict()
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in params.as_dict().items() if k in CLI_FLAGS and v != default[k]]
    return " ".join(["eegbench synth --root", str(root), *flags, *(["--raw"] if raw else [])])


def twin_advice(
    root: str | os.PathLike, params: SynthParams, *, subjects: list[int] | None = None, raw: bool = False
) -> str:
    """What a twin under ``root`` holds and how to get what it lacks (``subjects`` beyond it, raw sessions)."""
    root = Path(root)
    has_raw = _has_raw(root, params)
    have = f"{root} is a synthetic twin (subjects 1-{params.subjects}, {'with' if has_raw else 'no'} raw sessions)"
    beyond = [s for s in (subjects or []) if s > params.subjects]
    if beyond:
        n = max(beyond)
        bigger = SynthParams.from_dict({**params.as_dict(), "subjects": n})
        return (
            f"{have}; for subject {beyond[0]} use a twin with more subjects: set dataset.params.subjects={n} "
            f"(and no root), or `{synth_command('NEWDIR', bigger, raw=raw)}` and point root at NEWDIR"
        )
    if raw and not has_raw:
        return f"{have}; add its raw sessions with `{synth_command(root, params, raw=True)}`"
    return f"{have}; regenerate it: delete {root}, then `{synth_command(root, params, raw=has_raw)}`"


def _has_raw(root: Path, params: SynthParams) -> bool:
    return all(layout.raw_file(root, s, 1, "test").is_file() for s in range(1, params.subjects + 1))


def read_params(root: str | os.PathLike) -> SynthParams | None:
    """The parameters recorded in ``root/synthetic.json``, or None when ``root`` is not a twin."""
    path = layout.synth_params_file(Path(root))
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return SynthParams.from_dict(record["params"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: unreadable synthetic-twin record ({exc}); delete the folder and generate it again"
        ) from None


def _write(root: Path, params: SynthParams, *, raw: bool, progress: Callable[[str], None]) -> None:
    model = Model(params)
    meta = metadata(params)
    save_pickled_dict(layout.metadata_file(root), meta)
    # images
    projection = _rng(params, _TAG_IMAGE).standard_normal((54, params.latent_dim)) * 2.0
    for split in ("train", "test"):
        for image_id, z in zip(image_ids(params, split), model.latents[split], strict=True):
            path = layout.image_set_dir(root) / image_id
            path.parent.mkdir(parents=True, exist_ok=True)
            render_image(z, projection, params.image_size).save(path, "JPEG", quality=90)
    ids = image_ids(params, "train") + image_ids(params, "test")
    emb = np.concatenate([model.latents["train"], model.latents["test"]]).astype(np.float32)
    np.savez(layout.latents_file(root), ids=np.array(ids, dtype=str), embeddings=emb)
    progress(f"images and metadata written ({len(ids)} images)")
    for subject in range(1, params.subjects + 1):
        for split in ("train", "test"):
            data = preprocessed_arrays(model, subject, split)
            save_pickled_dict(
                layout.preprocessed_file(root, subject, split),
                {"preprocessed_eeg_data": data, "ch_names": list(layout.OCCIPITO_PARIETAL), "times": _release_times()},
            )
        if raw:
            write_raw_subject(root, model, subject)
        progress(f"{layout.sub(subject)} written")
    _write_record(root, params, raw=raw)


# --------------------------------------------------------------------------------------------------
# raw sessions
# --------------------------------------------------------------------------------------------------
# Raw sessions of the synthetic twin, with the release's structure.
#
# Per subject 4 sessions at 1000 Hz, 63 EEG channels + ``stim``; per session every test image is shown
# ``test_repetitions / 4`` times and half of the training images ``train_repetitions / 2`` times (each
# training image is in 2 sessions), in random order with a 200 ms onset asynchrony and ~5 % catch trials
# (code 99999). Event codes are 1-based image conditions, as in the release.
SOA = 0.2
EPOCH = 0.8
CATCH_RATE = 0.05


def session_conditions(model: Model, subject: int, session: int, split: str) -> np.ndarray:
    """1-based condition codes shown in a session (catch trials included), in presentation order."""
    p = model.p
    rng = _rng(p, _TAG_RAW, subject, session, 0 if split == "train" else 1)
    if split == "test":
        codes = np.repeat(np.arange(1, p.test_images + 1), p.test_repetitions // layout.N_SESSIONS)
    else:
        n = p.train_concepts * p.images_per_concept
        half = np.arange(1, n + 1)[(np.arange(n) % 2) == (session - 1) % 2]
        codes = np.repeat(half, p.train_repetitions // 2)
    codes = rng.permutation(codes)
    catch = rng.random(len(codes)) < CATCH_RATE
    return np.insert(codes, np.nonzero(catch)[0], layout.CATCH_CODE)


def write_raw_subject(root: Path, model: Model, subject: int) -> None:
    sfreq = layout.RAW_SFREQ
    channels = np.arange(len(layout.ALL_63))
    resp_times = np.arange(0, int(EPOCH * sfreq)) / sfreq
    for session in range(1, layout.N_SESSIONS + 1):
        for split in ("train", "test"):
            codes = session_conditions(model, subject, session, split)
            onsets = (np.round((0.5 + SOA * np.arange(len(codes))) * sfreq)).astype(np.int64)
            n_samples = int(onsets[-1] + (EPOCH + 0.5) * sfreq)
            rng = _rng(model.p, _TAG_RAW, subject, session, 10 + (split == "test"))
            # the noise's per-sample level matches the preprocessed twin once resampled to 100 Hz
            eeg = correlated_noise(rng, (len(channels), n_samples), model.noise_mixing(subject, channels), ar=0.95)
            eeg *= model.p.noise
            responses = model.signal(subject, split, resp_times, channels)  # [n_images, 63, T]
            for code, onset in zip(codes, onsets, strict=True):
                if code == layout.CATCH_CODE:
                    continue
                eeg[:, onset : onset + len(resp_times)] += responses[code - 1]
            stim = np.zeros(n_samples)
            for code, onset in zip(codes, onsets, strict=True):
                stim[onset : onset + 5] = code
            save_pickled_dict(
                layout.raw_file(root, subject, session, split),
                {
                    "raw_eeg_data": np.vstack([eeg, stim[None]]),
                    "ch_names": [*layout.ALL_63, "stim"],
                    "ch_types": ["eeg"] * len(layout.ALL_63) + ["stim"],
                    "sfreq": sfreq,
                    "highpass": 0.01,
                    "lowpass": 100.0,
                },
            )


def clean_responses(model: Model, subject: int, split: str, times: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The planted noise-free responses at ``times`` on channels ``names`` (for tests and checks)."""
    return model.signal(subject, split, times, _channel_index(names))
