"""What the reports say, computed once from a run directory: tables, tests, verdicts, drill-down.

:func:`analyze` turns a :class:`~harness.results.RunResults` into a :class:`ReportData` that the
``html``, ``markdown``, ``csv`` and ``parquet`` reporters render; nothing here writes HTML.

How comparisons are paired. A *configuration* is (benchmark, model, strategy, decoder); its
cells are its seeds. Each configuration is compared with the configuration that differs from it
in one factor only, the baseline's value of that factor (``manifest["baseline"]``; by default
``greedy`` / ``unmasked``, else the first in the config): a decoder other than the baseline
decoder is compared with the baseline decoder under the same model and strategy; otherwise a
strategy other than the baseline strategy is compared with the baseline strategy under the same
decoder. Cells are paired by seed, so both arms always saw the same examples.

Which test decides "significant". With two or more paired seeds whose predictions differ, the
test over seeds (exact sign-flip permutation; the paired t-test is shown beside it); otherwise
the test over examples: sacrebleu's paired bootstrap for translation metrics (approximate
randomisation shown beside it), McNemar's exact test for accuracy, a paired bootstrap for other
classification metrics that can be recomputed from the predictions.

Per-cell sufficient statistics are cached in ``OUTDIR/.report-cache`` (content-addressed by
metric parameters, references and outputs), so re-rendering a report recomputes no TER.

Non-goals: comparing configurations that differ in several factors at once, multiple-comparison
correction, and cross-run comparisons (see :mod:`harness.leaderboards`).
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from .params import Params
from .stats import DEFAULT_AR_TRIALS, DEFAULT_BOOTSTRAP, DEFAULT_SEED, format_p

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
    higher_is_better: bool
    scorer: Any = None  # a sacrebleu Metric when the plugin exposes one: tests over examples
    confusion: Any = None  # a function of a confusion matrix (classification metrics we can recompute)
    scale: float = 1.0  # recomputed value × scale = the plugin's value (e.g. 100 for percentages)

    @property
    def title(self) -> str:
        return METRIC_TITLES.get(self.label, self.label)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


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
    p_bootstrap: float | None = None  # over examples (sacrebleu paired bs, or classification bootstrap)
    p_ar: float | None = None
    p_mcnemar: float | None = None
    mcnemar_bc: tuple[int, int] | None = None
    p_seeds_perm: float | None = None
    p_seeds_t: float | None = None
    seeds_paired: int = 0
    min_p_perm: float | None = None
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    p: float | None = None
    test: str = ""
    significant: bool | None = None
    verdict: str = ""
    rank: int | None = None
    best: bool = False


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
        """One flat record per (benchmark, metric, configuration): the csv/parquet/JSON export."""
        out = []
        for b in self.benchmarks:
            for m in b.metrics:
                for r in b.rows.get(m.label, []):
                    c = r.config
                    out.append({
                        "experiment": self.experiment, "benchmark": b.name, "task": b.task, "metric": m.label,
                        "higher_is_better": m.higher_is_better, "model": c.model, "strategy": c.strategy,
                        "decoder": c.decoder, "label": c.label, "seeds": r.n_seeds, "value": r.value, "std": r.std,
                        "ci_low": r.ci_low, "ci_high": r.ci_high, "ci_method": r.ci_method,
                        "baseline": r.baseline.label if r.baseline else None, "is_baseline": r.is_baseline,
                        "delta": r.delta, "p": r.p, "test": r.test, "significant": r.significant,
                        "p_bootstrap": r.p_bootstrap, "p_ar": r.p_ar, "p_mcnemar": r.p_mcnemar,
                        "p_seeds_permutation": r.p_seeds_perm, "p_seeds_t": r.p_seeds_t, "rank": r.rank,
                        "failed_cells": len(c.failed), "verdict": r.verdict,
                        "signature": b.signatures.get(m.label, ""),
                    })
        return out

    def frame(self):
        import pandas as pd

        cols = ["experiment", "benchmark", "task", "metric", "higher_is_better", "model", "strategy", "decoder",
                "label", "seeds", "value", "std", "ci_low", "ci_high", "ci_method", "baseline", "is_baseline",
                "delta", "p", "test", "significant", "p_bootstrap", "p_ar", "p_mcnemar", "p_seeds_permutation",
                "p_seeds_t", "rank", "failed_cells", "verdict", "signature"]
        return pd.DataFrame(self.records(), columns=cols)


# ============================================================================ helpers


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _loads(s: Any) -> dict[str, Any]:
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
    vals = [abs(v) for v in values if _finite(v)]
    return 2 if vals and max(vals) > 1.5 else 4


def fmt(v: float | None, decimals: int) -> str:
    return "–" if not _finite(v) else f"{v:.{decimals}f}"


def pick_baseline(wanted: str | None, labels: list[str], defaults: tuple[str, ...]) -> str | None:
    if not labels:
        return None
    if wanted and wanted in labels:
        return wanted
    for d in defaults:
        if d in labels:
            return d
    return labels[0]


def _metric_infos(results, plugins=None) -> dict[str, MetricInfo]:
    """MetricInfo for every metric label of the run, from the resolved config and the plugins."""
    manifest = results.manifest
    resolved = (manifest.get("resolved") or {}).get("metrics") or []
    by_label = {m.get("label") or m.get("plugin"): m for m in resolved}
    df = results.metrics
    tasks = {}
    if len(df):
        for label, task in df[["metric", "task"]].drop_duplicates().itertuples(index=False):
            tasks[label] = task
    out = {}
    registry = None
    for label in list(dict.fromkeys(list(by_label) + list(tasks))):
        spec = by_label.get(label, {"plugin": label, "params": {}})
        plugin = spec.get("plugin") or label
        cls = None
        try:
            if registry is None:
                from .plugins import default_plugins

                registry = plugins or default_plugins()
            cls = registry.get("metric", plugin)
        except Exception:  # noqa: BLE001 - a plugin missing here only costs the tests over examples
            cls = None
        task = tasks.get(label) or (getattr(cls, "task", None) if cls else None) or "translation"
        hib = bool(cls.higher_is_better) if cls is not None else plugin not in LOWER_IS_BETTER
        info = MetricInfo(label=label, plugin=plugin, task=task, higher_is_better=hib)
        if cls is not None:
            try:
                inst = cls(cls.Params.model_validate(spec.get("params") or {}))
                make = getattr(inst, "scorer", None)
                scorer = make() if callable(make) else None
                from sacrebleu.metrics.base import Metric as _SacreMetric

                if isinstance(scorer, _SacreMetric):
                    info.scorer = scorer
            except Exception:  # noqa: BLE001 - params from an older plugin version, etc.
                info.scorer = None
        if task == "classification":
            from .stats import CONFUSION_METRICS

            info.confusion = CONFUSION_METRICS.get(plugin) or CONFUSION_METRICS.get(label)
        out[label] = info
    return out


def _read_cells(results) -> list[CellInfo]:
    """Every cell of the manifest (failed ones included) with its metric values and timings."""
    cells: dict[tuple, CellInfo] = {}
    order = []
    for c in results.manifest.get("cells", []):
        info = CellInfo(key=c.get("key", ""), model=str(c.get("model", "")), benchmark=str(c.get("benchmark", "")),
                        strategy=str(c.get("strategy", "")), decoder=str(c.get("decoder") or NO_DECODER),
                        seed=int(c.get("seed", 0) or 0), status=c.get("status", "done"), seconds=c.get("seconds"),
                        error=c.get("error"), traceback=c.get("traceback"))
        k = (info.key, info.model, info.benchmark, info.strategy, info.decoder, info.seed)
        cells[k] = info
        order.append(k)
    df = results.metrics
    for rec in df.to_dict("records"):
        k = (str(rec["cell"]), str(rec["model"]), str(rec["benchmark"]), str(rec["strategy"]),
             str(rec["decoder"]) if rec["decoder"] == rec["decoder"] else NO_DECODER, int(rec["seed"]))
        info = cells.get(k)
        if info is None:  # metrics.csv without a manifest entry (hand-made runs): still report it
            info = CellInfo(key=k[0], model=k[1], benchmark=k[2], strategy=k[3], decoder=k[4], seed=k[5], status="done")
            cells[k] = info
            order.append(k)
        info.task = rec.get("task")
        info.n = int(rec["n"]) if _finite(rec.get("n")) else info.n
        info.values[str(rec["metric"])] = float(rec["value"])
        sig = rec.get("signature")
        if isinstance(sig, str) and sig:
            info.signatures[str(rec["metric"])] = sig
        info.decoder_params = _loads(rec.get("decoder_params"))
        info.strategy_params = _loads(rec.get("strategy_params"))
    for k in order:
        info = cells[k]
        meta_path = results.outdir / "cells" / info.key / "cell.json"
        if info.key and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except ValueError:
                meta = {}
            t = (meta.get("timings") or {}).get("predict")
            info.predict_seconds = float(t) if _finite(t) else None
            if info.status == "failed":
                info.traceback = info.traceback or meta.get("traceback")
                info.error = info.error or meta.get("error")
            if info.task is None:
                info.task = meta.get("task")
    return [cells[k] for k in dict.fromkeys(order)]


class _Predictions:
    """Predictions of cells, read once each."""

    def __init__(self, results):
        self.results = results
        self._rows: dict[str, list[dict]] = {}

    def __call__(self, key: str) -> list[dict] | None:
        if key not in self._rows:
            try:
                self._rows[key] = self.results.predictions(key)
            except (OSError, ValueError):
                self._rows[key] = None
        return self._rows[key]


class _StatsCache:
    """Sentence statistics per (metric, references, outputs) on disk, so re-rendering is cheap."""

    def __init__(self, outdir: Path, enabled: bool):
        self.dir = outdir / CACHE_DIR / "stats"
        self.enabled = enabled
        self.hits = self.misses = 0

    def get(self, key: str):
        import numpy as np

        if not self.enabled:
            return None
        p = self.dir / f"{key}.npy"
        if p.exists():
            try:
                arr = np.load(p, allow_pickle=False)
                self.hits += 1
                return arr
            except (OSError, ValueError):
                return None
        return None

    def put(self, key: str, arr) -> None:
        import io

        import numpy as np

        from .store import atomic_write_bytes

        self.misses += 1
        if not self.enabled:
            return
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        try:
            atomic_write_bytes(self.dir / f"{key}.npy", buf.getvalue())
        except OSError:  # a read-only run directory still gets its report
            self.enabled = False


# ============================================================================ configurations


def _config_labels(configs: list[Config]) -> None:
    """Label each configuration by the factors that vary within its benchmark."""
    varying = [attr for attr in ("model", "strategy", "decoder") if len({getattr(c, attr) for c in configs}) > 1]
    if not varying:
        varying = ["decoder"] if configs and configs[0].decoder != NO_DECODER else ["strategy"]
    for c in configs:
        c.label = " / ".join(getattr(c, a) for a in varying)


def _pair_baseline(cfg: Config, by_key: dict[tuple, Config], base_dec: str | None, base_strat: str | None) -> Config | None:
    """The configuration that differs from ``cfg`` in one factor: the baseline's value of it."""
    if cfg.decoder != NO_DECODER and base_dec is not None and cfg.decoder != base_dec:
        return by_key.get((cfg.benchmark, cfg.model, cfg.strategy, base_dec))
    if base_strat is not None and cfg.strategy != base_strat:
        return by_key.get((cfg.benchmark, cfg.model, base_strat, cfg.decoder))
    return None


