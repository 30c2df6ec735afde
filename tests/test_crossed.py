"""harness.stats.crossed: the seeds × examples test, against statsmodels and scipy where it reduces to
theirs, and against its own claims (size, power, seeds needed) by simulation in its own model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import crossed


def test_mean_squares_equal_a_two_way_anova_by_statsmodels():
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(0)
    S, n = 4, 60
    d = rng.normal(0, 1, (S, n)) + rng.normal(0, 0.5, (1, n)) + rng.normal(0, 0.3, (S, 1)) + 0.2
    c = crossed.crossed_test(d)
    df = pd.DataFrame({"d": d.ravel(), "seed": np.repeat(np.arange(S), n), "ex": np.tile(np.arange(n), S)})
    table = anova_lm(ols("d ~ C(seed) + C(ex)", data=df).fit())
    ms = table["sum_sq"] / table["df"]
    assert c.ms_seed == pytest.approx(ms["C(seed)"]) and c.ms_example == pytest.approx(ms["C(ex)"])
    assert c.ms_resid == pytest.approx(ms["Residual"])
    # Var(mean) = (MS_examples + MS_seeds - MS_residual) / (n S): each source once
    assert c.se ** 2 == pytest.approx((c.ms_example + c.ms_seed - c.ms_resid) / (n * S))
    assert c.estimate == pytest.approx(d.mean()) and c.low < c.estimate < c.high


def test_one_seed_is_a_t_test_over_the_examples_as_scipy():
    from scipy.stats import t, ttest_1samp

    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 2.0, 200)
    c = crossed.crossed_test(d)
    ref = ttest_1samp(d, 0)
    assert c.p == pytest.approx(ref.pvalue) and c.df == 199
    lo, hi = t.interval(0.95, 199, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(200))
    assert (c.low, c.high) == (pytest.approx(lo), pytest.approx(hi))


def test_without_example_variance_it_is_the_paired_t_test_over_seeds():
    from scipy.stats import ttest_1samp
    from statsmodels.stats.power import TTestPower

    # every example of a seed moves together: only seeds vary; the test is the t-test over the seed means
    rng = np.random.default_rng(2)
    seed_means = rng.normal(1.0, 2.0, 3)
    d = np.repeat(seed_means[:, None], 50, axis=1)
    c = crossed.crossed_test(d)
    assert c.df == 2 and c.p == pytest.approx(ttest_1samp(seed_means, 0).pvalue)
    # and its power is the noncentral t's with S - 1 degrees of freedom (statsmodels' TTestPower)
    comp = crossed.Components(example=0.0, seed=4.0, resid=0.0, n=50)
    for S in (3, 5, 8):
        assert crossed.crossed_power(3.0, comp, S) == pytest.approx(TTestPower().power(3.0 / 2.0, S, 0.05), rel=1e-6)


def test_its_size_is_at_most_alpha_in_its_own_model_whatever_the_ratio_of_the_two_variances():
    """Var(mean)·nS = a (the examples' part, known: n − 1 df) + b (the seeds' part: MS_seed is b·χ²_k/k).
    Plain Satterthwaite df plugged in from 3 seeds reject up to 7% of the time at 0.05 (2 seeds: 12%);
    the calibrated df keep the test at 5% for every ratio a/b."""
    from scipy.special import stdtr

    rng = np.random.default_rng(3)
    R, n, S, b = 40_000, 400, 3, 1.0
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / R)
    for ratio in (0.0, 0.1, 0.3, 1.0, 5.0):
        a = ratio * b
        grand = rng.normal(0, math.sqrt((a + b) / (n * S)), R)
        ms_seed = b * rng.chisquare(S - 1, R) / (S - 1)
        dfs = np.array([crossed._df(a, m, S - 1, n, 0.05) for m in ms_seed])
        p = 2 * stdtr(dfs, -np.abs(grand) / np.sqrt((a + ms_seed) / (n * S)))
        assert np.mean(p < 0.05) <= bound, (ratio, np.mean(p < 0.05))
    # what plain Satterthwaite would do at a ratio of 0.3: too many false positives
    a = 0.3
    grand = rng.normal(0, math.sqrt((a + b) / (n * S)), R)
    ms_seed = b * rng.chisquare(S - 1, R) / (S - 1)
    plain = (S - 1) * (1 + a / ms_seed) ** 2
    assert np.mean(2 * stdtr(plain, -np.abs(grand) / np.sqrt((a + ms_seed) / (n * S))) < 0.05) > 0.06


def test_contributions_of_accuracy_are_the_per_example_differences_and_of_bleu_sum_to_its_difference():
    from sacrebleu.metrics import BLEU

    from harness.stats.significance import SegmentStats, accuracy_from_confusion, bootstrap_counts, corpus_score, scores_from_sums

    rng = np.random.default_rng(4)
    gold = rng.integers(0, 2, 300)
    pa, pb = (np.where(rng.random(300) < 0.8, gold, 1 - gold) for _ in range(2))

    def onehot(pred):
        o = np.zeros((300, 4))
        o[np.arange(300), gold * 2 + pred] = 1
        return o

    def acc(S):
        return 100 * accuracy_from_confusion(np.asarray(S).reshape(len(S), 2, 2))

    d = crossed.paired_contributions(acc, onehot(pa), onehot(pb))
    np.testing.assert_allclose(d, 100 * ((pa == gold).astype(float) - (pb == gold)), atol=1e-6)
    # BLEU: the mean is the corpus difference exactly; examples the systems agree on all contribute one constant
    words = "ein mann eine frau hund sitzt auf der im park ball spielt rot kinder".split()
    refs = [" ".join(rng.choice(words, rng.integers(5, 12))) for _ in range(200)]
    hyp_b = [" ".join(w for w in r.split() if rng.random() > 0.3) or r for r in refs]
    hyp_a = [h if i % 4 else r for i, (h, r) in enumerate(zip(hyp_b, refs))]
    seg = SegmentStats(BLEU(), refs)
    A, B = seg(hyp_a), seg(hyp_b)
    d = crossed.paired_contributions(lambda S: scores_from_sums(BLEU(), S), A, B)
    assert d.mean() == pytest.approx(corpus_score(BLEU(), A) - corpus_score(BLEU(), B), abs=1e-9)
    same = np.all(A == B, axis=1)
    assert np.ptp(d[same]) < 1e-9
    # the delta method's variance of the mean is the paired bootstrap's (within its own noise)
    counts = bootstrap_counts(200, 4000, seed=5)
    boot = scores_from_sums(BLEU(), counts @ A) - scores_from_sums(BLEU(), counts @ B)
    assert d.var(ddof=1) / 200 == pytest.approx(boot.var(), rel=0.15)


def test_seeds_needed_is_the_smallest_count_with_the_power_and_none_when_the_test_set_is_the_limit():
    comp = crossed.Components(example=300.0, seed=4.0, resid=3000.0, n=1000)
    n = crossed.seeds_needed(2.0, comp)
    assert crossed.crossed_power(2.0, comp, n) >= 0.8 > crossed.crossed_power(2.0, comp, n - 1)
    # the examples' part of the variance (300/1000) does not shrink with seeds: 0.5 points is out of reach
    assert crossed.seeds_needed(0.5, comp) is None
    assert crossed.examples_needed(4.0, 2.0, 1000) == 4000
    # the range over the seed variance the data allow: three seeds pin it only within a factor of ~40
    rng = np.random.default_rng(6)
    d = rng.normal(0, 20, (3, 1000)) + rng.normal(0, 2, (3, 1))
    rr = crossed.seeds_needed_range(2.0, crossed.crossed_test(d))
    assert rr.low is not None and rr.low <= (rr.estimate or 10 ** 9) <= (rr.high or 10 ** 9)
    lo, hi = crossed.seed_variance_range(crossed.crossed_test(d))
    assert 0 <= lo < hi
