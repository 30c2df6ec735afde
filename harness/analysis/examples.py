"""Tests over examples: per-cell intervals and per-pair p-values on one benchmark's test set.

Translation metrics that expose a sacrebleu scorer get sacrebleu's paired bootstrap and
approximate randomisation (on cached sentence statistics); classification metrics that can be
recomputed from a confusion matrix get McNemar's exact test (accuracy) and a paired bootstrap.
Non-goals: tests over seeds (see :mod:`harness.analysis.verdicts`).
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
    stats: dict[tuple[str, str], Any] = field(default_factory=dict)  # (metric, key) -> sentence stats
    scorers: dict[str, Any] = field(default_factory=dict)
    refs_ok: set[str] = field(default_factory=set)


def translation_tests(br: BenchmarkReport, preds: Predictions, cache: StatsCache, params: AnalysisParams) -> ExampleTests:
    from ..stats import PairedTranslationTests, SegmentStats, approximate_randomization_many, ar_mask
    from ..store import canonical_hash

    out = ExampleTests()
    keys = list(dict.fromkeys(c.key for cfg in br.configs for c in cfg.cells))
    rows = {k: preds(k) for k in keys}
    ref_sets: dict[str, list[str]] = {}
    first_refs = None
    for k in keys:
        r = rows[k]
        if not r:
            continue
        refs = [str(x.get("reference") or "") for x in r]
        if first_refs is None:
            first_refs = refs
        if refs == first_refs:
            ref_sets[k] = refs
    if first_refs is None:
        return out
    mismatched = [k for k in keys if rows[k] and k not in ref_sets]
    if mismatched:
        br.notes.append(f"{len(mismatched)} cell(s) of {br.name} have different references from the others; "
                        "they get no paired tests.")
    out.refs_ok = set(ref_sets)
    refs_hash = canonical_hash(first_refs)
    configs = {(c.benchmark, c.model, c.strategy, c.decoder): c for c in br.configs}
    pairs = [(s, b) for s, b in paired_cells(br, configs, br.base_decoder, br.base_strategy) if s in ref_sets and b in ref_sets]
    import sacrebleu

    ar_items: list[tuple[str, str, str]] = []
    for m in br.metrics:
        if m.scorer is None:
            continue
        spec = [m.plugin, m.label, type(m.scorer).__name__, sacrebleu.__version__, refs_hash]
        seg = None
        for k in ref_sets:
            hyps = [str(x.get("output") or "") for x in rows[k]]
            ck = canonical_hash(spec + [canonical_hash(hyps)], n=24)
            arr = cache.get(ck)
            if arr is None:
                if seg is None:
                    seg = SegmentStats(m.scorer, first_refs)
                arr = seg(hyps)
                cache.put(ck, arr)
            out.stats[(m.label, k)] = arr
        out.scorers[m.label] = m.scorer
        tests = PairedTranslationTests(m.scorer, len(first_refs), bootstrap_samples=params.bootstrap_samples,
                                       ar_trials=params.ar_trials, seed=params.seed)
        tests.precompute({k: out.stats[(m.label, k)] for k in ref_sets})
        for k in ref_sets:
            iv = tests.interval(k, out.stats[(m.label, k)])
            out.interval[(m.label, k)] = (iv.low, iv.high)
        for s, b in pairs:
            ss, sb = out.stats[(m.label, s)], out.stats[(m.label, b)]
            out.pair[(m.label, s, b)] = {"p_bootstrap": tests.paired_bootstrap(s, ss, b, sb)}
            ar_items.append((m.label, s, b))
    # approximate randomisation for every comparison and metric at once (one pass over the swap mask)
    if ar_items:
        mask = ar_mask(len(first_refs), params.ar_trials, params.seed)
        ps = approximate_randomization_many(
            [(out.scorers[lab], out.stats[(lab, s)], out.stats[(lab, b)]) for lab, s, b in ar_items], mask)
        for item, p in zip(ar_items, ps):
            out.pair[item]["p_ar"] = p
    return out


def classification_tests(br: BenchmarkReport, preds: Predictions, params: AnalysisParams) -> ExampleTests:
    import numpy as np

    from ..stats import bootstrap_counts, confusion_from_pairs, mcnemar_exact, paired_bootstrap_p, sacrebleu_ci

    out = ExampleTests()
    keys = list(dict.fromkeys(c.key for cfg in br.configs for c in cfg.cells))
    rows = {k: preds(k) for k in keys}
    present = [k for k in keys if rows[k]]
    if not present:
        return out
    ids0 = [str(x.get("id")) for x in rows[present[0]]]
    aligned = [k for k in present if [str(x.get("id")) for x in rows[k]] == ids0]
    if len(aligned) < len(present):
        br.notes.append(f"{len(present) - len(aligned)} cell(s) of {br.name} were evaluated on other examples; "
                        "they get no paired tests.")
    out.refs_ok = set(aligned)
    labels = sorted({str(x.get("reference")) for k in aligned for x in rows[k]}
                    | {str(x.get("output")) for k in aligned for x in rows[k]})
    index = {lab: i for i, lab in enumerate(labels)}
    gold = np.array([index[str(x.get("reference"))] for x in rows[aligned[0]]])
    pred = {k: np.array([index[str(x.get("output"))] for x in rows[k]]) for k in aligned}
    n = len(gold)
    counts = bootstrap_counts(n, params.bootstrap_samples, params.seed) if n else None
    configs = {(c.benchmark, c.model, c.strategy, c.decoder): c for c in br.configs}
    pairs = [(s, b) for s, b in paired_cells(br, configs, br.base_decoder, br.base_strategy)
             if s in out.refs_ok and b in out.refs_ok]
    cell_of = {c.key: c for cfg in br.configs for c in cfg.cells}
    confusions: dict[str, Any] = {}
    for m in br.metrics:
        if m.confusion is None or counts is None:
            continue
        # use the recomputation only if it reproduces the plugin's own numbers (scale 1 or 100)
        scale = None
        for k in aligned:
            mine = float(m.confusion(np.bincount(gold * len(labels) + pred[k], minlength=len(labels) ** 2)
                                     .reshape(len(labels), len(labels))))
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
        samples = {}
        for k in aligned:
            if k not in confusions:  # one confusion matrix per resample, shared by every metric
                confusions[k] = confusion_from_pairs(gold, pred[k], len(labels), counts)
            samples[k] = m.confusion(confusions[k]) * scale
            _, _, lo, hi = sacrebleu_ci(samples[k])
            out.interval[(m.label, k)] = (lo, hi)
        for s, b in pairs:
            res = {"p_bootstrap": paired_bootstrap_p(cell_of[s].values[m.label], cell_of[b].values[m.label],
                                                     samples[s], samples[b])}
            if m.confusion.__name__ == "accuracy_from_confusion":
                mc = mcnemar_exact(pred[b] == gold, pred[s] == gold)
                res.update(p_mcnemar=mc.p, mcnemar_bc=(mc.b, mc.c))
            out.pair[(m.label, s, b)] = res
    out.stats["_gold"] = (gold, pred, labels)
    return out
