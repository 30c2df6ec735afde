"""The analysis's data model: its settings, and what it hands to the reporters.

:class:`ReportData` holds one :class:`BenchmarkReport` per benchmark, which holds one list of
:class:`Row` per metric (one row per configuration, with its comparison against its baseline).
Reporters read these and compute nothing. Non-goals: rendering (see ``harness_plugins.reporters``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from ...params import Params
from ...stats.decide import TESTS  # the deciding test of a row, by key (Row.test), as the reports name it
from ...stats.significance import DEFAULT_AR_TRIALS, DEFAULT_BOOTSTRAP, DEFAULT_SEED

NO_DECODER = "-"
LOWER_IS_BETTER = {"ter", "self_bleu", "wer", "cer", "loss", "perplexity", "ppl"}
METRIC_TITLES = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER", "accuracy": "accuracy", "macro_f1": "macro-F1",
                 "mcc": "MCC", "distinct_1": "distinct-1", "distinct_2": "distinct-2", "self_bleu": "self-BLEU",
                 "oracle_bleu": "oracle BLEU"}
CACHE_DIR = ".report-cache"


class AnalysisParams(Params):
    """Statistical settings shared by the report plugins."""

    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of every test")
    bootstrap_samples: int = Field(DEFAULT_BOOTSTRAP, ge=100, le=100_000,
                                   description="bootstrap resamples (sacrebleu --paired-bs-n)")
    ar_trials: int = Field(DEFAULT_AR_TRIALS, ge=100, le=100_000,
                           description="approximate randomisation trials (sacrebleu --paired-ar-n)")
    seed: int = Field(DEFAULT_SEED, description="random seed of the resampling (sacrebleu's SACREBLEU_SEED)")
    drilldown_examples: int = Field(20, ge=0, description="examples shown per benchmark in the drill-down")
    drilldown_systems: int = Field(8, ge=2, description="configurations shown side by side in the drill-down")
    cache: bool = Field(True, description="cache per-cell statistics in OUTDIR/.report-cache")
    multiple_comparisons: Literal["none", "holm"] = Field(
        "none", description="holm: Holm-adjusted p-values (over every comparison of the report) decide; "
                            "none: raw p-values decide (the adjusted ones are shown beside them either way)")
    min_effect: float | dict[str, float] | None = Field(
        None, description="the difference worth detecting, in the metric's units (one number, or one per metric "
                          "label): the report says how many seeds would detect it with 80% power")
    power: float = Field(0.8, gt=0, lt=1, description="power of the seeds-needed estimate")

    @field_validator("min_effect")
    @classmethod
    def _positive_effect(cls, v):
        values = v.values() if isinstance(v, dict) else ([] if v is None else [v])
        for x in values:
            if not (math.isfinite(x) and x > 0):
                raise ValueError(f"a difference worth detecting must be a positive number (got {x})")
        return v


# ============================================================================ data


@dataclass
class CellInfo:
    key: str
    model: str
    benchmark: str
    strategy: str
    decoder: str
    seed: int
    status: str  # done | cached | failed
    seconds: float | None = None
    error: str | None = None
    traceback: str | None = None
    task: str | None = None
    n: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)
    decoder_params: dict[str, Any] = field(default_factory=dict)
    strategy_params: dict[str, Any] = field(default_factory=dict)
    predict_seconds: float | None = None
    precision: str | None = None  # metrics.csv's precision column (older runs: None)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def config_key(self) -> tuple[str, str, str, str]:
        return (self.benchmark, self.model, self.strategy, self.decoder)


@dataclass
class MetricInfo:
    label: str
    plugin: str
    task: str
    higher_is_better: bool = True  # direction == "higher" (kept for callers that only know up/down)
    scorer: Any = None  # a sacrebleu Metric when the plugin exposes one: tests over examples
    confusion: Any = None  # a function of a confusion matrix (classification metrics we can recompute)
    scale: float = 1.0  # recomputed value × scale = the plugin's value (e.g. 100 for percentages)
    direction: str = ""  # higher | lower | target ("" = from higher_is_better)
    target: float | None = None
    display: str = ""  # the plugin's title
    decimals: int | None = None  # the plugin's precision
    value_range: tuple[float | None, float | None] = (None, None)
    scope: str = "outputs"  # outputs | lists (n-best list property: n/a for one-hypothesis decoders)
    signature_source: str = ""
    example_scores: Any = None  # the plugin instance's example_scores (bound), when it overrides it
    params: dict[str, Any] = field(default_factory=dict)
    version: str = "1"

    def __post_init__(self):
        if not self.direction:
            self.direction = "higher" if self.higher_is_better else "lower"
        self.higher_is_better = self.direction == "higher"

    @property
    def title(self) -> str:
        base = self.display or METRIC_TITLES.get(self.label, self.label)
        return f"{base} (n-best lists)" if self.scope == "lists" and not base.endswith("lists)") else base

    @property
    def arrow(self) -> str:
        if self.direction == "target":
            return f"→ {self.target:g}"
        return "↑" if self.direction == "higher" else "↓"

    @property
    def direction_text(self) -> str:
        """``higher is better`` / ``lower is better`` / ``closer to 1 is better``."""
        return f"closer to {self.target:g} is better" if self.direction == "target" else f"{self.direction} is better"

    @property
    def signature_label(self) -> str:
        """What produced the signature, for the line that prints it."""
        if self.signature_source:
            return f"{self.signature_source} signature"
        if self.scorer is not None:
            return "sacrebleu signature"
        return f"signature of metric plugin '{self.plugin}'"

    def better(self, a: float, b: float) -> bool:
        if self.direction == "target":
            return abs(a - self.target) < abs(b - self.target)
        return a > b if self.direction == "higher" else a < b


@dataclass
class Config:
    benchmark: str
    task: str
    model: str
    strategy: str
    decoder: str
    cells: list[CellInfo] = field(default_factory=list)  # successful, one per seed
    failed: list[CellInfo] = field(default_factory=list)
    label: str = ""

    def cell_for_seed(self, seed: int) -> CellInfo | None:
        return next((c for c in self.cells if c.seed == seed), None)

    @property
    def seeds(self) -> list[int]:
        return [c.seed for c in self.cells]

    @property
    def distinct_keys(self) -> list[str]:
        return list(dict.fromkeys(c.key for c in self.cells))


@dataclass
class Row:
    """One configuration's result for one metric, with its comparison against its baseline."""

    config: Config
    metric: MetricInfo
    value: float | None = None
    std: float | None = None
    n_seeds: int = 0  # distinct evaluations (cells with different predictions)
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str = ""
    baseline: Config | None = None
    is_baseline: bool = False
    delta: float | None = None
    ci_kind: str = ""  # "bootstrap" (over examples) | "t" (over seeds) | ""
    ci_clipped: bool = False  # the interval was cut to the metric's range
    na_reason: str = ""  # why the value is n/a (e.g. an n-best list metric of a one-hypothesis decoder)
    p_bootstrap: float | None = None  # over examples (sacrebleu's rule for sacrebleu metrics, else two-sided)
    bootstrap_rule: str = ""  # "sacrebleu" | "two-sided": how p_bootstrap was computed
    p_ar: float | None = None  # approximate randomisation over examples
    p_mcnemar: float | None = None
    mcnemar_bc: tuple[int, int] | None = None
    differ: tuple[int, int] | None = None  # (examples whose outputs differ, examples), one paired evaluation
    identical: bool = False  # the system's outputs equal the baseline's on every example of every seed
    p_seeds_perm: float | None = None
    p_seeds_t: float | None = None
    seeds_paired: int = 0
    min_p_perm: float | None = None
    delta_ci_low: float | None = None  # seeds × examples t interval of the difference (harness.stats.crossed)
    delta_ci_high: float | None = None
    seed_sd: float | None = None  # sd of the per-seed differences
    seeds_needed: int | None = None  # to detect the observed difference by the deciding test (power)
    seeds_needed_min_effect: int | None = None  # to detect AnalysisParams.min_effect
    min_effect: float | None = None
    crossed: Any = None  # harness.stats.crossed.Crossed: the seeds × examples test, when it decides
    seeds_need: Any = None  # harness.stats.crossed.SeedsNeeded for the observed difference (with its range)
    seeds_need_min_effect: Any = None  # the same for min_effect
    decision: Any = None  # harness.stats.decide.Decision: the verdict and the numbers behind it
    mde: float | None = None  # the |difference| the deciding test had `power` to see
    differ_stats: int | None = None  # examples whose statistics of this metric differ (one evaluation)
    holm_family: str = ""  # which comparisons the Holm adjustment is over
    holm_scope: str = "this report"  # where that family lives (the note's arguments adjust over their own)
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    p: float | None = None  # the raw p-value of the deciding test
    p_holm: float | None = None  # Holm-adjusted over every comparison of the report
    test: str = ""  # key of the deciding test (TESTS)
    disagreement: str = ""  # set when the other test over the same data reaches the other decision
    undecidable: str = ""  # set when too few outputs differ for the deciding test to reach alpha at all
    significant: bool | None = None
    verdict: str = ""
    rank: int | None = None
    best: bool = False

    @property
    def test_name(self) -> str:
        return TESTS.get(self.test, self.test)

    @property
    def test_short(self) -> str:
        return TESTS_SHORT.get(self.test, self.test)

    @property
    def decision_kind(self) -> str:
        """better | worse | no_difference | cannot_decide | identical ("" without a comparison)."""
        return self.decision.kind if self.decision is not None else ""

    @property
    def verdict_label(self) -> str:
        """The verdict in the fixed vocabulary (:data:`harness.stats.decide.VERDICTS`), for table cells."""
        return self.decision.label if self.decision is not None else ""


