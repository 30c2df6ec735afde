"""Pooling one effect across datasets: DerSimonian-Laird random-effects meta-analysis.

What it does
- :func:`paired_effect` turns one dataset's per-seed paired differences (e.g. accuracy of
  ``input_mask`` minus ``unmasked`` with the same seed) into an effect and the variance of that
  effect (mean difference, s^2 / n).
- :func:`pool_effects` pools k such effects with their variances the way DerSimonian & Laird
  (1986) do: fixed-effect weights 1/v_i, Cochran's Q, the moment estimate of the between-dataset
  variance tau^2 = max(0, (Q - (k-1)) / (sum w - sum w^2 / sum w)), random-effects weights
  1/(v_i + tau^2), the pooled effect with its standard error, a normal (Wald) confidence
  interval and two-sided p-value, and Higgins & Thompson's (2002) I^2 = max(0, (Q - (k-1)) / Q).
  Numbers equal statsmodels' ``combine_effects(..., method_re="dl")`` (tested).

Honest edge cases
- k = 1: the pooled effect is that dataset's effect; Q, tau^2 and I^2 are undefined (None) and
  the result's ``note`` says heterogeneity cannot be estimated from one dataset.
- A dataset with zero or undefined variance (all seeds agree exactly, or a single seed) has an
  infinite or unknown inverse-variance weight: nothing is pooled (estimate None) and ``note``
  names the dataset. Pooling it anyway would let one dataset decide alone.
- With few datasets (k < 5) the moment estimate of tau^2 is imprecise and the normal interval
  is known to be too narrow (IntHout et al. 2014); ``note`` says so rather than staying silent.

What decides. :func:`pool_datasets` (a t-test over the datasets' effects, equal weights) gives
the pooled effect, interval and p the reports use; the DerSimonian-Laird numbers (tau^2, Q, I^2)
describe the heterogeneity beside it. DerSimonian-Laird's normal test with within-dataset
variances from 3 seeds rejected a true null 16-23% of the time at alpha = 0.05 in the harness's
simulations (benchmarks/calibration.py).

Non-goals: other tau^2 estimators (REML, Paule-Mandel), meta-regression, forest plots (a reporter
draws those from the result).

Pure Python + scipy (imported inside functions); nothing here imports torch.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

METHOD = "DerSimonian-Laird random effects"


@dataclass(frozen=True)
class Effect:
    """One dataset's effect: estimate, its variance (None when it cannot be estimated) and n."""

    estimate: float
    variance: float | None
    n: int


@dataclass(frozen=True)
class PooledEffect:
    """The result of :func:`pool_effects`. Interval bounds are at ``level`` (0.95: a 95% CI).

    ``i2`` is a percentage (0-100). ``weights`` are the random-effects weights of the datasets in
    percent, in input order. Fields that cannot be computed are None and ``note`` says why.
    """

    k: int
    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    z: float | None
    p: float | None
    tau2: float | None
    q: float | None
    q_df: int
    q_p: float | None
    i2: float | None
    fixed_estimate: float | None
    fixed_se: float | None
    level: float = 0.95
    labels: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    method: str = METHOD
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"], d["weights"] = list(self.labels), list(self.weights)
        return d


