"""Rows and verdicts: each configuration's score, interval, rank, and its comparison with its
baseline, stated as one sentence that names the test that decides.

Non-goals: the tests themselves (see :mod:`harness.stats` and :mod:`harness.analysis.examples`).
"""
from __future__ import annotations

from .examples import ExampleTests
from .model import NO_DECODER, AnalysisParams, BenchmarkReport, Config, Row, finite, metric_decimals
from .pairing import pair_baseline
from ..stats import format_p

def describe_tests(row: Row, params: AnalysisParams) -> str:
    parts = []
    if row.test == "seeds":
        parts.append(f"paired permutation over {row.seeds_paired} seeds {format_p(row.p_seeds_perm)}")
        if finite(row.p_seeds_t):
            parts.append(f"paired t-test {format_p(row.p_seeds_t)}")
    elif row.test == "bootstrap":
        parts.append(f"paired bootstrap {format_p(row.p_bootstrap)}")
        if finite(row.p_ar):
            parts.append(f"approximate randomisation {format_p(row.p_ar)}")
    elif row.test == "mcnemar":
        b, c = row.mcnemar_bc or (0, 0)
        parts.append(f"McNemar exact {format_p(row.p_mcnemar)}, {c} examples fixed and {b} broken")
    return "; ".join(parts)


def verdict(row: Row, params: AnalysisParams, decimals: int) -> str:
    m, base = row.metric, row.baseline
    if base is None or not finite(row.delta):
        return ""
    d = row.delta
    # 0-100 scores: one decimal, as sacrebleu prints (two for gaps under 0.1); fractions: three
    digits = 3 if decimals > 2 else (1 if abs(d) >= 0.1 else 2)
    tests = describe_tests(row, params)
    if d == 0:
        head = f"{row.config.label} scores the same {m.title} as {base.label}"
    else:
        direction = "higher" if d > 0 else "lower"
        better = (d > 0) == m.higher_is_better
        head = (f"{row.config.label} scores {abs(d):.{digits}f} {m.title} {direction} "
                f"({'better' if better else 'worse'}) than {base.label}")
    if row.p is None:
        return f"{head}; no paired test was possible ({row.test or 'no per-example statistics'})."
    sig = f"significant at {params.alpha:g}" if row.significant else f"not significant at {params.alpha:g}"
    text = f"{head} ({tests}): {sig}."
    if row.test == "seeds" and row.min_p_perm is not None and row.min_p_perm >= params.alpha:
        text += (f" With {row.seeds_paired} seeds the permutation test cannot go below p = {row.min_p_perm:.3g};"
                 " run more seeds for a decision.")
    return text


def fill_rows(br: BenchmarkReport, configs: dict[tuple, Config], base_dec, base_strat, ex: ExampleTests,
               params: AnalysisParams) -> None:
    import numpy as np

    from ..stats import seed_tests, t_interval

    for m in br.metrics:
        rows = []
        dec = metric_decimals([v for cfg in br.configs for c in cfg.cells for k, v in c.values.items() if k == m.label])
        for cfg in br.configs:
            row = Row(cfg, m)
            vals_by_key = {c.key: c.values.get(m.label) for c in cfg.cells if finite(c.values.get(m.label))}
            seed_vals = [c.values.get(m.label) for c in cfg.cells if finite(c.values.get(m.label))]
            row.n_seeds = len(vals_by_key)
            if seed_vals:
                row.value = float(np.mean(seed_vals))
            distinct = list(vals_by_key.values())
            if len(distinct) >= 2:
                row.std = float(np.std(distinct, ddof=1))
                row.ci_low, row.ci_high = t_interval(distinct)
                row.ci_method = f"t over {len(distinct)} seeds"
            elif len(distinct) == 1:
                iv = ex.interval.get((m.label, next(iter(vals_by_key))))
                if iv is not None:
                    row.ci_low, row.ci_high = iv
                    row.ci_method = f"bootstrap over examples ({params.bootstrap_samples})"
            base = pair_baseline(cfg, configs, base_dec, base_strat)
            row.is_baseline = base is None and ((cfg.decoder == base_dec or cfg.decoder == NO_DECODER)
                                                and cfg.strategy == base_strat)
            row.baseline = base
            if base is not None and row.value is not None:
                paired = [(c, base.cell_for_seed(c.seed)) for c in cfg.cells]
                paired = [(c, b) for c, b in paired
                          if b is not None and finite(c.values.get(m.label)) and finite(b.values.get(m.label))]
                row.seeds_paired = len(paired)
                if paired:
                    a = [c.values[m.label] for c, _ in paired]
                    bvals = [b.values[m.label] for _, b in paired]
                    row.delta = float(np.mean(np.array(a) - np.array(bvals)))
                    for c, b in paired:
                        entry = {"seed": c.seed, "value": c.values[m.label], "baseline": b.values[m.label]}
                        entry.update(ex.pair.get((m.label, c.key, b.key), {}))
                        row.per_seed.append(entry)
                    distinct_pairs = {(c.key, b.key) for c, b in paired}
                    varies = len({c.key for c, _ in paired}) > 1 or len({b.key for _, b in paired}) > 1
                    if len(paired) >= 2 and varies:
                        st = seed_tests(a, bvals)
                        row.p_seeds_perm, row.p_seeds_t, row.min_p_perm = st.p_perm, st.p_t, st.min_p_perm
                        row.test, row.p = "seeds", st.p_perm
                    if len(distinct_pairs) == 1:
                        c, b = paired[0]
                        p = ex.pair.get((m.label, c.key, b.key))
                        if p:
                            row.p_bootstrap = p.get("p_bootstrap")
                            row.p_ar = p.get("p_ar")
                            row.p_mcnemar = p.get("p_mcnemar")
                            row.mcnemar_bc = p.get("mcnemar_bc")
                            if row.test != "seeds":
                                if row.p_mcnemar is not None:
                                    row.test, row.p = "mcnemar", row.p_mcnemar
                                else:
                                    row.test, row.p = "bootstrap", row.p_bootstrap
                        elif c.key == b.key and row.test != "seeds":
                            row.test, row.p = "identical predictions", 1.0
                    if row.p is not None:
                        # sacrebleu's bootstrap p-value counts resamples whose gap exceeds the observed
                        # one, which is near 0 when both scores are equal in every resample (e.g. BLEU 0
                        # for both): an observed gap of exactly zero is never a significant difference.
                        row.significant = bool(row.p < params.alpha) and row.delta != 0
                    row.verdict = verdict(row, params, dec)
            rows.append(row)
        ranked = sorted([r for r in rows if finite(r.value)], key=lambda r: r.value,
                        reverse=m.higher_is_better)
        for i, r in enumerate(ranked, 1):
            r.rank = i
        if ranked:
            ranked[0].best = True
        br.rows[m.label] = rows
