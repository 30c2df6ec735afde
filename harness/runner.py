"""Running an experiment: cells → executor → cached cell results → metrics.csv, predictions, reports.

A cell runs in four steps: load the benchmark data, let the strategy prepare the model
(e.g. fine-tune it), produce predictions (a decoder for generation tasks, the classifier for
classification), and score them with the task's metrics. Predictions are cached per cell key
in ``OUTDIR/cells/<key>/``; a cell whose predictions exist is not run again. A cell that
raises is recorded as failed (error and traceback in its ``cell.json``) and the others go on.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import Cell, Component, ResolvedExperiment
from .errors import HarnessError
from .store import (RunLock, atomic_write_json, atomic_write_text, canonical_hash, model_fingerprint,
                    read_jsonl, slug, write_jsonl)

log = logging.getLogger("harness")

METRIC_COLUMNS = ["model", "benchmark", "strategy", "decoder", "seed", "metric", "value", "task", "signature",
                  "n", "cell", "model_path", "benchmark_params", "strategy_params", "decoder_params"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "nlp-eval-harness"))


def _component_id(c: Component | None) -> Any:
    if c is None:
        return None
    return {"plugin": c.name, "version": c.cls.version, "params": c.params_dict()}


def cell_key(cell: Cell) -> str:
    """Hash of everything that determines the cell's predictions."""
    seed_matters = (cell.strategy.cls.uses_seed or (cell.decoder is not None and not cell.decoder.cls.deterministic)
                    or cell.model.init == "random")
    return canonical_hash({
        "harness": __version__.split("+")[0],
        "model": model_fingerprint(cell.model),
        "benchmark": {**_component_id(cell.benchmark), "data": cell.benchmark.instantiate().fingerprint()},
        "strategy": _component_id(cell.strategy),
        "decoder": _component_id(cell.decoder),
        "seed": cell.seed if seed_matters else None,
    })


@dataclass
class CellJob:
    """Everything needed to run one cell anywhere (picklable, for remote executors)."""

    key: str
    cell: Cell
    metrics: list[Component]
    outdir: str
    cache_dir: str
    index: int = 0
    total: int = 0

    @property
    def celldir(self) -> Path:
        return Path(self.outdir) / "cells" / self.key


@dataclass
class CellOutcome:
    key: str
    labels: dict[str, Any]
    status: str  # "done" | "cached" | "failed"
    seconds: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    index: int = 0


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