def paired_effect(differences: Sequence[float]) -> Effect:
    """A dataset's effect from its per-seed paired differences: their mean, and the variance of
    that mean (sample variance / n, ddof 1). One seed: the variance is None (unknown)."""
    xs = [float(x) for x in differences]
    if not xs:
        raise ValueError("paired_effect needs at least one difference")
    if any(not math.isfinite(x) for x in xs):
        raise ValueError(f"paired_effect: differences must be finite numbers, got {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Effect(mean, None, n)
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return Effect(mean, var / n, n)


def pool_effects(effects: Sequence[float], variances: Sequence[float | None], *,
                 labels: Sequence[str] | None = None, level: float = 0.95) -> PooledEffect:
    """DerSimonian-Laird random-effects pooling of ``effects`` with within-dataset ``variances``."""
    from scipy.stats import chi2, norm

    ys = [float(y) for y in effects]
    k = len(ys)
    names = tuple(str(x) for x in labels) if labels is not None else tuple(f"dataset {i + 1}" for i in range(k))
    if k == 0:
        raise ValueError("pool_effects needs at least one effect")
    if len(variances) != k or len(names) != k:
        raise ValueError(f"pool_effects: {k} effects but {len(variances)} variances and {len(names)} labels")
    if not 0 < level < 1:
        raise ValueError(f"pool_effects: level must be in (0, 1), got {level}")
    if any(not math.isfinite(y) for y in ys):
        raise ValueError(f"pool_effects: effects must be finite numbers, got {ys}")
    bad = [v for v in variances if v is not None and (not math.isfinite(float(v)) or float(v) < 0)]
    if bad:
        raise ValueError(f"pool_effects: variances must be finite and >= 0, got {list(variances)}")
    crit = float(norm.ppf(0.5 + level / 2))
    empty = dict(k=k, estimate=None, se=None, ci_low=None, ci_high=None, z=None, p=None, tau2=None, q=None,
                 q_df=max(0, k - 1), q_p=None, i2=None, fixed_estimate=None, fixed_se=None, level=level,
                 labels=names)

    unknown = [n for n, v in zip(names, variances) if v is None]
    zero = [n for n, v in zip(names, variances) if v is not None and float(v) == 0.0]
    if unknown or zero:
        parts = []
        if unknown:
            parts.append(f"{', '.join(unknown)}: variance unknown (one seed?)")
        if zero:
            parts.append(f"{', '.join(zero)}: variance 0 (every seed gives the same difference)")
        note = ("no pooled estimate: inverse-variance weights need a positive variance per dataset; "
                + "; ".join(parts))
        return PooledEffect(**empty, note=note)

    vs = [float(v) for v in variances]
    w = [1.0 / v for v in vs]
    sw = sum(w)
    fixed = sum(wi * yi for wi, yi in zip(w, ys)) / sw
    fixed_se = math.sqrt(1.0 / sw)
    notes: list[str] = []
    if k == 1:
        tau2 = q = q_p = i2 = None
        est, se = ys[0], math.sqrt(vs[0])
        weights = (100.0,)
        notes.append("one dataset: the pooled effect is its effect; heterogeneity (tau^2, Q, I^2) cannot be "
                     "estimated")
    else:
        q = sum(wi * (yi - fixed) ** 2 for wi, yi in zip(w, ys))
        df = k - 1
        c = sw - sum(wi * wi for wi in w) / sw
        # c > 0 in exact arithmetic; one weight ~1e30 (a variance that is 0 up to rounding) cancels it to 0
        tau2 = max(0.0, (q - df) / c) if c > 0 else 0.0
        q_p = float(chi2.sf(q, df))
        i2 = 100.0 * max(0.0, (q - df) / q) if q > 0 else 0.0
        w_re = [1.0 / (v + tau2) for v in vs]
        s_re = sum(w_re)
        est = sum(wi * yi for wi, yi in zip(w_re, ys)) / s_re
        se = math.sqrt(1.0 / s_re)
        weights = tuple(100.0 * wi / s_re for wi in w_re)
        if k < 5:
            notes.append(f"only {k} datasets: the DerSimonian-Laird tau^2 is imprecise and its normal interval "
                         "tends to be too narrow")
    z = est / se
    p = float(2 * norm.sf(abs(z)))
    return PooledEffect(k=k, estimate=est, se=se, ci_low=est - crit * se, ci_high=est + crit * se, z=z, p=p,
                        tau2=tau2, q=q, q_df=k - 1, q_p=q_p, i2=i2, fixed_estimate=fixed, fixed_se=fixed_se,
                        level=level, labels=names, weights=weights, note="; ".join(notes) or None)


def pool_paired_differences(by_dataset: dict[str, Sequence[float]], *, level: float = 0.95) -> PooledEffect:
    """Pool per-seed paired differences, one list per dataset (label -> differences), in one call:
    :func:`paired_effect` per dataset, then :func:`pool_effects`."""
    labels = list(by_dataset)
    effs = [paired_effect(by_dataset[name]) for name in labels]
    return pool_effects([e.estimate for e in effs], [e.variance for e in effs], labels=labels, level=level)


# ----------------------------------------------------------------------------- the deciding pool

T_METHOD = "t over datasets (equal weights), t(k-1)"


@dataclass(frozen=True)
class DatasetPool:
    """:func:`pool_datasets`: the mean of k datasets' effects, its standard error sd/√k, a t(k−1)
    interval at ``level`` and the two-sided p. None where it cannot be computed (``note`` says why)."""

    k: int
    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    t: float | None
    p: float | None
    level: float = 0.95
    labels: tuple[str, ...] = ()
    method: str = T_METHOD
    note: str | None = None


def pool_datasets(effects: Sequence[float], *, labels: Sequence[str] | None = None, level: float = 0.95,
                  variances: Sequence[float | None] | None = None) -> DatasetPool:
    """The effect across datasets that decides: a one-sample t-test of the k datasets' effects.

    Each effect (a dataset's mean difference over its seeds) carries its own seed and test-set
    noise and the between-dataset spread, so their sample variance estimates all three at once.
    This is the Hartung-Knapp-Sidik-Jonkman interval (Hartung & Knapp 2001; Sidik & Jonkman 2002:
    the spread of the effects around the pooled one, t(k−1)) with equal weights. Weights
    1/(v_i + tau^2) need each dataset's variance v_i, which three seeds estimate with 2 degrees of
    freedom: in the harness's simulations (benchmarks/calibration.py) those weights took
    Hartung-Knapp's false-positive rate to 8% at alpha = 0.05, and DerSimonian-Laird's normal
    test to 13-23%; equal weights held 5%. With k = 2 it is valid but t(1) makes it weak (its
    97.5% point is 12.7).

    Effects equal to rounding (discrete scores on small test sets can tie exactly) leave no
    spread to estimate from: then the datasets' own ``variances`` (each effect's, e.g. its seeds ×
    examples variance) stand in for it, Σv_i/k², still with t(k−1); without them there is no p.
    """
    from scipy.special import stdtr, stdtrit

    ys = [float(y) for y in effects]
    k = len(ys)
    names = tuple(str(x) for x in labels) if labels is not None else tuple(f"dataset {i + 1}" for i in range(k))
    if any(not math.isfinite(y) for y in ys):
        raise ValueError(f"pool_datasets: effects must be finite numbers, got {ys}")
    if k < 2:
        return DatasetPool(k, None, None, None, None, None, None, level, names,
                           note="one dataset: an effect across datasets needs at least two")
    mean = sum(ys) / k
    sd = math.sqrt(sum((y - mean) ** 2 for y in ys) / (k - 1))
    se = sd / math.sqrt(k)
    note = None
    if sd <= 1e-9 * max(abs(y) for y in ys):  # equal up to rounding
        vs = [v for v in (variances or []) if v is not None and math.isfinite(v) and v > 0]
        if len(vs) != k:
            return DatasetPool(k, mean, 0.0, None, None, None, None, level, names,
                               note="every dataset gives the same effect, so the spread between datasets, the only "
                                    "variance this test uses, is 0: no p-value")
        se = math.sqrt(sum(vs)) / k
        note = ("every dataset gives the same effect: the datasets' own variances stand in for the spread "
                "between them")
    t = mean / se
    half = float(stdtrit(k - 1, 0.5 + level / 2)) * se
    return DatasetPool(k, mean, se, mean - half, mean + half, t, float(2 * stdtr(k - 1, -abs(t))), level, names,
                       note=note)


# ----------------------------------------------------------------------------- the masking study


@dataclass(frozen=True)
class StudyDelta:
    """One dataset x budget x rate: the paired difference to the baseline over seeds."""

    dataset: str
    budget: int | None
    rate: float
    n: int                      # seeds with both arms
    delta: float                # mean over seeds of (arm - baseline), in the metric's units
    sd: float | None            # sample sd of the per-seed differences (None with one seed)
    ci_low: float | None        # t interval of the mean difference at ``level``
    ci_high: float | None
    differences: tuple[float, ...]


def masking_study(metrics, *, metric: str = "accuracy", baseline: str = "unmasked",
                  level: float = 0.95) -> tuple[list[StudyDelta], list[tuple[int | None, float, PooledEffect]]]:
    """Δ vs ``baseline`` per dataset, budget and masking rate, and its pooled effect across datasets.

    ``metrics`` is a run's metrics DataFrame (``harness.load_results(OUTDIR)``), laid out as
    ``configs/mask-study.yaml`` lays out its grid: the budget is the strategy's ``train_limit``,
    the rate its ``mask_prob`` (0 for the baseline), and the dataset the benchmark label without
    its ``-b<budget>`` suffix. Cells are paired by (dataset, budget, seed). Returns the per-dataset
    rows (t intervals over seeds) and, per (budget, rate), :func:`pool_paired_differences` across
    the datasets (DerSimonian-Laird).
    """
    import json as _json

    from scipy.stats import t as t_dist

    rows = metrics[metrics["metric"] == metric]
    values: dict[tuple[str, int | None, float], dict[int, float]] = {}
    for r in rows.itertuples(index=False):
        params = _json.loads(r.strategy_params) if isinstance(r.strategy_params, str) and r.strategy_params else {}
        budget = params.get("train_limit")
        dataset = str(r.benchmark)
        if budget is not None and dataset.endswith(f"-b{budget}"):
            dataset = dataset[: -len(f"-b{budget}")]
        rate = 0.0 if r.strategy == baseline else params.get("mask_prob")
        if rate is None:  # an arm that is neither the baseline nor input masking
            continue
        values.setdefault((dataset, budget, float(rate)), {})[int(r.seed)] = float(r.value)
    deltas: list[StudyDelta] = []
    for (dataset, budget, rate), by_seed in sorted(values.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2])):
        base = values.get((dataset, budget, 0.0), {})
        if rate == 0.0 or not base:
            continue
        diffs = tuple(by_seed[s] - base[s] for s in sorted(by_seed) if s in base)
        if not diffs:
            continue
        eff = paired_effect(diffs)
        sd = math.sqrt(eff.variance * eff.n) if eff.variance is not None else None
        lo = hi = None
        if eff.variance is not None:
            half = float(t_dist.ppf(0.5 + level / 2, eff.n - 1)) * math.sqrt(eff.variance)
            lo, hi = eff.estimate - half, eff.estimate + half
        deltas.append(StudyDelta(dataset, budget, rate, eff.n, eff.estimate, sd, lo, hi, diffs))
    pooled = []
    for budget, rate in sorted({(d.budget, d.rate) for d in deltas}, key=lambda x: (x[0] or 0, x[1])):
        group = {d.dataset: d.differences for d in deltas if (d.budget, d.rate) == (budget, rate)}
        pooled.append((budget, rate, pool_paired_differences(group, level=level)))
    return deltas, pooled
