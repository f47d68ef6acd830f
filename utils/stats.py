"""Means, standard deviations and Welch's t-test, for telling real differences between runs from
seed noise. Written here (no scipy at run time); the tests check it against scipy.stats.

    welch_t_test([20.1, 20.4, 19.9], [18.2, 18.0, 18.5])   # -> (t, degrees of freedom, two-sided p)
"""
import math

SIGNIFICANCE = 0.05


def mean_std(values):
    """(mean, sample standard deviation); the deviation is 0 for a single value."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0


def _continued_fraction(a, b, x):
    """The continued fraction of the regularized incomplete beta function (Numerical Recipes, betacf)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def incomplete_beta(a, b, x):
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a
    return 1.0 - front * _continued_fraction(b, a, 1.0 - x) / b


def welch_t_test(first, second):
    """(t, Welch-Satterthwaite degrees of freedom, two-sided p-value) for two independent samples
    with possibly unequal variances. Needs at least two values in each."""
    (m1, s1), (m2, s2) = mean_std(first), mean_std(second)
    v1, v2 = s1 * s1 / len(first), s2 * s2 / len(second)
    if v1 + v2 == 0.0:
        return (0.0, float(len(first) + len(second) - 2), 1.0) if m1 == m2 else (math.copysign(math.inf, m1 - m2), math.inf, 0.0)
    t = (m1 - m2) / math.sqrt(v1 + v2)
    dof = (v1 + v2) ** 2 / (v1 * v1 / (len(first) - 1) + v2 * v2 / (len(second) - 1))
    p = incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))
    return t, dof, p


def significantly_different(first, second, alpha=SIGNIFICANCE):
    """True only when both groups have two or more values and Welch's test gives p < alpha."""
    if len(first) < 2 or len(second) < 2:
        return False
    return welch_t_test(first, second)[2] < alpha
