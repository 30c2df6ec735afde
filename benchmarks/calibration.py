"""Calibration of the decision rules: false-positive rate, interval coverage and power, by Monte Carlo.

A statistical rule is done when a simulation shows its size and coverage, not only when its
numbers equal a reference implementation. This script simulates comparisons at the sizes people
run (2-10 seeds, 200-1,000 examples, 1-4 datasets) and runs them through the harness's own test
functions (``harness.stats.significance``, ``harness.stats.crossed``, ``harness.stats.meta_analysis``), printing for every
deciding test and interval its false-positive rate at alpha = 0.05 under a true null and the
coverage of its 95% interval, each with its Monte Carlo error (± one standard error), and the
power of the deciding test at 3 and 5 seeds next to the alternatives. Tests that are shown but do
not decide (sacrebleu's paired bootstrap, the tests over seeds only, the old DerSimonian-Laird
pooling and two-level bootstrap) are simulated too, so the table says why they do not decide.

The simulated world (docs/statistics.md, "Calibration"): each example i has a difficulty a_i;
each system has its own strength on it, g_i (system-specific example effects: under the null the
two systems' g are independent draws from one distribution, so neither is better on the
population of examples, but on a finite test set one is); each training seed j shifts a system by
v_j (seed variance); each (example, seed) adds noise w_ij. Accuracy: the example is right when
a_i + g_i + v_j + w_ij + delta > 0 (about 80% accuracy; two systems disagree on 5-8% of the
examples; a seed's accuracy varies by about 0.7 or 2 points). BLEU: the same latent quality picks,
per example, one of six corruption levels of a real Multi30k reference (words dropped and
replaced; four variants each), and BLEU is computed by sacrebleu's statistics; skipped when
../shared/data/multi30k is absent. Several datasets: each has its own difficulty and its own true
effect (between-dataset heterogeneity), drawn so that the mean effect is exactly 0 under the null.

Targets: every deciding test's false-positive rate within Monte Carlo error of <= 5% (rate − 2·SE
<= 0.05) and every deciding interval's coverage >= 94% (rate + 2·SE >= 0.94). The script exits 1
when a deciding rule misses its target by more than 3 standard errors (a loose check, so that the
small setting CI runs is not flaky).

    python benchmarks/calibration.py            # the full table (docs/statistics.md), ~10 min
    python benchmarks/calibration.py --small    # what CI runs: fewer settings and repetitions, < 60 s
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ALPHA = 0.05


# ============================================================================ bookkeeping


class Rate:
    """A proportion over Monte Carlo repetitions, printed with its standard error."""

    def __init__(self):
        self.k = 0
        self.n = 0

    def add(self, hits) -> None:
        hits = np.asarray(hits, dtype=bool)
        self.k += int(hits.sum())
        self.n += int(hits.size)

    @property
    def p(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def se(self) -> float:
        return math.sqrt(max(self.p * (1 - self.p), 1 / max(self.n, 1) ** 2) / self.n) if self.n else math.nan

    def __str__(self) -> str:
        return "–" if not self.n else f"{self.p:.3f} ± {self.se:.3f}"


FAILURES: list[str] = []


def check(name: str, fpr: Rate | None = None, cov: Rate | None = None) -> str:
    """The target mark of a deciding rule: ok / MISS (and remembered for the exit code)."""
    marks = []
    if fpr is not None and fpr.n:
        if fpr.p - 2 * fpr.se > ALPHA:
            marks.append("FPR MISS")
        if fpr.p - 3 * fpr.se > ALPHA:
            FAILURES.append(f"{name}: false-positive rate {fpr}")
    if cov is not None and cov.n:
        if cov.p + 2 * cov.se < 0.94:
            marks.append("coverage MISS")
        if cov.p + 3 * cov.se < 0.94:
            FAILURES.append(f"{name}: coverage {cov}")
    return ", ".join(marks) or "ok"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ============================================================================ the simulated world


@dataclass(frozen=True)
class World:
    """Latent quality sd's: example difficulty, system-specific example effect, seed effect,
    (example, seed) noise; ``m`` the mean (0.85: about 80% accuracy). An example is right when its
    latent quality is above 0; with these defaults two systems disagree on about 5-8% of examples,
    as fine-tuned classifiers do (the SST-2 run of docs/statistics.md: 77-93 of 872)."""

    tau_g: float = 0.0
    sd_v: float = 0.01
    sd_a: float = 1.0
    sd_w: float = 0.2
    m: float = 0.85

    @property
    def name(self) -> str:
        seeds = "high" if self.sd_v >= 0.04 else "low"
        ex = "strong" if self.tau_g >= 0.15 else ("none" if self.tau_g == 0 else "some")
        return f"seed variance {seeds}, example effects {ex}"

    @property
    def total_sd(self) -> float:
        return math.sqrt(self.sd_a ** 2 + self.tau_g ** 2 + self.sd_v ** 2 + self.sd_w ** 2)


# seed sd of accuracy about 0.7 (low) and 2 points (high); example effects: none, or a system-specific
# part whose share of the 3-seed standard error is about a third to a half
LOW_SEEDS_NO_EX = World(tau_g=0.0, sd_v=0.01)
LOW_SEEDS_EX = World(tau_g=0.2, sd_v=0.01)
HIGH_SEEDS_NO_EX = World(tau_g=0.0, sd_v=0.07)
HIGH_SEEDS_EX = World(tau_g=0.2, sd_v=0.07)
WORLDS = (LOW_SEEDS_NO_EX, LOW_SEEDS_EX, HIGH_SEEDS_NO_EX, HIGH_SEEDS_EX)


def expected_accuracy(mu, sd: float):
    """P(N(mu, sd^2) > 0) in points: the population accuracy of a latent-threshold system."""
    from scipy.special import ndtr

    return 100 * ndtr(np.asarray(mu, dtype=np.float64) / sd)


def true_accuracy_delta(world: World, delta: float, m: float | None = None) -> float:
    """Population accuracy difference (points) of a system shifted by ``delta``."""
    m = world.m if m is None else m
    s = world.total_sd
    return float(expected_accuracy(m + delta, s) - expected_accuracy(m, s))


def delta_for(world: World, target: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The latent shift that gives each dataset (mean ``m``) the true accuracy difference
    ``target`` (points), by bisection."""
    target, m = np.broadcast_arrays(np.asarray(target, float), np.asarray(m, float))
    lo, hi = np.full(target.shape, -8.0), np.full(target.shape, 8.0)
    base = expected_accuracy(m, world.total_sd)
    for _ in range(60):
        mid = (lo + hi) / 2
        f = expected_accuracy(m + mid, world.total_sd) - base - target
        lo, hi = np.where(f < 0, mid, lo), np.where(f < 0, hi, mid)
    return (lo + hi) / 2


