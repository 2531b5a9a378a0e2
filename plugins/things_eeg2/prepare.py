"""Vectorized EEG preparation over a whole ``[images, repetitions, channels, times]`` array.

Every step works on the full array at once (no per-trial Python): repetition averaging, channel pick by
name, time window and linear resampling (the seed's ``interp1d`` per sample, done as one gather + blend).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eegbench.errors import DataError


def check_eeg(
    data: np.ndarray, source: str, axes: Sequence[str], labels: dict[int, Sequence[str]] | None = None
) -> None:
    """Refuse EEG that is not real floating point (integers, complex, strings, objects) or holds NaN/Inf.

    One line naming ``source`` and, for a non-finite value, its first index along ``axes`` (e.g. condition,
    repetition, channel, time; ``labels[axis]`` adds a name such as the channel's). Scanned in slices of the
    first axis, so no array-sized temporary is made.
    """
    advice = "the file is not valid EEG: delete it and download (or regenerate) it, or fix what wrote it"
    if data.dtype.kind != "f":
        kind = {
            "c": "complex",
            "i": "integer",
            "u": "unsigned integer",
            "b": "boolean",
            "U": "string",
            "S": "bytes",
            "O": "object",
        }.get(data.dtype.kind, data.dtype.kind)
        raise DataError(
            f"{source}: EEG has dtype {data.dtype} ({kind}); real floating point values are expected "
            f"(float32/float64); {advice}"
        )
    step = max(1, (1 << 24) // max(1, int(np.prod(data.shape[1:]))))
    for start in range(0, len(data), step):
        block = data[start : start + step]
        bad = ~np.isfinite(block)
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), block.shape)
            index = (index[0] + start, *index[1:])
            # strict=False: this builds the error message, which must not fail on a caller's short ``axes``
            where = ", ".join(
                f"{name} {i}" + (f" ({labels[k][i]})" if labels and k in labels and i < len(labels[k]) else "")
                for k, (name, i) in enumerate(zip(axes, map(int, index), strict=False))
            )
            count = int(bad.sum()) + sum(
                int((~np.isfinite(data[s : s + step])).sum()) for s in range(start + step, len(data), step)
            )
            raise DataError(
                f"{source}: EEG value {data[index]} at {where} (0-based) is not finite ({count} non-finite "
                f"value(s) in all); {advice}"
            )


def average_repetitions(
    data: np.ndarray, averaging: str | int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Average ``data [n, R, ...]`` over repetitions.

    ``"all"`` → ``[n, ...]`` (one trial per image); ``"none"`` → ``[n*R, ...]`` (one per repetition);
    ``k`` → ``[n*R, ...]``, trial r of image i the mean of k repetitions drawn without replacement.
    Returns the trials and the image index of each trial (int64).
    """
    n, reps = data.shape[:2]
    if averaging == "all":
        return data.mean(axis=1), np.arange(n, dtype=np.int64)
    if averaging == "none":
        return data.reshape(n * reps, *data.shape[2:]), np.repeat(np.arange(n, dtype=np.int64), reps)
    if isinstance(averaging, bool) or not isinstance(averaging, (int, np.integer)):
        raise DataError(f"averaging must be 'all', 'none' or a number of repetitions, got {averaging!r}")
    k = int(averaging)
    if not 1 <= k <= reps:
        raise DataError(f"averaging={k}: must be between 1 and the {reps} repetitions per image")
    # a random permutation of the repetitions per (image, output trial); its first k are averaged
    draw = np.argsort(rng.random((n, reps, reps)), axis=-1)[..., :k]
    rows = np.arange(n)[:, None]
    out = data[rows, draw[..., 0]].astype(np.float64, copy=True)
    for j in range(1, k):  # k gathers of [n, R, ...] instead of one [n, R, k, ...] temporary
        out += data[rows, draw[..., j]]
    out /= k
    return out.reshape(n * reps, *data.shape[2:]), np.repeat(np.arange(n, dtype=np.int64), reps)


def channel_index(available: Sequence[str], wanted: Sequence[str] | None, source: str) -> np.ndarray | None:
    """Indices of ``wanted`` in ``available`` (None = keep all in order); an unknown name is one line."""
    if wanted is None or list(wanted) == list(available):
        return None
    lookup = {name.lower(): i for i, name in enumerate(available)}
    missing = [w for w in wanted if w.lower() not in lookup]
    if missing:
        raise DataError(
            f"{source}: no channel {missing[0]!r} (channels: {', '.join(available)}); other channels and rates come "
            "from the raw recordings: `eegbench preprocess things-eeg-2 --channels all --sfreq 250 --out DIR`, then "
            "set dataset.params.root = DIR"
        )
    return np.array([lookup[w.lower()] for w in wanted])


def window_index(times: np.ndarray, window: tuple[float, float] | None, source: str) -> slice:
    """The samples with ``tmin <= t <= tmax`` (to the microsecond: the release's times carry float noise)."""
    if window is None:
        return slice(0, len(times))
    tmin, tmax = window
    t = np.round(times, 6)
    # one sample of slack (plus float noise): "0-1 s" names the 250 samples 0 ... 0.996 s at 250 Hz, as the
    # paper recipes do on epochs preprocessed with tmax 1.0; anything further out is a mistake, not clipped
    slack = float(np.median(np.diff(t))) * (1 + 1e-6) if len(t) > 1 else 0.0
    if tmin < t[0] - slack or tmax > t[-1] + slack:
        raise DataError(
            f"{source}: window [{tmin}, {tmax}] s is outside the epoch's time range [{t[0]}, {t[-1]}] s; "
            "choose a window inside it (dataset.window)"
        )
    keep = np.nonzero((t >= round(tmin, 6)) & (t <= round(tmax, 6)))[0]
    if len(keep) < 2:
        raise DataError(f"{source}: window ({tmin}, {tmax}) s keeps fewer than 2 samples (times {t[0]} … {t[-1]} s)")
    return slice(int(keep[0]), int(keep[-1]) + 1)


def resample_linear(x: np.ndarray, n_times: int) -> np.ndarray:
    """Linear interpolation of the last axis onto ``n_times`` equally spaced points over the same span.

    Equal to ``scipy.interpolate.interp1d(arange(T), x, axis=-1)(linspace(0, T-1, n_times))``, computed as
    one gather of the two neighbours and a blend.
    """
    t = x.shape[-1]
    if n_times == t:
        return x
    if n_times < 2:
        raise DataError(f"n_times must be at least 2, got {n_times}")
    pos = np.linspace(0.0, t - 1, n_times)
    left = np.minimum(np.floor(pos).astype(np.int64), t - 2)
    w = (pos - left).astype(x.dtype)
    return x[..., left] * (1 - w) + x[..., left + 1] * w


def prepare(
    data: np.ndarray,
    *,
    ch_names: Sequence[str],
    times: np.ndarray,
    averaging: str | int,
    channels: Sequence[str] | None,
    window: tuple[float, float] | None,
    n_times: int | None,
    rng: np.random.Generator,
    source: str = "EEG",
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """The whole preparation: ``[n, R, C, T]`` float → (float32 ``[trials, C', T']``, image index, channels, times).

    Order chosen for speed: the cheap reductions (channel pick, window) first when they shrink the array,
    then averaging, then float32, then resampling.
    """
    if data.ndim != 4:
        raise DataError(f"{source}: expected EEG [images, repetitions, channels, times], got shape {data.shape}")
    if data.shape[2] != len(ch_names) or data.shape[3] != len(times):
        raise DataError(
            f"{source}: EEG shape {data.shape} does not match {len(ch_names)} ch_names and {len(times)} times"
        )
    ch = channel_index(ch_names, channels, source)
    win = window_index(times, window, source)
    if ch is not None or win != slice(0, len(times)):
        data = data[:, :, ch if ch is not None else slice(None), win]
    trials, image_index = average_repetitions(data, averaging, rng)
    trials = trials.astype(np.float32, copy=False)
    kept_times = np.round(np.asarray(times, dtype=np.float64)[win], 6)
    if n_times is not None and n_times != trials.shape[-1]:
        trials = resample_linear(trials, int(n_times))
        kept_times = np.linspace(kept_times[0], kept_times[-1], int(n_times))
    names = tuple(ch_names[i] for i in ch) if ch is not None else tuple(ch_names)
    return np.ascontiguousarray(trials, dtype=np.float32), image_index, names, kept_times