def _describe_tests(row: Row, params: AnalysisParams) -> str:
    parts = []
    if row.test == "seeds":
        parts.append(f"paired permutation over {row.seeds_paired} seeds {format_p(row.p_seeds_perm)}")
        if _finite(row.p_seeds_t):
            parts.append(f"paired t-test {format_p(row.p_seeds_t)}")
    elif row.test == "bootstrap":
        parts.append(f"paired bootstrap {format_p(row.p_bootstrap)}")
        if _finite(row.p_ar):
            parts.append(f"approximate randomisation {format_p(row.p_ar)}")
    elif row.test == "mcnemar":
        b, c = row.mcnemar_bc or (0, 0)
        parts.append(f"McNemar exact {format_p(row.p_mcnemar)}, {c} examples fixed and {b} broken")
    return "; ".join(parts)


def _verdict(row: Row, params: AnalysisParams, decimals: int) -> str:
    m, base = row.metric, row.baseline
    if base is None or not _finite(row.delta):
        return ""
    d = row.delta
    # 0-100 scores: one decimal, as sacrebleu prints (two for gaps under 0.1); fractions: three
    digits = 3 if decimals > 2 else (1 if abs(d) >= 0.1 else 2)
    tests = _describe_tests(row, params)
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


# ============================================================================ analysis