def latent(rng, world: World, R: int, S: int, n: int, delta=0.0, m=None):
    """Latent qualities of system A and baseline B: (R, S, n) each."""
    m = world.m if m is None else m
    m = np.asarray(m, dtype=np.float64).reshape(-1, 1, 1) if np.ndim(m) else m
    a = rng.normal(0, world.sd_a, (R, 1, n)) + m
    gA = rng.normal(0, world.tau_g, (R, 1, n)) if world.tau_g else 0.0
    gB = rng.normal(0, world.tau_g, (R, 1, n)) if world.tau_g else 0.0
    vA, vB = rng.normal(0, world.sd_v, (R, S, 1)), rng.normal(0, world.sd_v, (R, S, 1))
    delta = np.asarray(delta, dtype=np.float64).reshape(-1, 1, 1) if np.ndim(delta) else delta
    qA = a + gA + vA + rng.normal(0, world.sd_w, (R, S, n)) + delta
    qB = a + gB + vB + rng.normal(0, world.sd_w, (R, S, n))
    return qA, qB


def accuracy_draw(rng, world: World, R: int, S: int, n: int, delta=0.0, m=None):
    """Per-example correctness (0/100) of A and B: (R, S, n) each."""
    qA, qB = latent(rng, world, R, S, n, delta, m)
    return (qA > 0) * 100.0, (qB > 0) * 100.0


