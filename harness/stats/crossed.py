"""Seeds × examples: one test and one interval of a difference that count both sources of variance.

A comparison over several training seeds on one test set has two kinds of chance in it: the seed
(initialisation, data order, dropout: Dodge et al. 2020) and the test set, a sample of examples on
which each system has its own strengths. The examples are shared by every seed, so their part of
the variance does not shrink with more seeds. A t-test (or sign-flip test) over the per-seed
differences sees only the seed part and treats the test set as fixed: the "language-as-fixed-effect
fallacy" (Clark 1973). In this module's simulations (``benchmarks/calibration.py``) it rejected a
true null 10-21% of the time at alpha = 0.05 when systems have example-specific strengths. A
percentile bootstrap over seeds then examples, resampled independently per seed, covered the true
difference in only 78-90% of simulations with 3-10 seeds.

What this module does:

- :func:`paired_contributions` turns per-example sufficient statistics of two systems (BLEU's
  n-gram counts, a confusion cell, a plugin's per-example score) into per-example contributions
  to the corpus-level difference, by the delta method (a first-order expansion of the corpus score
  around the two systems' mean statistics; the linearisation behind every bootstrap of BLEU). Their
  mean is the corpus difference exactly. For accuracy they are the per-example differences of
  correctness; examples on which both systems agree contribute (almost exactly) the same amount.
- :func:`crossed_test` decomposes a seeds × examples matrix of such contributions as a two-way
  crossed random-effects design without replication (example effects, seed effects, residual;
  mean squares as in Clark 1973's quasi-F): Var(mean) = (MS_examples + MS_seeds − MS_residual) /
  (n·S) = σ²_example/n + σ²_seed/S + σ²_residual/(n·S). Its t statistic is referred to a t
  distribution with Satterthwaite (1946)-type degrees of freedom, made conservative: the seed
  mean square enters the df formula at a one-sided upper confidence bound whose level is
  calibrated numerically (:func:`df_quantile`) so that the worst-case size over the unknown ratio
  of the two components is at most alpha. Plain Satterthwaite df, plugged in from 3 seeds, reject
  a true null up to 7% (2 seeds: 12%) of the time at 0.05, because a small seed mean square both
  shrinks the standard error and inflates the df.
- :func:`crossed_power`, :func:`crossed_mde` and :func:`seeds_needed_range`: the power of that
  test at any number of seeds, the difference it can see, and the seeds it would need for a given
  difference, over the range of seed-to-seed variance the data allow (a chi-square interval for
  the seed mean square: three seeds estimate it within a factor of about 40).

Non-goals: unbalanced designs (every seed must score the same examples in both arms), metrics
judged by closeness to a target (no linear form), tests of the family of comparisons (Holm in
:mod:`harness.stats`), pooling across datasets (:mod:`harness.stats.meta_analysis`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SEED_RANGE_LEVEL = 0.9
"""Level of the interval of the seed-to-seed variance that seeds-needed ranges are computed over."""


# ============================================================================ per-example contributions


def _gradient(score: Callable[[np.ndarray], np.ndarray], T: np.ndarray) -> np.ndarray:
    """d score / d summed statistics at the sums ``T``: central differences with steps h and 2h,
    combined by Richardson extrapolation (error of order h^4), forward differences where a sum is
    too small to step down. Steps are whole numbers: sacrebleu reads lengths with int(), which a
    fractional step would cut."""
    T = np.asarray(T, dtype=np.float64)
    m = len(T)
    h = np.maximum(1.0, np.round(1e-3 * np.abs(T)))
    central = T - 2 * h >= 0
    steps = np.diag(h)
    pts = np.vstack([T + steps, T - steps * central[:, None], T + 2 * steps, T - 2 * steps * central[:, None]])
    v = np.asarray(score(pts), dtype=np.float64).reshape(4, m)
    lo1 = np.where(central, h, 0.0)
    d1 = (v[0] - v[1]) / (h + lo1)
    d2 = (v[2] - v[3]) / (2 * h + 2 * lo1)
    # Richardson: the central differences' h^2 error cancels; forward differences keep d1 (order h)
    return np.where(central, (4 * d1 - d2) / 3, 2 * d1 - d2)


def paired_contributions(score: Callable[[np.ndarray], np.ndarray], sys_stats, base_stats) -> np.ndarray:
    """Per-example contributions d_i to score(system) − score(baseline) on the same n examples.

    ``score`` maps rows of summed sufficient statistics to corpus scores (as
    :func:`harness.stats.scores_from_sums` does). With g the gradient of the score at the midpoint
    of the two systems' summed statistics, d_i = n·g·(s_i − b_i) + r, where the constant r (second
    order, shared by every example) makes the mean of d exactly the observed corpus difference. An
    example on which the two systems have the same statistics contributes r, so it adds no
    variance: the same gradient serves both arms.
    """
    A = np.asarray(sys_stats, dtype=np.float64)
    B = np.asarray(base_stats, dtype=np.float64)
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(f"statistics of the two systems must be (examples × k) of one shape: {A.shape} vs {B.shape}")
    n = len(A)
    TA, TB = A.sum(axis=0), B.sum(axis=0)
    fa, fb = (float(x) for x in np.asarray(score(np.vstack([TA, TB])), dtype=np.float64))
    diff = A - B
    if not np.any(diff):
        return np.full(n, fa - fb)
    # at the exact midpoint (a half-integer sum is fine: with whole-number steps, int(x + h) - int(x - h) = 2h)
    g = _gradient(score, (TA + TB) / 2)
    lin = n * (diff @ g)
    return lin + ((fa - fb) - lin.mean())


def contributions(score: Callable[[np.ndarray], np.ndarray], stats) -> np.ndarray:
    """Per-example contributions z_i to one system's corpus score (mean exactly the score)."""
    S = np.asarray(stats, dtype=np.float64)
    n = len(S)
    T = S.sum(axis=0)
    f = float(np.asarray(score(T[None]), dtype=np.float64)[0])
    lin = n * (S @ _gradient(score, T))
    return lin + (f - lin.mean())


