"""Paired significance tests over queries, multiple-comparison correction and effect sizes.

Pure functions of two equally long arrays of per-query values (system A and system B on the
same queries, in the same order); no I/O, no knowledge of runs or models.

* :func:`paired_t_test`: two-sided paired Student's t-test (what ``scipy.stats.ttest_rel``,
  trec_eval + scipy and ``ranx.compare(stat_test="student")`` compute).
* :func:`randomization_test`: Fisher's paired randomization (permutation) test, two-sided
  (Smucker, Allan and Carterette, CIKM 2007; ``ranx``'s ``"fisher"``): under the null the
  two systems' labels are exchangeable per query, i.e. each difference's sign is a coin
  flip. Exact (all ``2**n`` sign patterns) when that is at most ``n_permutations``,
  otherwise a seeded Monte-Carlo estimate.
* :func:`bootstrap_ci`: percentile bootstrap confidence interval of the mean difference
  (queries resampled with replacement, seeded).
* :func:`holm`: Holm-Bonferroni step-down adjusted p-values (family-wise error control).
* :func:`win_tie_loss`, :func:`effect_size`: per-query counts and the paired effect size.

:data:`TESTS` registers the two tests under ``"t"`` and ``"fisher"`` so a caller picks the
one whose (adjusted) p-value decides significance by name; :data:`CORRECTIONS` registers
``"holm"`` and ``"none"``.

Example:
    >>> a, b = [0.5, 0.7, 0.9, 0.4], [0.4, 0.5, 0.6, 0.3]
    >>> round(paired_t_test(a, b).p, 4)      # d = .1 .2 .3 .1: mean .175, sd .0957, t = 3.656, 3 df
    0.0354
    >>> randomization_test(a, b)          # 2**4 = 16 sign patterns, enumerated: 2 reach |mean| >= 0.175
    0.125
    >>> [round(p, 12) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    >>> win_tie_loss(a, b)
    (4, 0, 0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..registry import Registry

__all__ = [
    "TTest",
    "paired_t_test",
    "randomization_test",
    "bootstrap_ci",
    "holm",
    "win_tie_loss",
    "effect_size",
    "TESTS",
    "CORRECTIONS",
    "TIE_TOL",
]

#: two per-query values closer than this count as a tie (float noise from metric arithmetic)
TIE_TOL = 1e-9

Values = Sequence[float] | np.ndarray


def _diffs(a: Values, b: Values) -> np.ndarray:
    """``a - b`` as float64, checking the shapes (paired values, one per query)."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same queries: {x.size} values for A but {y.size} for B")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("per-query values contain NaN")
    return x - y


@dataclass(frozen=True)
class TTest:
    """Result of :func:`paired_t_test`.

    Attributes:
        t: the t statistic of ``mean(a - b)`` (positive when A is better); ``±inf`` when
            every difference is the same non-zero value, 0 when all are zero.
        df: degrees of freedom, ``n - 1``.
        p: two-sided p-value.
    """

    t: float
    df: int
    p: float