def mean_stats(x: np.ndarray) -> np.ndarray:
    """(value, 1) per example: the sufficient statistics of a metric that is a mean."""
    return np.stack([x, np.ones_like(x)], axis=-1)


def mean_score(S: np.ndarray) -> np.ndarray:
    S = np.atleast_2d(S)
    return S[:, 0] / S[:, 1]


# ---------------------------------------------------------------------------- BLEU


class BleuBank:
    """Six corruption levels × four variants of each of ``n`` real Multi30k German references,
    with their BLEU sufficient statistics (sacrebleu), so a simulated system's output for an
    example is a lookup: stats[i, level, variant]."""

    KEEP = (1.0, 0.92, 0.82, 0.7, 0.55, 0.4)  # probability a reference word is kept, per level
    SUB = (0.0, 0.04, 0.08, 0.12, 0.16, 0.2)  # probability a kept word is replaced by a random one
    VARIANTS = 4

    def __init__(self, n: int, path: Path):
        import random

        from sacrebleu.metrics import BLEU

        from harness.stats.significance import SegmentStats

        refs = path.read_text(encoding="utf-8").splitlines()[:n]
        vocab = sorted({w for r in refs for w in r.split()})
        rnd = random.Random(7)
        hyps = []
        for ref in refs:
            words = ref.split()
            for keep, sub in zip(self.KEEP, self.SUB):
                for _ in range(self.VARIANTS):
                    out = [w if rnd.random() > sub else rnd.choice(vocab) for w in words if rnd.random() < keep]
                    hyps.append(" ".join(out) or words[0])
        L, V = len(self.KEEP), self.VARIANTS
        scorer = BLEU()
        self.scorer = scorer
        refs_rep = [r for r in refs for _ in range(L * V)]
        seg = SegmentStats(scorer, refs_rep)
        self.stats = seg(hyps).reshape(len(refs), L, V, -1)
        self.n = len(refs)

    def score(self, S: np.ndarray) -> np.ndarray:
        from harness.stats.significance import scores_from_sums

        return scores_from_sums(self.scorer, S)

    def draw(self, rng, world: World, R: int, S: int, n: int, delta=0.0):
        """Per-example BLEU statistics of A and B: (R, S, n, 10) each. Latent quality 0 maps to
        level 2; each half unit of quality is one level."""
        qA, qB = latent(rng, world, R, S, n, delta, m=0.0)
        out = []
        idx = np.arange(n)
        for q in (qA, qB):
            level = np.clip(np.round(2 - 2 * q), 0, len(self.KEEP) - 1).astype(int)
            var = rng.integers(0, self.VARIANTS, q.shape)
            out.append(self.stats[idx[None, None, :], level, var])
        return out


BLEU_WORLDS = (World(tau_g=0.0, sd_v=0.01, sd_w=0.25), World(tau_g=0.2, sd_v=0.01, sd_w=0.25),
               World(tau_g=0.0, sd_v=0.07, sd_w=0.25), World(tau_g=0.2, sd_v=0.07, sd_w=0.25))


# ============================================================================ one evaluation per arm


