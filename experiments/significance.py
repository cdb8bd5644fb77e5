"""The tests the statistics page uses; distributions from scipy.stats, formulas here in the open."""

import math

from scipy import stats

Z_95 = stats.norm.ppf(0.975)


def wilson_interval(successes: int, n: int) -> tuple[float, float] | None:
    """95% interval for a proportion; Wilson's stays inside [0, 1] and is sound at small n and rates near 0."""
    if n == 0:
        return None
    p, z2 = successes / n, Z_95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(mean: float, variance: float, n: int) -> tuple[float, float] | None:
    """95% Student-t interval for a mean."""
    if n < 2:
        return None
    half = stats.t.ppf(0.975, n - 1) * math.sqrt(variance / n)
    return mean - half, mean + half


def two_proportion_z_test(s1: int, n1: int, s2: int, n2: int, *, alternative: str = "two-sided") -> float | None:
    """p-value for proportion 1 differing from proportion 2 (pooled standard error).

    `alternative="greater"` is one-sided: proportion 1 above proportion 2.
    """
    if n1 == 0 or n2 == 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0  # both all-or-nothing and equal: no evidence of a difference
    z = (s1 / n1 - s2 / n2) / se
    return float(stats.norm.sf(z)) if alternative == "greater" else float(2 * stats.norm.sf(abs(z)))


def welch_t_test(mean1: float, var1: float, n1: int, mean2: float, var2: float, n2: int) -> float | None:
    """Two-sided p-value for two means with unequal variances (Welch-Satterthwaite degrees of freedom)."""
    if n1 < 2 or n2 < 2:
        return None
    a, b = var1 / n1, var2 / n2
    if a + b == 0:
        return 1.0 if mean1 == mean2 else 0.0
    t = (mean1 - mean2) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
    return float(2 * stats.t.sf(abs(t), df))


def sample_ratio_p_value(observed: list[int], weights: list[float]) -> float | None:
    """Chi-squared goodness of fit of observed counts to the shares the weights promise."""
    total, weight_sum = sum(observed), sum(weights)
    if total == 0 or len(observed) < 2:
        return None
    expected = [total * w / weight_sum for w in weights]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return float(stats.chi2.sf(statistic, len(observed) - 1))
