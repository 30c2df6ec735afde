"""Rows and verdicts: each configuration's score, interval and rank, and its comparison with its
baseline stated as one sentence that names the test that decides.

Which test decides (one rule, stated in every verdict and in the report's Methods):

1. Outputs identical to the baseline's on every example (of every seed): no test; the verdict
   says "identical outputs" and is never significant.
2. Two or more paired seeds whose predictions differ: the exact sign-flip permutation test over
   seeds (the paired t-test, a two-level seeds × examples bootstrap interval of the difference and
   a seeds-needed estimate are shown beside it). Per-seed tests over examples are listed per
   seed, never pooled.
3. Otherwise, over examples: McNemar's exact test for accuracy; approximate randomisation for any
   other metric with per-example statistics; a two-sided paired bootstrap when only that exists
   (a metric judged by closeness to a target).

The other tests on the same data are printed beside the deciding one; when one of them falls on
the other side of alpha, the verdict says that the tests disagree. With
``multiple_comparisons: holm`` the Holm-adjusted p-value (over every comparison of the report)
decides; the adjusted values are shown either way. Non-goals: the tests themselves (see
:mod:`harness.stats.significance` and :mod:`harness.report.analysis.examples`).
"""
from __future__ import annotations

from ...stats.significance import format_p, min_ar_p, p_number
from .examples import ExampleTests
from .model import NO_DECODER, TESTS, AnalysisParams, BenchmarkReport, Config, Row, finite, metric_decimals
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

    from ...stats.significance import clip_interval, seed_tests, seeds_needed, t_interval, two_level_bootstrap

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
    for c, b in paired:
        entry = {"seed": c.seed, "value": c.values[m.label], "baseline": b.values[m.label],
                 "differ": ex.differ.get((c.key, b.key)) if c.key != b.key else (0, c.n or 0)}
        entry.update(ex.pair.get((m.label, c.key, b.key), {}))
        row.per_seed.append(entry)

    # sacrebleu and confusion-matrix metrics read only the 1-best outputs; any other metric may read
    # the n-best lists too (oracles, list diversity, a plugin's example_scores)
    one_best_only = m.scorer is not None or m.confusion is not None

    def same(c, b) -> bool:
        # the same cell, or outputs (and lists, where the metric reads them) equal on every example:
        # the metric is then equal by construction
        if c.key == b.key:
            return True
        d = ex.differ.get((c.key, b.key))
        return d is not None and d[0] == 0 and (one_best_only or (c.key, b.key) in ex.same_lists)
    if all(same(c, b) for c, b in paired):
        row.identical = True
        row.test = "identical"
        return row

    distinct_pairs = {(c.key, b.key) for c, b in paired}
    varies = len({c.key for c, _ in paired}) > 1 or len({b.key for _, b in paired}) > 1
    if len(paired) >= 2 and varies:
        st = seed_tests(a, bvals)
        row.p_seeds_perm, row.p_seeds_t, row.min_p_perm = st.p_perm, st.p_t, st.min_p_perm
        row.test, row.p = "seeds", st.p_perm
        d = a - bvals
        row.seed_sd = float(np.std(d, ddof=1))
        row.seeds_needed = seeds_needed(row.delta, row.seed_sd, params.alpha, params.power)
        me = params.min_effect.get(m.label) if isinstance(params.min_effect, dict) else params.min_effect
        if me is not None:
            row.min_effect = float(me)
            row.seeds_needed_min_effect = seeds_needed(float(me), row.seed_sd, params.alpha, params.power)
        scorer = ex.scorers.get(m.label)
        keys = [(c.key, b.key) for c, b in paired]
        if scorer is not None and all((m.label, k) in ex.stats for pair in keys for k in pair):
            from ...stats.significance import scores_from_sums

            tl = two_level_bootstrap([ex.stats[(m.label, s)] for s, _ in keys], [ex.stats[(m.label, b)] for _, b in keys],
                                     lambda S: scores_from_sums(scorer, S), n_samples=params.bootstrap_samples,
                                     seed=params.seed)
            row.delta_ci_low, row.delta_ci_high = tl.low, tl.high
    elif len(distinct_pairs) == 1:
        c, b = paired[0]
        row.differ = ex.differ.get((c.key, b.key))
        p = ex.pair.get((m.label, c.key, b.key))
        if p:
            row.p_bootstrap, row.p_ar = p.get("p_bootstrap"), p.get("p_ar")
            row.p_mcnemar, row.mcnemar_bc = p.get("p_mcnemar"), p.get("mcnemar_bc")
            row.bootstrap_rule = p.get("bootstrap_rule", "")
            if row.p_mcnemar is not None:
                row.test, row.p = "mcnemar", row.p_mcnemar
            elif row.p_ar is not None:
                row.test, row.p = "ar", row.p_ar
            else:
                row.test, row.p = "bootstrap", row.p_bootstrap
    return row