def by_rank(rows: list[Row]) -> list[Row]:
    """Rows best first (rank 1 first, equal ranks in configuration order), unranked rows last:
    the order of every leaderboard table."""
    order = {id(r): i for i, r in enumerate(rows)}
    return sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, order[id(r)]))


TESTS_SHORT = {"mcnemar": "McNemar", "ar": "AR", "bootstrap": "bootstrap", "crossed": "t (seeds × examples)",
               "seeds_t": "t (seeds)", "datasets_t": "t (datasets)", "identical": "none (identical)"}
"""The same, for table cells."""
# the intervals of the study section, as its export rows name them (harness.report.analysis.study)
CROSSED_INTERVAL = "seeds x examples t, 95%"
T_INTERVAL = "t over seeds, 95%"
POOLED_INTERVAL = "t over datasets (equal weights), 95%"


@dataclass
class DrillDown:
    task: str
    systems: list[str] = field(default_factory=list)  # translation: configuration labels (columns)
    seed: int | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)  # translation rows
    total: int = 0
    scored_by: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)  # classification: one block per configuration


@dataclass
class BenchmarkReport:
    name: str
    task: str
    metrics: list[MetricInfo]
    configs: list[Config]
    rows: dict[str, list[Row]]
    baseline_label: str = ""
    base_decoder: str | None = None
    base_strategy: str | None = None
    base_model: str | None = None  # only when the config names one (baseline.model)
    drilldown: DrillDown | None = None
    plots: dict[str, Any] = field(default_factory=dict)  # plot name -> data for the plotting code
    notes: list[str] = field(default_factory=list)
    signatures: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[CellInfo]:
        return [c for cfg in self.configs for c in cfg.failed]


