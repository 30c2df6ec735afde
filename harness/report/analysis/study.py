"""The study section: Δ against the baseline strategy per dataset, budget and masking rate, and
its effect pooled across datasets (issue #13).

When a study appears. A run is a *study* when at least one classification benchmark has a
strategy compared with the baseline strategy (``manifest["baseline"]["strategy"]``, by default
``unmasked``) over two or more paired seeds. Every such comparison of the report's primary
classification metric (the first metric of the first such benchmark) is one study row.

How a row's factors are recovered (documented in docs/statistics.md, "The study section"):

- dataset and budget: a benchmark labelled ``<dataset>-b<budget>`` (``sst2-b50``) is dataset
  ``sst2`` at budget 50, as ``configs/mask-study.yaml`` labels its grid. Any other label is its own
  dataset, and its budget is the strategy's ``train_limit`` when both arms of the comparison share
  one (else no budget). Benchmarks are not grouped by comparing their parameters: two entries with
  the same data but different labels stay two datasets unless the label says otherwise.
- rate: the arm's ``mask_prob`` parameter (input masking for ``input_mask``, the MLM objective's
  masking for ``aux_mlm``/``tapt``); arms without one appear in the tables but not in the
  Δ-vs-rate plot, which has one panel per strategy plugin so that the meanings never share a line.

What each row shows, all reused from the report's comparison rows (nothing re-tested here): the
mean over seeds of the paired differences, the seeds × examples t interval (the deciding test's,
:mod:`harness.stats.crossed`, computed in :mod:`.verdicts`), the 95% t interval of the mean difference
over seeds (:func:`harness.stats.significance.t_interval`: seeds only, the test set taken as fixed), the
deciding p and the verdict.

Pooling: per (model, budget, arm), the datasets' effects are pooled by a t-test over them with
equal weights (:func:`harness.stats.meta_analysis.pool_datasets`, t(k−1)), which decides and gives the
interval; DerSimonian-Laird's tau^2, I^2 and Cochran's Q, with each dataset's seeds × examples
variance, describe the heterogeneity beside it. With fewer than two datasets nothing is pooled and
the row says why. A pooled effect is about the datasets' mean effect; the per-dataset verdicts
(Holm-adjusted) are about each dataset.

Also here: :func:`mlm_heads`, the MLM-head losses that the ``aux_mlm``/``tapt`` strategies write
into each cell's ``finetune.json`` (``mlm_head``).

Non-goals: meta-regression of Δ on budget or rate, other tau^2 estimators, studies of translation
decoders (their comparisons stay in the benchmark sections).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import BenchmarkReport, CellInfo, MetricInfo, finite
from .runs import finetune_records

BUDGET_LABEL = re.compile(r"^(?P<dataset>.+)-b(?P<budget>\d+)$")
"""``<dataset>-b<budget>``: how a benchmark label names its dataset and training budget."""
RATE_PARAM = "mask_prob"
BUDGET_PARAM = "train_limit"


@dataclass
class StudyRow:
    """One dataset × budget × arm: the paired difference to the baseline strategy over seeds."""

    dataset: str
    budget: int | None
    arm: str                      # the strategy's label
    rate: float | None            # the arm's mask_prob, if it has one
    family: str                   # the arm's strategy plugin (input_mask, aux_mlm, ...): rates compare within one
    benchmark: str
    model: str
    baseline: str
    n: int                        # paired seeds
    delta: float
    differences: tuple[float, ...]
    seed_sd: float | None
    ci_low: float | None          # seeds × examples t interval (harness.stats.crossed), the deciding test's
    ci_high: float | None
    t_low: float | None           # t interval of the mean difference over seeds
    t_high: float | None
    p: float | None               # the deciding test's p (seeds × examples t-test)
    p_holm: float | None
    test: str
    significant: bool | None
    identical: bool = False
    decision: str = ""            # harness.stats.decide.VERDICTS key of the comparison's verdict
    se: float | None = None       # standard error of delta (seeds × examples), for the heterogeneity numbers


@dataclass
class StudyPool:
    """The pooled effect of one (model, budget, arm) across datasets, or why there is none."""

    model: str
    budget: int | None
    arm: str
    rate: float | None
    datasets: tuple[str, ...]
    pooled: Any = None            # harness.stats.meta_analysis.DatasetPool (t over datasets), None when not pooled
    heterogeneity: Any = None     # harness.stats.meta_analysis.PooledEffect (DerSimonian-Laird): tau^2, Q, I^2
    decision: Any = None          # harness.stats.decide.Decision of the pooled effect
    reason: str = ""              # "not pooled: ..." when pooled is None or has no estimate

    @property
    def estimate(self) -> float | None:
        return None if self.pooled is None else self.pooled.estimate


@dataclass
class Study:
    metric: MetricInfo
    baseline: str
    rows: list[StudyRow]
    pools: list[StudyPool]
    grouping: str                 # how datasets and budgets were read, for the report's sentence
    multi_model: bool = False
    plots: dict[str, Any] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.rows))

    @property
    def budgets(self) -> list[int]:
        return sorted({r.budget for r in self.rows if r.budget is not None})

    @property
    def rates(self) -> list[float]:
        return sorted({r.rate for r in self.rows if r.rate is not None})


def _budget_of(cfg_cells: list[CellInfo]) -> int | None:
    vals = {c.strategy_params.get(BUDGET_PARAM) for c in cfg_cells}
    if len(vals) == 1:
        v = next(iter(vals))
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def _rate_of(cells: list[CellInfo]) -> float | None:
    vals = {c.strategy_params.get(RATE_PARAM) for c in cells}
    if len(vals) == 1:
        v = next(iter(vals))
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def build_study(benchmarks: list[BenchmarkReport], level: float = 0.95,
                strategy_plugins: dict[str, str] | None = None, params=None) -> Study | None:
    """The study of a report's strategy comparisons, or None when the run has none (see module doc).
    ``strategy_plugins`` maps strategy labels to plugin names (the manifest's resolved strategies);
    ``params`` (AnalysisParams) gives alpha, power and min_effect for the pooled verdicts."""
    plugin_of = strategy_plugins or {}
    import numpy as np

    from ...stats.decide import decide_datasets
    from ...stats.meta_analysis import pool_datasets, pool_effects
    from ...stats.significance import t_interval

    cls = [b for b in benchmarks if b.task == "classification" and b.base_strategy and b.metrics]
    metric: MetricInfo | None = None
    rows: list[StudyRow] = []
    by_label = by_param = 0
    for b in cls:
        if metric is None:
            candidates = [r for r in b.rows.get(b.metrics[0].label, []) if _is_strategy_comparison(r, b)]
            if not candidates:
                continue
            metric = b.metrics[0]
        m = next((x for x in b.metrics if x.label == metric.label), None)
        if m is None:
            continue
        for r in b.rows.get(m.label, []):
            if not _is_strategy_comparison(r, b):
                continue
            match = BUDGET_LABEL.match(b.name)
            both = r.config.cells + r.baseline.cells
            if match:
                dataset, budget = match["dataset"], int(match["budget"])
                by_label += 1
            else:
                dataset, budget = b.name, _budget_of(both)
                by_param += budget is not None
            diffs = tuple(float(e["value"]) - float(e["baseline"]) for e in r.per_seed)
            sd = float(np.std(diffs, ddof=1)) if len(diffs) >= 2 else None
            lo, hi = t_interval(diffs, level)
            rows.append(StudyRow(
                dataset=dataset, budget=budget, arm=r.config.strategy, rate=_rate_of(r.config.cells),
                family=plugin_of.get(r.config.strategy) or r.config.strategy.split("[")[0], benchmark=b.name,
                model=r.config.model, baseline=r.baseline.strategy, n=len(diffs), delta=float(r.delta), differences=diffs,
                seed_sd=sd, ci_low=r.delta_ci_low, ci_high=r.delta_ci_high,
                t_low=lo if math.isfinite(lo) else None, t_high=hi if math.isfinite(hi) else None,
                p=r.p, p_holm=r.p_holm, test=r.test, significant=r.significant, identical=r.identical,
                decision=r.decision_kind, se=r.crossed.se if r.crossed is not None else None))
    if metric is None or not rows:
        return None
    # the config's order of benchmarks and strategies; rates ascending within a strategy plugin
    order = {d: i for i, d in enumerate(dict.fromkeys(s.dataset for s in rows))}
    fam = {f: i for i, f in enumerate(dict.fromkeys(s.family for s in rows))}
    rows.sort(key=lambda s: (s.model, order[s.dataset], s.budget if s.budget is not None else -1, fam[s.family],
                             s.rate if s.rate is not None else -1.0, s.arm))
    pools: list[StudyPool] = []
    groups: dict[tuple, list[StudyRow]] = {}
    for s in rows:
        groups.setdefault((s.model, s.budget, s.arm), []).append(s)
    for (model, budget, arm), members in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1] if kv[0][1] is not None else -1, fam[kv[1][0].family],
            kv[1][0].rate if kv[1][0].rate is not None else -1.0, kv[0][2])):
        names = tuple(s.dataset for s in members)
        pool = StudyPool(model, budget, arm, members[0].rate, names)
        if len(members) < 2:
            pool.reason = (f"not pooled: one dataset ({names[0]}); a pooled effect and its heterogeneity need at "
                           "least two datasets")
        else:
            pool.pooled = pool_datasets([s.delta for s in members], labels=names, level=level,
                                        variances=[s.se ** 2 if s.se else None for s in members])
            pool.decision = decide_datasets(pool.pooled, alpha=getattr(params, "alpha", 0.05),
                                            power=getattr(params, "power", 0.8),
                                            min_effect=_min_effect(params, metric.label),
                                            higher_is_better=metric.direction != "lower")
            if all(s.se for s in members):
                pool.heterogeneity = pool_effects([s.delta for s in members], [s.se ** 2 for s in members],
                                                  labels=names, level=level)
        pools.append(pool)
    if by_label and not by_param:
        grouping = "datasets and budgets from benchmark labels <dataset>-b<budget>"
    elif by_param and not by_label:
        grouping = f"one dataset per benchmark; budgets from the strategies' {BUDGET_PARAM}"
    elif by_label:
        grouping = (f"datasets and budgets from benchmark labels <dataset>-b<budget>, else one dataset per benchmark "
                    f"with the strategies' {BUDGET_PARAM} as budget")
    else:
        grouping = "one dataset per benchmark; no training budget recorded"
    study = Study(metric, rows[0].baseline, rows, pools, grouping, multi_model=len({s.model for s in rows}) > 1)
    study.plots = study_plot_data(study)
    return study


def _min_effect(params, label: str) -> float | None:
    me = getattr(params, "min_effect", None)
    return me.get(label) if isinstance(me, dict) else me


def _is_strategy_comparison(r, b: BenchmarkReport) -> bool:
    return (r.baseline is not None and r.config.strategy != b.base_strategy and r.baseline.strategy == b.base_strategy
            and r.baseline.decoder == r.config.decoder and r.seeds_paired >= 2 and finite(r.delta))


def study_plot_data(study: Study) -> dict[str, Any]:
    """The numbers behind the two study plots: Δ vs budget (one panel per rate/arm) and Δ vs rate
    (one panel per budget), one line per dataset with its seeds × examples interval, and the
    pooled effect with its t-over-datasets interval. A plot needs two or more values on its x axis."""
    def point(s: StudyRow, x) -> dict[str, Any]:
        return {"x": x, "y": s.delta, "low": s.ci_low, "high": s.ci_high}

    def pooled_point(p: StudyPool, x) -> dict[str, Any] | None:
        e = p.pooled
        if e is None or e.estimate is None:
            return None
        return {"x": x, "y": e.estimate, "low": e.ci_low, "high": e.ci_high}

    title = study.metric.title
    plots: dict[str, Any] = {}
    models = list(dict.fromkeys(s.model for s in study.rows))

    def series(rows: list[StudyRow], pools: list[StudyPool], xkey) -> list[dict[str, Any]]:
        out = []
        for model in models:
            for ds in dict.fromkeys(s.dataset for s in rows if s.model == model):
                pts = sorted((point(s, xkey(s)) for s in rows if s.model == model and s.dataset == ds
                              and xkey(s) is not None), key=lambda p: p["x"])
                if pts:
                    out.append({"name": f"{ds} ({model})" if study.multi_model else ds, "points": pts, "pooled": False})
            pts = sorted((q for q in (pooled_point(p, xkey(p)) for p in pools if p.model == model
                                      and xkey(p) is not None) if q is not None), key=lambda p: p["x"])
            if pts:
                out.append({"name": "pooled (t over datasets)" + (f" ({model})" if study.multi_model else ""),
                            "points": pts, "pooled": True})
        return out

    if len(study.budgets) >= 2:
        panels = []
        for arm in dict.fromkeys(s.arm for s in study.rows):
            rows = [s for s in study.rows if s.arm == arm]
            if len({s.budget for s in rows if s.budget is not None}) < 2:
                continue
            rate = rows[0].rate
            panels.append({"title": f"{RATE_PARAM} {rate:g}" if rate is not None else arm,
                           "lines": series(rows, [p for p in study.pools if p.arm == arm], lambda s: s.budget)})
        if panels:
            plots["budget"] = {"metric": title, "baseline": study.baseline, "x_label": "training budget (sentences)",
                               "panels": panels}
    if len(study.rates) >= 2:
        panels = []
        families = list(dict.fromkeys(s.family for s in study.rows if s.rate is not None))
        for budget in sorted({s.budget for s in study.rows}, key=lambda b: -1 if b is None else b):
            # a rate means something else per strategy (input masking vs the MLM objective's masking):
            # one panel per strategy plugin, never one line across them
            for fam in families:
                rows = [s for s in study.rows if s.budget == budget and s.rate is not None and s.family == fam]
                if len({s.rate for s in rows}) < 2:
                    continue
                arms = {s.arm for s in rows}
                name = f"budget {budget}" if budget is not None else "all budgets"
                panels.append({"title": name + (f", {fam}" if len(families) > 1 else ""),
                               "lines": series(rows, [p for p in study.pools if p.budget == budget and p.arm in arms],
                                               lambda s: s.rate)})
        if panels:
            plots["rate"] = {"metric": title, "baseline": study.baseline, "x_label": f"masking rate ({RATE_PARAM})",
                             "panels": panels}
    return plots


# ----------------------------------------------------------------------------- MLM head losses


@dataclass
class MlmHeadRow:
    """One cell's ``finetune.json`` ``mlm_head`` record: the MLM loss (nats per masked token) at each stage."""

    benchmark: str
    model: str
    strategy: str
    seed: int
    key: str
    new_head: bool | None
    warmup_steps: int | None
    loss_before_warmup: float | None
    loss_after_warmup: float | None
    loss_at_start: float | None
    loss_after_mlm_stage: float | None
    loss_after_training: float | None


def mlm_heads(outdir: Path, cells: list[CellInfo]) -> list[MlmHeadRow]:
    """The ``mlm_head`` records of the cells' ``finetune.json`` files (cells without one: none)."""
    out = []
    for c, record in finetune_records(outdir, cells):
        rec = record.get("mlm_head")
        if not isinstance(rec, dict):
            continue

        def num(k: str) -> float | None:
            v = rec.get(k)
            return float(v) if finite(v) else None

        steps = rec.get("warmup_steps")
        out.append(MlmHeadRow(c.benchmark, c.model, c.strategy, c.seed, c.key,
                              rec.get("new_head") if isinstance(rec.get("new_head"), bool) else None,
                              int(steps) if isinstance(steps, int) else None,
                              num("loss_before_warmup"), num("loss_after_warmup"), num("loss_at_start"),
                              num("loss_after_mlm_stage"), num("loss_after_training")))
    return out


def mlm_head_summary(heads: list[MlmHeadRow]) -> list[dict[str, Any]]:
    """One line per (benchmark, model, strategy): the mean loss over seeds at each stage."""
    groups: dict[tuple, list[MlmHeadRow]] = {}
    for h in heads:
        groups.setdefault((h.benchmark, h.model, h.strategy), []).append(h)
    out = []
    for (bench, model, strat), hs in groups.items():
        def mean(attr: str) -> float | None:
            v = [getattr(h, attr) for h in hs if getattr(h, attr) is not None]
            return sum(v) / len(v) if v else None

        out.append({"benchmark": bench, "model": model, "strategy": strat, "seeds": sorted(h.seed for h in hs),
                    "new_head": any(h.new_head for h in hs),
                    "warmup_steps": next((h.warmup_steps for h in hs if h.warmup_steps is not None), None),
                    **{k: mean(k) for k in ("loss_before_warmup", "loss_after_warmup", "loss_at_start",
                                             "loss_after_mlm_stage", "loss_after_training")}})
    return out
