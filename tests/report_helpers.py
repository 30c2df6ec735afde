"""Build run directories on disk without running models, for report, leaderboard and speed tests.

``write_run`` writes what ``harness run`` writes (manifest.json, metrics.csv, cells/<key>/cell.json
and predictions.jsonl) with metric values computed by sacrebleu / scikit-learn from the given
outputs, so the reports' recomputations must agree with them.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from harness.run.outputs import METRIC_COLUMNS
from harness.store import atomic_write_json, canonical_hash, write_jsonl

TRANSLATION_METRICS = ("bleu", "chrf", "ter")
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "mcc")


def translation_scores(outputs: list[str], refs: list[str]) -> dict[str, tuple[float, str]]:
    from sacrebleu.metrics import BLEU, CHRF, TER

    out = {}
    for name, m in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        out[name] = (float(m.corpus_score(outputs, [refs]).score), str(m.get_signature()))
    return out


def classification_scores(pred: list[str], gold: list[str], scale: float = 1.0) -> dict[str, tuple[float, str]]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    return {"accuracy": (scale * accuracy_score(gold, pred), ""),
            "macro_f1": (scale * f1_score(gold, pred, average="macro"), ""),
            "mcc": (scale * matthews_corrcoef(gold, pred), "")}


def write_run(outdir: Path, *, benchmarks: dict[str, dict[str, Any]], cells: list[dict[str, Any]],
              experiment: str = "demo", description: str = "", baseline: dict[str, Any] | None = None,
              extra_metric_plugins: dict[str, str] | None = None, scale: float = 1.0) -> Path:
    """Write a run directory.

    ``benchmarks``: name -> {"task", "sources", "references"} (classification: references are gold labels).
    ``cells``: dicts with benchmark, outputs and optionally strategy, decoder, seed, model, nbest,
    status ("done" | "cached" | "failed"), error, predict_seconds, decoder_params, extra (metric -> value), key.
    """
    outdir = Path(outdir)
    rows, manifest_cells = [], []
    decoders: dict[str, dict] = {}
    strategies: dict[str, dict] = {}
    metric_labels: dict[str, str] = {}
    for c in cells:
        bench = benchmarks[c["benchmark"]]
        task = bench["task"]
        decoder = c.get("decoder", "greedy" if task == "translation" else "-")
        strategy = c.get("strategy", "none")
        seed = c.get("seed", 0)
        model = c.get("model", "tiny")
        labels = {"model": model, "benchmark": c["benchmark"], "strategy": strategy, "decoder": decoder, "seed": seed}
        key = c.get("key") or canonical_hash([labels, c.get("outputs")])
        status = c.get("status", "done")
        if decoder != "-":
            dp = c.get("decoder_params")
            if dp is None and "num_beams=" in decoder:
                dp = {"num_beams": int(decoder.split("num_beams=")[1].split(",")[0].rstrip("]"))}
            decoders.setdefault(decoder, {"plugin": decoder.split("[")[0], "label": decoder, "params": dp or {}})
        strategies.setdefault(strategy, {"plugin": strategy.split("[")[0], "label": strategy, "params": {}})
        celldir = outdir / "cells" / key
        meta = {"key": key, "labels": labels, "task": task, "status": "done" if status == "cached" else status,
                "seconds": c.get("seconds", 1.0)}
        if status == "failed":
            meta.update(error=c.get("error", "RuntimeError: boom"),
                        traceback=c.get("traceback", "Traceback (most recent call last):\nRuntimeError: boom\n"))
            atomic_write_json(celldir / "cell.json", meta)
            manifest_cells.append({"key": key, **labels, "status": "failed", "seconds": 0.5,
                                   "error": meta["error"], "predictions": None})
            continue
        if c.get("predict_seconds") is not None:
            meta["timings"] = {"load_data": 0.01, "strategy": 0.0, "predict": c["predict_seconds"]}
        atomic_write_json(celldir / "cell.json", meta)
        outputs = c["outputs"]
        refs = bench["references"]
        preds = []
        for i, (src, ref, out) in enumerate(zip(bench["sources"], refs, outputs)):
            r = {"id": f"test-{i + 1}", "source": src, "reference": ref, "output": out}
            if task == "translation":
                r["score"] = -0.5
                if c.get("nbest"):
                    r["nbest"] = [{"text": t, "score": -0.5 - 0.1 * j} for j, t in enumerate(c["nbest"][i])]
            preds.append(r)
        write_jsonl(celldir / "predictions.jsonl", preds)
        scores = translation_scores(outputs, refs) if task == "translation" else \
            classification_scores(outputs, refs, scale)
        for name, v in (c.get("extra") or {}).items():
            scores[name] = (v, "")
        common = {"task": task, "n": len(outputs), "cell": key, "model_path": f"/models/{model}",
                  "benchmark_params": json.dumps({"name": c["benchmark"]}),
                  "strategy_params": "{}",
                  "decoder_params": json.dumps(decoders[decoder]["params"], sort_keys=True) if decoder != "-" else ""}
        for name, (value, sig) in scores.items():
            metric_labels.setdefault(name, (extra_metric_plugins or {}).get(name, name))
            rows.append({**labels, "metric": name, "value": value, "signature": sig, **common})
        manifest_cells.append({"key": key, **labels, "status": status, "seconds": c.get("seconds", 1.0),
                               "error": None, "predictions": None})
    import pandas as pd

    outdir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(outdir / "metrics.csv", index=False)
    seeds = sorted({c.get("seed", 0) for c in cells})
    manifest = {
        "experiment": experiment, "description": description, "config_file": str(outdir / "experiment.yaml"),
        "config": {"name": experiment, "seeds": seeds, "models": [{"path": "/models/tiny"}],
                   "benchmarks": [{"name": "parallel_text", "label": b} for b in benchmarks]},
        "resolved": {"decoders": list(decoders.values()), "strategies": list(strategies.values()),
                     "metrics": [{"plugin": p, "label": label, "params": {}} for label, p in metric_labels.items()],
                     "reporters": [{"plugin": "html", "label": "html", "params": {}}]},
        "baseline": baseline or {"decoder": None, "strategy": None},
        "seeds": seeds, "harness_version": "0.1.0",
        "packages": {"nlp-eval-harness": "0.1.0", "sacrebleu": "2.6.0"},
        "git": {"config": None, "harness": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False}},
        "hardware": {"platform": "Linux", "python": "3.11.7", "cpu_count": 2},
        "started": "2026-01-01T00:00:00+0000", "seconds": 12.5, "cells": manifest_cells,
    }
    atomic_write_json(outdir / "manifest.json", manifest)
    return outdir


# ----------------------------------------------------------------------------- ready-made runs

XSS_OUT = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
XSS_ERR = 'CUDA out of memory <img src=x onerror="window.__pwned=3">'
XSS_NAME = "demo</script><script>window.__pwned=4</script>"
XSS_TEXT = "a film </script><script>window.__pwned=5</script> & more"
SEEDS = (0, 1, 2, 3, 4)


def flip(gold: list[str], p: float, seed: int) -> list[str]:
    r = random.Random(seed)
    return [g if r.random() > p else ("neg" if g == "pos" else "pos") for g in gold]


def build_demo_run(out: Path, *, experiment: str = XSS_NAME, baseline=None) -> Path:
    """Translation: greedy < beam2 < beam4 (+ a diverse beam) with timings and distinct-2, one
    failed cell; classification: unmasked vs input_mask over five seeds."""
    tb = translation_benchmark(64)
    refs = tb["references"]
    greedy, b4, div = degrade(refs, 3), degrade(refs, 7), degrade(refs, 5, offset=1)
    greedy[0] = XSS_OUT
    # beam2 differs from greedy on five sentences only, better on three and worse on two:
    # significant in BLEU on this toy set, not in chrF
    b2 = greedy[:5] + degrade(refs, 6)[5:8] + greedy[8:9] + degrade(refs, 2)[9:11] + greedy[11:]
    rnd = random.Random(0)
    gold = [rnd.choice(["neg", "pos"]) for _ in range(300)]
    cb = {"task": "classification", "sources": [f"review {i}" for i in range(300)], "references": gold}
    cb["sources"][3] = XSS_TEXT
    cells = [
        dict(benchmark="multi30k", decoder="greedy", outputs=greedy, predict_seconds=2.0, extra={"distinct_2": 0.41}),
        dict(benchmark="multi30k", decoder="beam[num_beams=2]", outputs=b2, predict_seconds=3.0,
             extra={"distinct_2": 0.45}),
        dict(benchmark="multi30k", decoder="beam[num_beams=4]", outputs=b4, predict_seconds=5.5,
             nbest=[[o, o + " und"] for o in b4], extra={"distinct_2": 0.44}),
        dict(benchmark="multi30k", decoder="diverse_beam[num_beam_groups=2]", outputs=div, predict_seconds=6.0,
             decoder_params={"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 0.5},
             extra={"distinct_2": 0.62}),
        dict(benchmark="multi30k", decoder="beam[num_beams=8]", status="failed", error=XSS_ERR, outputs=[]),
    ]
    for s in SEEDS:
        cells.append(dict(benchmark="sst2", strategy="unmasked", seed=s, outputs=flip(gold, 0.20, s)))
        cells.append(dict(benchmark="sst2", strategy="input_mask", seed=s, outputs=flip(gold, 0.15, 100 + s),
                          status="cached" if s == 0 else "done"))
    return write_run(out, experiment=experiment, benchmarks={"multi30k": tb, "sst2": cb}, cells=cells, scale=100.0,
                     baseline=baseline, extra_metric_plugins={"distinct_2": "distinct_2"})


SOURCES = ["the cat sat on the mat", "a dog ran to the house", "the red car is big", "two men play football",
           "a woman reads a book", "children swim in the lake", "the old man walks slowly", "a bird sings loudly"]
REFERENCES = ["die katze sass auf der matte", "ein hund lief zum haus", "das rote auto ist gross",
              "zwei maenner spielen fussball", "eine frau liest ein buch", "kinder schwimmen im see",
              "der alte mann geht langsam", "ein vogel singt laut"]


def degrade(refs: list[str], drop_every: int, offset: int = 0) -> list[str]:
    """Deterministically drop words from references: a weaker 'system' the larger drop_every is small."""
    out = []
    for i, r in enumerate(refs):
        w = r.split()
        out.append(" ".join(x for j, x in enumerate(w) if (i + j + offset) % drop_every) or w[0])
    return out


def translation_benchmark(n: int = 64) -> dict[str, Any]:
    src = [SOURCES[i % len(SOURCES)] + f" {i}" for i in range(n)]
    ref = [REFERENCES[i % len(REFERENCES)] + f" {i}" for i in range(n)]
    return {"task": "translation", "sources": src, "references": ref}
