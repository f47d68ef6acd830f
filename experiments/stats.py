"""Means, standard deviations and Welch's t-test, the pieces experiments/verdict.py's rule tells
real differences between runs from seed noise with. The standard library's `statistics` gives the mean and deviation; the t distribution's
tail comes from scipy.special, imported only when a test is run (scipy.stats would add half a
second to every `runs`).

    welch_t_test([20.1, 20.4, 19.9], [18.2, 18.0, 18.5])   # -> (t, degrees of freedom, two-sided p)
"""
import math
import statistics


def mean_std(values):
    """(mean, sample standard deviation); the deviation is 0 for a single value."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def welch_t_test(first, second):
    """(t, Welch-Satterthwaite degrees of freedom, two-sided p-value) for two independent samples
    with possibly unequal variances. Needs at least two values in each."""
    from scipy.special import stdtr  # Student's t cumulative distribution

    (m1, s1), (m2, s2) = mean_std(first), mean_std(second)
    v1, v2 = s1 * s1 / len(first), s2 * s2 / len(second)
    if v1 + v2 == 0.0:
        return (0.0, float(len(first) + len(second) - 2), 1.0) if m1 == m2 else (math.copysign(math.inf, m1 - m2), math.inf, 0.0)
    t = (m1 - m2) / math.sqrt(v1 + v2)
    dof = (v1 + v2) ** 2 / (v1 * v1 / (len(first) - 1) + v2 * v2 / (len(second) - 1))
    return t, dof, float(2.0 * stdtr(dof, -abs(t)))