# ============================================================================ the crossed test


@dataclass(frozen=True)
class Crossed:
    """The seeds × examples test of a mean difference (or mean score). Variances are of one
    observation: ``var_seed`` of a seed's mean, ``var_example`` of an example's mean over seeds."""

    estimate: float
    se: float
    df: float
    t: float
    p: float
    low: float
    high: float
    level: float
    alpha: float
    seeds: int
    n: int
    ms_seed: float
    ms_example: float
    ms_resid: float

    @property
    def var_example(self) -> float:
        """σ²_example: the part of an example's contribution shared by every seed."""
        return max(0.0, (self.ms_example - self.ms_resid) / self.seeds)

    @property
    def var_seed(self) -> float:
        """σ²_seed: the part of a seed's mean shared by every example."""
        return max(0.0, (self.ms_seed - self.ms_resid) / self.n)

    @property
    def var_resid(self) -> float:
        return self.ms_resid

    @property
    def seed_share(self) -> float:
        """Share of Var(mean) due to seeds (0-1)."""
        tot = self.se ** 2
        return 0.0 if tot <= 0 else min(1.0, self.var_seed / self.seeds / tot)


def _t_ppf(p: float, df: float) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, p)) if math.isfinite(df) else float(_norm_ppf(p))


def _norm_ppf(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


DF_QUANTILE_MAX_K = 30
"""Beyond 30 seed degrees of freedom the calibrated quantile of 30 is used (it grows slowly with k
towards plain Satterthwaite's 0.5, so this is on the safe side, and the df are large anyway)."""


@lru_cache(maxsize=256)
def df_quantile(k: int, alpha: float) -> float:
    """The lower chi-square quantile q at which the seed mean square (k = seeds − 1 degrees of
    freedom) enters the df formula, chosen so that the t test's worst-case size is alpha.

    Model: Var(mean) = a + B, the example part ``a`` known (it has n − 1 degrees of freedom), the
    seed part B ~ b·χ²_k/k. The test uses df = k·(1 + a/B⁺)² with B⁺ = B·k/χ²_{k,q} (Satterthwaite
    with B at an upper confidence bound). Its size, a one-dimensional integral over χ²_k (600
    stratified points), is evaluated on a grid of ratios a/b from 0.003 to 300; q is the largest value
    whose worst case is at most alpha (q = 0.5 would be plain Satterthwaite with a median-unbiased
    B). At alpha = 0.05: q = 0.21 (k = 1), 0.22 (2), 0.25 (4), 0.32 (9).
    """
    from scipy.optimize import brentq
    from scipy.special import chdtri, ndtr, stdtrit

    k = min(int(k), DF_QUANTILE_MAX_K)  # callers cap it too, so the cache holds one entry per k
    u = (np.arange(600) + 0.5) / 600
    X = np.asarray(chdtri(k, 1 - u))[None, :]  # chi-square quantiles at u
    # at a ratio of 0 the df are k whatever q is, and the size is alpha exactly
    ratios = np.logspace(-2.5, 2.5, 41)[:, None]
    target = alpha

    def worst(q: float) -> float:
        xq = float(chdtri(k, 1 - q))
        df = k * (1 + ratios * xq / X) ** 2
        c = stdtrit(df, 1 - alpha / 2)
        size = 2 * (1 - ndtr(c * np.sqrt((ratios + X / k) / (ratios + 1))))
        return float(size.mean(axis=1).max()) - target

    if worst(0.5) <= 0:
        return 0.5
    if worst(1e-4) > 0:
        return 1e-4
    return float(brentq(worst, 1e-4, 0.5, xtol=1e-4))


def _df(a: float, B: float, k: int, n_ex: int, alpha: float) -> float:
    if k < 1:
        return float(n_ex - 1)
    if B <= 0:
        return float(max(1, n_ex - 1))
    from scipy.special import chdtri

    q = df_quantile(min(k, DF_QUANTILE_MAX_K), round(alpha, 6))
    b_up = B * k / float(chdtri(k, 1 - q))
    return float(min(max(1, n_ex - 1), k * (1 + a / b_up) ** 2))


def crossed_test(d, *, alpha: float = 0.05, level: float = 0.95) -> Crossed:
    """Test mean(d) = 0 and a ``level`` interval for it, from a seeds × examples matrix ``d``
    (one row per seed, the same n examples in every row; a 1-D array is one seed).

    With one seed there is no seed variance to estimate: the test is a t-test over the examples
    (df n − 1), and the interval describes that one training run only.
    """
    D = np.atleast_2d(np.asarray(d, dtype=np.float64))
    S, n = D.shape
    if n < 2:
        raise ValueError(f"crossed_test needs at least 2 examples, got {n}")
    grand = float(D.mean())
    seed_means = D.mean(axis=1)
    ex_means = D.mean(axis=0)
    ms_ex = float(S * np.sum((ex_means - grand) ** 2) / (n - 1))
    if S >= 2:
        ms_seed = float(n * np.sum((seed_means - grand) ** 2) / (S - 1))
        res = D - ex_means[None, :] - seed_means[:, None] + grand
        ms_res = float(np.sum(res ** 2) / ((n - 1) * (S - 1)))
        a = max(0.0, ms_ex - ms_res)
        var = (a + ms_seed) / (n * S)
        df_test = _df(a, ms_seed, S - 1, n, alpha)
        df_ci = _df(a, ms_seed, S - 1, n, 1 - level)
    else:
        ms_seed, ms_res = 0.0, ms_ex
        var = ms_ex / n
        df_test = df_ci = float(n - 1)
    se = math.sqrt(max(var, 0.0))
    if se == 0:
        t = 0.0 if grand == 0 else math.copysign(math.inf, grand)
        p = 1.0 if grand == 0 else 0.0
        return Crossed(grand, 0.0, df_test, t, p, grand, grand, level, alpha, S, n, ms_seed, ms_ex, ms_res)
    from scipy.special import stdtr

    t = grand / se
    p = float(2 * stdtr(df_test, -abs(t)))
    half = _t_ppf(0.5 + level / 2, df_ci) * se
    return Crossed(grand, se, df_test, t, p, grand - half, grand + half, level, alpha, S, n, ms_seed, ms_ex, ms_res)


# ============================================================================ power and seeds needed


@dataclass(frozen=True)
class Components:
    """Variance components of one example's contribution: shared by seeds (example), shared by
    examples (seed) and the rest, as :class:`Crossed` estimates them."""

    example: float
    seed: float
    resid: float
    n: int

    @classmethod
    def of(cls, c: Crossed) -> Components:
        return cls(c.var_example, c.var_seed, c.var_resid, c.n)

    def with_seed(self, seed: float) -> Components:
        return Components(self.example, seed, self.resid, self.n)


def crossed_power(delta: float, comp: Components, seeds: int, alpha: float = 0.05) -> float:
    """Power of :func:`crossed_test` to detect a mean difference ``delta`` with ``seeds`` seeds on
    the same n examples, for these variance components (noncentral t with the test's df at the
    expected mean squares)."""
    from scipy.stats import nct

    S, n = int(seeds), comp.n
    ms_ex = comp.resid + S * comp.example
    ms_seed = comp.resid + n * comp.seed
    a = max(0.0, ms_ex - comp.resid)
    var = (a + ms_seed) / (n * S)
    if var <= 0:
        return 1.0 if delta else alpha
    df = _df(a, ms_seed, S - 1, n, alpha) if S >= 2 else float(n - 1)
    crit = _t_ppf(1 - alpha / 2, df)
    nc = abs(delta) / math.sqrt(var)
    return float(nct.sf(crit, df, nc) + nct.cdf(-crit, df, nc))


def crossed_mde(comp: Components, seeds: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |difference| :func:`crossed_test` detects with ``power`` at ``seeds`` seeds."""
    S, n = int(seeds), comp.n
    sd = math.sqrt(max(0.0, (S * comp.example + comp.resid + n * comp.seed) / (n * S)))
    if sd == 0:
        return 0.0
    lo, hi = 0.0, sd
    while crossed_power(hi, comp, S, alpha) < power:
        hi *= 2
        if hi > 1e6 * sd:
            return math.inf
    for _ in range(60):
        mid = (lo + hi) / 2
        if crossed_power(mid, comp, S, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def seeds_needed(delta: float, comp: Components, alpha: float = 0.05, power: float = 0.8, *,
                 max_seeds: int = 10_000) -> int | None:
    """Seeds :func:`crossed_test` needs to detect ``delta`` with ``power`` on these n examples, or
    None when no number of seeds would: the examples' own variance (σ²_example/n, which more seeds
    do not reduce) is too large for ``delta``, or more than ``max_seeds`` are needed."""
    if not math.isfinite(delta) or delta == 0:
        return None
    if crossed_power(delta, comp, max_seeds, alpha) < power:
        return None
    lo, hi = 2, 2
    while crossed_power(delta, comp, hi, alpha) < power:
        lo, hi = hi, min(hi * 2, max_seeds)
    while lo < hi:
        mid = (lo + hi) // 2
        if crossed_power(delta, comp, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def seed_variance_range(c: Crossed, level: float = SEED_RANGE_LEVEL) -> tuple[float, float]:
    """(low, high) σ²_seed the data allow: the chi-square interval of the seed mean square
    (S − 1 degrees of freedom), less the residual part."""
    if c.seeds < 2:
        return (math.nan, math.nan)
    from scipy.special import chdtri

    k = c.seeds - 1
    lo_ms = c.ms_seed * k / float(chdtri(k, (1 - level) / 2))
    hi_ms = c.ms_seed * k / float(chdtri(k, 1 - (1 - level) / 2))
    lo, hi = sorted((lo_ms, hi_ms))
    return max(0.0, (lo - c.ms_resid) / c.n), max(0.0, (hi - c.ms_resid) / c.n)


@dataclass(frozen=True)
class SeedsNeeded:
    """Seeds needed for one difference: at the estimated seed variance and over its range.
    None means that no number of seeds would (see :func:`seeds_needed`)."""

    delta: float
    estimate: int | None
    low: int | None
    high: int | None
    level: float = SEED_RANGE_LEVEL

    @property
    def never(self) -> bool:
        """Even at the low end of the seed variance, no number of seeds would do."""
        return self.low is None


def seeds_needed_range(delta: float, c: Crossed, alpha: float = 0.05, power: float = 0.8,
                       level: float = SEED_RANGE_LEVEL) -> SeedsNeeded:
    comp = Components.of(c)
    lo_v, hi_v = seed_variance_range(c, level)
    return SeedsNeeded(abs(delta), seeds_needed(delta, comp, alpha, power),
                       seeds_needed(delta, comp.with_seed(lo_v), alpha, power),
                       seeds_needed(delta, comp.with_seed(hi_v), alpha, power), level)


def examples_needed(mde: float, target: float, n: int) -> int:
    """Test-set size at which an example-dominated test's detectable difference falls from ``mde``
    to ``target`` (it shrinks as 1/√n)."""
    return int(math.ceil(n * (mde / target) ** 2))