def one_run_accuracy(rng, reps: int, ns: list[int], worlds) -> list[list[str]]:
    from harness.stats.significance import (approximate_randomization_many, ar_mask, bootstrap_counts, bootstrap_difference_p,
                               mcnemar_exact, sacrebleu_ci)

    rows = []
    for n in ns:
        mask = ar_mask(n, 1000, 1)
        counts = bootstrap_counts(n, 1000, 2)
        for world in worlds:
            A, B = accuracy_draw(rng, world, reps, 1, n)
            mc, ar, bs, cov = Rate(), Rate(), Rate(), Rate()
            vA = rng.normal(0, world.sd_v, reps)  # the trained model's seed effect, for its true accuracy
            A2, _ = accuracy_draw(rng, World(world.tau_g, 0.0, world.sd_a, world.sd_w, world.m), reps, 1, n,
                                  delta=vA)
            truth = expected_accuracy(world.m + vA, math.sqrt(world.sd_a ** 2 + world.tau_g ** 2 + world.sd_w ** 2))
            for r in range(reps):
                a, b = A[r, 0], B[r, 0]
                mc.add(mcnemar_exact(b > 0, a > 0).p < ALPHA)
                p = approximate_randomization_many([(mean_score, mean_stats(a), mean_stats(b))], mask)[0]
                ar.add(p < ALPHA)
                diffs = counts @ (a - b) / n
                bs.add(bootstrap_difference_p(diffs, float(np.mean(a - b))) < ALPHA)
                _, _, lo, hi = sacrebleu_ci(counts @ A2[r, 0] / n)
                cov.add(lo <= truth[r] <= hi)
            rows.append([f"accuracy, n = {n}, {world.name.split(', ')[1]}", "McNemar's exact test", "decides",
                         str(mc), "", "", check(f"McNemar n={n} {world.name}", mc)])
            rows.append(["", "approximate randomisation (1,000 trials)", "shown", str(ar), "", "", ""])
            rows.append(["", "two-sided paired bootstrap (1,000)", "shown", str(bs), "", "", ""])
            rows.append(["", "95% CI of a system's accuracy (bootstrap over examples)", "interval", "", str(cov), "",
                         check(f"bootstrap CI n={n} {world.name}", cov=cov)])
    return rows


def one_run_bleu(rng, bank: BleuBank, reps: int, ns: list[int], worlds) -> list[list[str]]:
    from harness.stats.significance import (approximate_randomization_many, ar_mask, bootstrap_counts, bootstrap_scores_many,
                               corpus_score, paired_bootstrap_p)

    rows = []
    for n in ns:
        mask = ar_mask(n, 1000, 1)
        counts = bootstrap_counts(n, 1000, 2)
        for world in worlds:
            A, B = bank.draw(rng, world, reps, 1, n)
            ar, sb = Rate(), Rate()
            for r in range(reps):
                a, b = A[r, 0], B[r, 0]
                p = approximate_randomization_many([(bank.scorer, a, b)], mask)[0]
                ar.add(p < ALPHA)
                ba, bb = bootstrap_scores_many(counts, [(bank.scorer, a), (bank.scorer, b)])
                sb.add(paired_bootstrap_p(corpus_score(bank.scorer, a), corpus_score(bank.scorer, b), ba, bb,
                                          zero_gap_is_1=False) < ALPHA)
            rows.append([f"BLEU, n = {n}, {world.name.split(', ')[1]}", "approximate randomisation (1,000 trials)",
                         "decides", str(ar), "", "", check(f"AR BLEU n={n} {world.name}", ar)])
            rows.append(["", "sacrebleu's paired bootstrap (--paired-bs, 1,000)", "shown", str(sb), "", "", ""])
    return rows


# ============================================================================ several seeds


