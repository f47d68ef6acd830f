"""The rule that turns scores into a verdict, for `verdict` (test footage) and `runs` (validation):
every seed group gets a bootstrap interval of its mean, every pair of groups its difference with an
interval, P(A > B) and a decision whose family-wise error is held at alpha across all the pairs.

    decide({"unet": [29.1, 29.4, 28.9], "small": [28.2, 28.6, 28.4]})          # per-seed scores
    decide({"unet": [[22.1, 30.2], [22.4, 30.0]], "small": [[21.9, 29.1], [22.0, 29.5]]})   # per seed, per clip

The decision: Welch's t-test on each seed's mean over the clips (the clips are shared, so their own
difficulty cancels out of every difference), over every pair of groups, with Holm's step-down
procedure across all the pairs. Testing every pair, not "each against the best", is what keeps the
error at alpha: the best of several equal groups is best by luck, and testing the others against it
calls one of them worse far more often than alpha (bench/verdict.py measures both). The intervals
come from a bootstrap that resamples seeds within each group and the clips, the same clips for
every group (they are paired); P(A > B) is the probability that a seed of A beats a seed of B on a
clip, averaged over the clips (Agarwal et al. 2021's probability of improvement).
"""
import math
from dataclasses import dataclass, field

import numpy as np

from experiments.stats import welch_t_test

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP_RESAMPLES = 2000
INTERVAL = 0.95


@dataclass
class Pair:
    """One comparison: `first` against `second`, difference = first - second (in the metric's units)."""

    first: str
    second: str
    difference: float
    interval: tuple
    p_better: float  # P(first > second), in the metric's better direction
    p: float | None  # Welch's two-sided p (None: a group has fewer than two seeds)
    significant: bool = False  # after Holm's procedure across every pair


@dataclass
class Judgement:
    """Everything the verdict prints: per group its seeds' scores, mean and interval; every pair; the words."""

    scores: dict  # name -> (seeds, clips) array
    higher_is_better: bool
    alpha: float
    means: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    pairs: list = field(default_factory=list)
    words: dict = field(default_factory=dict)
    seed_std: float | None = None  # pooled within-group deviation of a seed's mean over the clips
    comparisons: int = 0  # the tests in the family Holm's procedure ran over (every metric judged together)

    def per_clip(self):
        """name -> [the group's mean on each clip]."""
        return {name: values.mean(axis=0).tolist() for name, values in self.scores.items()}

    @property
    def seeds_per_group(self):
        """The fewest seeds of the groups that can be tested (two or more), or 1."""
        return min((len(values) for values in self.scores.values() if len(values) > 1), default=1)

    def detectable(self, seeds=None, power=POWER):
        """The smallest difference a comparison of `seeds` seeds a group (default: the fewest here)
        would find with `power`, at the first Holm threshold of this family; None without a deviation."""
        return minimum_detectable(self.seed_std, seeds or self.seeds_per_group, self.alpha / max(1, self.comparisons), power)

    def seeds_for(self, effect, power=POWER):
        """Seeds a group needed to find a difference of `effect` with `power` in this family, or None."""
        return seeds_needed(effect, self.seed_std, self.alpha / max(1, self.comparisons), power)


def as_matrix(values):
    """A group's scores as a (seeds, clips) float array: per-seed numbers are one clip."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError("a group is a list of per-seed numbers, or of per-seed lists of per-clip numbers")
    return array


def holm(p_values, alpha=ALPHA):
    """Holm's step-down procedure: which hypotheses are rejected, family-wise error at most alpha.
    The i-th smallest p (from 0) is tested at alpha / (m - i), stopping at the first it fails."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] >= alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def probability_of_improvement(first, second, higher_is_better=True):
    """P(a seed of `first` beats a seed of `second` on a clip), ties counting a half, averaged over the clips."""
    sign = 1.0 if higher_is_better else -1.0
    beats = np.sign(sign * (first[:, None, :] - second[None, :, :]))  # (seeds of first, seeds of second, clips)
    return float(((beats + 1) / 2).mean())


