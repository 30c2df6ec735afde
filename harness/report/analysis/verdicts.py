"""Rows and verdicts: each configuration's score, interval and rank, and its comparison with its
baseline stated as one sentence that names the test that decides.

Which test decides (one rule, stated in every verdict and in the report's Methods; why each was
chosen: :mod:`harness.stats.decide` and docs/statistics.md):

1. Outputs identical to the baseline's on every example (of every seed): no test; the verdict
   says "identical outputs" and is never significant.
2. Two or more paired evaluations (seeds) whose predictions differ: the seeds × examples t-test
   (:mod:`harness.stats.crossed`), which counts the seed-to-seed and the test set's variance; with no
   per-example statistics, the paired t-test over seeds. The paired t-test and the sign-flip
   permutation over seeds (which treat the test set as fixed) and each seed's own test over its
   examples are shown beside it, never pooled. A deterministic decoder over one checkpoint is one
   evaluation, however many seeds share its cell.
3. Otherwise, over examples: McNemar's exact test for accuracy; approximate randomisation for any
   other metric with per-example statistics; a two-sided paired bootstrap when only that exists
   (a metric judged by closeness to a target).

Every verdict is one of :data:`harness.stats.decide.VERDICTS`: better / worse (significant), no
significant difference (with the difference the test had the power to see), the data cannot
decide (why, and what would), identical outputs. The other tests on the same data are printed
beside the deciding one; McNemar's test and approximate randomisation, which both hold their size,
say so when they fall on different sides of alpha; sacrebleu's paired bootstrap is shown for
comparison and never contradicts. With ``multiple_comparisons: holm`` the Holm-adjusted p-value
decides; the adjusted values are shown either way, with the family named. Non-goals: the tests
themselves (see :mod:`harness.stats.significance`, :mod:`harness.stats.crossed` and
:mod:`harness.report.analysis.examples`).
"""
from __future__ import annotations

from ...stats.decide import TESTS
from ...stats.significance import format_p
from .examples import ExampleTests
from .model import NO_DECODER, AnalysisParams, BenchmarkReport, Config, Row, finite, metric_decimals
from .pairing import pair_baseline


def decimals_of(br: BenchmarkReport, label: str) -> int:
    """Digits shown for a metric of a benchmark: the plugin's, else from the scale of its values."""
    m = next((x for x in br.metrics if x.label == label), None)
    if m is not None and m.decimals is not None:
        return m.decimals
    return metric_decimals([c.values.get(label) for cfg in br.configs for c in cfg.cells])


def fill_rows(br: BenchmarkReport, configs: dict[tuple, Config], base_dec, base_strat, ex: ExampleTests,
              params: AnalysisParams) -> None:
    """Rows, intervals, tests and ranks of one benchmark (verdict sentences: :func:`finalize`)."""
    from ...stats.ranking import competition_ranks

    for m in br.metrics:
        dec = decimals_of(br, m.label)
        rows = [_row(cfg, m, configs, base_dec, base_strat, ex, params, br.base_model) for cfg in br.configs]
        ranks = competition_ranks([r.value for r in rows], m.direction, m.target, decimals=dec)
        for r, rank in zip(rows, ranks):
            r.rank = rank
            r.best = rank == 1
        br.rows[m.label] = rows