@dataclass
class ReportData:
    experiment: str
    description: str
    manifest: dict[str, Any]
    params: AnalysisParams
    benchmarks: list[BenchmarkReport]
    cells: list[CellInfo]
    seconds: float = 0.0  # time the analysis took
    study: Any = None  # harness.report.analysis.study.Study when the run compares strategies over seeds
    arguments: Any = None  # harness.report.analysis.arguments.NoteArguments when the run has the arms of one
    mlm_heads: list[Any] = field(default_factory=list)  # harness.report.analysis.study.MlmHeadRow per cell with one
    training: list[Any] = field(default_factory=list)  # harness.report.analysis.training.TrainingRun per checkpoint
    holm_family: str = ""  # which comparisons the Holm adjustment is over (analysis.verdicts.holm_family)

    @property
    def failed(self) -> list[CellInfo]:
        return [c for c in self.cells if c.status == "failed"]

    def verdicts(self, primary_only: bool = False) -> list[tuple[str, str, Row]]:
        out = []
        for b in self.benchmarks:
            for m in b.metrics[:1] if primary_only else b.metrics:
                out += [(b.name, m.label, r) for r in b.rows.get(m.label, []) if r.verdict]
        return out

    def best(self) -> list[tuple[BenchmarkReport, MetricInfo, Row]]:
        out = []
        for b in self.benchmarks:
            for m in b.metrics:
                best = next((r for r in b.rows.get(m.label, []) if r.best), None)
                if best is not None:
                    out.append((b, m, best))
        return out

    def records(self) -> list[dict[str, Any]]:
        """One flat record per (benchmark, metric, configuration) (``kind`` leaderboard), then the
        study's rows (:meth:`study_records`): the csv/parquet/JSON export."""
        out = []
        for b in self.benchmarks:
            for m in b.metrics:
                for r in b.rows.get(m.label, []):
                    c = r.config
                    out.append({
                        "kind": "leaderboard", "experiment": self.experiment, "benchmark": b.name, "task": b.task, "metric": m.label,
                        "higher_is_better": m.higher_is_better, "direction": m.direction, "target": m.target,
                        "model": c.model, "strategy": c.strategy,
                        "decoder": c.decoder, "label": c.label, "seeds": r.n_seeds, "value": r.value, "std": r.std,
                        "ci_low": r.ci_low, "ci_high": r.ci_high, "ci_method": r.ci_method,
                        "baseline": r.baseline.label if r.baseline else None, "is_baseline": r.is_baseline,
                        "delta": r.delta, "delta_ci_low": r.delta_ci_low, "delta_ci_high": r.delta_ci_high,
                        "p": r.p, "p_holm": r.p_holm, "test": r.test, "significant": r.significant,
                        "decision": r.decision_kind or None, "mde": r.mde,
                        "p_bootstrap": r.p_bootstrap, "p_ar": r.p_ar, "p_mcnemar": r.p_mcnemar,
                        "p_seeds_permutation": r.p_seeds_perm, "p_seeds_t": r.p_seeds_t,
                        "outputs_differ": r.differ[0] if r.differ else None, "identical_outputs": r.identical,
                        "seeds_needed": r.seeds_needed, "seeds_needed_min_effect": r.seeds_needed_min_effect,
                        "rank": r.rank, "failed_cells": len(c.failed), "na_reason": r.na_reason,
                        "verdict": r.verdict, "signature": b.signatures.get(m.label, ""),
                        "signature_source": m.signature_label,
                    })
        return out + self.study_records()

    def study_records(self) -> list[dict[str, Any]]:
        """The study section as export rows: ``kind`` study (one per dataset × budget × arm),
        pooled (one per budget × arm) and mlm_head (one per cell with an MLM head record)."""
        out: list[dict[str, Any]] = []
        st = self.study
        if st is not None:
            m = st.metric
            common = {"experiment": self.experiment, "task": "classification", "metric": m.label,
                      "higher_is_better": m.higher_is_better, "direction": m.direction, "target": m.target}
            for s in st.rows:
                out.append({**common, "kind": "study", "benchmark": s.benchmark, "model": s.model, "strategy": s.arm,
                            "label": s.arm, "baseline": s.baseline, "seeds": s.n, "dataset": s.dataset,
                            "budget": s.budget, "rate": s.rate, "delta": s.delta, "ci_low": s.ci_low,
                            "ci_high": s.ci_high, "interval": CROSSED_INTERVAL, "delta_ci_low": s.ci_low,
                            "delta_ci_high": s.ci_high, "t_ci_low": s.t_low, "t_ci_high": s.t_high,
                            "seed_sd": s.seed_sd, "p": s.p, "p_holm": s.p_holm, "test": s.test,
                            "significant": s.significant, "decision": s.decision or None,
                            "identical_outputs": s.identical})
            for p in st.pools:
                e, h, dcs = p.pooled, p.heterogeneity, p.decision
                has = e is not None and e.estimate is not None
                hh = h is not None and h.estimate is not None
                out.append({**common, "kind": "pooled", "model": p.model, "strategy": p.arm, "label": p.arm,
                            "baseline": st.baseline, "dataset": "pooled", "budget": p.budget, "rate": p.rate,
                            "pooled_k": len(p.datasets), "pooled_datasets": ", ".join(p.datasets),
                            "delta": e.estimate if has else None, "ci_low": e.ci_low if has else None,
                            "ci_high": e.ci_high if has else None, "interval": POOLED_INTERVAL if has else None,
                            "p": e.p if has else None, "test": "datasets_t" if has else "",
                            "significant": dcs.significant if dcs is not None else None,
                            "decision": dcs.kind if dcs is not None else None, "mde": dcs.mde if dcs is not None else None,
                            "pooled_se": e.se if has else None, "pooled_tau2": h.tau2 if hh else None,
                            "pooled_i2": h.i2 if hh else None, "pooled_q": h.q if hh else None,
                            "pooled_q_p": h.q_p if hh else None,
                            "note": p.reason or (e.note if e is not None else None)})
        for h in self.mlm_heads:
            out.append({"kind": "mlm_head", "experiment": self.experiment, "benchmark": h.benchmark, "model": h.model,
                        "strategy": h.strategy, "label": h.strategy, "seed": h.seed, "mlm_new_head": h.new_head,
                        "mlm_warmup_steps": h.warmup_steps, "mlm_loss_before_warmup": h.loss_before_warmup,
                        "mlm_loss_after_warmup": h.loss_after_warmup, "mlm_loss_at_start": h.loss_at_start,
                        "mlm_loss_after_mlm_stage": h.loss_after_mlm_stage,
                        "mlm_loss_after_training": h.loss_after_training})
        return out

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.records(), columns=RECORD_COLUMNS)


