"""Significance tests and confidence intervals for comparing two systems on the same examples.

Scope:

- **Translation** (BLEU, chrF, TER): paired bootstrap resampling (Koehn 2004) and paired
  approximate randomisation (Riezler & Maxwell 2005), exactly as ``sacrebleu --paired-bs`` /
  ``--paired-ar`` compute them (sacrebleu.significance, Post 2018 / Dogruöz et al.): the same
  sentence-level sufficient statistics (sacrebleu's own ``_compute_segment_statistics``), the
  same random draws (numpy ``default_rng(SACREBLEU_SEED=12345)``), the same test statistic and
  p-value (``sacrebleu.significance._compute_p_value``; for approximate randomisation, trials
  that tie the observed gap count as extreme, which matters only when few outputs differ: see
  :func:`ar_p_value`) and the same 95% interval
  (``sacrebleu.significance.estimate_ci``). tests/test_stats.py checks the numbers against the
  sacrebleu CLI on the same files.
- **Classification** (accuracy, macro-F1, MCC): McNemar's exact test over examples (Dietterich
  1998), a paired bootstrap over examples for any metric computed from a confusion matrix, and
  two tests over seeds (same seeds in both arms): the paired t-test and the exact sign-flip
  permutation test. Both take the test set as fixed; over seeds the reports decide with
  :func:`harness.stats.crossed.crossed_test` (seeds × examples) and show these beside it.

Why we do not call ``sacrebleu.significance.PairedTest`` in a loop: it recomputes each system's
statistics and its bootstrap scores for every comparison, which for 50 systems × 1,000 sentences
takes minutes. Here each system's statistics are computed once (and cached on disk by the
reporter), every system shares the one set of resampling indices sacrebleu would draw, and the
resampled corpus statistics are summed with one matrix product. Scores of resampled corpora are
computed by :func:`scores_from_sums`, a vectorised transcription of sacrebleu's
``_compute_score_from_stats`` for BLEU/chrF/TER (checked equal to it in the tests), falling back to
sacrebleu's own per-sample method for anything else.

- **Any metric with per-example statistics** (classification from confusion matrices, plugins'
  per-example scores): a two-sided paired bootstrap of the difference (Efron & Tibshirani 1993,
  ch. 16: the share of resampled differences at least as far from the observed one as the
  observed one is from 0), whose size agrees with McNemar's test on accuracy. sacrebleu's
  paired-bootstrap rule centres the *absolute* resampled differences, which makes it one-sided in
  effect (about half the two-sided p when the gap is clear): it is kept, sacrebleu-exact, for
  translation metrics, where approximate randomisation decides.
- **Over seeds**: a two-level paired bootstrap (seeds, then examples within each seed) of the
  difference with its percentile interval (kept for comparison: with few seeds it covers too
  little, 66-86% in benchmarks/calibration.py, so the reports use harness.stats.crossed's interval), and
  the number of seeds a paired t-test over seeds would need to detect a difference with 80% power
  (:func:`seeds_needed`, noncentral t; the reports size seeds for the deciding test instead).
- Holm's step-down adjustment of a family of p-values (:func:`holm`).

Non-goals: tests between systems evaluated on different examples, effect-size estimates beyond
the difference of scores, pooling per-seed tests over examples (McNemar pooled over seeds treats
seeds as extra examples and is anti-conservative).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

DEFAULT_SEED = 12345  # sacrebleu's default SACREBLEU_SEED: equal numbers to `sacrebleu --paired-*`
DEFAULT_BOOTSTRAP = 1000  # sacrebleu's default --paired-bs-n
DEFAULT_AR_TRIALS = 10000  # sacrebleu's default --paired-ar-n


# ============================================================================ formatting


def p_number(p: float | None, floor: float | None = None) -> str:
    """A p-value for a table cell: ``0.004``, ``< 0.001``, ``–`` when missing.

    Three decimals are what a reader can use, but a value is never printed below a ``floor``
    the text states beside it: the permutation floor 0.0625 of 5 seeds prints as ``0.0625``,
    not as the ``0.062`` that three decimals round it to.
    """
    if p is None or not isinstance(p, (int, float)) or math.isnan(p):
        return "–"
    if p < 0.001 and (floor is None or floor < 0.001):
        return "< 0.001"
    text = f"{p:.3f}"
    if floor is not None and float(text) < floor <= p:
        digits = 4
        while float(text) < floor and digits < 17:
            text = f"{p:.{digits}g}"
            digits += 1
    return text


def format_p(p: float | None, floor: float | None = None) -> str:
    """``p = 0.004`` / ``p < 0.001`` / ``p = n/a``; see :func:`p_number` for ``floor``."""
    text = p_number(p, floor)
    if text == "–":
        return "p = n/a"
    return "p < 0.001" if text == "< 0.001" else f"p = {text}"


# ============================================================================ shared resampling


def bootstrap_counts(n: int, n_samples: int, seed: int | None = DEFAULT_SEED) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_samples`` bootstrap resamples.

    The draws are sacrebleu's (``default_rng(seed).choice(n, size=(n_samples, n))``), so that
    ``counts @ stats`` equals sacrebleu's ``stats[idxs].sum(1)`` for every resample.
    """
    rng = np.random.default_rng(seed)
    idxs = rng.choice(n, size=(n_samples, n), replace=True)
    flat = (idxs + (np.arange(n_samples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_samples * n).reshape(n_samples, n).astype(np.float64)


def ar_mask(n: int, n_trials: int, seed: int | None = DEFAULT_SEED) -> np.ndarray:
    """sacrebleu's approximate-randomisation swap mask: True = the trial keeps the baseline's segment in pseudo-system A."""
    rng = np.random.default_rng(seed)
    return rng.integers(2, size=(n_trials, n), dtype=bool)


def p_value(stats: np.ndarray, real_difference: float) -> float:
    """sacrebleu's p-value: (#{stats > real} + 1) / (#stats + 1) (Clark et al.'s MultEval rule)."""
    from sacrebleu.significance import _compute_p_value

    return float(_compute_p_value(np.asarray(stats), real_difference))


def sacrebleu_ci(samples: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, half-width, low, high) of bootstrap samples, with sacrebleu's percentile rule
    (the n//40-th smallest and largest sample; its ``estimate_ci`` reports mean ± half-width)."""
    from sacrebleu.significance import estimate_ci

    s = np.sort(np.asarray(samples, dtype=np.float64))
    mean, half = estimate_ci(s)
    lo_idx = len(s) // 40
    return float(mean), float(half), float(s[lo_idx]), float(s[len(s) - lo_idx - 1])


def paired_bootstrap_p(score_sys: float, score_base: float, samples_sys: np.ndarray,
                       samples_base: np.ndarray, *, zero_gap_is_1: bool = True) -> float:
    """sacrebleu's paired-bootstrap p-value from two systems' scores on the *same* resamples:
    how often the centred resampled |difference| exceeds the observed |difference|.

    ``zero_gap_is_1``: an observed gap of exactly 0 gives p = 1 (no gap, no evidence); with False,
    the number sacrebleu's CLI prints (about 1/(B + 1) there, an artefact of its strict count), for
    a column that is labelled as sacrebleu's and does not decide."""
    diffs = np.abs(np.asarray(samples_sys) - np.asarray(samples_base))
    if score_base == score_sys and zero_gap_is_1:  # see approximate_randomization_many
        return 1.0
    return p_value(diffs - diffs.mean(), abs(score_base - score_sys))


# ============================================================================ translation (sacrebleu)


def _my_log(x: np.ndarray) -> np.ndarray:
    # sacrebleu.utils.my_log: log(0) is -9999999999 rather than -inf
    with np.errstate(divide="ignore"):
        return np.where(x == 0.0, -9999999999.0, np.log(np.where(x == 0.0, 1.0, x)))


def _bleu_scores(scorer, S: np.ndarray) -> np.ndarray:
    N = scorer.max_ngram_order
    sys_len = np.trunc(S[:, 0])  # sacrebleu: int(stats[0])
    ref_len = np.trunc(S[:, 1])
    correct = S[:, 2:2 + N].copy()
    total = S[:, 2 + N:2 + 2 * N].copy()
    any_correct = (correct != 0).any(axis=1)  # checked before add-k smoothing, as sacrebleu does
    method = scorer.smooth_method
    value = scorer.smooth_value if scorer.smooth_value is not None else scorer.SMOOTH_DEFAULTS[method]
    if method == "add-k":
        correct[:, 1:] += value
        total[:, 1:] += value
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / np.where(sys_len > 0, sys_len, 1)), 0.0), 1.0)
        alive = np.cumprod(total != 0, axis=1).astype(bool)  # sacrebleu stops at the first order with no n-grams
        safe_total = np.where(total == 0, 1.0, total)
        zero = correct == 0
        prec = 100.0 * correct / safe_total
        if method == "exp":
            doublings = np.cumsum(zero & alive, axis=1)
            prec = np.where(zero, 100.0 / (2.0 ** doublings * safe_total), prec)
        elif method == "floor":
            prec = np.where(zero, 100.0 * value / safe_total, prec)
        prec = np.where(alive, prec, 0.0)
    if scorer.effective_order:
        eff = alive.sum(axis=1)
        eff = np.where(eff == 0, N, eff)
        logs = np.where(np.arange(N)[None, :] < eff[:, None], _my_log(prec), 0.0)
        score = bp * np.exp(logs.sum(axis=1) / eff)
    else:
        score = bp * np.exp(_my_log(prec).sum(axis=1) / N)
    return np.where(any_correct, score, 0.0)