def _row(cfg: Config, m, configs, base_dec, base_strat, ex: ExampleTests, params: AnalysisParams,
         base_model: str | None = None) -> Row:
    import numpy as np

    from ...stats.crossed import crossed_test, seeds_needed_range
    from ...stats.decide import (decide, decide_one_run, decide_seeds, decide_seeds_only, identical, mcnemar_mde,
                          randomisation_mde, t_n_needed)
    from ...stats.significance import clip_interval, improvement, seed_tests, t_interval

    row = Row(cfg, m)
    vals_by_key = {c.key: c.values.get(m.label) for c in cfg.cells if finite(c.values.get(m.label))}
    seed_vals = [c.values.get(m.label) for c in cfg.cells if finite(c.values.get(m.label))]
    row.n_seeds = len(vals_by_key)
    if seed_vals:
        row.value = float(np.mean(seed_vals))
    elif cfg.cells:
        row.na_reason = (f"n/a: {cfg.decoder} returns one hypothesis per source, and {m.title} is a property of "
                         "n-best lists" if m.scope == "lists" else f"n/a: {m.title} is undefined for these outputs")
    distinct = list(vals_by_key.values())
    if len(distinct) >= 2:
        row.std = float(np.std(distinct, ddof=1))
        lo, hi = t_interval(distinct)
        row.ci_low, row.ci_high, row.ci_clipped = clip_interval(lo, hi, m.value_range)
        row.ci_kind = "t"
        row.ci_method = f"t over {len(distinct)} seeds" + (", cut to the metric's range" if row.ci_clipped else "")
    elif len(distinct) == 1:
        iv = ex.interval.get((m.label, next(iter(vals_by_key))))
        if iv is not None:
            row.ci_low, row.ci_high, row.ci_clipped = clip_interval(iv[0], iv[1], m.value_range)
            row.ci_kind = "bootstrap"
            row.ci_method = f"bootstrap over examples ({params.bootstrap_samples} resamples)"
    base = pair_baseline(cfg, configs, base_dec, base_strat, base_model)
    row.is_baseline = base is None and ((cfg.decoder == base_dec or cfg.decoder == NO_DECODER)
                                        and cfg.strategy == base_strat and base_model in (None, cfg.model))
    row.baseline = base
    if base is None or row.value is None:
        return row
    paired = [(c, base.cell_for_seed(c.seed)) for c in cfg.cells]
    paired = [(c, b) for c, b in paired if b is not None and finite(c.values.get(m.label)) and finite(b.values.get(m.label))]
    row.seeds_paired = len(paired)
    if not paired:
        return row
    a = np.array([c.values[m.label] for c, _ in paired])
    bvals = np.array([b.values[m.label] for _, b in paired])
    row.delta = float(np.mean(a - bvals))
    # one entry per distinct pair of cells: a deterministic decoder over one checkpoint is one
    # evaluation, however many seeds share its cell, and is listed once with its seeds
    groups: dict[tuple[str, str], list] = {}
    for c, b in paired:
        groups.setdefault((c.key, b.key), []).append((c, b))
    for (ck, bk), members in groups.items():
        c, b = members[0]
        entry = {"seed": c.seed, "seeds": [x.seed for x, _ in members], "value": c.values[m.label],
                 "baseline": b.values[m.label], "differ": ex.differ.get((ck, bk)) if ck != bk else (0, c.n or 0)}
        entry.update({k: v for k, v in ex.pair.get((m.label, ck, bk), {}).items() if k != "contrib"})
        row.per_seed.append(entry)
    row.seeds_paired = len(groups)
    pairs = list(groups)

    # sacrebleu and confusion-matrix metrics read only the 1-best outputs; any other metric may read
    # the n-best lists too (oracles, list diversity, a plugin's example_scores)
    one_best_only = m.scorer is not None or m.confusion is not None

    def same(ck, bk) -> bool:
        # the same cell, or outputs (and lists, where the metric reads them) equal on every example:
        # the metric is then equal by construction
        if ck == bk:
            return True
        d = ex.differ.get((ck, bk))
        return d is not None and d[0] == 0 and (one_best_only or (ck, bk) in ex.same_lists)
    if all(same(ck, bk) for ck, bk in pairs):
        row.identical = True
        row.test = "identical"
        row.decision = identical(alpha=params.alpha)
        return row

    me = params.min_effect.get(m.label) if isinstance(params.min_effect, dict) else params.min_effect
    row.min_effect = float(me) if me is not None else None
    sign = -1.0 if m.direction == "lower" else 1.0  # contributions are system - baseline; improvement is signed
    improvement_delta = sign * row.delta if m.direction != "target" else float(
        np.mean(improvement(a, bvals, m.direction, m.target)))
    if len(pairs) >= 2:
        st = seed_tests(a, bvals)
        row.p_seeds_perm, row.p_seeds_t, row.min_p_perm = st.p_perm, st.p_t, st.min_p_perm
        d = a - bvals
        row.seed_sd = float(np.std(d, ddof=1))
        contrib = [ex.pair.get((m.label, ck, bk), {}).get("contrib") for ck, bk in pairs]
        if m.direction != "target" and all(x is not None for x in contrib):
            c = crossed_test(sign * np.vstack(contrib), alpha=params.alpha)
            row.crossed = c
            row.test, row.p = "crossed", c.p
            row.delta_ci_low, row.delta_ci_high = sorted((sign * c.low, sign * c.high))
            row.decision = decide_seeds(c, delta=improvement_delta, alpha=params.alpha, power=params.power,
                                        min_effect=row.min_effect)
            row.mde = row.decision.mde
            if row.delta != 0:
                row.seeds_need = seeds_needed_range(row.delta, c, params.alpha, params.power)
                row.seeds_needed = row.seeds_need.estimate
            if row.min_effect is not None:
                row.seeds_need_min_effect = seeds_needed_range(row.min_effect, c, params.alpha, params.power)
                row.seeds_needed_min_effect = row.seeds_need_min_effect.estimate
        else:
            row.test, row.p = "seeds_t", st.p_t
            row.decision = decide_seeds_only(st.p_t, delta=improvement_delta, seeds=len(pairs), alpha=params.alpha,
                                             power=params.power, sd=row.seed_sd, min_effect=row.min_effect)
            row.mde = row.decision.mde
            if row.min_effect is not None and row.seed_sd:
                row.seeds_needed_min_effect = t_n_needed(row.min_effect, row.seed_sd, params.alpha, params.power)
            if row.delta != 0 and row.seed_sd:
                row.seeds_needed = t_n_needed(row.delta, row.seed_sd, params.alpha, params.power)
    else:
        ck, bk = pairs[0]
        row.differ = ex.differ.get((ck, bk))
        p = ex.pair.get((m.label, ck, bk))
        if p and any(p.get(k) is not None for k in ("p_bootstrap", "p_ar", "p_mcnemar")):
            row.p_bootstrap, row.p_ar = p.get("p_bootstrap"), p.get("p_ar")
            row.p_mcnemar, row.mcnemar_bc = p.get("p_mcnemar"), p.get("mcnemar_bc")
            row.bootstrap_rule = p.get("bootstrap_rule", "")
            row.differ_stats = p.get("differ_stats")
            n = (row.differ or (0, len(p["contrib"]) if p.get("contrib") is not None else 0))[1]
            scale = m.scale if m.confusion is not None else 1.0
            if row.p_mcnemar is not None:
                row.test, row.p = "mcnemar", row.p_mcnemar
                disc = sum(row.mcnemar_bc or (0, 0))
                row.mde = mcnemar_mde(disc, n, params.alpha, params.power, scale=scale)
                row.decision = decide_one_run(test="mcnemar", p=row.p, delta=improvement_delta, differing=disc, n=n,
                                              what="are right for one system and wrong for the other",
                                              alpha=params.alpha, mde=row.mde, power=params.power,
                                              min_effect=row.min_effect)
            elif row.p_ar is not None:
                row.test, row.p = "ar", row.p_ar
                k = row.differ_stats if row.differ_stats is not None else (row.differ or (0, 0))[0]
                if p.get("contrib") is not None:
                    row.mde = randomisation_mde(p["contrib"], params.alpha, params.power)
                row.decision = decide_one_run(test="ar", p=row.p, delta=improvement_delta, differing=k, n=n,
                                              what=f"differ in their {m.title} statistics",
                                              alpha=params.alpha, mde=row.mde, power=params.power,
                                              min_effect=row.min_effect)
            else:
                row.test, row.p = "bootstrap", row.p_bootstrap
                row.decision = decide(test="bootstrap", p=row.p, delta=improvement_delta, alpha=params.alpha,
                                      power=params.power, min_effect=row.min_effect)
    if row.decision is None:
        row.decision = decide(test=row.test or "", p=None, delta=improvement_delta, alpha=params.alpha,
                              floor_why="no paired test was possible: "
                              f"{m.title} has no per-example statistics and there is one evaluation per arm",
                              floor_would="several seeds per arm would")
    return row


