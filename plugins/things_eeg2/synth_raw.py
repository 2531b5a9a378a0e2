"""Raw sessions of the synthetic twin, with the release's structure.

Per subject 4 sessions at 1000 Hz, 63 EEG channels + ``stim``; per session every test image is shown
``test_repetitions / 4`` times and half of the training images ``train_repetitions / 2`` times (each
training image is in 2 sessions), in random order with a 200 ms onset asynchrony and ~5 % catch trials
(code 99999). Event codes are 1-based image conditions, as in the release.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import layout
from .safe_pickle import save_pickled_dict
from .synth import _TAG_RAW, Model, _channel_index, _rng, correlated_noise

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
            for code, onset in zip(codes, onsets):
                if code == layout.CATCH_CODE:
                    continue
                eeg[:, onset : onset + len(resp_times)] += responses[code - 1]
            stim = np.zeros(n_samples)
            for code, onset in zip(codes, onsets):
                stim[onset : onset + 5] = code
            save_pickled_dict(
                layout.raw_file(root, subject, session, split),
                {
                    "raw_eeg_data": np.vstack([eeg, stim[None]]),
                    "ch_names": list(layout.ALL_63) + ["stim"],
                    "ch_types": ["eeg"] * len(layout.ALL_63) + ["stim"],
                    "sfreq": sfreq,
                    "highpass": 0.01,
                    "lowpass": 100.0,
                },
            )


def clean_responses(model: Model, subject: int, split: str, times: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The planted noise-free responses at ``times`` on channels ``names`` (for tests and checks)."""
    return model.signal(subject, split, times, _channel_index(names))