# ----------------------------------------------------------------------------- verdicts


def finalize(benchmarks: list[BenchmarkReport], params: AnalysisParams) -> None:
    """Holm-adjust every deciding p-value of the report, decide, and write each verdict."""
    from ...stats.significance import holm

    rows = [r for b in benchmarks for m in b.metrics for r in b.rows.get(m.label, [])]
    tested = [r for r in rows if r.p is not None]
    for r, adj in zip(tested, holm([r.p for r in tested])):
        r.p_holm = adj
    family = len(tested)
    for b in benchmarks:
        for m in b.metrics:
            dec = decimals_of(b, m.label)
            for r in b.rows.get(m.label, []):
                if r.identical:
                    r.significant = False
                elif r.p is not None:
                    p = r.p_holm if params.multiple_comparisons == "holm" else r.p
                    # an observed difference of exactly zero is never a significant one
                    r.significant = bool(p < params.alpha) and r.delta != 0
                    r.disagreement = _disagreement(r, params)
                    r.undecidable = _undecidable(r, params)
                r.verdict = verdict(r, params, dec, family)


def _undecidable(row: Row, params: AnalysisParams) -> str:
    """Randomisation over examples where so few outputs differ that no p below alpha exists."""
    if row.test != "ar" or row.delta == 0 or not row.differ or row.differ[0] == 0:
        return ""
    k, n = row.differ
    floor = min_ar_p(k)
    if floor < params.alpha:
        return ""
    return (f"Only {k} of {n} outputs differ, so no randomisation can give p below {p_number(floor, floor)} "
            f"(2 of the 2^{k} swaps reproduce the observed gap): the data cannot decide.")


def _others(row: Row) -> list[tuple[str, float]]:
    """The tests shown beside the deciding one, on the same data: (name, p)."""
    out = []
    if row.test == "seeds":
        if finite(row.p_seeds_t):
            out.append(("the paired t-test over seeds", row.p_seeds_t))
        return out
    for key, p in (("mcnemar", row.p_mcnemar), ("ar", row.p_ar), ("bootstrap", row.p_bootstrap)):
        if key != row.test and finite(p):
            out.append((_bootstrap_name(row) if key == "bootstrap" else TESTS[key], p))
    return out


def _bootstrap_name(row: Row) -> str:
    return "sacrebleu's paired bootstrap" if row.bootstrap_rule == "sacrebleu" else "the paired bootstrap"


def _disagreement(row: Row, params: AnalysisParams) -> str:
    a = params.alpha
    # tests disagree when their raw p-values fall on different sides of alpha (a Holm adjustment
    # that overturns the decision is not a disagreement between tests; the verdict shows it)
    below = row.p is not None and row.p < a
    flips = [(name, p) for name, p in _others(row) if (p < a) != below]
    if not flips:
        return ""
    name, p = flips[0]
    if below:
        return f"The tests disagree: {name} gives {format_p(p)}, not below {a:g}."
    text = f"The tests disagree: {name} gives {format_p(p)}, below {a:g}"
    if row.test == "seeds" and row.min_p_perm is not None and row.min_p_perm >= a:
        text += f", while the permutation test cannot go below {p_number(row.min_p_perm, row.min_p_perm)} with {row.seeds_paired} seeds"
    return text + "."