class Worker:
    """Runs cell jobs in one process, keeping the last loaded model for the next cell."""

    def __init__(self):
        self._model_key: str | None = None
        self._model = None

    def generation_model(self, spec, seed: int):
        from .models import load_generation_model

        key = canonical_hash([model_fingerprint(spec), seed if spec.init == "random" else None])
        if key != self._model_key:
            self._model = None  # free the old model before loading the next
            self._model = load_generation_model(spec, seed=seed)
            self._model_key = key
        return self._model

    def __call__(self, job: CellJob) -> CellOutcome:
        cell = job.cell
        celldir = job.celldir
        meta_path = celldir / "cell.json"
        t0 = time.perf_counter()
        try:
            if meta_path.exists() and (celldir / "predictions.jsonl").exists():
                import json

                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                if meta.get("status") == "done":
                    rows = read_jsonl(celldir / "predictions.jsonl")
                    return self._finish(job, rows, "cached", meta.get("seconds", 0.0), t0)
            rows, timings = self._execute(job)
            seconds = time.perf_counter() - t0
            write_jsonl(celldir / "predictions.jsonl", rows)
            atomic_write_json(meta_path, {**self._meta(job), "status": "done", "seconds": round(seconds, 3),
                                          "timings": timings})
            return self._finish(job, rows, "done", seconds, t0)
        except Exception as e:  # noqa: BLE001 - a failing cell must not stop the others
            seconds = time.perf_counter() - t0
            message = str(e) if isinstance(e, HarnessError) else f"{type(e).__name__}: {e}"
            atomic_write_json(meta_path, {**self._meta(job), "status": "failed", "seconds": round(seconds, 3),
                                          "error": message, "traceback": traceback.format_exc()})
            return CellOutcome(job.key, cell.labels(), "failed", seconds, error=message, index=job.index)

    def _meta(self, job: CellJob) -> dict[str, Any]:
        c = job.cell
        return {"key": job.key, "labels": c.labels(), "task": c.task, "model_path": c.model.path,
                "benchmark": _component_id(c.benchmark), "strategy": _component_id(c.strategy),
                "decoder": _component_id(c.decoder)}

    def _execute(self, job: CellJob) -> tuple[list[dict], dict[str, float]]:
        from .api import CellContext

        cell = job.cell
        job.celldir.mkdir(parents=True, exist_ok=True)
        ctx = CellContext(seed=cell.seed, workdir=job.celldir, cache_dir=Path(job.cache_dir), device=cell.model.device,
                          log=log)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        data = cell.benchmark.instantiate().load(ctx)
        timings["load_data"] = time.perf_counter() - t
        seed_everything(cell.seed)
        t = time.perf_counter()
        spec = cell.strategy.instantiate().prepare(cell.model, data, ctx)
        timings["strategy"] = time.perf_counter() - t
        seed_everything(cell.seed)
        t = time.perf_counter()
        if cell.task == "classification":
            from .classification import predict

            preds = predict(spec, data, ctx)
            rows = [{"id": ex.id, "source": ex.source, **({"source_pair": ex.source_pair} if ex.source_pair else {}),
                     "reference": ex.label, "output": p["label"], **({"probs": p["probs"]} if "probs" in p else {})}
                    for ex, p in zip(data.test, preds)]
        else:
            model = self.generation_model(spec, cell.seed)
            t = time.perf_counter()
            hyps = cell.decoder.instantiate().decode(model, [ex.source for ex in data.test], ctx)
            if len(hyps) != len(data.test):
                raise HarnessError(f"decoder '{cell.decoder.name}' returned {len(hyps)} outputs for {len(data.test)} sources")
            rows = []
            for ex, nbest in zip(data.test, hyps):
                row = {"id": ex.id, "source": ex.source, "reference": ex.reference, "output": nbest[0].text,
                       "score": nbest[0].score}
                if len(nbest) > 1:
                    row["nbest"] = [{"text": h.text, "score": h.score} for h in nbest]
                rows.append(row)
        timings["predict"] = time.perf_counter() - t
        return rows, {k: round(v, 4) for k, v in timings.items()}

    def _finish(self, job: CellJob, rows: list[dict], status: str, seconds: float, t0: float) -> CellOutcome:
        from .api import Example

        cell = job.cell
        examples = [Example(id=r["id"], source=r["source"], reference=r.get("reference") if cell.task != "classification" else None,
                            label=r.get("reference") if cell.task == "classification" else None,
                            source_pair=r.get("source_pair")) for r in rows]
        outputs = [r["output"] for r in rows]
        nbest = [[h["text"] for h in r.get("nbest", [{"text": r["output"]}])] for r in rows] \
            if any("nbest" in r for r in rows) else None
        labels = cell.labels()
        common = {"task": cell.task, "n": len(rows), "cell": job.key, "model_path": cell.model.path,
                  "benchmark_params": _json(cell.benchmark.params_dict()),
                  "strategy_params": _json(cell.strategy.params_dict()),
                  "decoder_params": _json(cell.decoder.params_dict()) if cell.decoder else ""}
        out = []
        for m in job.metrics:
            mv = m.instantiate().compute(outputs, examples, nbest)
            out.append({**labels, "metric": m.label, "value": float(mv.value), "signature": mv.signature or "", **common})
        return CellOutcome(job.key, labels, status, seconds, out, index=job.index)


def _json(d: Any) -> str:
    import json

    return json.dumps(d, sort_keys=True, ensure_ascii=False)