# ----------------------------------------------------------------------------- verdicts


def finalize(benchmarks: list[BenchmarkReport], params: AnalysisParams, scope: str = "this report") -> str:
    """Holm-adjust every deciding p-value of ``benchmarks``, decide, and write each verdict. Returns
    the Holm family's description (which comparisons the adjustment is over); ``scope`` names
    where the family lives (a section that adjusts over its own comparisons names itself)."""
    from ...stats.decide import with_p
    from ...stats.significance import holm

    rows = [r for b in benchmarks for m in b.metrics for r in b.rows.get(m.label, [])]
    tested = [r for r in rows if r.p is not None]
    for r, adj in zip(tested, holm([r.p for r in tested])):
        r.p_holm = adj
    family = len(tested)
    family_text = holm_family(benchmarks, tested, scope)
    for b in benchmarks:
        for m in b.metrics:
            dec = decimals_of(b, m.label)
            for r in b.rows.get(m.label, []):
                if r.decision is not None and r.p is not None and params.multiple_comparisons == "holm":
                    r.decision = with_p(r.decision, r.p_holm)
                if r.identical:
                    r.significant = False
                elif r.decision is not None and r.p is not None:
                    r.significant = r.decision.significant
                    r.disagreement = _disagreement(r, params)
                    r.undecidable = r.decision.why if r.decision.kind == "cannot_decide" else ""
                r.holm_family = family_text
                r.holm_scope = scope
                r.verdict = verdict(r, params, dec, family)
    return family_text