def describe_tests(row: Row, params: AnalysisParams, family: int = 0, decimals: int = 2) -> str:
    """The parenthesis of a verdict: the deciding test first, then the others, then what differs."""
    holm_decides = params.multiple_comparisons == "holm"
    parts = []
    if row.test == "seeds":
        lead = f"sign-flip permutation over {row.seeds_paired} seeds {format_p(row.p_seeds_perm, row.min_p_perm)}"
    elif row.test == "mcnemar":
        b, c = row.mcnemar_bc or (0, 0)
        lead = f"McNemar's exact test {format_p(row.p_mcnemar)}, {c} examples fixed and {b} broken"
    elif row.test == "ar":
        lead = f"approximate randomisation {format_p(row.p_ar)}"
    elif row.test == "pooled":  # the note's arguments (harness.report.analysis.arguments): pooled across datasets
        lead = f"{TESTS['pooled']} {format_p(row.p)}"
    else:
        lead = f"{_bootstrap_name(row).removeprefix('the ')} {format_p(row.p_bootstrap)}"
    if family > 1 and row.p_holm is not None:
        holm_text = f"Holm-adjusted {format_p(row.p_holm)} over {family} comparisons"
        parts.append(f"{lead}, {holm_text}, decides" if holm_decides else f"{lead} decides")
        if not holm_decides:
            parts.append(holm_text)
    else:
        parts.append(f"{lead} decides")
    parts += [f"{name.removeprefix('the ')} {format_p(p)}" for name, p in _others(row)]
    if row.test == "seeds" and finite(row.delta_ci_low):
        parts.append(f"two-level bootstrap 95% CI of the difference [{row.delta_ci_low:.{decimals}f}, "
                     f"{row.delta_ci_high:.{decimals}f}]")
    if row.differ and row.differ[0] < row.differ[1]:
        unit = "segments" if row.config.task == "translation" else "examples"
        parts.append(f"outputs differ on {row.differ[0]} of {row.differ[1]} {unit}")
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
        direction = "higher" if d > 0 else "lower"
        better = m.better(row.value, row.value - d) if m.direction == "target" else (d > 0) == m.higher_is_better
        head = (f"{row.config.label} scores {abs(d):.{digits}f} {m.title} {direction} "
                f"({'better' if better else 'worse'}) than {base.label}")
    if row.identical:
        scope = "every seed's examples" if row.seeds_paired > 1 else (
            f"all {row.per_seed[0]['differ'][1]} examples" if row.per_seed and row.per_seed[0].get("differ") else "every example")
        return f"{row.config.label} produces identical outputs to {base.label} on {scope}: no test, not a difference."
    if row.p is None:
        return f"{head}; no paired test was possible ({row.test or 'no per-example statistics'})."
    sig = f"significant at {params.alpha:g}" if row.significant else f"not significant at {params.alpha:g}"
    text = f"{head} ({describe_tests(row, params, family, decimals)}): {sig}."
    if row.disagreement:
        text += " " + row.disagreement
    if row.undecidable:
        text += " " + row.undecidable
    if row.test == "seeds":
        if row.min_p_perm is not None and row.min_p_perm >= params.alpha and not row.disagreement:
            text += (f" With {row.seeds_paired} seeds the permutation test cannot go below "
                     f"p = {p_number(row.min_p_perm, row.min_p_perm)}.")
        text += _seeds_sentence(row, params, decimals)
    return text


def _seeds_sentence(row: Row, params: AnalysisParams, decimals: int) -> str:
    """' About N seeds would detect ...': the power of a paired t-test over seeds, from the observed sd."""
    if row.seed_sd is None or not finite(row.seed_sd):
        return ""
    pw = f"{params.power:.0%}"
    digits = max(decimals, 1)
    if row.seed_sd == 0:
        return " Every seed shows the same difference, so no seeds-needed estimate."
    def count(n: int | None) -> str:
        return "more than 10,000" if n is None else f"about {n}"

    parts = []
    if row.delta != 0:
        parts.append(f"{count(row.seeds_needed)} seeds would detect the observed difference ({abs(row.delta):.{digits}f})")
    if row.min_effect is not None:
        n = row.seeds_needed_min_effect
        parts.append(f"{count(n)} {'seeds would detect ' if not parts else ''}the configured difference "
                     f"({row.min_effect:.{digits}f})")
    if not parts:
        return ""
    text = " and ".join(parts)
    return (f" {text[0].upper()}{text[1:]} at {params.alpha:g} with {pw} power (paired t-test over seeds, "
            f"seed-to-seed sd of the difference {row.seed_sd:.{digits}f}).")