def analyze(results, params: AnalysisParams | None = None, *, plugins=None) -> ReportData:
    """Everything the reports show, computed from a run directory's results."""
    cached = getattr(results, "_harness_report_analysis", None)
    params = params or AnalysisParams()
    # html + markdown + csv reporters of one run share one analysis (the results object is per run)
    if cached is not None and cached[0] == params:
        return cached[1]
    t0 = time.perf_counter()
    manifest = results.manifest
    cells = _read_cells(results)
    metric_infos = _metric_infos(results, plugins)
    preds = _Predictions(results)
    cache = _StatsCache(Path(results.outdir), params.cache)

    resolved = manifest.get("resolved") or {}
    dec_order = [d.get("label") for d in resolved.get("decoders", []) if d.get("label")]
    strat_order = [s.get("label") for s in resolved.get("strategies", []) if s.get("label")]
    dec_plugin = {d.get("label"): d.get("plugin") for d in resolved.get("decoders", [])}
    baseline = manifest.get("baseline") or {}

    benches: list[BenchmarkReport] = []
    bench_names = list(dict.fromkeys(c.benchmark for c in cells))
    for bname in bench_names:
        bcells = [c for c in cells if c.benchmark == bname]
        task = next((c.task for c in bcells if c.task), None) or (
            "translation" if any(c.decoder != NO_DECODER for c in bcells) else "classification")
        configs: dict[tuple, Config] = {}
        for c in bcells:
            cfg = configs.setdefault(c.config_key, Config(bname, task, c.model, c.strategy, c.decoder))
            if c.status == "failed":
                cfg.failed.append(c)
            elif c.status in ("done", "cached") or c.values:  # skipped/running cells have no results
                cfg.cells.append(c)
        cfg_list = list(configs.values())

        def order_key(cfg: Config):
            d = dec_order.index(cfg.decoder) if cfg.decoder in dec_order else len(dec_order)
            s = strat_order.index(cfg.strategy) if cfg.strategy in strat_order else len(strat_order)
            return (cfg.model, s, d)

        cfg_list.sort(key=order_key)
        _config_labels(cfg_list)
        decs = [d for d in dec_order if any(c.decoder == d for c in cfg_list)] or \
            list(dict.fromkeys(c.decoder for c in cfg_list if c.decoder != NO_DECODER))
        strats = [s for s in strat_order if any(c.strategy == s for c in cfg_list)] or \
            list(dict.fromkeys(c.strategy for c in cfg_list))
        base_dec = pick_baseline(baseline.get("decoder"), decs, ("greedy",)) if task == "translation" else None
        base_strat = pick_baseline(baseline.get("strategy"), strats, ("unmasked",))
        metrics = [m for label, m in metric_infos.items()
                   if m.task == task and any(label in c.values for c in bcells)]
        br = BenchmarkReport(bname, task, metrics, cfg_list, {}, notes=[], base_decoder=base_dec,
                             base_strategy=base_strat)
        br.baseline_label = " / ".join(x for x in (base_strat if len(strats) > 1 else None,
                                                   base_dec if len(decs) > 1 else None) if x) or (base_dec or base_strat or "")
        for m in metrics:
            sigs = {c.signatures.get(m.label) for c in bcells if c.signatures.get(m.label)}
            if sigs:
                br.signatures[m.label] = " ; ".join(sorted(sigs))
        if task == "translation":
            example_tests = _translation_tests(br, preds, cache, params)
        else:
            example_tests = _classification_tests(br, preds, params)
        _fill_rows(br, configs, base_dec, base_strat, example_tests, params)
        br.drilldown = (_translation_drilldown(br, preds, cache, params, example_tests) if task == "translation"
                        else _classification_drilldown(br, preds, params))
        br.plots = _plot_data(br, dec_plugin)
        benches.append(br)

    data = ReportData(experiment=str(manifest.get("experiment", "")), description=str(manifest.get("description") or ""),
                      manifest=manifest, params=params, benchmarks=benches, cells=cells)
    data.seconds = time.perf_counter() - t0
    try:
        results._harness_report_analysis = (params, data)
    except AttributeError:  # pragma: no cover - a frozen results object: just recompute next time
        pass
    return data


