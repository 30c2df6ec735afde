"""harness.stats.meta_analysis: DerSimonian-Laird pooling against a hand computation and statsmodels."""
from __future__ import annotations

import math

import pytest

from harness.stats.meta_analysis import paired_effect, pool_effects, pool_paired_differences

# Three datasets: effects y and within-dataset variances v.
Y = [1.0, 3.0, -0.5]
V = [0.5, 1.0, 0.25]


def test_pooled_estimate_matches_the_hand_computation():
    """By hand, in exact fractions:
    w = 1/v = (2, 1, 4), sum w = 7, fixed effect = (2*1 + 1*3 + 4*(-0.5)) / 7 = 3/7
    Q = 2(1 - 3/7)^2 + 1(3 - 3/7)^2 + 4(-0.5 - 3/7)^2 = (32 + 324 + 169)/49 = 525/49 = 75/7
    C = sum w - sum w^2 / sum w = 7 - 21/7 = 4;  tau^2 = (Q - 2)/C = (75/7 - 14/7)/4 = 61/28
    random-effects weights 1/(v + 61/28) = 28/75, 28/89, 28/68
    pooled = (28/75*1 + 28/89*3 + 28/68*(-0.5)) / (28/75 + 28/89 + 28/68)
    SE = sqrt(1 / (28/75 + 28/89 + 28/68));  I^2 = (Q - 2)/Q = 61/75 = 81.33%
    """
    res = pool_effects(Y, V, labels=["sst2", "rt", "mpqa"])
    w_re = [28 / 75, 28 / 89, 28 / 68]
    pooled = (w_re[0] * 1 + w_re[1] * 3 - w_re[2] * 0.5) / sum(w_re)
    se = math.sqrt(1 / sum(w_re))
    assert res.k == 3 and res.q_df == 2 and res.labels == ("sst2", "rt", "mpqa")
    assert res.fixed_estimate == pytest.approx(3 / 7) and res.fixed_se == pytest.approx(math.sqrt(1 / 7))
    assert res.q == pytest.approx(75 / 7)
    assert res.tau2 == pytest.approx(61 / 28)
    assert res.i2 == pytest.approx(100 * 61 / 75)
    assert res.estimate == pytest.approx(pooled) and res.estimate == pytest.approx(1.0105177539686991)
    assert res.se == pytest.approx(se)
    assert (res.ci_low, res.ci_high) == (pytest.approx(pooled - 1.959964 * se), pytest.approx(pooled + 1.959964 * se))
    assert res.z == pytest.approx(pooled / se)
    assert res.p == pytest.approx(math.erfc(abs(pooled / se) / math.sqrt(2)))
    assert res.q_p == pytest.approx(math.exp(-75 / 7 / 2))  # chi^2 with 2 df: survival = exp(-Q/2)
    assert res.weights == pytest.approx(tuple(100 * x / sum(w_re) for x in w_re))
    assert res.note == "only 3 datasets: the DerSimonian-Laird tau^2 is imprecise and its normal interval tends " \
                       "to be too narrow"


@pytest.mark.parametrize("ys, vs", [(Y, V), ([0.2, 0.9, 0.1, -0.3, 0.6], [0.04, 0.09, 0.01, 0.2, 0.05]),
                                    ([-1.2, 0.4], [0.3, 0.5])])
def test_pooled_estimate_equals_statsmodels_combine_effects(ys, vs):
    import numpy as np

    meta = pytest.importorskip("statsmodels.stats.meta_analysis")
    ref = meta.combine_effects(np.array(ys), np.array(vs), method_re="dl")
    res = pool_effects(ys, vs)
    ci_fe, ci_re = ref.conf_int(use_t=False)[:2]
    assert res.estimate == pytest.approx(ref.mean_effect_re)
    assert res.se == pytest.approx(ref.sd_eff_w_re)
    assert (res.ci_low, res.ci_high) == (pytest.approx(ci_re[0]), pytest.approx(ci_re[1]))
    assert res.tau2 == pytest.approx(ref.tau2)
    assert res.q == pytest.approx(ref.q)
    assert res.i2 == pytest.approx(100 * ref.i2)
    assert res.fixed_estimate == pytest.approx(ref.mean_effect_fe)
    assert (res.fixed_estimate - 1.959964 * res.fixed_se) == pytest.approx(ci_fe[0], rel=1e-5)


def test_homogeneous_effects_give_tau2_zero_and_the_fixed_effect():
    res = pool_effects([1.0, 1.0, 1.0], [0.1, 0.2, 0.4])
    assert res.q == 0 and res.tau2 == 0 and res.i2 == 0
    assert res.estimate == pytest.approx(1.0) and res.estimate == pytest.approx(res.fixed_estimate)
    assert res.se == pytest.approx(res.fixed_se)


