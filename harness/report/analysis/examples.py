"""Tests over examples: per-cell intervals and per-pair p-values on one benchmark's test set.

Every metric whose corpus value can be rebuilt from per-example *sufficient statistics* gets the
same treatment: a percentile bootstrap interval per cell, and for each paired comparison a paired
bootstrap, approximate randomisation (AR) and, for accuracy, McNemar's exact test. Where the
statistics come from:

- translation metrics exposing a sacrebleu scorer: sacrebleu's sentence statistics (cached on
  disk); the bootstrap p is sacrebleu's own rule, so the numbers equal ``sacrebleu --paired-bs``;
- classification metrics recomputable from a confusion matrix: one one-hot confusion cell per
  example, used only if the recomputation reproduces the plugin's recorded values;
- any metric plugin implementing ``example_scores``: (score, 1) per example, the value being their
  mean, used only if that mean reproduces the recorded value.

Which of these tests decides is chosen in :mod:`harness.report.analysis.verdicts`. Also recorded per pair:
on how many examples the two outputs differ (identical outputs get no test at all).
Non-goals: tests over seeds (see :mod:`harness.report.analysis.verdicts`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import AnalysisParams, BenchmarkReport, finite
from .pairing import paired_cells
from .runs import Predictions, StatsCache


@dataclass
class ExampleTests:
    """Per-cell intervals and per-pair p-values over examples, keyed by cell keys."""

    interval: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (metric, key) -> (lo, hi)
    pair: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (metric, sys, base) -> p's
    stats: dict[tuple[str, str], Any] = field(default_factory=dict)  # (metric, key) -> per-example statistics
    # pair[(metric, sys, base)] also holds "differ_stats" (examples whose statistics differ) and "contrib"
    # (per-example contributions to the difference, harness.stats.crossed.paired_contributions)
    scorers: dict[str, Any] = field(default_factory=dict)  # metric -> sacrebleu scorer or function of summed stats
    refs_ok: set[str] = field(default_factory=set)
    differ: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (sys, base) -> (differ, n)
    outputs: dict[str, list[str]] = field(default_factory=dict)  # key -> 1-best outputs
    same_lists: set[tuple[str, str]] = field(default_factory=set)  # (sys, base) pairs with equal n-best lists


def example_tests(br: BenchmarkReport, preds: Predictions, cache: StatsCache, params: AnalysisParams) -> ExampleTests:
    """Statistics, intervals and paired tests over examples for every metric of ``br`` that has them."""
    out = ExampleTests()
    keys = list(dict.fromkeys(c.key for cfg in br.configs for c in cfg.cells))
    rows = {k: preds(k) for k in keys}
    present = [k for k in keys if rows[k]]
    if not present:
        return out
    if br.task == "classification":
        sig = lambda r: [str(x.get("id")) for x in r]  # noqa: E731 - classification rows align by example id
        what = "were evaluated on other examples"
    else:
        sig = lambda r: [str(x.get("reference") or "") for x in r]  # noqa: E731
        what = "have different references from the others"
    first = sig(rows[present[0]])
    aligned = [k for k in present if sig(rows[k]) == first]
    if len(aligned) < len(present):
        br.notes.append(f"{len(present) - len(aligned)} cell(s) of {br.name} {what}; they get no paired tests.")
    out.refs_ok = set(aligned)
    for k in aligned:
        out.outputs[k] = [str(x.get("output") if x.get("output") is not None else "") for x in rows[k]]
    configs = {(c.benchmark, c.model, c.strategy, c.decoder): c for c in br.configs}
    pairs = [(s, b) for s, b in paired_cells(br, configs, br.base_decoder, br.base_strategy)
             if s in out.refs_ok and b in out.refs_ok]
    for s, b in pairs:
        out.differ[(s, b)] = (sum(x != y for x, y in zip(out.outputs[s], out.outputs[b])), len(out.outputs[s]))
        if all([h.get("text") for h in x.get("nbest") or []] == [h.get("text") for h in y.get("nbest") or []]
               for x, y in zip(rows[s], rows[b])):
            out.same_lists.add((s, b))
    cell_of = {c.key: c for cfg in br.configs for c in cfg.cells}
    if br.task == "classification":
        _classification_stats(br, rows, aligned, cell_of, out)
    else:
        _translation_stats(br, rows, aligned, cache, out)
    _plugin_stats(br, rows, aligned, cell_of, cache, out)
    _run_tests(br, aligned, pairs, cell_of, params, out)
    return out


# ----------------------------------------------------------------------------- per-example statistics


def _translation_stats(br, rows, aligned, cache: StatsCache, out: ExampleTests) -> None:
    import sacrebleu

    from ...api import reference_streams
    from ...stats.significance import SegmentStats
    from ...store import canonical_hash

    refs = reference_streams(rows[aligned[0]])  # one stream per reference position
    refs_hash = canonical_hash(refs)
    for m in br.metrics:
        if m.scorer is None:
            continue
        spec = [m.plugin, m.label, type(m.scorer).__name__, sacrebleu.__version__, refs_hash]
        seg = None
        for k in aligned:
            hyps = out.outputs[k]
            ck = canonical_hash(spec + [canonical_hash(hyps)], n=24)
            arr = cache.get(ck)
            if arr is None:
                if seg is None:
                    seg = SegmentStats(m.scorer, refs)
                arr = seg(hyps)
                cache.put(ck, arr)
            out.stats[(m.label, k)] = arr
        out.scorers[m.label] = m.scorer


def _classification_stats(br, rows, aligned, cell_of, out: ExampleTests) -> None:
    import numpy as np

    labels = sorted({str(x.get("reference")) for k in aligned for x in rows[k]} | {o for k in aligned for o in out.outputs[k]})
    index = {lab: i for i, lab in enumerate(labels)}
    L = len(labels)
    gold = np.array([index[str(x.get("reference"))] for x in rows[aligned[0]]])
    onehot: dict[str, Any] = {}
    for k in aligned:
        cell = gold * L + np.array([index[o] for o in out.outputs[k]])
        oh = np.zeros((len(cell), L * L))
        oh[np.arange(len(cell)), cell] = 1.0
        onehot[k] = oh
    for m in br.metrics:
        if m.confusion is None or not len(gold):
            continue
        # use the recomputation only if it reproduces the plugin's own numbers (scale 1 or 100)
        scale = None
        for k in aligned:
            mine = float(m.confusion(onehot[k].sum(axis=0).reshape(L, L)))
            theirs = cell_of[k].values.get(m.label)
            if not finite(theirs):
                continue
            for s in (1.0, 100.0):
                if abs(mine * s - theirs) <= 1e-6 + 1e-4 * abs(theirs):
                    scale = s if scale in (None, s) else -1
                    break
            else:
                scale = -1
        if scale is None or scale < 0:
            br.notes.append(f"{m.title} could not be recomputed from the predictions, so it has no test over examples.")
            continue
        m.scale = scale
        fn, sc = m.confusion, scale
        out.scorers[m.label] = lambda S, fn=fn, sc=sc, L=L: fn(np.asarray(S).reshape(len(S), L, L)) * sc
        for k in aligned:
            out.stats[(m.label, k)] = onehot[k]
    out.stats["_gold"] = gold


def _examples_of(rows: list[dict], task: str):
    from ...api import Example

    exs = [Example(id=str(r.get("id")), source=str(r.get("source") or ""),
                   reference=r.get("reference") if task != "classification" else None,
                   label=str(r.get("reference")) if task == "classification" else None,
                   source_pair=r.get("source_pair"),
                   references=tuple(r["references"]) if r.get("references") else None) for r in rows]
    nbest = ([[h.get("text", "") for h in (r.get("nbest") or [{"text": r.get("output")}])] for r in rows]
             if any("nbest" in r for r in rows) else None)
    return exs, nbest


def _plugin_stats(br, rows, aligned, cell_of, cache: StatsCache, out: ExampleTests) -> None:
    """(score, 1) per example from a metric plugin's ``example_scores``, if their mean is its value."""
    import numpy as np

    from ...store import canonical_hash

    for m in br.metrics:
        if m.example_scores is None or m.label in out.scorers:
            continue
        ok = True
        stats = {}
        for k in aligned:
            ck = canonical_hash(["example_scores", m.plugin, m.version, m.params, rows[k]], n=24)
            arr = cache.get(ck)
            if arr is None:
                exs, nbest = _examples_of(rows[k], br.task)
                try:
                    scores = m.example_scores(out.outputs[k], exs, nbest)
                except Exception as e:  # noqa: BLE001 - a broken plugin costs its tests, not the report
                    br.notes.append(f"{m.title}: example_scores failed ({type(e).__name__}: {e}); no test over examples.")
                    ok = False
                    break
                if scores is None:
                    ok = False
                    break
                arr = np.column_stack([np.asarray(scores, dtype=np.float64), np.ones(len(scores))])
                cache.put(ck, arr)
            theirs = cell_of[k].values.get(m.label)
            if len(arr) != len(rows[k]) or (finite(theirs) and abs(arr[:, 0].mean() - theirs) > 1e-6 + 1e-6 * abs(theirs)):
                br.notes.append(f"{m.title}: the mean of its per-example scores is not its recorded value, "
                                "so it has no test over examples.")
                ok = False
                break
            stats[k] = arr
        if not ok:
            continue
        out.scorers[m.label] = lambda S: np.asarray(S)[:, 0] / np.where(np.asarray(S)[:, 1] > 0, np.asarray(S)[:, 1], 1)
        for k, arr in stats.items():
            out.stats[(m.label, k)] = arr