# ----------------------------------------------------------------------------- tests over examples


@dataclass
class _ExampleTests:
    """Per-cell intervals and per-pair p-values over examples, keyed by cell keys."""

    interval: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (metric, key) -> (lo, hi)
    pair: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (metric, sys, base) -> p's
    stats: dict[tuple[str, str], Any] = field(default_factory=dict)  # (metric, key) -> sentence stats
    scorers: dict[str, Any] = field(default_factory=dict)
    refs_ok: set[str] = field(default_factory=set)


def _pairs(br: BenchmarkReport, configs: dict[tuple, Config], base_dec, base_strat) -> list[tuple[str, str]]:
    out = []
    for cfg in br.configs:
        base = _pair_baseline(cfg, configs, base_dec, base_strat)
        if base is None:
            continue
        for c in cfg.cells:
            b = base.cell_for_seed(c.seed)
            if b is not None and b.key != c.key:
                out.append((c.key, b.key))
    return list(dict.fromkeys(out))


def _translation_tests(br: BenchmarkReport, preds: _Predictions, cache: _StatsCache, params: AnalysisParams) -> _ExampleTests:
    from .stats import PairedTranslationTests, SegmentStats, approximate_randomization_many, ar_mask
    from .store import canonical_hash

    out = _ExampleTests()
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
    pairs = [(s, b) for s, b in _pairs(br, configs, br.base_decoder, br.base_strategy) if s in ref_sets and b in ref_sets]
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