def test_q_below_its_degrees_of_freedom_truncates_tau2_and_i2_at_zero():
    """DerSimonian & Laird truncate the moment estimate at 0. (statsmodels 0.14-0.15 does not:
    for these numbers it reports tau^2 = -0.037 and I^2 = -532%, which is why the comparison
    with it above uses heterogeneous examples.)"""
    ys, vs = [0.2, 0.25, 0.1, 0.3, 0.22], [0.04, 0.09, 0.01, 0.2, 0.05]
    res = pool_effects(ys, vs)
    assert res.q == pytest.approx(0.6326275862068975) and res.q < res.q_df
    assert res.tau2 == 0.0 and res.i2 == 0.0
    assert res.estimate == pytest.approx(res.fixed_estimate) and res.estimate == pytest.approx(0.1469655172413793)


def test_one_dataset_is_its_own_estimate_and_heterogeneity_is_undefined():
    res = pool_effects([2.0], [0.25], labels=["sst2"])
    assert res.estimate == 2.0 and res.se == 0.5 and res.ci_low == pytest.approx(2 - 1.959964 * 0.5)
    assert res.tau2 is None and res.q is None and res.i2 is None and res.q_df == 0
    assert res.note == "one dataset: the pooled effect is its effect; heterogeneity (tau^2, Q, I^2) cannot be estimated"


def test_zero_or_unknown_variance_pools_nothing_and_says_why():
    res = pool_effects([1.0, 2.0, 0.5], [0.1, 0.0, None], labels=["sst2", "rt", "mpqa"])
    assert res.estimate is None and res.se is None and res.p is None and res.i2 is None
    assert res.note == ("no pooled estimate: inverse-variance weights need a positive variance per dataset; "
                        "mpqa: variance unknown (one seed?); rt: variance 0 (every seed gives the same difference)")


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one effect"):
        pool_effects([], [])
    with pytest.raises(ValueError, match="2 effects but 1 variances"):
        pool_effects([1, 2], [0.1])
    with pytest.raises(ValueError, match="variances must be finite and >= 0"):
        pool_effects([1, 2], [0.1, -0.2])
    with pytest.raises(ValueError, match="effects must be finite"):
        pool_effects([1, float("nan")], [0.1, 0.2])


def test_paired_differences_become_mean_and_variance_of_the_mean():
    e = paired_effect([1.0, 2.0, 4.0, 5.0])  # mean 3, sample variance (4+1+1+4)/3 = 10/3
    assert e.estimate == 3.0 and e.variance == pytest.approx(10 / 3 / 4) and e.n == 4
    assert paired_effect([0.7]).variance is None
    res = pool_paired_differences({"a": [1.0, 2.0, 4.0, 5.0], "b": [0.0, 1.0, 2.0]})
    direct = pool_effects([3.0, 1.0], [10 / 12, 1 / 3], labels=["a", "b"])
    assert res.estimate == pytest.approx(direct.estimate) and res.tau2 == pytest.approx(direct.tau2)
    assert res.se == pytest.approx(direct.se) and res.labels == direct.labels
    assert res.as_dict()["labels"] == ["a", "b"]


def test_masking_study_pairs_by_dataset_budget_and_seed_and_pools_across_datasets():
    import json

    import pandas as pd

    from harness.stats.meta_analysis import masking_study

    rows = []
    # accuracy = 70 + budget/100 + rate effect that differs by dataset, + a seed wobble
    effect = {"sst2": {0.15: -2.0}, "mpqa": {0.15: 1.0}, "rt-polarity": {0.15: 0.5}}
    for ds in effect:
        for budget in (50, 800):
            for seed in (0, 1, 2):
                for strat, rate in (("unmasked", None), ("input_mask[mask_prob=0.15]", 0.15)):
                    params = {"train_limit": budget, **({"mask_prob": rate} if rate else {})}
                    value = 70 + budget / 100 + seed + (effect[ds][rate] + 0.1 * seed if rate else 0)
                    for metric in ("accuracy", "mcc"):
                        rows.append({"benchmark": f"{ds}-b{budget}", "strategy": strat, "seed": seed,
                                     "metric": metric, "value": value, "strategy_params": json.dumps(params)})
    deltas, pooled = masking_study(pd.DataFrame(rows), metric="accuracy")
    assert len(deltas) == 6
    d = next(x for x in deltas if (x.dataset, x.budget) == ("sst2", 50))
    assert d.rate == 0.15 and d.n == 3 and d.differences == pytest.approx((-2.0, -1.9, -1.8))
    assert d.delta == pytest.approx(-1.9) and d.sd == pytest.approx(0.1)
    assert d.ci_high - d.delta == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)  # t(2), 97.5%
    assert [(b, r) for b, r, _ in pooled] == [(50, 0.15), (800, 0.15)]
    res = pooled[0][2]
    direct = pool_effects([1.1, 0.6, -1.9], [0.01 / 3] * 3, labels=["mpqa", "rt-polarity", "sst2"])
    assert res.labels == ("mpqa", "rt-polarity", "sst2")
    assert res.estimate == pytest.approx(-0.0666667) and res.estimate == pytest.approx(direct.estimate)
    assert res.i2 > 99 and res.tau2 == pytest.approx(direct.tau2)
