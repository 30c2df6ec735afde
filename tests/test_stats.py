"""harness.stats.significance against the references a reviewer would check: the sacrebleu CLI's
--paired-bs / --paired-ar output on the same files, sacrebleu's PairedTest API, scipy,
statsmodels and scikit-learn."""
from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.stats import significance as stats

WORDS = ("ein mann eine frau hund katze sitzt steht auf der dem im park strasse wasser ball spielt "
         "rot blau kleine grosse zwei drei kinder laufen vor einem haus").split()


def corpus(n: int = 150, seed: int = 3) -> tuple[list[str], list[str], list[str]]:
    """References and two systems: the second drops fewer words than the first."""
    rnd = random.Random(seed)
    refs = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(4, 12))) for _ in range(n)]

    def system(p: float, shuffle: float) -> list[str]:
        out = []
        for r in refs:
            w = [x for x in r.split() if rnd.random() > p] or [r.split()[0]]
            if rnd.random() < shuffle:
                rnd.shuffle(w)
            out.append(" ".join(w))
        return out

    return refs, system(0.30, 0.3), system(0.22, 0.2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sacrebleu")
    refs, base, sys_ = corpus()
    for name, lines in (("ref.txt", refs), ("base.txt", base), ("sys.txt", sys_)):
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d, refs, base, sys_


def sacrebleu_cli(d: Path, *args: str) -> str:
    exe = shutil.which("sacrebleu")
    cmd = [exe] if exe else [sys.executable, "-m", "sacrebleu"]
    res = subprocess.run([*cmd, str(d / "ref.txt"), "-i", str(d / "base.txt"), str(d / "sys.txt"),
                          "-m", "bleu", "chrf", "ter", "--no-color", "-f", "text", *args],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "SACREBLEU_SEED": "12345"},
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def scorers():
    from sacrebleu.metrics import BLEU, CHRF, TER

    return [BLEU(), CHRF(), TER()]


def our_tests(refs, base, sys_, **kw):
    out = []
    for sc in scorers():
        seg = stats.SegmentStats(sc, refs)
        sb, ss = seg(base), seg(sys_)
        t = stats.PairedTranslationTests(sc, len(refs), **kw)
        out.append((t.interval("base", sb), t.interval("sys", ss), t.paired_bootstrap("sys", ss, "base", sb),
                    t.approximate_randomization(ss, sb)))
    return out


def test_paired_bootstrap_equals_sacrebleu_cli(files):
    d, refs, base, sys_ = files
    text = sacrebleu_cli(d, "--paired-bs", "--paired-bs-n", "1000")
    # rows look like: "│ Baseline: .../base.txt │  45.5 (45.5 ± 3.6)  │ ..." and "│ (p = 0.0809) │"
    base_line = next(line for line in text.splitlines() if "Baseline:" in line)
    sys_line = next(line for line in text.splitlines() if "sys.txt" in line and "Baseline" not in line)
    p_line = next(line for line in text.splitlines() if "(p = " in line)
    cis = [re.findall(r"([\d.]+) \(([\d.]+) ± ([\d.]+)\)", line) for line in (base_line, sys_line)]
    ps = [float(x) for x in re.findall(r"p = ([\d.]+)", p_line)]
    assert len(ps) == 3 and len(cis[0]) == 3 and len(cis[1]) == 3
    for i, (iv_base, iv_sys, p_bs, _) in enumerate(our_tests(refs, base, sys_, ar_trials=1000)):
        assert f"{p_bs:.4f}" == f"{ps[i]:.4f}"
        for iv, (score, mean, half) in ((iv_base, cis[0][i]), (iv_sys, cis[1][i])):
            assert f"{iv.score:.1f}" == score and f"{iv.mean:.1f}" == mean and f"{iv.half_width:.1f}" == half
            assert iv.high - iv.low == pytest.approx(2 * iv.half_width)


def test_approximate_randomization_equals_sacrebleu_cli(files):
    d, refs, base, sys_ = files
    text = sacrebleu_cli(d, "--paired-ar", "--paired-ar-n", "1000")
    p_line = next(line for line in text.splitlines() if "(p = " in line)
    ps = [float(x) for x in re.findall(r"p = ([\d.]+)", p_line)]
    got = [p_ar for *_, p_ar in our_tests(refs, base, sys_, ar_trials=1000)]
    assert [f"{p:.4f}" for p in got] == [f"{p:.4f}" for p in ps]


def test_equals_sacrebleu_paired_test_api_at_full_precision(files):
    from sacrebleu.significance import PairedTest

    _, refs, base, sys_ = files
    ours = our_tests(refs, base, sys_, ar_trials=2000)
    metrics = {"BLEU": scorers()[0], "CHRF": scorers()[1], "TER": scorers()[2]}
    _, bs = PairedTest([("base", base), ("sys", sys_)], metrics, [refs], test_type="bs", n_samples=1000)()
    _, ar = PairedTest([("base", base), ("sys", sys_)], scorers_dict(), [refs], test_type="ar", n_samples=2000)()
    for (iv_b, iv_s, p_bs, p_ar), name in zip(ours, bs_names(bs)):
        assert p_bs == pytest.approx(bs[name][1].p_value, abs=1e-12)
        assert iv_s.score == pytest.approx(bs[name][1].score, abs=1e-9)
        assert iv_s.half_width == pytest.approx(bs[name][1].ci, abs=1e-3)  # sacrebleu resamples in float32
        assert iv_b.half_width == pytest.approx(bs[name][0].ci, abs=1e-3)
        assert p_ar == pytest.approx(ar[name][1].p_value, abs=1e-12)


def scorers_dict():
    a, b, c = scorers()
    return {"BLEU": a, "CHRF": b, "TER": c}


def bs_names(result: dict) -> list[str]:
    return [k for k in result if k != "System"]


@pytest.mark.parametrize("kind,kw", [("BLEU", {}), ("BLEU", {"smooth_method": "none"}), ("BLEU", {"smooth_method": "floor"}),
                                     ("BLEU", {"smooth_method": "add-k"}), ("BLEU", {"effective_order": True}),
                                     ("CHRF", {}), ("CHRF", {"word_order": 2}), ("CHRF", {"eps_smoothing": True}),
                                     ("TER", {})])
def test_vectorised_scores_equal_sacrebleus_own_formula(kind, kw):
    import sacrebleu.metrics as sm

    sc = getattr(sm, kind)(**kw)
    k = {"BLEU": 10, "TER": 2}.get(kind) or 3 * sc.order
    rng = np.random.default_rng(1)
    sums = rng.integers(0, 4, size=(2000, k)).astype(float)  # many zeros: every smoothing branch runs
    if kind == "BLEU":
        sums[:, 2:6] = np.minimum(sums[:, 2:6], sums[:, 6:10])  # correct n-grams <= total n-grams
    fast = stats.scores_from_sums(sc, sums)
    slow = stats.scores_from_sums(sc, sums, vectorized=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_segment_stats_score_each_distinct_sentence_once_and_equal_sacrebleu():
    from sacrebleu.metrics import TER

    refs, base, sys_ = corpus(40)
    seg = stats.SegmentStats(TER(), refs)
    a = seg(base)
    assert seg.computed == 40
    mixed = base[:20] + sys_[20:]
    b = seg(mixed)
    assert seg.computed == 40 + sum(x != y for x, y in zip(base[20:], sys_[20:]))
    np.testing.assert_array_equal(b, np.asarray(TER()._extract_corpus_statistics(mixed, [refs]), dtype=float))
    assert stats.corpus_score(TER(), a) == pytest.approx(TER().corpus_score(base, [refs]).score)


def test_mcnemar_exact_equals_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(0)
    for n, p_flip in ((30, 0.2), (200, 0.1), (500, 0.02), (10, 0.5)):
        a = rng.random(n) > 0.3
        s = np.where(rng.random(n) < p_flip, ~a, a)
        res = stats.mcnemar_exact(a, s)
        table = [[np.sum(a & s), np.sum(a & ~s)], [np.sum(~a & s), np.sum(~a & ~s)]]
        assert (res.b, res.c) == (table[0][1], table[1][0])
        assert res.p == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert stats.mcnemar_exact([True, False], [True, False]).p == 1.0  # no discordant pairs


def test_tests_over_seeds_equal_scipy():
    from scipy.stats import permutation_test, t, ttest_rel

    a = [86.1, 87.3, 85.9, 86.8, 87.0]
    b = [85.2, 86.9, 86.1, 85.7, 86.2]
    tt, p = stats.paired_t_test(a, b)
    ref = ttest_rel(a, b)
    assert tt == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    exact = permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                             n_resamples=np.inf, alternative="two-sided")
    assert stats.sign_flip_test(a, b) == pytest.approx(exact.pvalue)
    assert stats.min_sign_flip_p(5) == 2 / 32  # 5 seeds can never reach p < 0.05
    lo, hi = stats.t_interval(a)
    ref_lo, ref_hi = t.interval(0.95, len(a) - 1, loc=np.mean(a), scale=np.std(a, ddof=1) / math.sqrt(len(a)))
    assert (lo, hi) == (pytest.approx(ref_lo), pytest.approx(ref_hi))
    # all differences identical: the t-test is degenerate, the permutation test still answers
    assert stats.paired_t_test([2, 3, 4], [1, 2, 3]) == (math.inf, 0.0)
    assert stats.sign_flip_test([2, 3, 4], [1, 2, 3]) == pytest.approx(2 / 8)


@pytest.mark.parametrize("n_labels", [2, 3])
def test_confusion_metrics_equal_sklearn(n_labels):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    rng = np.random.default_rng(n_labels)
    gold = rng.integers(0, n_labels, 300)
    pred = np.where(rng.random(300) < 0.7, gold, rng.integers(0, n_labels, 300))
    C = stats.confusion_from_pairs(gold, pred, n_labels)
    assert stats.accuracy_from_confusion(C) == pytest.approx(accuracy_score(gold, pred))
    assert stats.macro_f1_from_confusion(C) == pytest.approx(f1_score(gold, pred, average="macro"))
    assert stats.mcc_from_confusion(C) == pytest.approx(matthews_corrcoef(gold, pred))
    const = np.zeros(300, dtype=int)  # a constant predictor: MCC undefined, sklearn says 0
    assert stats.mcc_from_confusion(stats.confusion_from_pairs(gold, const, n_labels)) == matthews_corrcoef(gold, const)


def test_classification_bootstrap_matches_a_plain_resampling_loop():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(5)
    gold = rng.integers(0, 2, 120)
    pred = np.where(rng.random(120) < 0.8, gold, 1 - gold)
    counts = stats.bootstrap_counts(120, 200, seed=7)
    fast = stats.bootstrap_classification(gold, pred, 2, stats.macro_f1_from_confusion, counts)
    idxs = np.random.default_rng(7).choice(120, size=(200, 120), replace=True)  # the draws sacrebleu makes
    slow = [f1_score(gold[i], pred[i], average="macro") for i in idxs]
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_format_p():
    assert stats.format_p(0.0004) == "p < 0.001"
    assert stats.format_p(0.0312) == "p = 0.031"
    assert stats.format_p(None) == "p = n/a"


def test_paired_tests_on_real_multi30k_text_equal_sacrebleu_cli(tmp_path):
    """Real German captions (punctuation, casing, 13a tokenisation) rather than toy words."""
    from conftest import shared_data

    ref_file = shared_data("multi30k", "test_2016_flickr.de")
    refs = ref_file.read_text(encoding="utf-8").splitlines()[:300]
    rnd = random.Random(11)
    base = [" ".join(w for w in r.split() if rnd.random() > 0.25) or r for r in refs]
    sys_ = [r if rnd.random() < 0.3 else " ".join(w for w in r.split() if rnd.random() > 0.2) or r for r in refs]
    for name, lines in (("ref.txt", refs), ("base.txt", base), ("sys.txt", sys_)):
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    ours = our_tests(refs, base, sys_, ar_trials=1000)
    for flag, idx in (("--paired-bs", 2), ("--paired-ar", 3)):
        text = sacrebleu_cli(tmp_path, flag, f"{flag}-n", "1000")
        p_line = next(line for line in text.splitlines() if "(p = " in line)
        assert [f"{float(x):.4f}" for x in re.findall(r"p = ([\d.]+)", p_line)] == [f"{r[idx]:.4f}" for r in ours]


# ----------------------------------------------------------------------------- verdicts a reviewer can trust


def test_p_is_never_printed_below_the_floor_stated_beside_it():
    assert stats.format_p(0.0625) == "p = 0.062"  # three decimals round 0.0625 down...
    assert stats.format_p(0.0625, floor=0.0625) == "p = 0.0625"  # ...never next to "cannot go below 0.0625"
    assert stats.p_number(0.25, 0.25) == "0.250" and stats.p_number(0.125, 0.125) == "0.125"
    assert stats.p_number(0.3125, 0.0625) == "0.312"  # above the floor: three decimals as usual
    assert stats.p_number(None) == "–" and stats.p_number(float("nan")) == "–"


def test_identical_systems_get_p_1_not_the_artefact_of_strict_counting():
    # sacrebleu counts trials strictly above the observed gap: identical systems would get p = 1/(trials+1)
    refs, base, _ = corpus(60)
    from sacrebleu.metrics import BLEU

    seg = stats.SegmentStats(BLEU(), refs)(base)
    mask = stats.ar_mask(60, 1000)
    assert stats.approximate_randomization_many([(BLEU(), seg, seg.copy())], mask) == [1.0]
    boot = stats.bootstrap_scores_many(stats.bootstrap_counts(60, 200), [(BLEU(), seg)])[0]
    assert stats.paired_bootstrap_p(30.0, 30.0, boot, boot) == 1.0
    assert stats.bootstrap_difference_p(np.array([0.1, -0.2, 0.3]), 0.0) == 1.0


def test_approximate_randomization_counts_the_trials_that_give_the_observed_gap_back():
    refs, base, _ = corpus(120)
    from sacrebleu.metrics import BLEU

    sys_ = list(base)
    for i in (3, 40, 99):  # three outputs made perfect: every swap can only shrink the gap
        sys_[i] = refs[i]
    seg = stats.SegmentStats(BLEU(), refs)
    a, b = seg(sys_), seg(base)
    mask = stats.ar_mask(120, 2000)
    p = stats.approximate_randomization_many([(BLEU(), a, b)], mask)[0]
    assert 0.2 <= p <= 0.3  # 2 of the 8 swap patterns of the 3 outputs tie the observed gap
    assert stats.min_ar_p(3) == 0.25 and stats.min_ar_p(5) == 0.0625 and stats.min_ar_p(0) == 1.0
    # with ties excluded (sacrebleu's rule) the same trials would give the floor 1/(trials + 1)
    assert stats.p_value(np.zeros(2000), 0.0) == pytest.approx(1 / 2001)


def accuracy_pair(n: int, b: int, c: int, seed: int = 0):
    """gold and two predictions: b examples the baseline gets right and the system wrong, c the reverse."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    base, sys_ = gold.copy(), gold.copy()
    idx = rng.permutation(n)
    sys_[idx[:b]] = 1 - gold[idx[:b]]
    base[idx[b:b + c]] = 1 - gold[idx[b:b + c]]
    both = idx[b + c:b + c + n // 10]  # both wrong on some: concordant errors
    base[both], sys_[both] = 1 - gold[both], 1 - gold[both]
    return gold, base, sys_


@pytest.mark.parametrize("b,c", [(30, 16), (40, 25), (12, 4)])
def test_accuracy_bootstrap_is_two_sided_and_agrees_with_mcnemar_in_size(b, c):
    from statsmodels.stats.contingency_tables import mcnemar

    gold, base, sys_ = accuracy_pair(600, b, c)
    counts = stats.bootstrap_counts(600, 10_000, seed=1)
    acc = lambda p: stats.bootstrap_classification(gold, p, 2, stats.accuracy_from_confusion, counts)  # noqa: E731
    s_sys, s_base = acc(sys_), acc(base)
    observed = float(np.mean(sys_ == gold) - np.mean(base == gold))
    two_sided = stats.bootstrap_difference_p(s_sys - s_base, observed)
    table = [[np.sum((base == gold) & (sys_ == gold)), np.sum((base == gold) & (sys_ != gold))],
             [np.sum((base != gold) & (sys_ == gold)), np.sum((base != gold) & (sys_ != gold))]]
    chi2 = mcnemar(table, exact=False, correction=False).pvalue  # the normal approximation a bootstrap estimates
    exact = mcnemar(table, exact=True).pvalue
    # between the normal approximation and the exact test (they differ with few discordant pairs)
    assert min(chi2, exact) - 0.012 <= two_sided <= max(chi2, exact) + 0.012
    assert stats.mcnemar_exact(base == gold, sys_ == gold).p == pytest.approx(exact)
    # sacrebleu's rule (centred absolute differences) is about half of it: one-sided in effect
    one_sided_ish = stats.paired_bootstrap_p(float(np.mean(sys_ == gold)), float(np.mean(base == gold)), s_sys, s_base)
    assert one_sided_ish < 0.7 * two_sided


def test_two_sided_bootstrap_equals_a_plain_loop():
    rng = np.random.default_rng(3)
    d = rng.normal(0.5, 1.0, 400)
    obs = 0.2
    expected = (1 + sum(abs(x - obs) >= abs(obs) for x in d)) / 401
    assert stats.bootstrap_difference_p(d, obs) == pytest.approx(expected)


def test_holm_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    ps = list(rng.uniform(0, 0.2, 12)) + [0.0004, 0.9]
    ours = stats.holm(ps[:5] + [None] + ps[5:])
    assert ours[5] is None
    np.testing.assert_allclose([x for x in ours if x is not None], multipletests(ps, method="holm")[1], rtol=1e-12)


def test_intervals_are_cut_to_the_metric_range():
    assert stats.clip_interval(-0.03, 0.23, (0, 100)) == (0.0, 0.23, True)
    assert stats.clip_interval(98.8, 101.0, (0, 100)) == (98.8, 100.0, True)
    assert stats.clip_interval(-3.0, 4.0, (None, None)) == (-3.0, 4.0, False)


def test_seeds_needed_equals_statsmodels_power_and_respects_the_permutation_floor():
    from statsmodels.stats.power import TTestPower

    for delta, sd in ((1.0, 1.0), (0.5, 1.2), (0.3, 2.0), (4.27, 3.41)):
        n = stats.seeds_needed(delta, sd)
        solved = TTestPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8, alternative="two-sided")
        assert n == max(math.ceil(solved), 6), (delta, sd)
        assert TTestPower().power(delta / sd, n, 0.05) >= 0.8
        assert stats.t_test_power(delta / sd, n) == pytest.approx(TTestPower().power(delta / sd, n, 0.05))
    # a huge effect: the t-test would need 3 seeds, but 5 seeds cannot get the permutation test below 0.0625
    assert stats.seeds_needed(10.0, 1.0) == 6 and stats.seeds_needed(10.0, 1.0, alpha=0.1) == 5
    assert stats.seeds_needed(0.0, 1.0) is None and stats.seeds_needed(1.0, 0.0) is None


def test_two_level_bootstrap_is_paired_seeded_and_matches_a_plain_loop():
    rng = np.random.default_rng(2)
    n, S = 50, 3
    sys_stats = [np.column_stack([rng.random(n) + 0.1 * j, np.ones(n)]) for j in range(S)]
    base_stats = [np.column_stack([rng.random(n), np.ones(n)]) for _ in range(S)]
    mean = lambda T: T[:, 0] / T[:, 1]  # noqa: E731
    a = stats.two_level_bootstrap(sys_stats, base_stats, mean, n_samples=300, seed=9)
    b = stats.two_level_bootstrap(sys_stats, base_stats, mean, n_samples=300, seed=9)
    np.testing.assert_array_equal(a.samples, b.samples)
    # the same draws, one resample at a time
    r = np.random.default_rng(9)
    seeds = r.integers(S, size=(300, S))
    ex = r.integers(n, size=(300, S, n))
    slow = [np.mean([sys_stats[j][ex[i, k], 0].mean() - base_stats[j][ex[i, k], 0].mean()
                     for k, j in enumerate(seeds[i])]) for i in range(300)]
    np.testing.assert_allclose(a.samples, slow, rtol=1e-10)
    assert a.mean == pytest.approx(np.mean([s[:, 0].mean() - t[:, 0].mean() for s, t in zip(sys_stats, base_stats)]))
    assert a.low < a.mean < a.high
    # identical arms: every resample is exactly 0 (paired: the same examples on both sides)
    z = stats.two_level_bootstrap(sys_stats, sys_stats, mean, n_samples=100)
    assert z.low == z.high == 0.0
