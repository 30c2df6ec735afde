"""harness.stats against the references a reviewer would check: the sacrebleu CLI's
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

from harness import stats

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
