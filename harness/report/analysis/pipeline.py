"""analyze(): a run directory's results in, a :class:`ReportData` out (cached per results object)."""
from __future__ import annotations

import time
from pathlib import Path

from .arguments import note_arguments
from .drilldown import classification_drilldown, translation_drilldown
from .examples import example_tests
from .model import NO_DECODER, AnalysisParams, BenchmarkReport, Config, ReportData
from .pairing import config_labels, pick_baseline, precision_note
from .plots import plot_data
from .study import build_study, mlm_heads
from .training import training_runs
from . import runs
from .runs import Predictions, StatsCache, read_cells
from .verdicts import fill_rows, finalize

def analyze(results, params: AnalysisParams | None = None, *, plugins=None) -> ReportData:
    """Everything the reports show, computed from a run directory's results."""
    cached = getattr(results, "_harness_report_analysis", None)
    params = params or AnalysisParams()
    # html + markdown + csv reporters of one run share one analysis (the results object is per run)
    if cached is not None and cached[0] == params:
        return cached[1]
    t0 = time.perf_counter()
    manifest = results.manifest
    cells = read_cells(results)
    metric_infos = runs.metric_infos(results, plugins)
    preds = Predictions(results)
    cache = StatsCache(Path(results.outdir), params.cache)

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
        config_labels(cfg_list)
        decs = [d for d in dec_order if any(c.decoder == d for c in cfg_list)] or \
            list(dict.fromkeys(c.decoder for c in cfg_list if c.decoder != NO_DECODER))
        strats = [s for s in strat_order if any(c.strategy == s for c in cfg_list)] or \
            list(dict.fromkeys(c.strategy for c in cfg_list))
        base_dec = pick_baseline(baseline.get("decoder"), decs, ("greedy",)) if task == "translation" else None
        base_strat = pick_baseline(baseline.get("strategy"), strats, ("unmasked",))
        metrics = [m for label, m in metric_infos.items()
                   if m.task == task and any(label in c.values for c in bcells)]
        models = list(dict.fromkeys(c.model for c in cfg_list))
        base_model = baseline.get("model") if baseline.get("model") in models and len(models) > 1 else None
        br = BenchmarkReport(bname, task, metrics, cfg_list, {}, notes=[], base_decoder=base_dec,
                             base_strategy=base_strat, base_model=base_model)
        if (note := precision_note(cfg_list)) is not None:
            br.notes.append(note)
        br.baseline_label = " / ".join(x for x in (base_model, base_strat if len(strats) > 1 else None,
                                                   base_dec if len(decs) > 1 else None) if x) or (base_dec or base_strat or "")
        for m in metrics:
            sigs = {c.signatures.get(m.label) for c in bcells if c.signatures.get(m.label)}
            if sigs:
                br.signatures[m.label] = " ; ".join(sorted(sigs))
        ex_tests = example_tests(br, preds, cache, params)
        fill_rows(br, configs, base_dec, base_strat, ex_tests, params)
        br.drilldown = (translation_drilldown(br, preds, cache, params, ex_tests) if task == "translation"
                        else classification_drilldown(br, preds, params))
        br.plots = plot_data(br, dec_plugin, preds)
        benches.append(br)

    family = finalize(benches, params)
    data = ReportData(experiment=str(manifest.get("experiment", "")), description=str(manifest.get("description") or ""),
                      manifest=manifest, params=params, benchmarks=benches, cells=cells, holm_family=family)
    strategy_plugins = {s.get("label"): s.get("plugin") for s in resolved.get("strategies", []) if s.get("label")}
    data.study = build_study(benches, strategy_plugins=strategy_plugins, params=params)
    data.arguments = note_arguments(benches, preds, cache, params, strategy_plugins)
    data.mlm_heads = mlm_heads(Path(results.outdir), cells)
    data.training = training_runs(Path(results.outdir), cells)
    data.seconds = time.perf_counter() - t0
    try:
        results._harness_report_analysis = (params, data)
    except AttributeError:  # pragma: no cover - a frozen results object: just recompute next time
        pass
    return data