def holm_family(benchmarks: list[BenchmarkReport], tested: list[Row], scope: str = "this report") -> str:
    """Which comparisons Holm's adjustment is over, in words: re-rendering against another baseline
    changes the family, and the report says so rather than changing it silently."""
    if not tested:
        return ""
    ids = {id(r) for r in tested}
    names = [b.name for b in benchmarks if any(id(r) in ids for rows in b.rows.values() for r in rows)]
    bases = list(dict.fromkeys(r.baseline.label for r in tested if r.baseline is not None))
    return (f"the {len(tested)} tested comparisons of {scope} ({', '.join(names)}; every metric; each "
            f"configuration against its baseline: {', '.join(bases)})")


# the tests beside the deciding one that may say "the tests disagree": both hold their size on the
# same null (benchmarks/calibration.py); sacrebleu's paired bootstrap does not (its false-positive
# rate under the null is above alpha), so it is shown for comparison and never contradicts
_CALIBRATED = ("mcnemar", "ar")


def _others(row: Row) -> list[tuple[str, str, float]]:
    """The tests shown beside the deciding one, on the same data: (key, name, p)."""
    out = []
    if row.test in ("crossed", "seeds_t"):
        if row.test == "crossed" and finite(row.p_seeds_t):
            out.append(("seeds_t", "the paired t-test over seeds", row.p_seeds_t))
        if finite(row.p_seeds_perm):
            out.append(("seeds_perm", f"the sign-flip permutation over {row.seeds_paired} seeds", row.p_seeds_perm))
        return out
    for key, p in (("mcnemar", row.p_mcnemar), ("ar", row.p_ar), ("bootstrap", row.p_bootstrap)):
        if key != row.test and finite(p):
            out.append((key, _bootstrap_name(row) if key == "bootstrap" else TESTS[key], p))
    return out


def _bootstrap_name(row: Row) -> str:
    return ("sacrebleu's paired bootstrap (--paired-bs, shown for comparison: it does not decide)"
            if row.bootstrap_rule == "sacrebleu" else "the two-sided paired bootstrap")


