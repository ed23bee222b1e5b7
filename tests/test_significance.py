"""Paired significance tests: hand-computed values, scipy agreement, edge cases."""

import math

import numpy as np
import pytest

from unirank.eval.significance import (
    CORRECTIONS,
    TESTS,
    bootstrap_ci,
    effect_size,
    holm,
    paired_t_test,
    randomization_test,
    win_tie_loss,
)

# ---------------------------------------------------------------- paired t-test


def test_t_test_two_degrees_of_freedom_by_hand():
    # d = 2, 3, 4: mean 3, sd 1, t = 3 / (1 / sqrt 3) = sqrt 27; for 2 df, P(T > t) = 1/2 - t / (2 sqrt(t^2 + 2))
    r = paired_t_test([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])
    assert r.t == pytest.approx(math.sqrt(27), rel=1e-12)
    assert r.df == 2
    assert r.p == pytest.approx(1 - math.sqrt(27 / 29), rel=1e-10)


def test_t_test_one_degree_of_freedom_is_cauchy():
    # d = 1, 3: mean 2, sd sqrt 2, t = 2 / (sqrt 2 / sqrt 2) = 2; 1 df is Cauchy: p = 1 - (2 / pi) atan(2)
    r = paired_t_test([1.0, 3.0], [0.0, 0.0])
    assert r.t == pytest.approx(2.0)
    assert r.p == pytest.approx(1 - 2 / math.pi * math.atan(2.0), rel=1e-10)
    # the sign of t follows A - B, the p-value does not
    r2 = paired_t_test([0.0, 0.0], [1.0, 3.0])
    assert r2.t == pytest.approx(-2.0) and r2.p == pytest.approx(r.p)


def test_t_test_agrees_with_scipy():
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(3)
    for n in (3, 10, 300):
        a, b = rng.random(n), rng.random(n) * 0.9
        ref = ttest_rel(a, b)
        r = paired_t_test(a, b)
        assert r.t == pytest.approx(ref.statistic, rel=1e-12)
        assert r.p == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-15)


def test_t_test_degenerate_cases():
    assert paired_t_test([0.5, 0.2, 0.1], [0.5, 0.2, 0.1]).p == 1.0  # no difference at all: no evidence
    r = paired_t_test([0.6, 0.3, 0.2], [0.5, 0.2, 0.1])  # the same difference everywhere (sd 0)
    assert r.p == 0.0 and r.t == math.inf
    assert math.isnan(paired_t_test([1.0], [0.0]).p)
    with pytest.raises(ValueError, match="same queries"):
        paired_t_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        paired_t_test([1.0, float("nan")], [1.0, 2.0])


# ---------------------------------------------------------------- randomization test


def test_randomization_exact_by_hand():
    # d = 1, 2, 3 (mean 2): of the 8 sign patterns only +++ and --- reach |mean| >= 2
    assert randomization_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == 0.25
    # d = 1, 1, -0.5 (mean 0.5, i.e. |sum| >= 1.5): +++ (1.5), ++- (2.5), --+ (-2.5), --- (-1.5) -> 4 / 8
    assert randomization_test([1.0, 1.0, 0.0], [0.0, 0.0, 0.5]) == 0.5
    # mean 0 but not all zero: every pattern is at least as extreme
    assert randomization_test([1.0, 0.0], [0.0, 1.0]) == 1.0
    assert randomization_test([0.3, 0.3], [0.3, 0.3]) == 1.0
    assert math.isnan(randomization_test([], []))


def test_randomization_monte_carlo_is_seeded_and_matches_the_exact_test():
    rng = np.random.default_rng(0)
    a, b = rng.random(12), rng.random(12)
    exact = randomization_test(a, b, n_permutations=4096)  # 2**12 patterns: enumerated
    mc = randomization_test(a, b, n_permutations=4095, seed=1)  # one fewer: Monte Carlo
    assert mc == randomization_test(a, b, n_permutations=4095, seed=1)
    se = math.sqrt(exact * (1 - exact) / 4095)
    assert abs(mc - exact) < 4 * se + 1 / 4096
    # the estimate is (hits + 1) / (n + 1): never 0, at least 1 / (n + 1)
    assert randomization_test([1.0] * 40, [0.0] * 40, n_permutations=99) == pytest.approx(0.01)


def test_randomization_two_sided_and_symmetric():
    rng = np.random.default_rng(5)
    a, b = rng.random(50), rng.random(50)
    assert randomization_test(a, b, 2000, seed=4) == randomization_test(b, a, 2000, seed=4)


# ---------------------------------------------------------------- bootstrap CI


def test_bootstrap_constant_difference_is_a_point():
    assert bootstrap_ci([0.5, 0.7, 0.9], [0.25, 0.45, 0.65]) == pytest.approx((0.25, 0.25))


def test_bootstrap_agrees_with_scipy_percentile():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(7)
    a, b = rng.random(200), rng.random(200) * 0.8
    lo, hi = bootstrap_ci(a, b, n_resamples=20000, seed=0)
    ref = bootstrap(((a - b),), np.mean, n_resamples=20000, method="percentile", random_state=1, confidence_level=0.95)
    se = (a - b).std(ddof=1) / math.sqrt(a.size)  # the interval is about 4 se wide; Monte-Carlo error a few % of se
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05 * se)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05 * se)
    assert lo < (a - b).mean() < hi
    assert bootstrap_ci(a, b, n_resamples=500, seed=3) == bootstrap_ci(a, b, n_resamples=500, seed=3)


def test_bootstrap_wider_at_higher_confidence():
    rng = np.random.default_rng(1)
    a, b = rng.random(30), rng.random(30)
    lo90, hi90 = bootstrap_ci(a, b, confidence=0.90)
    lo99, hi99 = bootstrap_ci(a, b, confidence=0.99)
    assert lo99 < lo90 < hi90 < hi99
    with pytest.raises(ValueError):
        bootstrap_ci(a, b, confidence=1.0)


# ---------------------------------------------------------------- Holm, counts, effect size


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([0.2]) == [0.2]
    out = holm([0.02, float("nan"), 0.01])  # NaN is not counted: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([]) == []
    assert holm([1e-20, 1e-19]) == pytest.approx([2e-20, 2e-20], rel=1e-9)  # tiny p-values are not rounded away


def test_holm_is_never_below_the_raw_p_and_never_above_bonferroni():
    rng = np.random.default_rng(2)
    p = rng.random(9) ** 3
    adj = np.array(holm(p))
    assert (adj >= p - 1e-15).all() and (adj <= np.minimum(1, p * 9) + 1e-15).all()


def test_win_tie_loss_and_effect_size():
    assert win_tie_loss([0.5, 0.5, 0.1, 0.9], [0.4, 0.5, 0.2, 0.9 + 1e-12]) == (1, 2, 1)
    assert effect_size([3.0, 5.0, 7.0], [1.0, 2.0, 3.0]) == pytest.approx(3.0)
    assert effect_size([1.0, 1.0], [1.0, 1.0]) == 0.0
    assert math.isnan(effect_size([1.0], [0.0]))


def test_registries_name_their_choices():
    assert TESTS.names() == ["fisher", "t"]
    assert CORRECTIONS.names() == ["holm", "none"]
    with pytest.raises(KeyError, match="valid: fisher, t"):
        TESTS.get("wilcoxon")