def paired_t_test(a: Values, b: Values) -> TTest:
    """Two-sided paired Student's t-test of ``mean(a - b) = 0``.

    ``t = mean(d) / (sd(d) / sqrt(n))`` with ``d = a - b`` and the sample standard deviation
    (``ddof=1``); ``p = 2 * P(T_{n-1} >= |t|)``. Equals ``scipy.stats.ttest_rel(a, b)``
    except in the degenerate cases, which scipy answers with NaN: when every difference is
    0 there is no evidence of a difference and ``p = 1``; when every difference is the same
    non-zero value ``p = 0``.

    Args:
        a: per-query values of system A, shape (n,).
        b: per-query values of system B on the same queries, shape (n,).

    Returns:
        :class:`TTest` (``t``, ``df``, ``p``); ``p`` is NaN when ``n < 2``.

    Example:
        >>> r = paired_t_test([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])  # d = 2, 3, 4: mean 3, sd 1, t = 3 * sqrt(3)
        >>> round(r.t, 6), r.df, round(r.p, 6)
        (5.196152, 2, 0.035099)
        >>> paired_t_test([1.0, 2.0], [1.0, 2.0]).p
        1.0
    """
    from scipy.stats import t as student_t

    d = _diffs(a, b)
    n = d.size
    if n < 2:
        return TTest(math.nan, max(n - 1, 0), math.nan)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd <= 1e-15 * max(1.0, abs(mean)):  # every difference equal (up to float noise)
        if abs(mean) <= TIE_TOL:
            return TTest(0.0, n - 1, 1.0)
        return TTest(math.copysign(math.inf, mean), n - 1, 0.0)
    t = mean / (sd / math.sqrt(n))
    return TTest(t, n - 1, float(2.0 * student_t.sf(abs(t), n - 1)))


def randomization_test(a: Values, b: Values, n_permutations: int = 10_000, seed: int = 0, batch: int = 1000) -> float:
    """Two-sided paired randomization test of ``mean(a - b) = 0`` (Fisher's sign-flip test).

    Under the null each query's two values could have come from either system, so each
    difference keeps or flips its sign with probability 1/2. The p-value is the fraction of
    sign patterns whose ``|mean|`` is at least the observed ``|mean(a - b)|`` (with a
    relative tolerance of 1e-9, so float noise cannot separate equal means).

    * Exact when ``2**n <= n_permutations``: all ``2**n`` patterns are enumerated (the
      observed one included).
    * Otherwise Monte Carlo: ``n_permutations`` random patterns from
      ``numpy.random.default_rng(seed)`` and ``p = (hits + 1) / (n_permutations + 1)``
      (the observed pattern counts as one draw, so p is never 0; Phipson and Smyth 2010).
      Its standard error is about ``sqrt(p (1 - p) / n_permutations)``.

    Args:
        a: per-query values of system A, shape (n,).
        b: per-query values of system B on the same queries, shape (n,).
        n_permutations: random sign patterns drawn (>= 1); also the limit for enumeration.
        seed: seed of the draws (same inputs and seed, same p).
        batch: patterns drawn per numpy call (memory ``batch * n`` floats).

    Returns:
        The p-value in (0, 1]; 1.0 when all differences are 0; NaN when ``n == 0``.

    Example:
        >>> randomization_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])   # 8 patterns; only +++ and --- reach |mean| 2
        0.25
        >>> randomization_test([1.0] * 20, [0.0] * 20, n_permutations=999) < 0.01   # Monte Carlo: (0 + 1) / 1000
        True
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    d = _diffs(a, b)
    n = d.size
    if n == 0:
        return math.nan
    observed = abs(float(d.mean()))
    if observed <= TIE_TOL and not np.any(np.abs(d) > TIE_TOL):
        return 1.0
    threshold = observed * (1 - 1e-9) - 1e-15
    if n < 63 and 2**n <= n_permutations:  # exact: every sign pattern once
        hits = 0
        codes = np.arange(2**n, dtype=np.int64)
        for s in range(0, codes.size, batch):
            bits = (codes[s : s + batch, None] >> np.arange(n)) & 1
            means = np.abs(((1 - 2 * bits) * d).mean(axis=1))
            hits += int(np.count_nonzero(means >= threshold))
        return hits / 2**n
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_permutations:
        m = min(batch, n_permutations - done)
        signs = rng.integers(0, 2, size=(m, n), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs((signs * d).mean(axis=1)) >= threshold))
        done += m
    return (hits + 1) / (n_permutations + 1)


def bootstrap_ci(
    a: Values, b: Values, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0, batch: int = 1000
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``mean(a - b)``.

    Queries are resampled with replacement ``n_resamples`` times
    (``numpy.random.default_rng(seed)``); the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (linear interpolation) of the resampled means. It
    agrees with ``scipy.stats.bootstrap(..., method="percentile")`` up to Monte-Carlo error.

    Args:
        a: per-query values of system A, shape (n,).
        b: per-query values of system B, shape (n,).
        n_resamples: bootstrap resamples (>= 1).
        confidence: coverage in (0, 1).
        seed: seed of the resampling.
        batch: resamples drawn per numpy call.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when ``n == 0``.

    Example:
        >>> bootstrap_ci([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])   # every resample has mean 0.25
        (0.25, 0.25)
        >>> lo, hi = bootstrap_ci([1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], seed=1)
        >>> 0.0 <= lo <= 0.5 <= hi <= 1.0
        True
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = _diffs(a, b)
    n = d.size
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for s in range(0, n_resamples, batch):
        m = min(batch, n_resamples - s)
        means[s : s + m] = d[rng.integers(0, n, size=(m, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sort the m p-values ascending; the i-th smallest (i = 1..m) is adjusted to
    ``max over j <= i of min(1, (m - j + 1) * p_(j))``. Rejecting where the adjusted value is
    ``<= alpha`` controls the family-wise error rate at ``alpha`` (Holm 1979). NaN p-values
    stay NaN and do not count in m.

    Args:
        p_values: the family's raw p-values.

    Returns:
        Adjusted p-values, one per input.

    Example:
        >>> [round(p, 12) for p in holm([0.01, 0.02, 0.04])]        # 3 * 0.01, 2 * 0.02, 1 * 0.04
        [0.03, 0.04, 0.04]
        >>> holm([0.04, 0.5, float("nan")])
        [0.08, 0.5, nan]
    """
    p = [float(x) for x in p_values]
    idx = sorted((i for i, x in enumerate(p) if not math.isnan(x)), key=lambda i: p[i])
    m = len(idx)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def win_tie_loss(a: Values, b: Values, tol: float = TIE_TOL) -> tuple[int, int, int]:
    """How many queries A scores above, equal to (within ``tol``), and below B.

    Example:
        >>> win_tie_loss([1.0, 0.5, 0.2], [0.5, 0.5, 0.3])
        (1, 1, 1)
    """
    d = _diffs(a, b)
    return int(np.count_nonzero(d > tol)), int(np.count_nonzero(np.abs(d) <= tol)), int(np.count_nonzero(d < -tol))