def _chrf_scores(scorer, S: np.ndarray) -> np.ndarray:
    eps = 1e-16
    factor = scorer.beta ** 2
    order = scorer.order
    n_hyp, n_ref, n_match = S[:, 0:3 * order:3], S[:, 1:3 * order:3], S[:, 2:3 * order:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(n_hyp > 0, n_match / np.where(n_hyp > 0, n_hyp, 1), eps)
        rec = np.where(n_ref > 0, n_match / np.where(n_ref > 0, n_ref, 1), eps)
        denom = factor * prec + rec
        f = np.where(denom > 0, (1 + factor) * prec * rec / np.where(denom > 0, denom, 1), eps)
        if scorer.eps_smoothing:
            return 100 * f.sum(axis=1) / order
        eff_mask = (n_hyp > 0) & (n_ref > 0)
        eff = eff_mask.sum(axis=1)
        avg_p = np.where(eff > 0, (prec * eff_mask).sum(axis=1) / np.where(eff > 0, eff, 1), 0.0)
        avg_r = np.where(eff > 0, (rec * eff_mask).sum(axis=1) / np.where(eff > 0, eff, 1), 0.0)
        s = avg_p + avg_r
        out = (1 + factor) * avg_p * avg_r / np.where(s != 0, factor * avg_p + avg_r, 1)
    return np.where(s != 0, 100 * out, 0.0)


def _ter_scores(scorer, S: np.ndarray) -> np.ndarray:
    edits, ref = S[:, 0], S[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100 * np.where(ref > 0, edits / np.where(ref > 0, ref, 1), np.where(edits > 0, 1.0, 0.0))


def scores_from_sums(scorer, sums: np.ndarray, *, vectorized: bool = True) -> np.ndarray:
    """Corpus scores for each row of aggregated sufficient statistics (one row per resample).

    BLEU, chrF and TER use a vectorised copy of their sacrebleu formula; any other sacrebleu
    metric (or ``vectorized=False``) calls sacrebleu's ``_compute_score_from_stats`` row by row.
    """
    from sacrebleu.metrics import BLEU, CHRF, TER

    sums = np.atleast_2d(np.asarray(sums, dtype=np.float64))
    if _is_score_function(scorer):
        return np.asarray(scorer(sums), dtype=np.float64)
    if vectorized:
        if type(scorer) is BLEU:
            return _bleu_scores(scorer, sums)
        if type(scorer) is CHRF:
            return _chrf_scores(scorer, sums)
        if type(scorer) is TER:
            return _ter_scores(scorer, sums)
    # copy each row: BLEU's add-k smoothing adds to the arrays it is given
    return np.array([float(scorer._compute_score_from_stats(row.copy()).score) for row in sums])


def _is_score_function(scorer) -> bool:
    # a plain function of summed statistics (classification, per-example means) rather than a sacrebleu metric
    return callable(scorer) and not hasattr(scorer, "_compute_score_from_stats")


def corpus_score(scorer, stats: np.ndarray) -> float:
    """The corpus score from sentence statistics, by sacrebleu itself (equals ``corpus_score``);
    ``scorer`` may also be a function of summed statistics (one row per corpus)."""
    if _is_score_function(scorer):
        return float(scorer(np.asarray(stats, dtype=np.float64).sum(axis=0)[None])[0])
    return float(scorer._compute_score_from_stats(np.asarray(stats, dtype=np.float64).sum(axis=0)).score)


class SegmentStats:
    """Sentence-level sufficient statistics of one sacrebleu metric against one reference set.

    References are preprocessed once (sacrebleu's ``_cache_references``) and each
    (example index, hypothesis) pair is scored once, however many systems produced it: decoders
    agree on most sentences, and TER's shift search costs about a millisecond per sentence.
    """

    def __init__(self, scorer, references: Sequence[str] | Sequence[Sequence[str]]):
        refs = [references] if references and isinstance(references[0], str) else list(references)
        self.scorer = scorer
        self.n = len(refs[0])
        self._ref_cache = scorer._cache_references(refs)  # also sets scorer.num_refs for the signature
        self._memo: dict[tuple[int, str], list[float]] = {}
        self.computed = 0  # segments actually scored (for tests and benchmarks)

    def __call__(self, hypotheses: Sequence[str]) -> np.ndarray:
        if len(hypotheses) != self.n:
            raise ValueError(f"{len(hypotheses)} hypotheses for {self.n} references")
        sc, memo = self.scorer, self._memo
        rows = []
        for i, hyp in enumerate(hypotheses):
            key = (i, hyp)
            row = memo.get(key)
            if row is None:
                row = sc._compute_segment_statistics(sc._preprocess_segment(hyp), self._ref_cache[i])
                memo[key] = row
                self.computed += 1
            rows.append(row)
        return np.asarray(rows, dtype=np.float64).reshape(self.n, -1)


@dataclass
class Interval:
    """A score with its bootstrap distribution summary (sacrebleu's μ ± half-width, and the bounds)."""

    score: float
    mean: float
    half_width: float
    low: float
    high: float


class PairedTranslationTests:
    """sacrebleu's paired bootstrap and approximate randomisation for many systems on one test set.

    One instance per (test set size, metric): the resampling indices and the AR swap mask are drawn
    once, as sacrebleu draws them afresh with the same seed for every system; each system's
    bootstrap scores are computed once and reused for every comparison it takes part in.
    """

    def __init__(self, scorer, n: int, *, bootstrap_samples: int = DEFAULT_BOOTSTRAP,
                 ar_trials: int = DEFAULT_AR_TRIALS, seed: int | None = DEFAULT_SEED):
        self.scorer, self.n, self.seed = scorer, n, seed
        self.bootstrap_samples, self.ar_trials = bootstrap_samples, ar_trials
        self._counts: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._boot: dict[Any, np.ndarray] = {}

    @property
    def counts(self) -> np.ndarray:
        if self._counts is None:
            self._counts = bootstrap_counts(self.n, self.bootstrap_samples, self.seed)
        return self._counts

    def _bootstrap_samples(self, key, stats: np.ndarray) -> np.ndarray:
        if key not in self._boot:
            self._boot[key] = bootstrap_scores_many(self.counts, [(self.scorer, stats)])[0]
        return self._boot[key]

    def precompute(self, systems: dict[Any, np.ndarray]) -> None:
        """Bootstrap scores of many systems in one matrix product (same numbers as one by one)."""
        todo = [k for k in systems if k not in self._boot]
        for k, v in zip(todo, bootstrap_scores_many(self.counts, [(self.scorer, systems[k]) for k in todo])):
            self._boot[k] = v

    def interval(self, key, stats: np.ndarray) -> Interval:
        """Score and 95% bootstrap interval of one system (``key`` names it for reuse)."""
        mean, half, lo, hi = sacrebleu_ci(self._bootstrap_samples(key, stats))
        return Interval(corpus_score(self.scorer, stats), mean, half, lo, hi)

    def paired_bootstrap(self, key_sys, stats_sys: np.ndarray, key_base, stats_base: np.ndarray) -> float:
        """p-value of ``sacrebleu --paired-bs`` for this system against the baseline, as its CLI
        prints it (also for a gap of exactly 0; the reports show it for comparison, it never decides)."""
        return paired_bootstrap_p(corpus_score(self.scorer, stats_sys), corpus_score(self.scorer, stats_base),
                                  self._bootstrap_samples(key_sys, stats_sys),
                                  self._bootstrap_samples(key_base, stats_base), zero_gap_is_1=False)

    def approximate_randomization(self, stats_sys: np.ndarray, stats_base: np.ndarray) -> float:
        """p-value of ``sacrebleu --paired-ar``: how often randomly swapping the two systems'
        sentences gives an absolute score difference larger than the observed one."""
        if self._mask is None:
            self._mask = ar_mask(self.n, self.ar_trials, self.seed)
        return approximate_randomization_many([(self.scorer, stats_sys, stats_base)], self._mask)[0]


def _exact_dtype(M: np.ndarray, weight: float):
    """float32 when a product with a non-negative integer matrix whose rows sum to ``weight``
    stays exact (integer entries, partial sums below 2**24), else float64."""
    ok = bool(np.all(M == np.round(M))) and float(np.abs(M).sum(axis=0).max(initial=0)) * weight < 2 ** 24
    return np.float32 if ok else np.float64


def bootstrap_scores_many(counts: np.ndarray, items: Sequence[tuple[Any, np.ndarray]]) -> list[np.ndarray]:
    """Scores of every bootstrap resample (rows of ``counts``) for many (scorer, sentence stats)
    systems, stacked into one matrix product so ``counts`` is read once."""
    if not items:
        return []
    S = np.concatenate([np.asarray(st, dtype=np.float64) for _, st in items], axis=1)
    dtype = _exact_dtype(S, float(counts.max(initial=0)))
    sums = (counts.astype(dtype) @ S.astype(dtype)).astype(np.float64)
    bounds = np.cumsum([0] + [np.asarray(st).shape[1] for _, st in items])
    return [scores_from_sums(sc, sums[:, bounds[j]:bounds[j + 1]]) for j, (sc, _) in enumerate(items)]


def approximate_randomization_many(items: Sequence[tuple[Any, np.ndarray, np.ndarray]], mask: np.ndarray,
                                   chunk: int = 2000) -> list[float]:
    """sacrebleu's approximate-randomisation p-value for many (scorer, system stats, baseline
    stats) comparisons on one test set, sharing one swap ``mask`` (:func:`ar_mask`).

    Pseudo-system A takes the baseline's segment where the mask is True, else the system's:
    A = sys_total + mask @ (base - sys), and B gets the complement. All comparisons and metrics
    are stacked side by side so the (trials × n) mask is read once per chunk of trials: the
    product is compute-bound instead of memory-bound.
    """
    if not items:
        return []
    diffs = [np.asarray(b, dtype=np.float64) - np.asarray(s, dtype=np.float64) for _, s, b in items]
    D = np.concatenate(diffs, axis=1)
    # float32 is exact for integer statistics whose partial sums stay below 2**24 (all of BLEU,
    # chrF and single-reference TER); anything else is summed in float64
    dtype = _exact_dtype(D, 1.0)
    Dt = D.astype(dtype)
    bounds = np.cumsum([0] + [d.shape[1] for d in diffs])
    per_item: list[list[np.ndarray]] = [[] for _ in items]
    for start in range(0, len(mask), chunk):
        proj = (mask[start:start + chunk].astype(dtype) @ Dt).astype(np.float64)
        for j, (scorer, s, b) in enumerate(items):
            tot_sys = np.asarray(s, dtype=np.float64).sum(axis=0)
            tot_base = np.asarray(b, dtype=np.float64).sum(axis=0)
            a = tot_sys + proj[:, bounds[j]:bounds[j + 1]]
            bb = tot_base + tot_sys - a
            per_item[j].append(np.abs(scores_from_sums(scorer, a) - scores_from_sums(scorer, bb)))
    out = []
    for (scorer, s, b), parts in zip(items, per_item):
        real = abs(corpus_score(scorer, b) - corpus_score(scorer, s))
        # sacrebleu counts trials strictly above the observed gap, so a gap of exactly 0 would get
        # p = 1/(trials + 1), the artefact that made identical systems look "significant"; every
        # trial is at least as extreme as no difference at all: p = 1
        if real == 0:
            out.append(1.0)
        elif differing_rows(s, b) <= EXACT_AR_MAX:
            out.append(exact_randomization_p(scorer, s, b))
        else:
            out.append(ar_p_value(np.concatenate(parts), real))
    return out


EXACT_AR_MAX = 16
"""With at most this many examples whose statistics differ, randomisation enumerates all 2^k swaps."""


def differing_rows(sys_stats: np.ndarray, base_stats: np.ndarray) -> int:
    """Examples whose per-example statistics differ between the two systems: the only ones a
    randomisation can swap to any effect (9 differing outputs may differ in 2 BLEU statistics)."""
    a, b = np.asarray(sys_stats), np.asarray(base_stats)
    return int(np.count_nonzero(np.any(a != b, axis=1))) if a.ndim == 2 else int(np.count_nonzero(a != b))


def exact_randomization_p(scorer, sys_stats: np.ndarray, base_stats: np.ndarray) -> float:
    """The randomisation p over all 2^k ways to swap the k examples whose statistics differ:
    the share of swaps whose |score difference| is at least the observed one (the observed
    arrangement and its mirror image included, Phipson & Smyth 2010), so p >= 2/2^k exactly.
    Random trials (sacrebleu's) estimate this number; with few differing examples it is cheap to
    compute, and a Monte Carlo estimate could print below the floor the verdict states."""
    s = np.asarray(sys_stats, dtype=np.float64)
    b = np.asarray(base_stats, dtype=np.float64)
    idx = np.flatnonzero(np.any(s != b, axis=1))
    k = len(idx)
    real = abs(corpus_score(scorer, b) - corpus_score(scorer, s))
    if k == 0 or real == 0:
        return 1.0
    if k > 24:
        raise ValueError(f"exact randomisation over {k} differing examples: 2^{k} swaps is too many")
    patterns = ((np.arange(2 ** k)[:, None] >> np.arange(k)[None, :]) & 1).astype(np.float64)
    tot_s, tot_b = s.sum(axis=0), b.sum(axis=0)
    a = tot_s + patterns @ (b[idx] - s[idx])
    bb = tot_b + tot_s - a
    gaps = np.abs(scores_from_sums(scorer, a) - scores_from_sums(scorer, bb))
    return float(np.mean(gaps >= real * (1 - 1e-9) - 1e-12))


def ar_p_value(trials: np.ndarray, real: float) -> float:
    """(1 + #{trials at least as extreme as the observed gap}) / (1 + #trials).

    sacrebleu (after MultEval) counts only trials strictly above the gap. Swapping two identical
    outputs changes nothing, so every trial that swaps only among the outputs that agree gives
    the observed gap back exactly; with k differing outputs that is 2 trials in 2^k. When few
    outputs differ, strict counting leaves all of them out and can print p = 1/(trials + 1): 3
    differing outputs of 1,000 (CTranslate2 vs transformers greedy, BLEU -0.003) came out as
    "p < 0.001, significant". A permutation p-value counts the arrangements as extreme as the
    observed one, the observed one included (Phipson & Smyth 2010), so here equal gaps count, with
    a relative tolerance of 1e-9 for the two summation orders the gap is computed in. With many
    differing outputs such ties have probability about 2^-k and the value is sacrebleu's."""
    trials = np.asarray(trials, dtype=np.float64)
    extreme = np.count_nonzero(trials >= real * (1 - 1e-9) - 1e-12)
    return float((1 + extreme) / (1 + trials.size))


def min_ar_p(differing: int) -> float:
    """The smallest p-value a randomisation over examples can give when ``differing`` outputs
    differ: the observed arrangement and its mirror image are 2 of the 2^k swaps."""
    return min(1.0, 2.0 / 2.0 ** differing) if differing < 1024 else 0.0


# ============================================================================ classification


def confusion_from_pairs(gold: np.ndarray, pred: np.ndarray, n_labels: int,
                         counts: np.ndarray | None = None) -> np.ndarray:
    """Confusion matrix [gold, pred] (``n_labels`` × ``n_labels``); with bootstrap ``counts``
    (samples × n), one matrix per resample (samples × L × L)."""
    cell = np.asarray(gold) * n_labels + np.asarray(pred)
    onehot = np.zeros((len(cell), n_labels * n_labels))
    onehot[np.arange(len(cell)), cell] = 1.0
    if counts is None:
        return onehot.sum(axis=0).reshape(n_labels, n_labels)
    return (counts @ onehot).reshape(len(counts), n_labels, n_labels)


def accuracy_from_confusion(C: np.ndarray) -> np.ndarray:
    C = np.asarray(C, dtype=np.float64)
    total = C.sum(axis=(-1, -2))
    return np.trace(C, axis1=-2, axis2=-1) / np.where(total > 0, total, 1)


def macro_f1_from_confusion(C: np.ndarray) -> np.ndarray:
    """Unweighted mean F1 over the labels that occur (as gold or prediction), as sklearn's
    ``f1_score(average='macro')`` with its default label set."""
    C = np.asarray(C, dtype=np.float64)
    tp = np.diagonal(C, axis1=-2, axis2=-1)
    pred = C.sum(axis=-2)
    gold = C.sum(axis=-1)
    present = (pred + gold) > 0
    denom = pred + gold
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    n = present.sum(axis=-1)
    return np.where(n > 0, (f1 * present).sum(axis=-1) / np.where(n > 0, n, 1), 0.0)


def mcc_from_confusion(C: np.ndarray) -> np.ndarray:
    """Matthews correlation, multiclass form (Gorodkin 2004), as sklearn's ``matthews_corrcoef``."""
    C = np.asarray(C, dtype=np.float64)
    t = C.sum(axis=-1)
    p = C.sum(axis=-2)
    c = np.trace(C, axis1=-2, axis2=-1)
    s = C.sum(axis=(-1, -2))
    cov_tp = c * s - (t * p).sum(axis=-1)
    cov_pp = s * s - (p * p).sum(axis=-1)
    cov_tt = s * s - (t * t).sum(axis=-1)
    den = np.sqrt(cov_tt * cov_pp)
    return np.where(den > 0, cov_tp / np.where(den > 0, den, 1), 0.0)


CONFUSION_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "accuracy": accuracy_from_confusion,
    "acc": accuracy_from_confusion,
    "macro_f1": macro_f1_from_confusion,
    "f1": macro_f1_from_confusion,
    "mcc": mcc_from_confusion,
}
"""Classification metrics the reports can recompute per example, by metric plugin name."""


@dataclass
class McNemar:
    """McNemar's exact test: ``b`` = baseline right & system wrong, ``c`` = baseline wrong & system right."""

    b: int
    c: int
    p: float


def mcnemar_exact(base_correct: Sequence[bool], sys_correct: Sequence[bool]) -> McNemar:
    """Two-sided exact McNemar test: a binomial(b + c, 1/2) test on the discordant pairs
    (the ``exact=True`` variant of statsmodels' ``mcnemar``)."""
    a = np.asarray(base_correct, dtype=bool)
    s = np.asarray(sys_correct, dtype=bool)
    b = int(np.sum(a & ~s))
    c = int(np.sum(~a & s))
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0)
    k = min(b, c)
    # exact binomial tail with integers; doubling the smaller tail is the usual two-sided rule
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return McNemar(b, c, min(1.0, 2 * tail))


