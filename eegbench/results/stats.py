"""Paired statistics for leaderboards, as MOABB does for BCI results.

Two configurations are compared over the subjects they share: each subject's score (averaged over seeds
first, MOABB's ``collapse_session_scores``) gives one paired difference ``d = best - other``.

* p-value: one-sided, H1 "the best configuration scores higher". Below ``perm_cutoff`` (20) subjects an
  **exact** sign-flip permutation test on the sum of the differences (``scipy.stats.permutation_test``
  over all ``2**n`` sign patterns; the observed one included, so ``p >= 2**-n``); from ``perm_cutoff`` on, the
  Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, ``alternative="greater"``). All-zero differences give
  ``p = 1`` (no evidence).
* effect size: the standardised mean difference ``mean(d) / std(d, ddof=1)``; a constant non-zero
  difference is an unbounded effect (``±inf``), identical scores are ``0``.

numpy/scipy are imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

PERM_CUTOFF = 20
_BATCH = 1 << 15  # sign patterns scipy evaluates at once (bounds memory at n = 19: 32k x 19)


@dataclass(frozen=True)
class PairedResult:
    """Outcome of one paired comparison (``best`` vs ``other``)."""

    p_value: float  # nan when fewer than 2 pairs
    smd: float  # standardised mean difference of best - other; nan when fewer than 2 pairs
    n: int  # number of paired subjects
    test: str  # "permutation-exact" | "wilcoxon" | "n/a"


def exact_sign_flip_p(diffs: Sequence[float]) -> float:
    """One-sided exact paired permutation p-value that ``mean(diffs) > 0``.

    ``scipy.stats.permutation_test`` with ``permutation_type="samples"`` on the one sample of differences
    flips their signs; ``n_resamples=inf`` makes it enumerate all ``2**n`` patterns (the observed one
    included, so ``p >= 2**-n``) and count those whose sum is at least the observed one (scipy's relative
    tolerance counts float ties).
    """
    import numpy as np
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        return math.nan
    if n == 1:  # scipy wants two observations; the two patterns: d itself, and -d (at least d unless d > 0)
        return 0.5 if d[0] > 0 else 1.0
    if n > 30:
        raise ValueError(f"exact permutation test over {n} pairs is too large (2**{n} patterns); use wilcoxon")
    result = stats.permutation_test(
        (d,),
        _sum_last_axis,
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf,
        alternative="greater",
        batch=_BATCH,
    )
    return float(result.pvalue)


def _sum_last_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The permutation test's statistic: the sum of the (sign-flipped) differences, vectorized over ``axis``."""
    total: np.ndarray = x.sum(axis=axis)
    return total


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
