"""``OUTDIR/results.json``: one run in one file, the file people diff and upload.

It holds the resolved config, package versions, git commit, the limit banner, every cell
(status, key, seed, timings), every aggregate (value, interval with its kind, n, signature) and
every comparison (delta, deciding test, p, Holm p, decision in the fixed vocabulary of
:data:`harness.stats.decide.VERDICTS`, the difference the test could see, verdict text, identical-output
flag). Nothing
is recomputed here: aggregates and comparisons are the report's own numbers
(:func:`harness.report.analysis.analyze`, with the analysis settings of the run's first reporter that
has them, so the p-values equal the report's), the rest comes from the manifest and cell records.

Keys are written in a fixed order (not sorted) and the file is byte-stable for the same results,
so ``diff`` between two runs shows only what changed. NaN and infinities become ``null``.
``schema_version`` is bumped when a key is renamed or removed (adding keys does not bump it).
Non-goals: per-example values (those are in ``predictions/*.jsonl``) and the HTML report's layout.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
FILENAME = "results.json"

AGGREGATE_KEYS = ("benchmark", "task", "metric", "model", "strategy", "decoder", "label", "seeds", "value", "std",
                  "ci_low", "ci_high", "ci_method", "direction", "signature", "signature_source", "rank", "na_reason")
COMPARISON_KEYS = ("benchmark", "metric", "label", "baseline", "delta", "delta_ci_low", "delta_ci_high", "test",
                   "p", "p_holm", "significant", "decision", "mde", "p_bootstrap", "p_ar", "p_mcnemar",
                   "p_seeds_permutation", "p_seeds_t", "outputs_differ", "identical_outputs", "verdict")


def analysis_params(manifest: dict[str, Any]):
    """The analysis settings of the run's first reporter that has any (html, markdown, csv...),
    so results.json states the same intervals and p-values as the report; defaults otherwise."""
    from .analysis import AnalysisParams

    fields = set(AnalysisParams.model_fields)
    for rep in (manifest.get("resolved") or {}).get("reporters", []) or []:
        params = rep.get("params") or {}
        if isinstance(params, dict) and fields & set(params):
            return AnalysisParams(**{k: v for k, v in params.items() if k in fields})
    return AnalysisParams()


def _plain(v: Any) -> Any:
    """JSON-safe and stable: numpy scalars to Python, tuples to lists, non-finite floats to null."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _cells(results) -> list[dict[str, Any]]:
    out = []
    for c in results.cells:
        record: dict[str, Any] = {}
        try:
            record = json.loads((Path(results.outdir) / "cells" / str(c.get("key")) / "cell.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        out.append({"key": c.get("key"), "model": c.get("model"), "benchmark": c.get("benchmark"),
                    "strategy": c.get("strategy"), "decoder": c.get("decoder"), "seed": c.get("seed"),
                    "status": c.get("status"), "seconds": c.get("seconds"),
                    "timings": record.get("timings") if isinstance(record, dict) else None,
                    "n": record.get("n") if isinstance(record, dict) else None,
                    "error": c.get("error"), "predictions": c.get("predictions")})
    return out


def build(results, params=None) -> dict[str, Any]:
    """The content of results.json for a loaded run (:func:`harness.results.load_run`)."""
    from .analysis import analyze

    manifest = results.manifest
    params = params or analysis_params(manifest)
    data = analyze(results, params)
    aggregates, comparisons = [], []
    records = iter(r for r in data.records() if r.get("kind") == "leaderboard")
    for b in data.benchmarks:
        for m in b.metrics:
            for row in b.rows.get(m.label, []):
                rec = next(records)
                ns = sorted({c.n for c in row.config.cells if c.n is not None})
                aggregates.append({**{k: rec.get(k) for k in AGGREGATE_KEYS},
                                   "n": ns[0] if len(ns) == 1 else (ns or None)})
                if rec.get("baseline") is not None and not rec.get("is_baseline"):
                    comparisons.append({**{k: rec.get(k) for k in COMPARISON_KEYS}, "test_name": row.test_name})
    doc = {
        "schema_version": SCHEMA_VERSION,
        "experiment": manifest.get("experiment"),
        "description": manifest.get("description"),
        "status": manifest.get("status"),
        "counts": manifest.get("counts"),
        "harness_version": manifest.get("harness_version"),
        "git": manifest.get("git"),
        "packages": manifest.get("packages"),
        "started": manifest.get("started"),
        "seconds": manifest.get("seconds"),
        "config_file": manifest.get("config_file"),
        "config_hash": manifest.get("config_hash"),
        "config": manifest.get("config"),
        "resolved": manifest.get("resolved"),
        "baseline": manifest.get("baseline"),
        "seeds": manifest.get("seeds"),
        "limit": manifest.get("limit"),
        "metrics": manifest.get("metrics"),
        "data_files": manifest.get("data_files"),
        "hub_revisions": manifest.get("hub_revisions"),
        "analysis": params.model_dump(mode="json"),
        "holm_family": data.holm_family,
        "cells": _cells(results),
        "aggregates": aggregates,
        "comparisons": comparisons,
        "study": [r for r in data.study_records()],
        "notes": {b.name: list(b.notes) for b in data.benchmarks if b.notes},
    }
    return _plain(doc)


def write(results, outdir: str | Path | None = None, params=None) -> Path:
    """Write ``results.json`` into ``outdir`` (default: the run's directory) atomically."""
    from ..store import atomic_write_text

    path = Path(outdir if outdir is not None else results.outdir) / FILENAME
    atomic_write_text(path, json.dumps(build(results, params), indent=2, ensure_ascii=False) + "\n")
    return path