def seeds_section(rng, reps: int, seeds: list[int], ns: list[int], worlds, *, bank: BleuBank | None = None,
                  old_bootstrap: int = 0, power_at: dict | None = None) -> list[list[str]]:
    """False-positive rate and coverage over seeds, for the accuracy world or (``bank``) BLEU."""
    from harness.stats.crossed import crossed_test, paired_contributions
    from harness.stats.significance import seed_tests, t_interval, two_level_bootstrap

    rows = []
    score = bank.score if bank is not None else mean_score
    metric = "BLEU" if bank is not None else "accuracy"
    for S in seeds:
        for n in ns:
            for world in worlds:
                if bank is not None:
                    A, B = bank.draw(rng, world, reps, S, n)
                else:
                    a_, b_ = accuracy_draw(rng, world, reps, S, n)
                    A, B = mean_stats(a_), mean_stats(b_)
                cr, cr_cov, tt, sf, t_cov, tl_cov = Rate(), Rate(), Rate(), Rate(), Rate(), Rate()
                for r in range(reps):
                    d = np.vstack([paired_contributions(score, A[r, j], B[r, j]) for j in range(S)])
                    c = crossed_test(d, alpha=ALPHA)
                    cr.add(c.p < ALPHA)
                    cr_cov.add(c.low <= 0 <= c.high)
                    sa = [float(score(A[r, j].sum(0)[None])[0]) for j in range(S)]
                    sb = [float(score(B[r, j].sum(0)[None])[0]) for j in range(S)]
                    st = seed_tests(sa, sb)
                    tt.add(st.p_t < ALPHA)
                    sf.add(st.p_perm < ALPHA)
                    lo, hi = t_interval(np.subtract(sa, sb))
                    t_cov.add(lo <= 0 <= hi)
                    if old_bootstrap and r < old_bootstrap:
                        tl = two_level_bootstrap(list(A[r]), list(B[r]), score, n_samples=200, seed=r)
                        tl_cov.add(tl.low <= 0 <= tl.high)
                name = f"{metric}, {S} seeds, n = {n}, {world.name}"
                rows.append([name, "seeds × examples t-test / its 95% CI", "decides", str(cr), str(cr_cov), "",
                             check(name, cr, cr_cov)])
                rows.append(["", "paired t-test over seeds / t interval", "shown", str(tt), str(t_cov), "", ""])
                rows.append(["", "sign-flip permutation over seeds", "shown (was deciding)", str(sf), "", "", ""])
                if tl_cov.n:
                    rows.append(["", "two-level bootstrap CI (old, 200 resamples)", "old", "", str(tl_cov), "", ""])
    return rows


def power_section(rng, reps: int, n: int, world: World, true_delta: float, seeds=(3, 5)) -> list[list[str]]:
    """Power at ``true_delta`` accuracy points (and the same alternatives' false-positive rates in
    this world, so that a more powerful but invalid test shows as such)."""
    from harness.stats.crossed import Components, crossed_power, crossed_test
    from harness.stats.significance import seed_tests

    delta = float(delta_for(world, np.array(true_delta), np.array(world.m)))
    rows = []
    for S in seeds:
        res = {}
        predicted = None
        for label, dl in (("null", 0.0), ("alt", delta)):
            a_, b_ = accuracy_draw(rng, world, reps, S, n, delta=dl)
            rates = {k: Rate() for k in ("crossed", "crossed_k", "t", "perm")}
            cov = Rate()
            comps = []
            for r in range(reps):
                d = a_[r] - b_[r]
                c = crossed_test(d, alpha=ALPHA)
                rates["crossed"].add(c.p < ALPHA)
                from scipy.special import stdtr

                rates["crossed_k"].add(2 * stdtr(S - 1, -abs(c.t)) < ALPHA if c.se > 0 else c.estimate != 0)
                st = seed_tests(a_[r].mean(1), b_[r].mean(1))
                rates["t"].add(st.p_t < ALPHA)
                rates["perm"].add(st.p_perm < ALPHA)
                if label == "alt":
                    cov.add(c.low <= true_delta <= c.high)
                    if r < 50:
                        comps.append(Components.of(c))
            res[label] = (rates, cov)
            if label == "alt":
                mean = Components(float(np.mean([x.example for x in comps])), float(np.mean([x.seed for x in comps])),
                                  float(np.mean([x.resid for x in comps])), n)
                predicted = crossed_power(true_delta, mean, S, ALPHA)
        (null, _), (alt, cov) = res["null"], res["alt"]
        names = {"crossed": "seeds × examples t-test (decides)", "crossed_k": "the same with df = seeds − 1",
                 "t": "paired t-test over seeds", "perm": "sign-flip permutation over seeds"}
        valid = [k for k in ("crossed_k", "t", "perm") if null[k].p - 2 * null[k].se <= ALPHA]
        best = max(valid, key=lambda k: alt[k].p) if valid else None
        for k in ("crossed", "crossed_k", "t", "perm"):
            mark = "decides" if k == "crossed" else ("best valid alternative" if k == best else
                                                     ("valid" if k in valid else "not valid here"))
            rows.append([f"accuracy, {S} seeds, n = {n}, {world.name}, true Δ = {true_delta:g}" if k == "crossed" else "",
                         names[k], mark, str(null[k]), str(cov) if k == "crossed" else "", str(alt[k]),
                         f"predicted power {predicted:.2f}" if k == "crossed" else ""])
    return rows


