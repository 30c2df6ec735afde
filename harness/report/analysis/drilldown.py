"""The drill-down: translation sentences where configurations disagree most, and classification
examples a strategy gets wrong that its baseline gets right.

Non-goals: statistics (the drill-down shows examples, it decides nothing).
"""
from __future__ import annotations

from .examples import ExampleTests
from .model import AnalysisParams, BenchmarkReport, DrillDown
from .runs import Predictions, StatsCache

def translation_drilldown(br: BenchmarkReport, preds: Predictions, cache: StatsCache, params: AnalysisParams,
                           ex: ExampleTests) -> DrillDown:
    import numpy as np

    from ...api import reference_streams
    from ...stats.significance import SegmentStats, scores_from_sums

    dd = DrillDown(task="translation")
    if params.drilldown_examples == 0:
        return dd
    seeds = [s for cfg in br.configs for s in cfg.seeds]
    if not seeds:
        return dd
    seed = min(seeds, key=lambda s: (-sum(cfg.cell_for_seed(s) is not None for cfg in br.configs), s))
    base_first = sorted(br.configs, key=lambda c: 0 if any(r.is_baseline for rows in br.rows.values()
                                                           for r in rows if r.config is c) else 1)
    chosen = [(cfg, cfg.cell_for_seed(seed)) for cfg in base_first]
    chosen = [(cfg, c) for cfg, c in chosen if c is not None and c.key in ex.refs_ok][: params.drilldown_systems]
    if len(chosen) < 1:
        return dd
    rows = {c.key: preds(c.key) for _, c in chosen}
    n = len(rows[chosen[0][1].key])
    # sentence chrF against the reference for every output: from the run's own chrF statistics when it has them
    chrf_label = next((m.label for m in br.metrics if type(m.scorer).__name__ == "CHRF"), None)
    sent = np.zeros((len(chosen), n))
    if chrf_label is not None:
        scorer = ex.scorers[chrf_label]
        for j, (_, c) in enumerate(chosen):
            sent[j] = scores_from_sums(scorer, ex.stats[(chrf_label, c.key)])
        dd.scored_by = "sentence chrF (the run's chrF settings)"
    else:
        from sacrebleu.metrics import CHRF

        scorer = CHRF()
        seg = SegmentStats(scorer, reference_streams(rows[chosen[0][1].key]))
        for j, (_, c) in enumerate(chosen):
            sent[j] = scores_from_sums(scorer, seg([str(x.get("output") or "") for x in rows[c.key]]))
        dd.scored_by = "sentence chrF (sacrebleu defaults)"
    spread = sent.max(axis=0) - sent.min(axis=0) if len(chosen) > 1 else np.zeros(n)
    distinct = np.array([len({rows[c.key][i].get("output") for _, c in chosen}) for i in range(n)])
    order = sorted(range(n), key=lambda i: (-spread[i], -distinct[i], i))[: params.drilldown_examples]
    dd.systems = [cfg.label for cfg, _ in chosen]
    dd.seed = seed
    dd.total = n
    first = rows[chosen[0][1].key]
    for i in order:
        outs = []
        for j, (_, c) in enumerate(chosen):
            r = rows[c.key][i]
            outs.append({"text": str(r.get("output") or ""), "chrf": float(sent[j, i]),
                         "nbest": [{"text": str(h.get("text", "")), "score": h.get("score")} for h in r.get("nbest", []) or []]})
        best = max(o["chrf"] for o in outs)
        for o in outs:
            o["best"] = len(outs) > 1 and o["chrf"] == best and spread[i] > 0
        dd.examples.append({"id": str(first[i].get("id", i)), "source": str(first[i].get("source") or ""),
                            "reference": str(first[i].get("reference") or ""), "spread": float(spread[i]),
                            "outputs": outs})
    return dd


def classification_drilldown(br: BenchmarkReport, preds: Predictions, params: AnalysisParams) -> DrillDown:
    dd = DrillDown(task="classification")
    if params.drilldown_examples == 0:
        return dd
    for cfg in br.configs:
        row = next((r for rows in br.rows.values() for r in rows if r.config is cfg and r.baseline is not None), None)
        if row is None:
            continue
        base = row.baseline
        seed = next((c.seed for c in cfg.cells if base.cell_for_seed(c.seed) is not None), None)
        if seed is None:
            continue
        c, b = cfg.cell_for_seed(seed), base.cell_for_seed(seed)
        rc, rb = preds(c.key), preds(b.key)
        if not rc or not rb or len(rc) != len(rb):
            continue
        broken = [i for i, (x, y) in enumerate(zip(rc, rb))
                  if str(x.get("output")) != str(x.get("reference")) and str(y.get("output")) == str(y.get("reference"))]
        fixed = sum(1 for x, y in zip(rc, rb)
                    if str(x.get("output")) == str(x.get("reference")) and str(y.get("output")) != str(y.get("reference")))
        dd.errors.append({
            "system": cfg.label, "baseline": base.label, "seed": seed, "broken": len(broken), "fixed": fixed,
            "total": len(rc),
            "examples": [{"id": str(rc[i].get("id")), "source": str(rc[i].get("source") or ""),
                          "source_pair": str(rc[i].get("source_pair") or ""), "gold": str(rc[i].get("reference")),
                          "baseline_pred": str(rb[i].get("output")), "system_pred": str(rc[i].get("output")),
                          "probs": rc[i].get("probs")}
                         for i in broken[: params.drilldown_examples]],
        })
    return dd