def _classification_tests(br: BenchmarkReport, preds: _Predictions, params: AnalysisParams) -> _ExampleTests:
    import numpy as np

    from .stats import bootstrap_counts, confusion_from_pairs, mcnemar_exact, paired_bootstrap_p, sacrebleu_ci

    out = _ExampleTests()
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
    pairs = [(s, b) for s, b in _pairs(br, configs, br.base_decoder, br.base_strategy)
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
            if not _finite(theirs):
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


# ----------------------------------------------------------------------------- rows


def _fill_rows(br: BenchmarkReport, configs: dict[tuple, Config], base_dec, base_strat, ex: _ExampleTests,
               params: AnalysisParams) -> None:
    import numpy as np

    from .stats import seed_tests, t_interval

    for m in br.metrics:
        rows = []
        dec = metric_decimals([v for cfg in br.configs for c in cfg.cells for k, v in c.values.items() if k == m.label])
        for cfg in br.configs:
            row = Row(cfg, m)
            vals_by_key = {c.key: c.values.get(m.label) for c in cfg.cells if _finite(c.values.get(m.label))}
            seed_vals = [c.values.get(m.label) for c in cfg.cells if _finite(c.values.get(m.label))]
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
            base = _pair_baseline(cfg, configs, base_dec, base_strat)
            row.is_baseline = base is None and ((cfg.decoder == base_dec or cfg.decoder == NO_DECODER)
                                                and cfg.strategy == base_strat)
            row.baseline = base
            if base is not None and row.value is not None:
                paired = [(c, base.cell_for_seed(c.seed)) for c in cfg.cells]
                paired = [(c, b) for c, b in paired
                          if b is not None and _finite(c.values.get(m.label)) and _finite(b.values.get(m.label))]
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
                    row.verdict = _verdict(row, params, dec)
            rows.append(row)
        ranked = sorted([r for r in rows if _finite(r.value)], key=lambda r: r.value,
                        reverse=m.higher_is_better)
        for i, r in enumerate(ranked, 1):
            r.rank = i
        if ranked:
            ranked[0].best = True
        br.rows[m.label] = rows


# ----------------------------------------------------------------------------- drill-down


def _translation_drilldown(br: BenchmarkReport, preds: _Predictions, cache: _StatsCache, params: AnalysisParams,
                           ex: _ExampleTests) -> DrillDown:
    import numpy as np

    from .stats import SegmentStats, scores_from_sums

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
        seg = SegmentStats(scorer, [str(x.get("reference") or "") for x in rows[chosen[0][1].key]])
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


def _classification_drilldown(br: BenchmarkReport, preds: _Predictions, params: AnalysisParams) -> DrillDown:
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


# ----------------------------------------------------------------------------- plot data


def _plot_data(br: BenchmarkReport, dec_plugin: dict[str, str]) -> dict[str, Any]:
    """The numbers behind each plot, or nothing for a plot whose data is absent."""
    import numpy as np

    plots: dict[str, Any] = {}
    labels = [m.label for m in br.metrics]
    quality = [m for m in br.metrics if m.scorer is not None] or br.metrics[:1]
    if not quality:
        return plots
    primary = quality[0]

    def mean_of(cfg: Config, label: str) -> float | None:
        v = [c.values[label] for c in cfg.cells if _finite(c.values.get(label))]
        return float(np.mean(v)) if v else None

    if br.task == "translation":
        # quality vs beam size: one line per decoder family (plugin + its other parameters)
        series: dict[tuple, list[tuple[float, Config]]] = defaultdict(list)
        greedy_refs = []
        for cfg in br.configs:
            if not cfg.cells:
                continue
            dp = cfg.cells[0].decoder_params
            nb = dp.get("num_beams")
            if isinstance(nb, (int, float)) and not isinstance(nb, bool):
                others = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in dp.items() if k != "num_beams"))
                series[(cfg.model, cfg.strategy, dec_plugin.get(cfg.decoder) or cfg.decoder.split("[")[0], others)].append((float(nb), cfg))
            elif (dec_plugin.get(cfg.decoder) or cfg.decoder) == "greedy":
                greedy_refs.append(cfg)
        if any(len({x for x, _ in pts}) >= 2 for pts in series.values()):
            varying = [i for i in range(4) if len({k[i] for k in series}) > 1]
            lines = []
            for key, pts in series.items():
                pts.sort(key=lambda p: p[0])
                parts = [str(key[i]) if i < 3 else ", ".join(f"{k}={v}" for k, v in key[3]) for i in varying]
                name = " / ".join(p for p in parts if p) or key[2]
                lines.append({"name": name, "x": [x for x, _ in pts],
                              "y": {m.label: [mean_of(c, m.label) for _, c in pts] for m in quality}})
            plots["beam"] = {"metrics": [(m.label, m.title, m.higher_is_better) for m in quality], "lines": lines,
                             "greedy": [{"name": g.label, "y": {m.label: mean_of(g, m.label) for m in quality}}
                                        for g in greedy_refs]}
        # quality vs diversity
        div = next((d for d in ("distinct_2", "distinct_1", "self_bleu") if d in labels), None)
        if div is not None:
            pts = [{"name": cfg.label, "x": mean_of(cfg, div), "y": mean_of(cfg, primary.label),
                    "oracle": mean_of(cfg, "oracle_bleu") if "oracle_bleu" in labels else None}
                   for cfg in br.configs if cfg.cells]
            pts = [p for p in pts if p["x"] is not None and p["y"] is not None]
            if len(pts) >= 2:
                plots["diversity"] = {"x_label": METRIC_TITLES.get(div, div), "x_lower_is_more_diverse": div == "self_bleu",
                                      "y_label": primary.title, "points": pts}
        # decoding speed vs quality
        sp = []
        for cfg in br.configs:
            t = [c.n / c.predict_seconds for c in cfg.cells if c.predict_seconds and c.n]
            y = mean_of(cfg, primary.label)
            if t and y is not None:
                sp.append({"name": cfg.label, "x": float(np.mean(t)), "y": y})
        if len(sp) >= 2:
            plots["speed"] = {"y_label": primary.title, "points": sp}
    # scores across seeds with error bars
    seeded = [cfg for cfg in br.configs if len(cfg.distinct_keys) >= 2]
    if seeded:
        m = br.metrics[0]
        plots["seeds"] = {"metric": m.title, "configs": [
            {"name": cfg.label, "values": [c.values[m.label] for c in cfg.cells if _finite(c.values.get(m.label))]}
            for cfg in br.configs if cfg.cells]}
    return plots