def _package_versions(resolved: ResolvedExperiment) -> dict[str, str]:
    import importlib.metadata as md

    names = ["nlp-eval-harness", "torch", "transformers", "sacrebleu", "datasets", "pandas", "pluggy", "pydantic",
             "numpy", "tokenizers", "accelerate", "scikit-learn", "scipy"]
    names += sorted({info.package for info in resolved.plugins if not info.package.startswith("(")})
    out = {}
    for n in dict.fromkeys(names):
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


def _git_commit(path: Path) -> dict[str, Any] | None:
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def _hardware() -> dict[str, Any]:
    import platform

    hw = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
          "processor": platform.processor() or platform.machine()}
    import sys

    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        hw["torch_threads"] = torch.get_num_threads()
        hw["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return hw


@dataclass
class RunSummary:
    outdir: Path
    outcomes: list[CellOutcome]
    files: list[Path]

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def run_experiment(resolved: ResolvedExperiment, outdir: str | Path, *, cache_dir: str | Path | None = None,
                   retry_failed: bool = True, quiet: bool = False) -> RunSummary:
    outdir = Path(outdir)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    started = time.time()
    cells = resolved.cells()
    with RunLock(outdir):
        jobs = [CellJob(cell_key(c), c, resolved.metrics_for(c.task), str(outdir), str(cache_dir), i + 1, len(cells))
                for i, c in enumerate(cells)]
        outcomes: dict[int, CellOutcome] = {}

        def on_done(o: CellOutcome) -> None:
            outcomes[o.index] = o
            if not quiet:
                scores = ", ".join(f"{m['metric']}={m['value']:.2f}" for m in o.metrics)
                extra = f" ({scores})" if scores else ""
                if o.status == "failed":
                    extra = f": {o.error}"
                print(f"[{len(outcomes)}/{len(jobs)}] {o.status:6s} {o.seconds:7.1f}s  "
                      f"{' / '.join(str(v) for v in o.labels.values())}{extra}", flush=True)

        executor = resolved.executor.instantiate()
        executor.run(jobs, Worker(), on_done)
        ordered = [outcomes[j.index] for j in jobs if j.index in outcomes]
        files = write_results(resolved, outdir, jobs, ordered, started)
    return RunSummary(outdir, ordered, files)


def write_results(resolved: ResolvedExperiment, outdir: Path, jobs: list[CellJob], outcomes: list[CellOutcome],
                  started: float) -> list[Path]:
    import pandas as pd

    rows = [m for o in outcomes for m in o.metrics]
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    atomic_write_text(outdir / "metrics.csv", metrics.to_csv(index=False))
    files = [outdir / "metrics.csv"]
    by_key = {o.key: o for o in outcomes}
    pred_names: dict[str, str] = {}
    for job in jobs:
        o = by_key.get(job.key)
        if o is None or o.status == "failed":
            continue
        name = slug("__".join(str(v) for v in job.cell.labels().values())) + ".jsonl"
        src = job.celldir / "predictions.jsonl"
        atomic_write_text(outdir / "predictions" / name, src.read_text(encoding="utf-8"))
        pred_names[job.key] = f"predictions/{name}"
    exp = resolved.experiment
    manifest = {
        "experiment": exp.name,
        "description": exp.description,
        "config_file": resolved.source,
        "config": resolved.raw,
        "resolved": {section: [{"plugin": c.name, "label": c.label, "params": c.params_dict()} for c in comps]
                     for section, comps in resolved.components.items()}
        | {"models": [m.model_dump(mode="json") for m in exp.models]},
        "baseline": exp.baseline.model_dump(),
        "seeds": exp.seeds,
        "harness_version": __version__,
        "packages": _package_versions(resolved),
        "git": {"config": _git_commit(resolved.base_dir), "harness": _git_commit(Path(__file__).parent)},
        "hardware": _hardware(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "cells": [{"key": o.key, **o.labels, "status": o.status, "seconds": round(o.seconds, 3), "error": o.error,
                   "predictions": pred_names.get(o.key)} for o in outcomes],
    }
    atomic_write_json(outdir / "manifest.json", manifest)
    files += [outdir / "manifest.json"]
    from .results import load_run

    results = load_run(outdir)
    for comp in resolved.reporters:
        files += comp.instantiate().write(results, outdir)
    return files