RECORD_COLUMNS = ["kind", "experiment", "benchmark", "task", "metric", "higher_is_better", "direction", "target", "model",
                  "strategy", "decoder", "label", "seeds", "value", "std", "ci_low", "ci_high", "ci_method", "baseline",
                  "is_baseline", "delta", "delta_ci_low", "delta_ci_high", "p", "p_holm", "test", "significant",
                  "decision", "mde",
                  "p_bootstrap", "p_ar", "p_mcnemar", "p_seeds_permutation", "p_seeds_t", "outputs_differ",
                  "identical_outputs", "seeds_needed", "seeds_needed_min_effect", "rank", "failed_cells", "na_reason",
                  "verdict", "signature", "signature_source",
                  # the study section (kind study / pooled / mlm_head; empty in leaderboard rows)
                  "dataset", "budget", "rate", "interval", "t_ci_low", "t_ci_high", "seed_sd", "pooled_k",
                  "pooled_datasets", "pooled_se", "pooled_tau2", "pooled_i2", "pooled_q", "pooled_q_p", "note", "seed",
                  "mlm_new_head", "mlm_warmup_steps", "mlm_loss_before_warmup", "mlm_loss_after_warmup",
                  "mlm_loss_at_start", "mlm_loss_after_mlm_stage", "mlm_loss_after_training"]
"""Columns of summary.csv / summary.parquet, in order. ``kind`` says what a row is: leaderboard (one
per benchmark, metric and configuration), study (Δ vs the baseline strategy of one dataset, budget
and arm; ci_low/ci_high are the interval named in ``interval``, t_ci_low/t_ci_high the t interval
over seeds), pooled (the effect of one budget and arm across datasets: t over datasets, with
DerSimonian-Laird's tau^2, I^2 and Q describing the heterogeneity, or ``note`` saying why not)
and mlm_head (one cell's MLM-head losses from finetune.json)."""


# ============================================================================ helpers


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def loads(s: Any) -> dict[str, Any]:
    if isinstance(s, dict):
        return s
    if not s or not isinstance(s, str):
        return {}
    try:
        v = json.loads(s)
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def metric_decimals(values: list[float]) -> int:
    """Decimals to show: scores on a 0-100 scale get 2, fractions (accuracy 0.87) get 4."""
    vals = [abs(v) for v in values if finite(v)]
    return 2 if vals and max(vals) > 1.5 else 4


def fmt(v: float | None, decimals: int) -> str:
    return "–" if not finite(v) else f"{v:.{decimals}f}"