def bootstrap(scores, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """name -> resampled means (resamples,): seeds drawn within each group, clips drawn once per
    resample and shared by every group, so that differences keep the clips paired."""
    rng = np.random.default_rng(seed)
    clips = next(iter(scores.values())).shape[1]
    clip_draw = rng.integers(0, clips, size=(resamples, clips))
    means = {}
    for name, values in scores.items():
        seed_draw = rng.integers(0, len(values), size=(resamples, len(values)))
        # (resamples, seeds, clips): every drawn seed on every drawn clip
        drawn = values[seed_draw[:, :, None], clip_draw[:, None, :]]
        means[name] = drawn.mean(axis=(1, 2))
    return means


def _interval(samples):
    tail = (1 - INTERVAL) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def pooled_seed_std(scores):
    """The deviation of a seed's mean over the clips, pooled within the groups (None with no group of two seeds)."""
    sums, dof = 0.0, 0
    for values in scores.values():
        seed_means = values.mean(axis=1)
        if len(seed_means) > 1:
            sums += float(((seed_means - seed_means.mean()) ** 2).sum())
            dof += len(seed_means) - 1
    return math.sqrt(sums / dof) if dof else None


def judge(groups, higher_is_better=True, alpha=ALPHA, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """The whole verdict over `groups` (name -> per-seed numbers, or per-seed lists of per-clip numbers
    with the clips in the same order for every group): a Judgement."""
    return judge_many({"": (groups, higher_is_better)}, alpha, resamples, seed)[""]


def judge_many(families, alpha=ALPHA, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """{metric: (groups, higher_is_better)} -> {metric: Judgement}, with Holm's procedure across
    every pair of every metric: judging on PSNR and JOD together still calls anything worse by
    chance with probability at most alpha."""
    results = {metric: _describe(groups, higher, alpha, resamples, seed) for metric, (groups, higher) in families.items()}
    tested = [pair for result in results.values() for pair in result.pairs if pair.p is not None]
    for pair, rejected in zip(tested, holm([pair.p for pair in tested], alpha)):
        pair.significant = rejected
    for result in results.values():
        result.comparisons = len(tested)
        result.words = _words(result)
    return results


def _describe(groups, higher_is_better, alpha, resamples, seed):
    """A Judgement's numbers (means, intervals, pairs with their p), before any decision."""
    scores = {name: as_matrix(values) for name, values in groups.items()}
    if len({values.shape[1] for values in scores.values()}) > 1:
        raise ValueError("every group needs a score on the same clips")
    result = Judgement(scores, higher_is_better, alpha, seed_std=pooled_seed_std(scores))
    drawn = bootstrap(scores, resamples, seed)
    for name, values in scores.items():
        result.means[name] = float(values.mean())
        result.intervals[name] = _interval(drawn[name])
    names = list(scores)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = scores[first], scores[second]
            p = welch_t_test(a.mean(axis=1).tolist(), b.mean(axis=1).tolist())[2] if len(a) > 1 and len(b) > 1 else None
            p = 1.0 if p is not None and math.isnan(p) else p  # scores that are not numbers prove nothing
            result.pairs.append(Pair(first, second, result.means[first] - result.means[second],
                                     _interval(drawn[first] - drawn[second]),
                                     probability_of_improvement(a, b, higher_is_better), p))
    return result


def _words(result):
    """name -> its word: "best" (the best mean among the groups of two or more seeds, where there
    are any: a lucky single seed is no reference), "worse than X" (some group is significantly
    better), or "no difference from X" (X the best), with the p or the reason beside it."""
    sign = 1.0 if result.higher_is_better else -1.0
    testable = [name for name, values in result.scores.items() if len(values) > 1]
    best = max(testable or result.means, key=lambda name: sign * result.means[name])
    words = {}
    for name in result.means:
        beaten_by = [(pair.second if pair.first == name else pair.first, pair.p) for pair in result.pairs if pair.significant
                     and name in (pair.first, pair.second) and sign * (pair.difference if pair.second == name else -pair.difference) > 0]
        if name == best:
            words[name] = "best"
        elif beaten_by:
            other, p = min(beaten_by, key=lambda item: item[1])
            words[name] = f"worse than {other} (p={p:.3g}, Holm over {result.comparisons})"
        else:
            pair = next(p for p in result.pairs if {p.first, p.second} == {name, best})
            why = f"p={pair.p:.3g}" if pair.p is not None else "needs 2+ seeds each"
            words[name] = f"no difference from {best} ({why})"
    return words


def decide(groups, higher_is_better=True, alpha=ALPHA):
    """name -> a word that begins with "best", "worse" or "no difference": see `judge`."""
    return judge(groups, higher_is_better, alpha).words


SIMULATED_UP_TO = 30  # seeds a group; beyond, the noncentral t's power is Welch's within 1%
POWER_DRAWS = 20000


def power_of(effect, std, seeds, alpha):
    """The power of Welch's two-sided test at `alpha` to find a difference of `effect` between two
    groups of `seeds` seeds of deviation `std`. Up to SIMULATED_UP_TO seeds it is simulated (the
    same draws every call, so it is a smooth function of the effect): at 3 seeds the textbook
    noncentral-t formula, which assumes the pooled test's degrees of freedom, overstates Welch's
    power by a quarter. Beyond, that formula."""
    shift = abs(effect) / std
    if seeds <= SIMULATED_UP_TO:
        from scipy.special import stdtr  # Student's t cumulative distribution

        rng = np.random.default_rng(seeds)
        a, b = rng.standard_normal((2, POWER_DRAWS, seeds))
        a = a + shift
        va, vb = a.var(axis=1, ddof=1) / seeds, b.var(axis=1, ddof=1) / seeds
        t = (a.mean(axis=1) - b.mean(axis=1)) / np.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va * va / (seeds - 1) + vb * vb / (seeds - 1))
        return float(np.mean(2.0 * stdtr(dof, -np.abs(t)) < alpha))
    from scipy.stats import nct, t

    dof = 2 * seeds - 2
    critical = t.ppf(1 - alpha / 2, dof)
    noncentrality = shift / math.sqrt(2.0 / seeds)
    value = nct.sf(critical, dof, noncentrality) + nct.cdf(-critical, dof, noncentrality)
    return 1.0 if math.isnan(value) else float(value)  # scipy's series gives no number far out in the tail, where the power is 1


def minimum_detectable(std, seeds, alpha, power=POWER):
    """The smallest difference found with `power` by `seeds` seeds a group (to 1% of the deviation);
    None without a deviation or with one seed."""
    if not std or seeds < 2:
        return None
    low, high = 0.0, 1.0
    while power_of(high * std, std, seeds, alpha) < power:
        low, high = high, high * 2
        if high > 1e4:
            return None
    while high - low > 0.01:
        middle = (low + high) / 2
        low, high = (middle, high) if power_of(middle * std, std, seeds, alpha) < power else (low, middle)
    return high * std


def seeds_needed(effect, std, alpha, power=POWER, most=1000):
    """The fewest seeds a group that find a difference of `effect` with `power` (None: more than
    `most`, or no deviation). Power grows with the seeds, so a search by halves finds it."""
    if not std or not effect:
        return None
    if power_of(effect, std, most, alpha) < power:
        return None
    low, high = 1, most  # power at `low` is short of it, at `high` enough
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if power_of(effect, std, middle, alpha) < power else (low, middle)
    return high
