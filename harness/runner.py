"""Running an experiment: cells → executor → cached cell results → metrics.csv, predictions, reports.

A cell runs in four steps: load the benchmark data, let the strategy prepare the model
(e.g. fine-tune it), produce predictions (a decoder for generation tasks, the classifier for
classification), and score them with the task's metrics.

Never losing a result:

- Before anything is written, every benchmark whose cells will run is loaded once: data errors
  (misaligned files, bad encoding, empty segments) stop the run with exit code 2 instead of
  failing every cell. Local model directories get their ``config.json`` checked the same way.
- Each cell's predictions are cached in ``OUTDIR/cells/<key>/`` and reused only when
  ``cell.json`` says ``done`` *and* the predictions file matches the digest recorded there
  (see :mod:`harness.store`), so a run killed at any instant resumes where it stopped and
  produces byte-identical ``predictions/`` and ``metrics.csv``.
- A cell that raises (a bug, an out-of-memory error, a bad parameter combination) is recorded
  as failed, with its error and traceback, in ``cell.json`` and in the manifest; the other
  cells go on. Re-running retries failed and interrupted cells; ``only_failed`` retries just
  those, ``retry_failed=False`` keeps recorded failures as they are.

Non-goals: sharing one output directory between concurrent runs (the directory lock refuses
the second run) and resuming *inside* a cell (an interrupted cell starts again from scratch).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import Cell, Component, ResolvedExperiment
from .errors import DataError, HarnessError
from .progress import Progress, make_progress
from .ranking import testset_fingerprint
from .store import (RunLock, atomic_write_json, atomic_write_text, canonical_hash, model_fingerprint,
                    read_cell_record, read_jsonl, remove_temp_files, safe_child, sha256_file, slug)

log = logging.getLogger("harness")

METRIC_COLUMNS = ["model", "benchmark", "strategy", "decoder", "seed", "metric", "value", "task", "signature",
                  "n", "cell", "model_path", "benchmark_params", "strategy_params", "decoder_params", "testset"]


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
    status: str  # "done" | "cached" | "failed" | "skipped"
    seconds: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    index: int = 0
    traceback: str | None = None


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


def _torch_threads() -> int | None:
    """Recorded with each cell: float results (e.g. beam scores) can differ in the last digits
    between thread counts, so byte-identical reruns need the same count."""
    import sys

    return sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None


def _release_gpu_memory() -> None:
    import gc
    import sys

    gc.collect()  # tensors held by the failed cell's frames
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _meta(job: CellJob) -> dict[str, Any]:
    c = job.cell
    return {"key": job.key, "labels": c.labels(), "task": c.task, "model_path": c.model.path,
            "benchmark": _component_id(c.benchmark), "strategy": _component_id(c.strategy),
            "decoder": _component_id(c.decoder)}


def describe_exception(e: BaseException) -> str:
    """One line a user can act on: a HarnessError's own message, else the type and message,
    with a hint for out-of-memory errors (the most common reason a big cell fails)."""
    if isinstance(e, HarnessError):
        return str(e)
    message = f"{type(e).__name__}: {e}".strip().rstrip(":")
    if isinstance(e, MemoryError) or "OutOfMemory" in type(e).__name__ or "out of memory" in str(e).lower():
        message += " (out of memory: lower the batch_size, max_new_tokens or num_beams of this cell, or use a smaller model)"
    return message


def record_failure(job: CellJob, error: BaseException | str, seconds: float = 0.0, tb: str | None = None) -> CellOutcome:
    """Write ``cell.json`` saying the cell failed (error + traceback) and return its outcome.
    Executors call this for failures the worker could not record itself (e.g. a worker process
    that died)."""
    message = error if isinstance(error, str) else describe_exception(error)
    if tb is None:
        tb = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else ""
    atomic_write_json(job.celldir / "cell.json", {**_meta(job), "status": "failed", "seconds": round(seconds, 3),
                                                  "error": message, "traceback": tb})
    return CellOutcome(job.key, job.cell.labels(), "failed", seconds, error=message, index=job.index, traceback=tb)


class Worker:
    """Runs cell jobs in one process, keeping the last loaded model for the next cell.

    ``progress`` receives cell start and per-cell progress (``ctx.progress``) events; remote
    executors create their own Worker without one.
    """

    def __init__(self, progress: Progress | None = None):
        self._model_key: str | None = None
        self._model = None
        self.progress = progress or Progress()

    def generation_model(self, spec, seed: int):
        from .models import load_generation_model

        key = canonical_hash([model_fingerprint(spec), seed if spec.init == "random" else None])
        if key != self._model_key:
            self._model = None  # free the old model before loading the next
            self._model_key = None
            self._model = load_generation_model(spec, seed=seed)
            self._model_key = key
        return self._model

    def __call__(self, job: CellJob) -> CellOutcome:
        celldir = job.celldir
        record = read_cell_record(celldir)
        if record is not None and record.get("status") == "done":
            # The driver serves cached cells itself; this keeps a stray cached job cheap and correct.
            return self.score(job, read_jsonl(celldir / "predictions.jsonl"), "cached", record.get("seconds", 0.0))
        self.progress.cell_started(job)
        t0 = time.perf_counter()
        try:
            # A cell that is not done starts from an empty directory: scratch files of an
            # interrupted attempt must not leak into this one.
            if celldir.exists():
                shutil.rmtree(celldir)
            atomic_write_json(celldir / "cell.json", {**_meta(job), "status": "running", "pid": os.getpid(),
                                                      "host": socket.gethostname(),
                                                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            rows, timings = self._execute(job)
            seconds = time.perf_counter() - t0
            pred = celldir / "predictions.jsonl"
            atomic_write_text(pred, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            # cell.json last: "done" is only ever written after the predictions it vouches for
            atomic_write_json(celldir / "cell.json", {**_meta(job), "status": "done", "seconds": round(seconds, 3),
                                                      "timings": timings, "n": len(rows),
                                                      "testset": testset_fingerprint([r.get("reference") for r in rows]),
                                                      "predictions_sha256": sha256_file(pred),
                                                      "host": socket.gethostname(), "pid": os.getpid(),
                                                      "torch_threads": _torch_threads()})
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a failing cell must not stop the others
            seconds = time.perf_counter() - t0
            log.debug("cell %s failed", job.key, exc_info=True)
            outcome = record_failure(job, e, seconds, traceback.format_exc())
            _release_gpu_memory()  # after an OOM, the next cell should not inherit a full cache
            return outcome
        return self.score(job, rows, "done", seconds)

    def _execute(self, job: CellJob) -> tuple[list[dict], dict[str, float]]:
        from .api import CellContext

        cell = job.cell
        job.celldir.mkdir(parents=True, exist_ok=True)
        sink = self.progress
        ctx = CellContext(seed=cell.seed, workdir=job.celldir, cache_dir=Path(job.cache_dir), device=cell.model.device,
                          progress=lambda done, total=None: sink.cell_progress(job, done, total), log=log)
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
            hyps = cell.decoder.instantiate().decode(model, [ex.source for ex in data.test],
                                                     dataclasses.replace(ctx, example_ids=[ex.id for ex in data.test]))
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

    def score(self, job: CellJob, rows: list[dict], status: str, seconds: float) -> CellOutcome:
        """Compute the job's metrics from its predictions. Metrics are never cached: a metric that
        raises fails the cell's outcome but keeps its predictions, so fixing the metric re-decodes nothing."""
        try:
            return self._finish(job, rows, status, seconds)
        except (Exception, SystemExit) as e:  # noqa: BLE001
            message = f"scoring failed: {describe_exception(e)}"
            return CellOutcome(job.key, job.cell.labels(), "failed", seconds, error=message, index=job.index,
                               traceback=traceback.format_exc())

    def _finish(self, job: CellJob, rows: list[dict], status: str, seconds: float) -> CellOutcome:
        from .api import Example

        cell = job.cell
        examples = [Example(id=r["id"], source=r["source"], reference=r.get("reference") if cell.task != "classification" else None,
                            label=r.get("reference") if cell.task == "classification" else None,
                            source_pair=r.get("source_pair")) for r in rows]
        outputs = [r["output"] for r in rows]
        nbest = [[h["text"] for h in r.get("nbest", [{"text": r["output"]}])] for r in rows] \
            if any("nbest" in r for r in rows) else None
        labels = cell.labels()
        # testset: leaderboards only rank scores of the same test set together (harness.ranking)
        common = {"task": cell.task, "n": len(rows), "cell": job.key, "model_path": cell.model.path,
                  "testset": testset_fingerprint([r.get("reference") for r in rows]),
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
    report_errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


# ----------------------------------------------------------------------------- before any cell runs


def check_inputs(resolved: ResolvedExperiment, jobs: list[CellJob], cache_dir: Path) -> None:
    """Load each benchmark and check each local model config that ``jobs`` need, writing nothing.

    Raises one :class:`DataError` listing every problem found (each naming the config file, the
    benchmark or model, and the data file with its line). Only errors a plugin raises as
    :class:`HarnessError` stop the run: any other exception is a plugin bug, which the affected
    cells record as their failure while the other cells still run.
    """
    from .api import CellContext

    problems: list[str] = []
    seen: set[str] = set()
    for job in jobs:
        bench = job.cell.benchmark
        ident = canonical_hash(_component_id(bench))
        if ident in seen:
            continue
        seen.add(ident)
        with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
            ctx = CellContext(seed=job.cell.seed, workdir=Path(tmp), cache_dir=cache_dir, device="cpu", log=log)
            try:
                data = bench.instantiate().load(ctx)
            except HarnessError as e:
                problems += [f"{resolved.source}: benchmarks: '{bench.label}': {line}" for line in str(e).splitlines()]
                continue
            except Exception:  # noqa: BLE001 - see docstring
                log.debug("benchmark %s raised while checking inputs", bench.label, exc_info=True)
                continue
        if not data.test:
            problems.append(f"{resolved.source}: benchmarks: '{bench.label}': the test split has no examples")
    for spec in {job.cell.model.path: job.cell.model for job in jobs if job.cell.model.local}.values():
        from .models import load_config

        try:
            load_config(spec)
        except HarnessError as e:
            problems.append(f"{resolved.source}: models: '{spec.display}': {e}")
    if problems:
        raise DataError("\n".join(problems))


@dataclass
class Plan:
    """What to do with each job, decided from the cells' records under the lock."""

    run: list[CellJob] = field(default_factory=list)
    followers: list[CellJob] = field(default_factory=list)  # same key as a job in `run`: reuse its result
    cached: list[tuple[CellJob, dict]] = field(default_factory=list)
    kept_failed: list[tuple[CellJob, dict]] = field(default_factory=list)
    skipped: list[CellJob] = field(default_factory=list)
    interrupted: int = 0


def plan_jobs(jobs: list[CellJob], *, retry_failed: bool = True, only_failed: bool = False) -> Plan:
    """Cached when done; otherwise run, unless the mode says to keep a failure or skip a never-run cell.

    - default: run everything not done (failed and interrupted cells are retried);
    - ``only_failed``: run only cells whose last attempt failed or was interrupted;
      never-run cells are skipped;
    - ``retry_failed=False``: keep recorded failures as they are, run the rest.

    Cells whose predictions cannot differ (e.g. seeds of a deterministic decoder) share a key;
    only the first of them runs, the others follow it, so no two workers write one cell directory.
    """
    plan = Plan()
    running: set[str] = set()
    for job in jobs:
        record = read_cell_record(job.celldir)
        status = record.get("status") if record else None
        if status == "done":
            plan.cached.append((job, record))
            continue
        attempted = status is not None  # failed, running (killed), incomplete (results missing)
        plan.interrupted += status in ("running", "incomplete") and job.key not in running
        if only_failed and not attempted:
            plan.skipped.append(job)
        elif status == "failed" and not retry_failed and not only_failed:
            plan.kept_failed.append((job, record))
        elif job.key in running:
            plan.followers.append(job)
        else:
            running.add(job.key)
            plan.run.append(job)
    return plan


# ----------------------------------------------------------------------------- the run


def run_experiment(resolved: ResolvedExperiment, outdir: str | Path, *, cache_dir: str | Path | None = None,
                   retry_failed: bool = True, only_failed: bool = False, quiet: bool = False,
                   progress: Progress | None = None, check_data: bool = True) -> RunSummary:
    """Run every cell of ``resolved`` into ``outdir`` (reusing finished cells) and write the results.

    Raises :class:`HarnessError` (nothing written) for bad data or a directory another run holds.
    """
    outdir = Path(outdir)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    started = time.time()
    cells = resolved.cells()
    jobs = [CellJob(cell_key(c), c, resolved.metrics_for(c.task), str(outdir), str(cache_dir), i + 1, len(cells))
            for i, c in enumerate(cells)]
    if check_data:
        # read-only look, before the lock creates anything: fail fast on data every such cell would choke on
        check_inputs(resolved, plan_jobs(jobs, retry_failed=retry_failed, only_failed=only_failed).run, cache_dir)
    progress = progress or make_progress(quiet=quiet)
    with RunLock(outdir):
        remove_temp_files(outdir)
        plan = plan_jobs(jobs, retry_failed=retry_failed, only_failed=only_failed)
        outcomes: dict[int, CellOutcome] = {}

        def on_done(o: CellOutcome, ran: bool = True) -> None:
            outcomes[o.index] = o
            progress.cell_finished(o, ran)

        worker = Worker(progress)
        progress.start(len(jobs), len(plan.run), cached=len(plan.cached), interrupted=plan.interrupted)
        try:
            for job, record in plan.cached:
                on_done(worker.score(job, read_jsonl(job.celldir / "predictions.jsonl"), "cached",
                                     float(record.get("seconds", 0.0))), ran=False)
            for job, record in plan.kept_failed:
                on_done(CellOutcome(job.key, job.cell.labels(), "failed", float(record.get("seconds", 0.0)),
                                    error=record.get("error"), index=job.index, traceback=record.get("traceback")),
                        ran=False)
            for job in plan.skipped:
                on_done(CellOutcome(job.key, job.cell.labels(), "skipped", index=job.index,
                                    error="never run (skipped by --retry-failed)"), ran=False)
            if plan.run:
                resolved.executor.instantiate().run(plan.run, worker, on_done)
            for job in plan.run:  # an executor plugin that dropped a job must not make its cell vanish
                if job.index not in outcomes:
                    on_done(record_failure(job, f"not run: executor '{resolved.executor.name}' returned no result "
                                                "for this cell"))
            leaders = {job.key: outcomes[job.index] for job in plan.run}
            for job in plan.followers:
                leader = leaders.get(job.key)
                if leader.status == "done":
                    on_done(worker.score(job, read_jsonl(job.celldir / "predictions.jsonl"), "cached", leader.seconds),
                            ran=False)
                else:
                    on_done(CellOutcome(job.key, job.cell.labels(), "failed", error=leader.error,
                                        index=job.index, traceback=leader.traceback), ran=False)
        finally:
            progress.close()
        ordered = [outcomes[j.index] for j in jobs if j.index in outcomes]
        report_errors: list[str] = []
        files = write_results(resolved, outdir, jobs, ordered, started, report_errors)
    return RunSummary(outdir, ordered, files, report_errors)


def prediction_names(jobs: list[CellJob]) -> dict[int, str]:
    """File name under ``predictions/`` for each job index: the slug of its labels, made unique.

    Labels come from the config, so they are untrusted: the slug keeps only ``[A-Za-z0-9._=-]``
    (no path separators), and two labels with the same slug (``a/b`` and ``a_b``) get the cell
    key appended rather than overwriting each other's predictions.
    """
    names: dict[int, str] = {}
    used: set[str] = set()
    for job in jobs:
        base = slug("__".join(str(v) for v in job.cell.labels().values())).lstrip("._") or "cell"
        name = f"{base}.jsonl"
        if name in used:
            name = f"{base}__{job.key}.jsonl"
        used.add(name)
        names[job.index] = name
    return names


def write_results(resolved: ResolvedExperiment, outdir: Path, jobs: list[CellJob], outcomes: list[CellOutcome],
                  started: float, report_errors: list[str] | None = None) -> list[Path]:
    """Write predictions/, metrics.csv, then manifest.json (which lists the digests of the other
    two, so a reader can tell a set of files written together), then the reports.

    Each file is replaced atomically; a kill between two of them leaves a mix of whole old and
    whole new files, which the next run overwrites with the same bytes. Returns the files written;
    a reporter that raises is appended to ``report_errors`` (a broken reporter must not lose results).
    """
    import pandas as pd

    pred_dir = outdir / "predictions"
    names = prediction_names(jobs)
    by_index = {o.index: o for o in outcomes}
    written: dict[int, str] = {}
    for job in jobs:
        o = by_index.get(job.index)
        if o is None or o.status not in ("done", "cached"):
            continue
        target = safe_child(pred_dir, names[job.index])
        atomic_write_text(target, (job.celldir / "predictions.jsonl").read_text(encoding="utf-8"))
        written[job.index] = f"predictions/{target.name}"
    keep = {Path(v).name for v in written.values()}
    if pred_dir.is_dir():  # predictions of cells no longer in the grid would pass for current results
        for stale in pred_dir.glob("*.jsonl"):
            if stale.name not in keep:
                stale.unlink()

    rows = [m for o in outcomes for m in o.metrics]
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    atomic_write_text(outdir / "metrics.csv", metrics.to_csv(index=False))
    files = [outdir / "metrics.csv"] + [outdir / v for v in written.values()]

    exp = resolved.experiment
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "cached", "failed", "skipped")}
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
        "status": "complete" if counts["failed"] == counts["skipped"] == 0 else "incomplete",
        "counts": counts,
        "outputs": {str(f.relative_to(outdir)): sha256_file(f) for f in files},
        "cells": [{"key": o.key, **o.labels, "status": o.status, "seconds": round(o.seconds, 3), "error": o.error,
                   "predictions": written.get(o.index), "cell_dir": f"cells/{o.key}",
                   **({"traceback": o.traceback} if o.status == "failed" and o.traceback else {})}
                  for o in outcomes],
    }
    atomic_write_json(outdir / "manifest.json", manifest)
    files += [outdir / "manifest.json"]
    from .results import load_run

    results = load_run(outdir)
    report_errors = report_errors if report_errors is not None else []
    for comp in resolved.reporters:
        try:
            files += comp.instantiate().write(results, outdir)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - results are on disk; say what failed, keep going
            log.debug("reporter %s failed", comp.label, exc_info=True)
            report_errors.append(f"reporter '{comp.label}' failed: {describe_exception(e)}")
    return files
