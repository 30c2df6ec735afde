"""Decision rules: which test decides in each situation, and the few things a verdict may say.

A verdict is one of five (:data:`VERDICTS`), everywhere the harness states one (report.html,
report.md, summary.csv, results.json, ``harness compare``):

- **better** / **worse** (significant): the deciding test's p is below alpha;
- **no significant difference**: it is not, and the test had ``power`` (80%) to see a difference of
  at least X, which the verdict states (the minimum detectable difference, MDE);
- **the data cannot decide**: the test cannot reach alpha at all (a randomisation floor: with k
  differing examples no randomisation can give p below 2/2^k), or it could not see the
  difference the user said matters (``min_effect``); the verdict says why and what would decide
  (more seeds, a larger test set, more datasets);
- **identical outputs**: nothing to test.

One deciding test per situation, each chosen because ``benchmarks/calibration.py`` shows that it
holds its size at alpha and has power at the sizes people run (docs/statistics.md has the table):

=============================================  ==============================================
one evaluation per arm, accuracy               McNemar's exact test (Dietterich 1998)
one evaluation per arm, other metrics          paired approximate randomisation (Riezler &
                                               Maxwell 2005), exact over all 2^k swaps when
                                               k <= 16 examples differ, p counting the observed
                                               arrangement (Phipson & Smyth 2010)
several seeds (per-example statistics)         the seeds × examples t-test (:mod:`harness.stats.crossed`)
several seeds, no per-example statistics       paired t-test over seeds (conditional on this
                                               test set: its sampling variance is unknown)
several datasets                               t-test over the datasets' effects, t(k−1)
                                               (:func:`harness.stats.meta_analysis.pool_datasets`)
=============================================  ==============================================

Non-goals: computing the p-values (:mod:`harness.stats`, :mod:`harness.stats.crossed`), choosing who is
compared with whom (:mod:`harness.analysis.pairing`), wording the rest of a report's sentence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

VERDICTS = {
    "better": "better (significant)",
    "worse": "worse (significant)",
    "no_difference": "no significant difference",
    "cannot_decide": "the data cannot decide",
    "identical": "identical outputs",
}
"""The verdict vocabulary: decision key -> how the reports say it."""

TESTS = {
    "crossed": "seeds × examples t-test",
    "mcnemar": "McNemar's exact test",
    "ar": "approximate randomisation",
    "bootstrap": "paired bootstrap",
    "seeds_t": "paired t-test over seeds",
    "datasets_t": "t-test over datasets",
    "identical": "identical outputs",
}
"""Deciding tests by key, as the reports name them."""


def min_differing(alpha: float) -> int:
    """The fewest differing examples with which a randomisation over examples (or McNemar's test
    on discordant pairs) can give p below ``alpha``: the smallest k with 2/2^k < alpha."""
    k = 1
    while 2.0 / 2 ** k >= alpha:
        k += 1
    return k


@dataclass(frozen=True)
class Decision:
    """What a comparison may conclude, with the numbers behind it.

    ``delta`` is the improvement (positive = better, whatever the metric's direction) in the
    metric's units; ``mde`` the |difference| the deciding test had ``power`` to see; ``floor`` the
    smallest p the test can give here. ``why``/``would`` say, for "the data cannot decide", what
    stops the decision and what would make one.
    """

    kind: str
    test: str
    p: float | None = None
    alpha: float = 0.05
    delta: float | None = None
    floor: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str = ""
    mde: float | None = None
    power: float = 0.8
    df: float | None = None
    min_effect: float | None = None
    why: str = ""
    would: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return VERDICTS[self.kind]

    @property
    def significant(self) -> bool:
        return self.kind in ("better", "worse")

    @property
    def test_name(self) -> str:
        return TESTS.get(self.test, self.test)

    def phrase(self, digits: int = 2) -> str:
        """The verdict as the end of a sentence: ``worse (significant at 0.05)``, ``no significant
        difference at 0.05 (the test had 80% power to see a difference of 1.30 or more)``, ``the
        data cannot decide: ...; ... would``."""
        a = f"{self.alpha:g}"
        if self.kind in ("better", "worse"):
            return f"{self.kind} (significant at {a})"
        if self.kind == "identical":
            return "identical outputs: no test, not a difference"
        if self.kind == "no_difference":
            text = f"no significant difference at {a}"
            if self.mde is not None and math.isfinite(self.mde):
                text += (f" (the test had {self.power:.0%} power to see a difference of "
                         f"{self.mde:.{digits}f} or more)")
            return text
        text = "the data cannot decide"
        if self.why:
            text += f": {self.why}"
        if self.would:
            text += f"; {self.would}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.kind, "verdict": self.label, "test": self.test, "test_name": self.test_name,
                "p": self.p, "p_floor": self.floor, "alpha": self.alpha, "delta": self.delta,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "ci_method": self.ci_method, "mde": self.mde,
                "power": self.power, "df": self.df, "min_effect": self.min_effect, "why": self.why,
                "would": self.would, "notes": list(self.notes)}


def decide(*, test: str, p: float | None, delta: float | None, alpha: float = 0.05, floor: float | None = None,
           mde: float | None = None, power: float = 0.8, min_effect: float | None = None,
           floor_why: str = "", floor_would: str = "", power_would: str = "", **extra) -> Decision:
    """The one rule every situation shares, in this order:

    1. a test that cannot give p below alpha here (``floor`` >= alpha) cannot decide;
    2. p < alpha with a non-zero difference: better or worse;
    3. the test could not see ``min_effect`` (its MDE is larger): cannot decide;
    4. otherwise no significant difference, with the MDE stated.
    """
    base = dict(test=test, p=p, alpha=alpha, delta=delta, floor=floor, mde=mde, power=power, min_effect=min_effect,
                **extra)
    if p is None:
        return Decision("cannot_decide", why=floor_why or "no paired test was possible", would=floor_would, **base)
    if floor is not None and floor >= alpha:
        return Decision("cannot_decide", why=floor_why, would=floor_would, **base)
    if p < alpha and delta:
        return Decision("better" if delta > 0 else "worse", **base)
    if min_effect is not None and mde is not None and mde > min_effect:
        why = (f"the test could only see a difference of {_num(mde)} or more with {power:.0%} power, not the "
               f"{_num(min_effect)} that matters (min_effect)")
        return Decision("cannot_decide", why=why, would=power_would, **base)
    return Decision("no_difference", **base)


def identical(test: str = "identical", alpha: float = 0.05, **extra) -> Decision:
    return Decision("identical", test=test, alpha=alpha, delta=0.0, **extra)


def with_p(d: Decision, p: float, **kw) -> Decision:
    """The decision re-made with another p (Holm-adjusted), keeping everything else."""
    return decide(test=d.test, p=p, delta=d.delta, alpha=d.alpha, floor=d.floor, mde=d.mde, power=d.power,
                  min_effect=d.min_effect, floor_why=d.why if d.floor is not None and d.floor >= d.alpha else "",
                  floor_would=d.would if d.floor is not None and d.floor >= d.alpha else "",
                  power_would=d.would, ci_low=d.ci_low, ci_high=d.ci_high, ci_method=d.ci_method, df=d.df,
                  notes=d.notes, **kw)


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


# ============================================================================ one evaluation per arm


def randomisation_floor(differing: int) -> float:
    """Smallest p a randomisation (or McNemar's test) can give with ``differing`` examples that
    differ: the observed arrangement and its mirror image are 2 of the 2^k."""
    return 1.0 if differing <= 0 else (min(1.0, 2.0 / 2.0 ** differing) if differing < 1024 else 0.0)


def mcnemar_mde(discordant: int, n: int, alpha: float = 0.05, power: float = 0.8, scale: float = 1.0) -> float:
    """The accuracy difference McNemar's exact test detects with ``power``, given ``discordant``
    examples that one system gets right and the other wrong (conditioning on their number): the
    smallest imbalance π of the binomial(discordant, π) whose exact two-sided test rejects with
    that power, as (2π − 1)·discordant/n, times ``scale`` (100 for percentages)."""
    if discordant <= 0 or n <= 0:
        return math.inf
    import numpy as np
    from scipy.stats import binom

    N = int(discordant)
    ks = np.arange(N + 1)
    # the exact test's p for each outcome (doubling the smaller tail, as stats.mcnemar_exact does)
    pvals = np.minimum(1.0, 2 * np.minimum(binom.cdf(ks, N, 0.5), binom.sf(ks - 1, N, 0.5)))
    reject = ks[pvals < alpha]
    if not len(reject) or binom.pmf(reject, N, 1.0).sum() < power:
        return math.inf
    lo, hi = 0.5, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if binom.pmf(reject, N, mid).sum() >= power:
            hi = mid
        else:
            lo = mid
    return (2 * hi - 1) * N / n * scale


def normal_mde(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """(z_{1−α/2} + z_power)·se: the difference a two-sided z-test with this standard error sees."""
    from scipy.special import ndtri

    return float((ndtri(1 - alpha / 2) + ndtri(power)) * se)


def randomisation_mde(contrib, alpha: float = 0.05, power: float = 0.8) -> float:
    """MDE of a randomisation test over examples from per-example contributions d_i to the
    difference: its null distribution has variance Σd_i²/n² (each sign equally likely)."""
    import numpy as np

    d = np.asarray(contrib, dtype=np.float64)
    if not len(d):
        return math.inf
    return normal_mde(float(np.sqrt(np.sum(d ** 2)) / len(d)), alpha, power)


def decide_one_run(*, test: str, p: float | None, delta: float, differing: int, n: int, what: str, alpha: float = 0.05,
                   mde: float | None = None, power: float = 0.8, min_effect: float | None = None,
                   statistic: str = "", **extra) -> Decision:
    """One evaluation per arm, over its n examples (McNemar or randomisation).

    ``differing``: examples whose per-example statistics differ between the two systems (for
    McNemar: the discordant pairs); ``what`` names them in the sentence ("examples differ in their
    BLEU statistics"). The floor of both tests is 2/2^differing.
    """
    floor = randomisation_floor(differing)
    need = min_differing(alpha)
    one = what.replace("differ in their", "differs in its", 1).replace("are right", "is right", 1)
    name = TESTS.get(test, test)
    if differing <= 0:
        why = f"no example {one}, so no test over examples can tell the systems apart"
    else:
        why = (f"only {differing} of {n} {'example' if differing == 1 else 'examples'} "
               f"{one if differing == 1 else what}, so {name} cannot give p below {floor_text(floor)}")
    rate = differing / n if n else 0
    size = f" (a test set of about {math.ceil(need / rate):,} examples at this rate)" if rate > 0 else ""
    floor_would = (f"at least {need} differing examples{size} or several seeds would" if differing > 0 else
                   "only another metric, one that sees what differs, could tell them apart")
    power_would = ""
    if mde is not None and min_effect is not None and math.isfinite(mde) and mde > 0:
        from .crossed import examples_needed

        power_would = f"a test set of about {examples_needed(mde, min_effect, n):,} examples would"
    return decide(test=test, p=p, delta=delta, alpha=alpha, floor=floor, mde=mde, power=power, min_effect=min_effect,
                  floor_why=why, floor_would=floor_would, power_would=power_would, **extra)


def floor_text(floor: float) -> str:
    from .significance import p_number

    return p_number(floor, floor)


# ============================================================================ several seeds


def decide_seeds(c, *, delta: float, alpha: float = 0.05, power: float = 0.8, min_effect: float | None = None,
                 p: float | None = None, **extra) -> Decision:
    """Several seeds on one test set: the seeds × examples t-test (a :class:`harness.stats.crossed.Crossed`
    of the improvement contributions) decides; ``p`` overrides its p (Holm)."""
    from .crossed import Components, crossed_mde, seeds_needed_range

    mde = crossed_mde(Components.of(c), c.seeds, alpha, power)
    would = ""
    if min_effect is not None:
        would = seeds_sentence(seeds_needed_range(min_effect, c, alpha, power), c.n, what="see it")
    return decide(test="crossed", p=c.p if p is None else p, delta=delta, alpha=alpha, mde=mde, power=power,
                  min_effect=min_effect, power_would=would, ci_low=c.low, ci_high=c.high,
                  ci_method=f"seeds × examples t, df {c.df:.1f}", df=c.df, **extra)


def seeds_sentence(need, n: int, what: str = "detect it") -> str:
    """``about 12 seeds (between 6 and 85 over the 90% range of the seed-to-seed variance) would
    see it``, or why no number of seeds would."""
    if need.estimate is None and need.never:
        return (f"no number of seeds would: with {n:,} examples the test set's own variance (which more seeds do "
                f"not reduce) hides a difference of {_num(need.delta)}; a larger test set would")
    est = "more than 10,000" if need.estimate is None else f"about {need.estimate}"
    lo = "–" if need.low is None else str(need.low)
    hi = "more than 10,000" if need.high is None else str(need.high)
    span = "" if lo == hi == str(need.estimate) else (
        f" (between {lo} and {hi} over the {need.level:.0%} range of the seed-to-seed variance)")
    return f"{est} seeds{span} would {what}"


def t_mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The mean difference a two-sided one-sample t-test over ``n`` values with standard deviation
    ``sd`` detects with ``power`` (noncentral t, as statsmodels' ``TTestPower``)."""
    from .significance import t_test_power

    if n < 2 or not sd > 0:
        return math.inf
    lo, hi = 0.0, sd
    while t_test_power(hi / sd, n, alpha) < power:
        hi *= 2
        if hi > 1e6 * sd:
            return math.inf
    for _ in range(50):
        mid = (lo + hi) / 2
        if t_test_power(mid / sd, n, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def t_n_needed(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 10_000) -> int | None:
    """Values (seeds, datasets) a two-sided one-sample t-test needs to detect ``delta`` with ``power``."""
    from .significance import t_test_power

    if not (sd > 0 and delta):
        return None
    effect = abs(delta) / sd
    if t_test_power(effect, max_n, alpha) < power:
        return None
    lo, hi = 2, 2
    while t_test_power(effect, hi, alpha) < power:
        lo, hi = hi, min(2 * hi, max_n)
    while lo < hi:
        mid = (lo + hi) // 2
        if t_test_power(effect, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def decide_seeds_only(p: float | None, *, delta: float, seeds: int, alpha: float = 0.05, power: float = 0.8,
                      sd: float | None = None, min_effect: float | None = None, **extra) -> Decision:
    """Several seeds, but no per-example statistics: the paired t-test over seeds decides. It
    treats the test set as fixed (its own sampling variance cannot be estimated), so the
    verdict carries that note."""
    mde = t_mde(sd, seeds, alpha, power) if sd is not None else None
    would = ""
    if min_effect is not None and sd is not None and sd > 0:
        n = t_n_needed(min_effect, sd, alpha, power)
        would = f"about {n} seeds would" if n is not None else "more than 10,000 seeds would"
    note = "no per-example statistics: the test over seeds treats the test set as fixed"
    return decide(test="seeds_t", p=p, delta=delta, alpha=alpha, mde=mde, power=power, min_effect=min_effect,
                  power_would=would, notes=(note,), **extra)


# ============================================================================ several datasets


def decide_datasets(pool, *, alpha: float = 0.05, power: float = 0.8, min_effect: float | None = None,
                    higher_is_better: bool = True) -> Decision:
    """Several datasets: the t-test over their effects (:class:`harness.stats.meta_analysis.DatasetPool`)."""
    if pool.estimate is None or pool.k < 2 or pool.p is None:
        return Decision("cannot_decide", test="datasets_t", alpha=alpha, power=power,
                        delta=None if pool.estimate is None else
                        (pool.estimate if higher_is_better else -pool.estimate),
                        why=pool.note or "one dataset: nothing to pool",
                        would="two or more datasets would" if pool.k < 2 else "datasets whose effects vary would")
    delta = pool.estimate if higher_is_better else -pool.estimate
    sd = pool.se * math.sqrt(pool.k) if pool.se else 0.0
    mde = t_mde(sd, pool.k, alpha, power) if sd > 0 else None
    would = ""
    if min_effect is not None and sd > 0:
        need = t_n_needed(min_effect, sd, alpha, power)
        would = (f"about {max(need, pool.k + 1)} datasets would" if need is not None
                 else "more than 10,000 datasets would")
    return decide(test="datasets_t", p=pool.p, delta=delta, alpha=alpha, mde=mde, power=power, min_effect=min_effect,
                  power_would=would, ci_low=pool.ci_low, ci_high=pool.ci_high,
                  ci_method=f"t over {pool.k} datasets, df {pool.k - 1}", df=float(pool.k - 1))


__all__ = ["VERDICTS", "TESTS", "Decision", "decide", "decide_one_run", "decide_seeds", "decide_seeds_only",
           "decide_datasets", "identical", "with_p", "mcnemar_mde", "randomisation_mde", "randomisation_floor",
           "min_differing", "normal_mde", "seeds_sentence", "t_mde", "t_n_needed"]
