"""Paired statistics for leaderboards, as MOABB does for BCI results.

Two configurations are compared over the subjects they share: each subject's score (averaged over seeds
first, MOABB's ``collapse_session_scores``) gives one paired difference ``d = best - other``.

* p-value: one-sided, H1 "the best configuration scores higher". Below ``perm_cutoff`` (20) subjects an
  **exact** sign-flip permutation test on the sum of the differences (all ``2**n`` sign patterns; the
  observed one included, so ``p >= 2**-n``); from ``perm_cutoff`` on, the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, ``alternative="greater"``). All-zero differences give ``p = 1`` (no evidence).
* effect size: the standardised mean difference ``mean(d) / std(d, ddof=1)``; a constant non-zero
  difference is an unbounded effect (``±inf``), identical scores are ``0``.

numpy/scipy are imported inside the functions so importing this module stays cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

PERM_CUTOFF = 20
_CHUNK = 1 << 15  # sign patterns evaluated per matrix product (bounds memory at n = 19: 32k x 19)


@dataclass(frozen=True)
class PairedResult:
    """Outcome of one paired comparison (``best`` vs ``other``)."""

    p_value: float  # nan when fewer than 2 pairs
    smd: float  # standardised mean difference of best - other; nan when fewer than 2 pairs
    n: int  # number of paired subjects
    test: str  # "permutation-exact" | "wilcoxon" | "n/a"


def exact_sign_flip_p(diffs: Sequence[float]) -> float:
    """One-sided exact paired permutation p-value that ``mean(diffs) > 0``.

    Enumerates every assignment of signs to the differences (``2**n``, vectorised in chunks) and returns
    the fraction whose sum is at least the observed sum (with a relative tolerance for float ties).
    """
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        return math.nan
    if n > 30:
        raise ValueError(f"exact permutation test over {n} pairs is too large (2**{n} patterns); use wilcoxon")
    observed = d.sum()
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))
    total = 1 << n
    shifts = np.arange(n, dtype=np.int64)
    count = 0
    for start in range(0, total, _CHUNK):
        idx = np.arange(start, min(total, start + _CHUNK), dtype=np.int64)
        signs = ((idx[:, None] >> shifts) & 1) * 2 - 1
        count += int(np.count_nonzero(signs @ d >= observed - tol))
    return count / total


def standardized_mean_difference(diffs: Sequence[float]) -> float:
    """``mean(d) / std(d, ddof=1)``; 0 for identical scores, ``±inf`` for a constant non-zero offset."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan
    mean = float(d.mean())
    if np.all(d == d[0]):
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / float(d.std(ddof=1))


def paired_test(best: Sequence[float], other: Sequence[float], *, perm_cutoff: int = PERM_CUTOFF) -> PairedResult:
    """Compare paired per-subject scores of the best configuration and another one (same subject order)."""
    import numpy as np

    a = np.asarray(best, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have equal length, got {a.size} and {b.size}")
    d = a - b
    n = int(d.size)
    if n < 2:
        return PairedResult(math.nan, math.nan, n, "n/a")
    smd = standardized_mean_difference(d)
    if np.all(d == 0):
        return PairedResult(1.0, smd, n, "permutation-exact" if n < perm_cutoff else "wilcoxon")
    if n < perm_cutoff:
        return PairedResult(exact_sign_flip_p(d), smd, n, "permutation-exact")
    from scipy import stats

    p = float(stats.wilcoxon(a, b, alternative="greater").pvalue)
    return PairedResult(p, smd, n, "wilcoxon")


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); nan for fewer than two values."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if v.size > 1 else math.nan