def bootstrap_classification(gold: np.ndarray, pred: np.ndarray, n_labels: int, metric: Callable,
                             counts: np.ndarray) -> np.ndarray:
    """A classification metric on each bootstrap resample (rows of ``counts``)."""
    return metric(confusion_from_pairs(gold, pred, n_labels, counts))


# ============================================================================ over seeds


@dataclass
class SeedTests:
    """Tests of a system against the baseline over the seeds both ran (paired by seed)."""

    n: int
    mean_diff: float
    t: float
    p_t: float
    p_perm: float
    min_p_perm: float  # the smallest p the permutation test can give with n seeds


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Paired two-sided t-test of mean(a - b) = 0 (scipy's ``ttest_rel``); (nan, nan) for n < 2,
    and p = 1 / 0 when every difference is identical (zero variance)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n < 2:
        return float("nan"), float("nan")
    sd = d.std(ddof=1)
    mean = d.mean()
    if sd == 0 or not np.isfinite(sd):
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    from scipy.special import stdtr

    t = mean / (sd / math.sqrt(n))
    return float(t), float(2 * stdtr(n - 1, -abs(t)))


def sign_flip_test(a: Sequence[float], b: Sequence[float], *, max_exact: int = 16, n_resamples: int = 100_000,
                   seed: int | None = DEFAULT_SEED) -> float:
    """Two-sided paired permutation test: flip the sign of each seed's difference (all 2^n
    patterns when n <= ``max_exact``, else ``n_resamples`` random ones); p is the share of
    patterns whose |mean| is at least the observed |mean|. Equals scipy's ``permutation_test``
    with ``permutation_type='samples'`` for paired data."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n == 0:
        return float("nan")
    if n <= max_exact:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(n_resamples, n))
    means = np.abs((signs * d).mean(axis=1))
    obs = abs(d.mean())
    # relative tolerance so that patterns equal to the observed one up to rounding count as "as extreme"
    return float(np.mean(means >= obs * (1 - 1e-12) - 1e-15))


def min_sign_flip_p(n: int) -> float:
    """The smallest two-sided p-value an exact sign-flip test over ``n`` seeds can reach (2 / 2^n)."""
    return 1.0 if n == 0 else min(1.0, 2.0 / 2 ** n)


def seed_tests(a: Sequence[float], b: Sequence[float]) -> SeedTests:
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    t, p_t = paired_t_test(a_, b_)
    return SeedTests(n=len(a_), mean_diff=float((a_ - b_).mean()) if len(a_) else float("nan"), t=t, p_t=p_t,
                     p_perm=sign_flip_test(a_, b_), min_p_perm=min_sign_flip_p(len(a_)))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean of ``values`` (e.g. one score per seed)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float("nan"), float("nan")
    from scipy.special import stdtrit

    half = stdtrit(len(v) - 1, 0.5 + confidence / 2) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)



def clip_interval(low: float, high: float, value_range: tuple[float | None, float | None] | None
                  ) -> tuple[float, float, bool]:
    """(low, high, clipped): an interval cut to the metric's range, e.g. a t-interval of BLEU over
    seeds [-0.03, 0.23] becomes [0.00, 0.23]. A score cannot leave its range, so neither can a
    statement about where its mean lies; ``clipped`` says the interval was cut, for the label."""
    lo_r, hi_r = value_range or (None, None)
    clipped = False
    if lo_r is not None and math.isfinite(low) and low < lo_r:
        low, clipped = float(lo_r), True
    if hi_r is not None and math.isfinite(high) and high > hi_r:
        high, clipped = float(hi_r), True
    return low, high, clipped


# ============================================================================ two-sided paired bootstrap


def bootstrap_difference_p(diff_samples: np.ndarray, observed: float) -> float:
    """Two-sided p of a paired bootstrap from resampled differences (system - baseline on the
    *same* resample): (1 + #{|d* - d| >= |d|}) / (1 + B), the bootstrap distribution shifted to
    the null (Efron & Tibshirani 1993, sec. 16.4) with the +1 rule that keeps p above 0.

    An observed difference of exactly 0 gives p = 1: no resample can be "as extreme" evidence
    against equality as a difference that is not there.
    """
    d = np.asarray(diff_samples, dtype=np.float64)
    if observed == 0 or not len(d):
        return 1.0
    # a relative tolerance so that a resample equal to the threshold up to rounding counts
    extreme = np.abs(d - observed) >= abs(observed) * (1 - 1e-12)
    return float((1 + np.sum(extreme)) / (1 + len(d)))


def improvement(sys_values, base_values, direction: str = "higher", target: float | None = None):
    """How much better the system is than the baseline (positive = better), elementwise:
    sys - base (higher is better), base - sys (lower), |base - t| - |sys - t| (closer to a target)."""
    a, b = np.asarray(sys_values, dtype=np.float64), np.asarray(base_values, dtype=np.float64)
    if direction == "lower":
        return b - a
    if direction == "target":
        return np.abs(b - target) - np.abs(a - target)
    return a - b


# ============================================================================ multiple comparisons


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm 1979), None where no test was run: the k-th
    smallest of m p-values is multiplied by (m - k + 1), running maxima keep the order, capped at 1.
    Equals ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``."""
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(p_values)
    m = len(idx)
    running = 0.0
    for k, i in enumerate(sorted(idx, key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - k) * float(p_values[i])))
        out[i] = running
    return out


# ============================================================================ two-level bootstrap over seeds


@dataclass
class TwoLevelBootstrap:
    """Resampled mean improvements over seeds × examples, with their percentile interval."""

    mean: float  # the observed mean improvement over the paired seeds
    low: float
    high: float
    samples: np.ndarray


@lru_cache(maxsize=2)
def _two_level_draws(S: int, n: int, n_samples: int, seed: int | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """For each seed j: the resamples that drew it (rows, repeated when drawn twice) and their
    example counts (float32: exact for counts). A pure function of its arguments, cached because
    every metric and comparison with the same seeds and test-set size uses the same draws."""
    rng = np.random.default_rng(seed)
    seed_idx = rng.integers(S, size=(n_samples, S))
    ex = rng.integers(n, size=(n_samples, S, n))
    out = []
    for j in range(S):
        rows, slots = np.nonzero(seed_idx == j)
        draws = ex[rows, slots]  # (draws × n) example indices
        flat = (draws + (np.arange(len(draws)) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=len(draws) * n).reshape(len(draws), n).astype(np.float32)
        rows.setflags(write=False)
        counts.setflags(write=False)
        out.append((rows, counts))
    return tuple(out)


def two_level_bootstrap(sys_stats: Sequence[np.ndarray], base_stats: Sequence[np.ndarray],
                        score: Callable[[np.ndarray], np.ndarray], *, n_samples: int = DEFAULT_BOOTSTRAP,
                        seed: int | None = DEFAULT_SEED, direction: str = "higher", target: float | None = None,
                        confidence: float = 0.95) -> TwoLevelBootstrap:
    """Paired two-level bootstrap of the improvement over seeds (Dodge et al. 2020 show fine-tuning
    varies across seeds as much as across examples; this samples both).

    ``sys_stats[j]`` / ``base_stats[j]``: per-example sufficient statistics (n × k) of the system
    and the baseline trained with the j-th seed, on the same n examples; ``score`` maps summed
    statistics (rows) to corpus scores. Each resample draws seeds with replacement, then, for each
    drawn seed, examples with replacement, the *same* examples for both arms (paired); its value
    is the mean over drawn seeds of score(system) minus score(baseline), turned into an
    improvement by ``direction``. Seeded: the same inputs give the same interval.

    With few seeds the seed-level resampling sees little of the seed distribution, so the
    interval is too narrow; it describes the observed runs, and the test over seeds decides.
    """
    S = len(sys_stats)
    if S == 0 or S != len(base_stats):
        raise ValueError(f"{S} system seeds for {len(base_stats)} baseline seeds")
    n = len(sys_stats[0])
    total = np.zeros(n_samples)
    for j, (rows, counts) in enumerate(_two_level_draws(S, n, n_samples, seed)):
        if not len(rows):
            continue
        a = score(counts @ np.asarray(sys_stats[j], dtype=np.float64))
        b = score(counts @ np.asarray(base_stats[j], dtype=np.float64))
        np.add.at(total, rows, improvement(a, b, direction, target))
    samples = total / S
    observed = float(np.mean([improvement(score(np.asarray(s, dtype=np.float64).sum(axis=0)[None]),
                                          score(np.asarray(b, dtype=np.float64).sum(axis=0)[None]),
                                          direction, target)[0] for s, b in zip(sys_stats, base_stats)]))
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [tail, 1 - tail])
    return TwoLevelBootstrap(observed, float(lo), float(hi), samples)


# ============================================================================ power over seeds


def t_test_power(effect: float, n: int, alpha: float = 0.05) -> float:
    """Power of a two-sided one-sample (paired) t-test with ``n`` pairs at standardised effect
    ``effect`` = mean difference / sd of the differences (noncentral t; as statsmodels' ``TTestPower``)."""
    if n < 2:
        return 0.0
    from scipy.stats import nct, t

    df = n - 1
    crit = t.ppf(1 - alpha / 2, df)
    nc = effect * math.sqrt(n)
    return float(nct.sf(crit, df, nc) + nct.cdf(-crit, df, nc))


def seeds_needed(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8, *, max_seeds: int = 10_000
                 ) -> int | None:
    """Seeds (pairs) a two-sided paired t-test over seeds needs to detect a mean difference ``delta``
    with the given ``power`` when seed-to-seed differences have standard deviation ``sd``; at least
    the number the exact sign-flip test needs to reach ``alpha`` at all (2 / 2^n < alpha).
    None when it cannot be said (sd or delta zero or not finite) or needs more than ``max_seeds``."""
    if not (math.isfinite(delta) and math.isfinite(sd)) or sd <= 0 or delta == 0:
        return None
    effect = abs(delta) / sd
    floor = 1
    while min_sign_flip_p(floor) >= alpha:
        floor += 1
    lo, hi = 2, 2
    while t_test_power(effect, hi, alpha) < power:  # doubling, then bisection: power grows with n
        lo, hi = hi, hi * 2
        if hi > max_seeds * 2:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        if t_test_power(effect, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return None if hi > max_seeds else max(hi, floor)