def _disagreement(row: Row, params: AnalysisParams) -> str:
    a = params.alpha
    if row.test not in _CALIBRATED or row.decision is None or row.decision.kind == "cannot_decide":
        return ""
    # tests disagree when their raw p-values fall on different sides of alpha (a Holm adjustment
    # that overturns the decision is not a disagreement between tests; the verdict shows it)
    below = row.p is not None and row.p < a
    flips = [(name, p) for key, name, p in _others(row) if key in _CALIBRATED and (p < a) != below]
    if not flips:
        return ""
    name, p = flips[0]
    return f"The tests disagree: {name} gives {format_p(p)}, {'not ' if below else ''}below {a:g}."


def describe_tests(row: Row, params: AnalysisParams, family: int = 0, decimals: int = 2) -> str:
    """The parenthesis of a verdict: the deciding test first, then the others, then what differs."""
    holm_decides = params.multiple_comparisons == "holm"
    parts = []
    c = row.crossed
    if row.test == "crossed" and c is not None:
        lead = f"seeds × examples t-test ({c.seeds} seeds, {c.n} examples, df {c.df:.1f}) {format_p(row.p)}"
    elif row.test == "seeds_t":
        lead = f"paired t-test over {row.seeds_paired} seeds {format_p(row.p)}"
    elif row.test == "mcnemar":
        b, cc = row.mcnemar_bc or (0, 0)
        lead = f"McNemar's exact test {format_p(row.p_mcnemar)}, {cc} examples fixed and {b} broken"
    elif row.test == "ar":
        floor = row.decision.floor if row.decision is not None else None
        lead = f"approximate randomisation {format_p(row.p_ar, floor)}"
    elif row.test == "datasets_t":  # the note's arguments (harness.report.analysis.arguments): pooled
        k = int(row.decision.df) + 1 if row.decision is not None and row.decision.df is not None else None
        lead = (f"t-test over {k} datasets {format_p(row.p)}" if k else f"{TESTS['datasets_t']} {format_p(row.p)}")
    else:
        lead = f"{_bootstrap_name(row).removeprefix('the ')} {format_p(row.p_bootstrap)}"
    if family > 1 and row.p_holm is not None:
        bases = row.holm_family.split("against its baseline: ")[-1].rstrip(")") if row.holm_family else ""
        holm_text = f"Holm-adjusted {format_p(row.p_holm)} over the {family} comparisons of {row.holm_scope}" + (
            f" (against {bases})" if bases else "")
        parts.append(f"{lead}, {holm_text}, decides" if holm_decides else f"{lead} decides")
        if not holm_decides:
            parts.append(holm_text)
    else:
        parts.append(f"{lead} decides")
    others = [f"{name.removeprefix('the ')} {format_p(p, row.min_p_perm if k == 'seeds_perm' else None)}"
              for k, name, p in _others(row)]
    if row.test == "crossed" and others:
        parts.append(" and ".join(others) + " (over seeds only: they take the test set as fixed)")
    else:
        parts += others
    if row.test == "crossed" and finite(row.delta_ci_low):
        parts.append(f"95% CI of the difference [{row.delta_ci_low:.{decimals}f}, {row.delta_ci_high:.{decimals}f}] "
                     "(seeds × examples)")
    if row.differ and row.differ[0] < row.differ[1]:
        unit = "segments" if row.config.task == "translation" else "examples"
        parts.append(f"outputs differ on {row.differ[0]} of {row.differ[1]} {unit}")
        if row.differ_stats is not None and row.differ_stats != row.differ[0]:
            parts.append(f"{row.differ_stats} differ in their {row.metric.title} statistics")
    return "; ".join(parts)


