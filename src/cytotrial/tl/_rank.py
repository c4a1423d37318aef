"""Rank tests and intervals: exact signed-rank and rank-sum, Hodges-Lehmann, Student-t, BH q-values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

__all__ = ["bh_qvalues", "hodges_lehmann_ci", "hodges_lehmann_shift_ci", "t_interval"]

_EXACT_SIGNED_RANK_MAX_N = 200
_EXACT_RANK_SUM_MAX_MN = 40_000


def bh_qvalues(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (statsmodels ``fdr_bh``); NaN p-values stay NaN and do not count.

    Parameters
    ----------
    p_values
        Raw p-values of one family of tests.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def t_interval(
    values: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean and its two-sided ``1 - alpha`` Student-t interval.

    Returns
    -------
    tuple
        ``(mean, low, high)``; low/high are NaN for fewer than two values.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(np.mean(x))
    if len(x) < 2:
        return (mean, math.nan, math.nan)
    half = float(sps.t.ppf(1 - alpha / 2, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))
    return (mean, mean - half, mean + half)


def _signed_rank_cdf(n: int) -> np.ndarray:
    """``P(T+ <= t)``, ``t = 0 .. n(n+1)/2``, under H0 (no ties); normal approximation for big n."""
    total = n * (n + 1) // 2
    if n > _EXACT_SIGNED_RANK_MAX_N:
        mean = total / 2.0
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
        return sps.norm.cdf((np.arange(total + 1) + 0.5 - mean) / sd)
    pmf = np.zeros(total + 1)
    pmf[0] = 1.0
    for rank in range(1, n + 1):  # generating function prod (1 + q^rank) / 2
        shifted = np.zeros_like(pmf)
        shifted[rank:] = pmf[:-rank]
        pmf = 0.5 * (pmf + shifted)
    return np.cumsum(pmf)


def _rank_sum_cdf(m: int, n: int) -> np.ndarray:
    """``P(U <= u)`` for ``u = 0 .. m*n`` of the Mann-Whitney U under H0 (no ties).

    Exact from the Gaussian binomial coefficient ``[m+n choose m]_q`` (normalised at each step);
    normal approximation for large samples.
    """
    total = m * n
    if total > _EXACT_RANK_SUM_MAX_MN:
        mean = total / 2.0
        sd = math.sqrt(m * n * (m + n + 1) / 12.0)
        return sps.norm.cdf((np.arange(total + 1) + 0.5 - mean) / sd)
    if m > n:
        m, n = n, m
    poly = np.zeros(total + 1)
    poly[0] = 1.0
    for i in range(1, m + 1):
        # multiply by (1 - q^(n+i))
        shifted = np.zeros_like(poly)
        shifted[n + i :] = poly[: total + 1 - (n + i)]
        poly = poly - shifted
        # divide by (1 - q^i): r[k] = p[k] + r[k - i], a strided cumulative sum
        padded = np.zeros(((total + 1 + i - 1) // i) * i)
        padded[: total + 1] = poly
        poly = np.cumsum(padded.reshape(-1, i), axis=0).reshape(-1)[: total + 1]
        poly *= i / (n + i)  # keeps the total mass at 1
    poly = np.clip(poly, 0.0, None)
    return np.minimum(np.cumsum(poly), 1.0)


def _interval_rank(cdf: np.ndarray, alpha: float) -> int:
    """Largest ``c`` with ``P(stat <= c - 1) <= alpha/2``; 0 when no such interval exists."""
    below = np.flatnonzero(cdf <= alpha / 2 + 1e-12)
    return int(below[-1] + 1) if len(below) else 0


def hodges_lehmann_ci(
    values: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """One-sample Hodges-Lehmann estimate (median of Walsh averages) and its exact interval.

    The interval inverts the Wilcoxon signed-rank test (Hollander & Wolfe): the ``c``-th smallest
    and ``c``-th largest Walsh average, ``c`` from the exact null distribution of the signed-rank
    statistic (ignoring ties; normal approximation above 200 values).

    Returns
    -------
    tuple
        ``(estimate, low, high)``; low/high are NaN when the sample is too small for a
        ``1 - alpha`` interval (fewer than 6 values at alpha 0.05).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2.0)
    estimate = float(np.median(walsh))
    c = _interval_rank(_signed_rank_cdf(n), alpha)
    if c == 0:
        return (estimate, math.nan, math.nan)
    return (estimate, float(walsh[c - 1]), float(walsh[len(walsh) - c]))


def hodges_lehmann_shift_ci(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Two-sample Hodges-Lehmann shift ``x - y`` (median of pairwise differences) and interval.

    The interval inverts the Mann-Whitney test: the ``c``-th smallest and ``c``-th largest
    pairwise difference, ``c`` from the exact null distribution of U (ignoring ties; normal
    approximation when ``len(x) * len(y) > 40000``).

    Returns
    -------
    tuple
        ``(estimate, low, high)``; low/high NaN when the samples are too small for a
        ``1 - alpha`` interval (e.g. 3 vs 3 at alpha 0.05).
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return (math.nan, math.nan, math.nan)
    diffs = np.sort(np.subtract.outer(a, b).ravel())
    estimate = float(np.median(diffs))
    c = _interval_rank(_rank_sum_cdf(len(a), len(b)), alpha)
    if c == 0:
        return (estimate, math.nan, math.nan)
    return (estimate, float(diffs[c - 1]), float(diffs[len(diffs) - c]))


def _signed_rank_p(x: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1 when every difference is 0, NaN if untestable."""
    if len(x) == 0:
        return math.nan
    if np.all(x == 0):
        return 1.0
    with warnings.catch_warnings():
        # scipy < 1.15 falls back to the normal approximation when a difference is exactly 0 and
        # warns about it below 10 values; that p-value is the one documented and reported
        # (scipy >= 1.15 runs an exact permutation test there instead, without a warning).
        warnings.filterwarnings(
            "ignore", message="Sample size too small for normal approximation", category=UserWarning
        )
        try:
            return float(sps.wilcoxon(x, alternative="two-sided").pvalue)
        except ValueError:
            return math.nan


def _rank_sum_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Mann-Whitney p-value; NaN if either group is empty."""
    if len(x) == 0 or len(y) == 0:
        return math.nan  # scipy would warn (SmallSampleWarning); it warns about nothing else here
    try:
        p = float(sps.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    except ValueError:
        return math.nan
    return p if np.isfinite(p) else math.nan