def effect_size(a: Values, b: Values) -> float:
    """Paired standardised effect size (Cohen's d_z): ``mean(a - b) / sd(a - b)`` (``ddof=1``).

    Returns:
        d_z; 0 when all differences are 0, ``±inf`` when they are equal and non-zero, NaN
        for fewer than 2 queries.

    Example:
        >>> effect_size([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])   # mean 3, sd 1
        3.0
    """
    d = _diffs(a, b)
    if d.size < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd <= 1e-15 * max(1.0, abs(mean)):
        return 0.0 if abs(mean) <= TIE_TOL else math.copysign(math.inf, mean)
    return mean / sd


#: name -> fn(a, b, n_permutations, seed) -> two-sided p-value; the test whose p decides significance
TESTS: Registry[Callable[[Values, Values, int, int], float]] = Registry("significance test")


@TESTS.register("t")
def _t(a: Values, b: Values, n_permutations: int, seed: int) -> float:
    return paired_t_test(a, b).p


@TESTS.register("fisher")
def _fisher(a: Values, b: Values, n_permutations: int, seed: int) -> float:
    return randomization_test(a, b, n_permutations, seed)


#: name -> fn(raw p-values of one family) -> adjusted p-values, same order
CORRECTIONS: Registry[Callable[[Sequence[float]], list[float]]] = Registry("multiple-comparison correction")
CORRECTIONS.register("holm")(holm)


@CORRECTIONS.register("none")
def _no_correction(p_values: Sequence[float]) -> list[float]:
    return [float(x) for x in p_values]
