"""Paired statistics (eegbench.results.stats): exact permutation test, Wilcoxon branch, effect size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from eegbench.results.stats import PERM_CUTOFF, exact_sign_flip_p, paired_test, sample_std, standardized_mean_difference


def test_exact_p_of_all_positive_differences_is_one_over_two_to_the_n():
    assert exact_sign_flip_p([0.1, 0.2, 0.3]) == pytest.approx(1 / 8)
    assert exact_sign_flip_p([0.05] * 6) == pytest.approx(1 / 64)


def test_exact_p_matches_scipy_permutation_test():
    rng = np.random.default_rng(3)
    for n in (3, 5, 9):
        d = rng.normal(0.02, 0.05, n)
        ref = sps.permutation_test(
            (d,), np.sum, permutation_type="samples", alternative="greater", n_resamples=2**n + 1
        ).pvalue
        assert exact_sign_flip_p(d) == pytest.approx(ref, abs=1e-12)


def test_exact_p_batches_cover_every_pattern():
    # 16 pairs -> 65536 patterns, two of scipy's batches; the all-positive pattern is the only one as large
    assert exact_sign_flip_p(np.linspace(0.01, 0.2, 16)) == pytest.approx(2.0**-16)


#: p-values of the hand-written exact sign-flip test eegbench used before scipy.stats.permutation_test
#: (eegbench.results.stats.exact_sign_flip_p at commit 7518139: every one of the 2**n sign patterns enumerated with
#: numpy, count of pattern sums >= observed sum - 1e-9 * max(1, sum|d|), divided by 2**n), computed on these
#: differences; the scipy version must give the same numbers, float ties ("ties", "float tie") included
PREVIOUS_P = [
    ([0.1, 0.2, 0.3], 0.125),
    ([0.04, -0.01, 0.03, 0.02, -0.005], 0.125),
    ([0.1, -0.1, 0.3, 0.0], 0.375),  # ties: flipping 0 or the +-0.1 pair leaves the sum
    ([0.1, 0.2, -0.3, 0.5], 0.3125),  # float tie: -0.1 - 0.2 + 0.3 == 0 only up to rounding
    ([-0.02, -0.05, 0.01, -0.03, 0.04, -0.01], 0.8125),
    ([0.01, 0.019, 0.0018, -0.0167, -0.0036, -0.0197, 0.0118, 0.0502, -0.0048], 0.259765625),
    (
        [
            0.0057,
            0.0322,
            0.0295,
            -0.0052,
            -0.001,
            -0.0055,
            0.0164,
            0.0039,
            0.0199,
            -0.0319,
            0.0363,
            0.0031,
            0.0186,
            0.0023,
            -0.0026,
            0.0143,
        ],
        0.033966064453125,
    ),
]


@pytest.mark.parametrize("diffs, previous", PREVIOUS_P)
def test_p_values_equal_the_previous_implementation(diffs, previous):
    assert exact_sign_flip_p(diffs) == pytest.approx(previous, abs=1e-15)
    best = np.full(len(diffs), 0.5) + np.asarray(diffs)
    assert paired_test(best, np.full(len(diffs), 0.5)).p_value == pytest.approx(previous, abs=1e-15)


def test_paired_test_uses_permutation_below_cutoff_and_wilcoxon_from_it():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.1, 0.2, PERM_CUTOFF)
    b = a - rng.normal(0.01, 0.01, PERM_CUTOFF)
    res = paired_test(a, b)
    assert res.test == "wilcoxon" and res.n == PERM_CUTOFF
    assert res.p_value == pytest.approx(sps.wilcoxon(a, b, alternative="greater").pvalue)
    small = paired_test(a[:5], b[:5])
    assert small.test == "permutation-exact"
    assert small.p_value == pytest.approx(exact_sign_flip_p(a[:5] - b[:5]))


def test_effect_size_is_standardised_mean_difference():
    d = np.array([0.02, 0.05, 0.01, 0.04])
    assert standardized_mean_difference(d) == pytest.approx(d.mean() / d.std(ddof=1))
    assert paired_test(d + 0.5, np.full(4, 0.5)).smd == pytest.approx(d.mean() / d.std(ddof=1))
    assert standardized_mean_difference([0.1, 0.1, 0.1]) == math.inf
    assert standardized_mean_difference([-0.1, -0.1]) == -math.inf
    assert standardized_mean_difference([0.0, 0.0]) == 0.0


def test_degenerate_inputs():
    res = paired_test([0.3], [0.2])
    assert res.test == "n/a" and math.isnan(res.p_value) and res.n == 1
    tie = paired_test([0.2, 0.3, 0.4], [0.2, 0.3, 0.4])
    assert tie.p_value == 1.0 and tie.smd == 0.0
    with pytest.raises(ValueError):
        paired_test([0.1, 0.2], [0.1])
    assert math.isnan(sample_std([0.4])) and sample_std([0.1, 0.3]) == pytest.approx(np.std([0.1, 0.3], ddof=1))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=10))
def test_exact_p_is_a_valid_one_sided_p(diffs):
    n = len(diffs)
    p, q = exact_sign_flip_p(diffs), exact_sign_flip_p([-x for x in diffs])
    assert 2.0**-n - 1e-12 <= p <= 1.0
    assert p + q >= 1.0 - 1e-9  # the two tails overlap at least at the observed pattern