def verdict(row: Row, params: AnalysisParams, decimals: int, family: int = 0) -> str:
    m, base = row.metric, row.baseline
    if base is None or not finite(row.delta):
        return ""
    d = row.delta
    # 0-100 scores: one decimal, as sacrebleu prints (two for gaps under 0.1); fractions: three
    digits = 3 if decimals > 2 else (1 if abs(d) >= 0.1 else 2)
    if d == 0:
        head = f"{row.config.label} scores the same {m.title} as {base.label}"
    else:
        head = (f"{row.config.label} scores {abs(d):.{digits}f} {m.title} {'higher' if d > 0 else 'lower'} "
                f"than {base.label}")
    if row.identical:
        scope = "every seed's examples" if row.seeds_paired > 1 else (
            f"all {row.per_seed[0]['differ'][1]} examples" if row.per_seed and row.per_seed[0].get("differ") else "every example")
        return f"{row.config.label} produces identical outputs to {base.label} on {scope}: no test, not a difference."
    dec = row.decision
    mde_digits = max(digits, 2) if decimals <= 2 else decimals
    if row.p is None or dec is None:
        return f"{head}; {dec.phrase(mde_digits) if dec is not None else 'no paired test was possible'}."
    text = f"{head} ({describe_tests(row, params, family, decimals)}): {dec.phrase(mde_digits)}."
    if row.disagreement:
        text += " " + row.disagreement
    text += _per_seed_sentence(row)
    for note in dec.notes:
        text += f" {note[0].upper()}{note[1:]}."
    if row.test in ("crossed", "seeds_t"):
        text += _seeds_sentence(row, params, decimals)
    return text


def _per_seed_sentence(row: Row) -> str:
    """The rest of the evidence over seeds: each seed's own test over its examples (never pooled)."""
    if row.test not in ("crossed", "seeds_t") or len(row.per_seed) < 2:
        return ""
    for key, name in (("p_mcnemar", "McNemar"), ("p_ar", "approximate randomisation")):
        ps = [e.get(key) for e in row.per_seed]
        if all(finite(p) for p in ps):
            return (f" Per seed, over its own examples: {name} " + ", ".join(
                "< 0.001" if p < 0.001 else f"{p:.3f}" for p in ps) + " (each seed tested alone, never pooled).")
    return ""


def _seeds_sentence(row: Row, params: AnalysisParams, decimals: int) -> str:
    """' About N seeds (between a and b ...) would detect ...': the power of the deciding test."""
    from ...stats.decide import seeds_sentence

    digits = max(decimals, 1)
    parts = []
    pw = f"{params.power:.0%}"
    if row.test == "crossed":
        said = row.decision is not None and row.decision.would.startswith("no number of seeds")
        if (row.seeds_need is not None and row.delta != 0 and not row.significant
                and not (said and row.seeds_need.never)):
            parts.append(seeds_sentence(row.seeds_need, row.crossed.n,
                                        what=f"detect a true difference of {abs(row.delta):.{digits}f} (the observed "
                                             f"one) with {pw} power"))
        # not significant: the verdict's "what would" (cannot decide) or its detectable difference (no
        # significant difference) already answers for the configured difference
        if row.seeds_need_min_effect is not None and row.significant:
            parts.append(seeds_sentence(row.seeds_need_min_effect, row.crossed.n,
                                        what=f"detect the configured difference ({row.min_effect:.{digits}f}) with "
                                             f"{pw} power"))
    else:
        if row.seed_sd is None or not finite(row.seed_sd):
            return ""
        if row.seed_sd == 0:
            return " Every seed shows the same difference, so no seeds-needed estimate."
        if row.delta != 0 and not row.significant:
            n = row.seeds_needed
            parts.append(f"{'more than 10,000' if n is None else f'about {n}'} seeds would detect a true difference of "
                         f"{abs(row.delta):.{digits}f} with {pw} power")
        if row.min_effect is not None:
            n = row.seeds_needed_min_effect
            parts.append(f"{'more than 10,000' if n is None else f'about {n}'} seeds the configured difference "
                         f"({row.min_effect:.{digits}f})")
    if not parts:
        return ""
    text = "; ".join(parts)
    return f" {text[0].upper()}{text[1:]} (at {params.alpha:g}, by the deciding test)."