def seeds_needed_check(rng, reps: int, n: int, world: World, true_delta: float) -> list[list[str]]:
    """Seeds needed for 80% power from the true variance components, and the simulated power
    there; and how often the range reported from 3 seeds contains the true need."""
    from harness.stats.crossed import Components, crossed_test, seeds_needed, seeds_needed_range

    delta = float(delta_for(world, np.array(true_delta), np.array(world.m)))
    # the true components, estimated from one very large simulation (400 seeds)
    a_, b_ = accuracy_draw(rng, world, 1, 400, n, delta=delta)
    c = crossed_test(a_[0] - b_[0])
    comp = Components.of(c)
    need = seeds_needed(true_delta, comp, ALPHA, 0.8)
    rows = []
    if need is None:
        return rows
    hit = Rate()
    for _ in range(max(1, reps // 200)):
        a_, b_ = accuracy_draw(rng, world, min(reps, 200), need, n, delta=delta)
        for r in range(len(a_)):
            hit.add(crossed_test(a_[r] - b_[r], alpha=ALPHA).p < ALPHA)
    inside, est = Rate(), []
    a_, b_ = accuracy_draw(rng, world, min(reps, 300), 3, n, delta=delta)
    for r in range(len(a_)):
        rr = seeds_needed_range(true_delta, crossed_test(a_[r] - b_[r], alpha=ALPHA), ALPHA, 0.8)
        lo = rr.low or 0
        hi = rr.high if rr.high is not None else 10 ** 9
        inside.add(lo <= need <= hi)
        if rr.estimate is not None:
            est.append(rr.estimate)
    q = np.percentile(est, [5, 95]) if est else (math.nan, math.nan)
    rows.append([f"accuracy, n = {n}, {world.name}, true Δ = {true_delta:g}", f"{need} seeds needed (true variances)",
                 f"simulated power at {need} seeds: {hit}",
                 f"range from 3 seeds contains {need}: {inside}",
                 f"point estimates from 3 seeds: 5-95% {q[0]:.0f}-{q[1]:.0f}"])
    return rows


# ============================================================================ several datasets


def datasets_section(rng, reps: int, ks: list[int], seeds: list[int], n: int, world: World,
                     hetero: list[float], power_delta: float | None = None) -> list[list[str]]:
    from scipy.special import stdtr, stdtrit

    from harness.stats.crossed import crossed_test
    from harness.stats.meta_analysis import pool_datasets, pool_effects, pool_paired_differences

    rows = []
    for S in seeds:
        for k in ks:
            for tau in hetero:
                for mu in ([0.0] + ([power_delta] if power_delta else [])):
                    m = rng.uniform(0.5, 2.0, (reps, k))
                    # each dataset's true effect (accuracy points), from a population whose mean is mu
                    target = mu + tau * rng.normal(0, 1, (reps, k))
                    dl = delta_for(world, target, m)
                    rates = {x: Rate() for x in ("t", "dl", "hk", "mhk")}
                    covs = {x: Rate() for x in ("t", "dl", "hk", "mhk")}
                    for r in range(reps):
                        effects, variances, diffs = [], [], {}
                        for j in range(k):
                            a_, b_ = accuracy_draw(rng, world, 1, S, n, delta=dl[r, j], m=m[r, j])
                            c = crossed_test(a_[0] - b_[0], alpha=ALPHA)
                            effects.append(c.estimate)
                            variances.append(c.se ** 2)
                            diffs[f"d{j}"] = list(a_[0].mean(1) - b_[0].mean(1))
                        truth = mu  # the mean effect over the population of datasets
                        pool = pool_datasets(effects)
                        # no p when the datasets' effects are exactly equal (discrete scores): no decision
                        rates["t"].add(pool.p is not None and pool.p < ALPHA)
                        if pool.p is not None:
                            covs["t"].add(pool.ci_low <= truth <= pool.ci_high)
                        old = pool_paired_differences(diffs)  # the old rule: DL, seed-only variances, normal
                        if old.estimate is not None:
                            rates["dl"].add(old.p < ALPHA)
                            covs["dl"].add(old.ci_low <= truth <= old.ci_high)
                        # Hartung-Knapp-Sidik-Jonkman with inverse-variance weights (DL tau^2)
                        if min(variances) <= 0:  # a dataset whose arms never differ: no weight to give it
                            continue
                        pe = pool_effects(effects, variances)
                        w = np.array([1 / (v + (pe.tau2 or 0.0)) for v in variances])
                        y = np.array(effects)
                        est = float((w * y).sum() / w.sum())
                        q = float((w * (y - est) ** 2).sum() / (k - 1))
                        se = math.sqrt(q / w.sum()) if q > 0 else 0.0
                        crit = float(stdtrit(k - 1, 0.975))
                        p_hk = float(2 * stdtr(k - 1, -abs(est / se))) if se > 0 else 0.0
                        rates["hk"].add(p_hk < ALPHA)
                        covs["hk"].add(est - crit * se <= truth <= est + crit * se)
                        # the modified Hartung-Knapp (Knapp & Hartung 2003; Roever et al. 2015): q at least 1
                        se_m = math.sqrt(max(q, 1.0) / w.sum())
                        rates["mhk"].add(2 * stdtr(k - 1, -abs(est / se_m)) < ALPHA)
                        covs["mhk"].add(est - crit * se_m <= truth <= est + crit * se_m)
                    name = f"{k} datasets × {S} seeds, n = {n}, heterogeneity sd {tau:g} points"
                    label = name if mu == 0 else f"{name}, mean Δ = {mu:g}"
                    fpr = (lambda x: str(rates[x])) if mu == 0 else (lambda x: "")
                    pw = (lambda x: "") if mu == 0 else (lambda x: str(rates[x]))
                    rows.append([label, "t-test over datasets, equal weights (decides)", "decides", fpr("t"),
                                 str(covs["t"]), pw("t"), check(name, rates["t"] if mu == 0 else None, covs["t"])])
                    rows.append(["", "Hartung-Knapp, inverse-variance weights", "alternative", fpr("hk"),
                                 str(covs["hk"]), pw("hk"), ""])
                    rows.append(["", "Hartung-Knapp modified (q >= 1)", "alternative", fpr("mhk"),
                                 str(covs["mhk"]), pw("mhk"), ""])
                    rows.append(["", "DerSimonian-Laird, normal (old)", "old", fpr("dl"), str(covs["dl"]), pw("dl"), ""])
    return rows


# ============================================================================ main


def one_run_section(rng, reps: int, small: bool, bank, header) -> None:
    print("## One evaluation per arm\n")
    # one evaluation per arm tests the two trained models: their seed luck is part of what they are (no seed
    # variance in this section; only several seeds can tell seed luck from the systems)
    one = [World(tau_g=0.0, sd_v=0.0), World(tau_g=0.2, sd_v=0.0)]
    rows = one_run_accuracy(rng, reps, [200] if small else [200, 1000], one[1:] if small else one)
    m30k = SHARED / "multi30k" / "test_2016_flickr.de"
    if bank is not None:
        bleu_one = [World(tau_g=w.tau_g, sd_v=0.0, sd_w=w.sd_w) for w in BLEU_WORLDS[:2]]
        rows += one_run_bleu(rng, bank, max(40, reps // 3) if small else reps, [200] if small else [200, 1000],
                             bleu_one[1:] if small else bleu_one)
    print(table(header, rows))
    if bank is None:
        print(f"\n(BLEU skipped: {m30k} not found; ../shared/data beside the checkout has the Multi30k references.)")


def seeds_main(rng, reps: int, small: bool, bank, header) -> None:
    print("\n## Several seeds, one dataset\n")
    seeds = [3, 5] if small else [2, 3, 5, 10]
    ns = [200] if small else [200, 1000]
    rows = seeds_section(rng, reps if small else 2 * reps, seeds, ns,
                         [LOW_SEEDS_EX, HIGH_SEEDS_NO_EX] if small else list(WORLDS), old_bootstrap=0 if small else 200)
    if bank is not None:
        rows += seeds_section(rng, max(40, reps // 3) if small else reps, [3] if small else [3, 5],
                              [200] if small else [200, 1000], BLEU_WORLDS[3:] if small else BLEU_WORLDS, bank=bank)
    print(table(header, rows))


SECTIONS = ("one-run", "seeds", "power", "seeds-needed", "datasets")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="the CI setting: fewer settings and repetitions (< 60 s)")
    ap.add_argument("--reps", type=int, default=None, help="Monte Carlo repetitions per setting")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--section", action="append", choices=SECTIONS,
                    help="only this section (repeatable; default: all)")
    args = ap.parse_args(argv)
    want = set(args.section or SECTIONS)
    rng = np.random.default_rng(args.seed)
    small = args.small
    reps = args.reps or (300 if small else 1000)
    t0 = time.perf_counter()
    header = ["setting", "test / interval", "role", "false-positive rate at 0.05", "coverage of 95% CI", "power",
              "target"]
    print(f"# Calibration of the decision rules ({'--small, ' if small else ''}{reps} repetitions per setting, "
          f"seed {args.seed})\n")
    print("Rates are ± one Monte Carlo standard error. Target for the deciding rules: false-positive rate − 2 SE <= "
          "0.05, coverage + 2 SE >= 0.94.\n")

    bank = None
    m30k = SHARED / "multi30k" / "test_2016_flickr.de"
    if m30k.exists() and want & {"one-run", "seeds"}:
        bank = BleuBank(200 if small else 1000, m30k)
    if "one-run" in want:
        one_run_section(rng, reps, small, bank, header)
        print(f"\n({time.perf_counter() - t0:.0f} s so far)")
    if "seeds" in want:
        seeds_main(rng, reps, small, bank, header)
        print(f"\n({time.perf_counter() - t0:.0f} s so far)")
    if "power" in want:
        print("\n## Power at 3 and 5 seeds\n")
        rows = power_section(rng, reps, 1000 if not small else 200, HIGH_SEEDS_EX, 3.0)
        if not small:
            rows += power_section(rng, reps, 1000, LOW_SEEDS_EX, 2.0)
        print(table(header, rows))
    if "seeds-needed" in want:
        print("\n## Seeds needed\n")
        rows = seeds_needed_check(rng, reps if not small else 100, 1000 if not small else 200, HIGH_SEEDS_EX, 2.0)
        print(table(["setting", "need", "check", "range", "spread"], rows))
    if "datasets" in want:
        print("\n## Several datasets\n")
        rows = datasets_section(rng, max(60, reps // 2) if small else reps, [3] if small else [2, 3, 4],
                                [3] if small else [3, 5], 200 if small else 500, HIGH_SEEDS_EX,
                                [1.5] if small else [0.0, 1.5], power_delta=None if small else 2.0)
        print(table(header, rows))
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if FAILURES:
        print("\nMISSED by more than 3 standard errors:\n" + "\n".join(f"- {f}" for f in FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