# ----------------------------------------------------------------------------- tests


def _run_tests(br, aligned, pairs, cell_of, params: AnalysisParams, out: ExampleTests) -> None:
    """Intervals for every cell and p-values for every pair, for each metric with statistics."""
    import numpy as np

    from ...stats.significance import (PairedTranslationTests, approximate_randomization_many, ar_mask, bootstrap_counts,
                         bootstrap_difference_p, bootstrap_scores_many, corpus_score, improvement, mcnemar_exact,
                         sacrebleu_ci)

    n = len(out.outputs[aligned[0]]) if aligned else 0
    if not n:
        return
    counts = None
    ar_items: list[tuple[str, str, str]] = []
    gold = out.stats.get("_gold")
    for m in br.metrics:
        scorer = out.scorers.get(m.label)
        if scorer is None:
            continue
        st = {k: out.stats[(m.label, k)] for k in aligned}
        test_pairs = [(s, b) for s, b in pairs if out.differ.get((s, b), (1, 0))[0] > 0]  # identical: no test
        if m.scorer is not None:  # sacrebleu: its own bootstrap rule, so the numbers equal the CLI's
            tests = PairedTranslationTests(m.scorer, n, bootstrap_samples=params.bootstrap_samples,
                                           ar_trials=params.ar_trials, seed=params.seed)
            tests.precompute(st)
            for k in aligned:
                iv = tests.interval(k, st[k])
                out.interval[(m.label, k)] = (iv.low, iv.high)
            for s, b in test_pairs:
                out.pair[(m.label, s, b)] = {"p_bootstrap": tests.paired_bootstrap(s, st[s], b, st[b]),
                                             "bootstrap_rule": "sacrebleu"}
        else:
            if counts is None:
                counts = bootstrap_counts(n, params.bootstrap_samples, params.seed)
            samples = dict(zip(aligned, bootstrap_scores_many(counts, [(scorer, st[k]) for k in aligned])))
            for k in aligned:
                _, _, lo, hi = sacrebleu_ci(samples[k])
                out.interval[(m.label, k)] = (lo, hi)
            for s, b in test_pairs:
                observed = improvement(corpus_score(scorer, st[s]), corpus_score(scorer, st[b]), m.direction, m.target)
                diffs = improvement(samples[s], samples[b], m.direction, m.target)
                res: dict[str, Any] = {"p_bootstrap": bootstrap_difference_p(diffs, float(observed)),
                                       "bootstrap_rule": "two-sided"}
                if m.confusion is not None and m.confusion.__name__ == "accuracy_from_confusion" and gold is not None:
                    L = int(round(np.sqrt(st[s].shape[1])))
                    pred_s, pred_b = st[s].argmax(axis=1) % L, st[b].argmax(axis=1) % L
                    mc = mcnemar_exact(pred_b == gold, pred_s == gold)
                    res.update(p_mcnemar=mc.p, mcnemar_bc=(mc.b, mc.c))
                out.pair[(m.label, s, b)] = res
        if m.direction != "target":  # AR's statistic is |difference|; closeness to a target has no such form
            ar_items += [(m.label, s, b) for s, b in test_pairs]
        _contributions(m.label, scorer, st, pairs, out)
    # approximate randomisation for every comparison and metric at once (one pass over the swap mask)
    if ar_items:
        mask = ar_mask(n, params.ar_trials, params.seed)
        ps = approximate_randomization_many(
            [(out.scorers[lab], out.stats[(lab, s)], out.stats[(lab, b)]) for lab, s, b in ar_items], mask)
        for item, p in zip(ar_items, ps):
            out.pair[item]["p_ar"] = p



def _contributions(label: str, scorer, st: dict, pairs, out: ExampleTests) -> None:
    """Per pair: how many examples differ in this metric's statistics (the randomisation floor
    counts those, not differing outputs) and each example's contribution to the corpus difference
    (:func:`harness.stats.crossed.paired_contributions`), which the seeds × examples test and the
    detectable differences are computed from."""
    from ...stats.crossed import paired_contributions
    from ...stats.significance import differing_rows, scores_from_sums

    def score(S):
        return scores_from_sums(scorer, S)

    for s, b in pairs:
        rec = out.pair.setdefault((label, s, b), {})
        rec["differ_stats"] = differing_rows(st[s], st[b])
        rec["contrib"] = paired_contributions(score, st[s], st[b])
