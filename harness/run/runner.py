"""Running an experiment: cells → executor → cached cell results → metrics.csv, predictions, reports
(what the run directory receives is :mod:`harness.run.outputs`; threads per cell, :mod:`harness.run.threads`;
the data passed around, :mod:`harness.run.jobs`).

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

from .._version import __version__
from ..errors import DataError, HarnessError, describe_exception
from ..experiment.config import Cell, Component, ResolvedExperiment
from ..stats.ranking import testset_of_rows
from ..store import (OutputWriteError, RunLock, atomic_write_json, atomic_write_text, canonical_hash,
                     default_cache_dir, model_fingerprint, portable_params, read_cell_record, read_jsonl,
                     remove_temp_files, sha256_file, storage_fault)
from .example_scores import metric_example_scores, row_scores
from .jobs import CellJob, CellOutcome, RunSummary
from .outputs import prediction_names, refuse_other_config, report_outputs, write_results
from .ownership import check_run_paths, claim
from .progress import Progress, make_progress
from .returns import (check_benchmark_data, check_hypotheses, check_metric_value, check_model_spec, describe_value,
                      not_finite, who)
from .threads import decide_threads, decide_training_threads, set_torch_threads, torch_threads

log = logging.getLogger("harness")
SLOW_SCORING_SECONDS = 2.0  # per-example scoring shows progress once it has taken this long




def _component_id(c: Component | None) -> Any:
    if c is None:
        return None
    return {"plugin": c.name, "version": c.cls.version, "params": c.params_dict()}


def _key_id(c: Component | None) -> Any:
    """A component as it enters a cache key: local paths among its parameters stand for their
    content, so moving a checkout (or the data beside it) keeps every finished cell."""
    if c is None:
        return None
    return {"plugin": c.name, "version": c.cls.version, "params": portable_params(c.params_dict())}


def cell_key(cell: Cell, training_threads: int = 1) -> str:
    """Hash of everything that determines the cell's predictions (never an absolute path).
    ``training_threads``: the torch threads its strategy trains with (part of what it trains)."""
    # A strategy with train_seed trains (and draws random initial weights) with that seed, not the
    # cell's: its deterministic decoders then give one cell for all seeds.
    trains = cell.strategy.cls.uses_seed
    pinned = trains and getattr(cell.strategy.params, "train_seed", None) is not None
    seed_matters = ((trains and not pinned) or (cell.decoder is not None and not cell.decoder.cls.deterministic)
                    or (cell.model.init == "random" and not pinned))
    try:
        data = cell.benchmark.instantiate().fingerprint()
    except HarnessError:
        raise
    except Exception as e:  # noqa: BLE001 - a plugin bug, before anything runs: one line, not a traceback
        raise HarnessError(f"{who(cell.benchmark)}: fingerprint() failed: {describe_exception(e)}") from None
    subset = cell.benchmark.subset  # the core's --limit: absent from the keys of cells without one
    return canonical_hash({
        "harness": __version__.split("+")[0],
        "model": model_fingerprint(cell.model),
        "benchmark": {**_key_id(cell.benchmark), "data": data, **({"subset": subset.key()} if subset else {})},
        "strategy": _key_id(cell.strategy),
        "decoder": _key_id(cell.decoder),
        "seed": cell.seed if seed_matters else None,
        # cells trained before the count was fixed (and keyed) ran at whatever the machine had
        **({"training_threads": training_threads} if trains else {}),
    })


def load_benchmark(bench: Component, ctx) -> Any:
    """The benchmark's data as the cells see it: loaded by its plugin, checked, and cut to the
    core's test subset (``--limit``; :mod:`harness.experiment.subset`) when it has one."""
    data = check_benchmark_data(bench, bench.instantiate().load(ctx))
    return bench.subset.apply(data) if bench.subset is not None else data


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
            "precision": c.model.precision,  # int8, float16, ct2:int8...: reduced precision is marked
            "benchmark": _component_id(c.benchmark), **({"subset": c.benchmark.subset.key()} if c.benchmark.subset else {}),
            "strategy": _component_id(c.strategy),
            "decoder": _component_id(c.decoder)}


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
        from ..engines.load import load_generation_model

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
        if not job.cell.model.outputs:  # reading given outputs needs no torch
            set_torch_threads(job.threads)
        t0 = time.perf_counter()
        try:
            # A cell that is not done starts from an empty directory: scratch files of an
            # interrupted attempt must not leak into this one. Only a directory the harness made
            # is cleared (checked for every cell before the run; again here, for other executors).
            if os.path.lexists(celldir):
                if celldir.is_symlink() or not celldir.is_dir():
                    raise HarnessError(f"{celldir}: is not a cell directory the harness made; refusing to delete it")
                shutil.rmtree(celldir)
            atomic_write_json(celldir / "cell.json", {**_meta(job), "status": "running", "pid": os.getpid(),
                                                      "host": socket.gethostname(),
                                                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            # third-party progress bars and warnings go to the cell's log.txt (in pipes and CI)
            with self.progress.cell_output(celldir / "log.txt"):
                rows, timings, recorded = self._execute(job)
            seconds = time.perf_counter() - t0
            pred = celldir / "predictions.jsonl"
            atomic_write_text(pred, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            # cell.json last: "done" is only ever written after the predictions it vouches for
            atomic_write_json(celldir / "cell.json", {**_meta(job), "status": "done", "seconds": round(seconds, 3),
                                                      "timings": timings, **recorded, "n": len(rows),
                                                      "testset": testset_of_rows(rows),
                                                      "predictions_sha256": sha256_file(pred),
                                                      "host": socket.gethostname(), "pid": os.getpid(),
                                                      "torch_threads": torch_threads()})
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a failing cell must not stop the others
            fault = storage_fault(e)
            if fault is not None:  # the machine, not the cell: every later cell would fail alike, so the run stops
                if fault is e:
                    raise
                raise fault from e
            seconds = time.perf_counter() - t0
            log.debug("cell %s failed", job.key, exc_info=True)
            outcome = record_failure(job, e, seconds, traceback.format_exc())
            _release_gpu_memory()  # after an OOM, the next cell should not inherit a full cache
            return outcome
        return self.score(job, rows, "done", seconds)

    def _execute(self, job: CellJob) -> tuple[list[dict], dict[str, float], dict[str, Any]]:
        from ..api import CellContext

        cell = job.cell
        job.celldir.mkdir(parents=True, exist_ok=True)
        sink = self.progress
        ctx = CellContext(seed=cell.seed, workdir=job.celldir, cache_dir=Path(job.cache_dir), device=cell.model.device,
                          progress=lambda done, total=None: sink.cell_progress(job, done, total), log=log,
                          training_threads=job.training_threads)
        timings: dict[str, float] = {}
        recorded: dict[str, Any] = {}  # what cell.json records beside the timings (the kernels that ran)
        t = time.perf_counter()
        data = load_benchmark(cell.benchmark, ctx)
        timings["load_data"] = time.perf_counter() - t
        seed_everything(cell.seed)
        t = time.perf_counter()
        strategy = cell.strategy.instantiate()
        spec = check_model_spec(cell.strategy, strategy.prepare(cell.model, data, ctx))
        timings["strategy"] = time.perf_counter() - t
        seed_everything(cell.seed)
        t = time.perf_counter()
        if cell.task == "classification":
            from .classify import predict

            preds = predict(spec, data, ctx, corruption=strategy.test_time_corruption(),
                            record=recorded)
            rows = [{"id": ex.id, "source": ex.source, **({"source_pair": ex.source_pair} if ex.source_pair else {}),
                     "reference": ex.label, "output": p["label"], **({"probs": p["probs"]} if "probs" in p else {})}
                    for ex, p in zip(data.test, preds)]
        else:
            if cell.model.outputs:  # the system's outputs as given, in place of a decoder's
                hyps = outputs_hypotheses(cell.model, cell.benchmark.label, data)
            else:
                model = self.generation_model(spec, cell.seed)
                if getattr(model, "kernels", None) is not None:
                    recorded["kernels"] = model.kernels.record()
                t = time.perf_counter()
                hyps = cell.decoder.instantiate().decode(model, [ex.source for ex in data.test],
                                                         dataclasses.replace(ctx, example_ids=[ex.id for ex in data.test]))
                hyps = check_hypotheses(cell.decoder, hyps, len(data.test))
            rows = []
            for ex, nbest in zip(data.test, hyps):
                row = {"id": ex.id, "source": ex.source, "reference": ex.reference, "output": nbest[0].text,
                       "score": _score(nbest[0].score)}
                if ex.references:  # several references: all of them, the first also as "reference"
                    row["references"] = list(ex.references)
                if len(nbest) > 1:
                    row["nbest"] = [{"text": h.text, "score": _score(h.score)} for h in nbest]
                rows.append(row)
        # given outputs were read, not predicted: no throughput for the speed plots to show
        timings["read_outputs" if cell.model.outputs else "predict"] = time.perf_counter() - t
        return rows, {k: round(v, 4) for k, v in timings.items()}, recorded

    def score(self, job: CellJob, rows: list[dict], status: str, seconds: float) -> CellOutcome:
        """Compute the job's metrics from its predictions. Metrics are never cached, so fixing a
        metric re-decodes nothing. A metric that raises or returns something other than a
        :class:`MetricValue` fails only itself (listed in ``outcome.metric_errors``); the cell and
        its other metrics and predictions are kept. A NaN value is kept and flagged there too."""
        try:
            return self._finish(job, rows, status, seconds)
        except (Exception, SystemExit) as e:  # noqa: BLE001
            message = f"scoring failed: {describe_exception(e)}"
            return CellOutcome(job.key, job.cell.labels(), "failed", seconds, error=message, index=job.index,
                               traceback=traceback.format_exc())

    def _finish(self, job: CellJob, rows: list[dict], status: str, seconds: float) -> CellOutcome:
        from ..api import Example

        cell = job.cell
        examples = [Example(id=r["id"], source=r["source"], reference=r.get("reference") if cell.task != "classification" else None,
                            label=r.get("reference") if cell.task == "classification" else None,
                            source_pair=r.get("source_pair"),
                            references=tuple(r["references"]) if r.get("references") else None) for r in rows]
        outputs = [r["output"] for r in rows]
        nbest = [[h["text"] for h in r.get("nbest", [{"text": r["output"]}])] for r in rows] \
            if any("nbest" in r for r in rows) else None
        labels = cell.labels()
        # testset: leaderboards only rank scores of the same test set together (harness.stats.ranking)
        common = {"task": cell.task, "n": len(rows), "cell": job.key, "model_path": cell.model.path,
                  "testset": testset_of_rows(rows),
                  "precision": cell.model.precision,
                  "benchmark_params": _json(cell.benchmark.params_dict()),
                  "strategy_params": _json(cell.strategy.params_dict()),
                  "decoder_params": _json(cell.decoder.params_dict()) if cell.decoder else ""}
        out, problems = [], []
        for m in job.metrics:
            try:
                # copies: a metric that sorts or edits its inputs must not change the next metric's score
                value, signature = check_metric_value(m, m.instantiate().compute(
                    list(outputs), list(examples), [list(n) for n in nbest] if nbest is not None else None))
            except (Exception, SystemExit) as e:  # noqa: BLE001 - a broken metric fails only itself
                log.debug("metric %s failed on cell %s", m.label, job.key, exc_info=True)
                problems.append(f"metric '{m.label}' failed: {describe_exception(e)}")
                continue
            # an n-best list metric is n/a (NaN by contract) where the decoder returned one hypothesis
            lists_na = nbest is None and getattr(m.cls, "scope", "outputs") == "lists"
            odd = not_finite(value)
            if odd and not (lists_na and odd == "NaN"):  # kept (NaN: empty in metrics.csv) and flagged
                problems.append(f"metric '{m.label}' is {odd} ({who(m)} returned {odd})")
            out.append({**labels, "metric": m.label, "value": value, "signature": signature, **common})
        per_metric, signatures = self._example_scores(job, outputs, examples, nbest, running=status == "done")
        return CellOutcome(job.key, labels, status, seconds, out, index=job.index, metric_errors=problems,
                           row_scores=row_scores(cell.task, rows, per_metric), score_signatures=signatures)

    def _example_scores(self, job: CellJob, outputs, examples, nbest,
                        running: bool = False) -> tuple[dict[str, list], dict[str, str]]:
        """Each metric's per-example values (sentence chrF/BLEU, a plugin's example_scores) for
        the ``scores`` of predictions/*.jsonl. A metric whose per-example values fail loses only
        them (its corpus value above is unaffected), with a warning."""
        per_metric: dict[str, list] = {}
        signatures: dict[str, str] = {}
        for m in job.metrics:
            skipped: list[str] = []
            started = time.monotonic()

            def scoring_progress(done, total):
                # a cell that ran shows its scoring progress once scoring is slow (long segments), and
                # not the seconds-long scoring of every cell after its decoding's own progress
                if time.monotonic() - started >= SLOW_SCORING_SECONDS:
                    self.progress.cell_progress(job, done, total)

            try:
                values, sig = metric_example_scores(
                    m.instantiate(), list(outputs), list(examples), [list(n) for n in nbest] if nbest is not None
                    else None, skipped=skipped, progress=scoring_progress if running else None)
            except (Exception, SystemExit) as e:  # noqa: BLE001 - per-row extras must not cost the cell
                log.warning("metric '%s': no per-example scores for cell %s: %s", m.label, job.key,
                            describe_exception(e))
                continue
            if skipped:
                log.warning("metric '%s': no per-example score for %d segment(s) of cell %s too long to score "
                            "(e.g. example '%s')", m.label, len(skipped), job.key, skipped[0])
            if values is not None:
                per_metric[m.label] = values
                signatures[m.label] = sig
        return per_metric, signatures


def _full_size(data) -> int | None:
    """Segments in a file-based benchmark's test files when it selected fewer (``limit``), else None."""
    total = data.meta.get("test_lines")
    return total if isinstance(total, int) and not isinstance(total, bool) and total > len(data.test) else None


def outputs_hypotheses(spec, benchmark: str, data) -> list[list[Any]]:
    """A system outputs file (``kind: outputs``) as the hypothesis lists a decoder would return,
    aligned with the test examples (:func:`harness.models.outputs.aligned`)."""
    from ..api import Hypothesis
    from ..models.outputs import aligned, count_problem, read_outputs

    examples = data.test
    outs = read_outputs(spec.path)
    problem = count_problem(outs, len(examples), benchmark, full=_full_size(data))
    if problem:  # check_inputs refuses it before any cell runs; a file edited since then fails this cell
        raise DataError(problem)
    hyps = []
    for i in aligned(outs, [ex.id for ex in examples]):
        score = outs.scores[i] if outs.scores else None
        nbest = outs.nbest[i] if outs.nbest else None
        hyps.append([Hypothesis(h["text"], h["score"]) for h in nbest] if nbest
                    else [Hypothesis(outs.texts[i], score)])
    return hyps


def _score(score: Any) -> float | None:
    return None if score is None else float(score)  # numpy/torch scalars would not serialise


def _json(d: Any) -> str:
    import json

    return json.dumps(d, sort_keys=True, ensure_ascii=False)


# ----------------------------------------------------------------------------- before any cell runs


def check_inputs(resolved: ResolvedExperiment, jobs: list[CellJob], cache_dir: Path) -> None:
    """Load each benchmark and check each local model config that ``jobs`` need, writing nothing;
    then :func:`harness.experiment.checks.check_runtime` (devices as torch sees them, uncached Hub models,
    memory and default lengths against the loaded data).

    Raises one :class:`DataError` listing every problem found (each naming the config file, the
    benchmark or model, and the data file with its line). Only errors a plugin raises as
    :class:`HarnessError` stop the run: any other exception is a plugin bug, which the affected
    cells record as their failure while the other cells still run.
    """
    from ..api import CellContext

    problems: list[str] = []
    seen: set[str] = set()
    loaded: dict[str, Any] = {}  # benchmark label -> data, for the memory estimate of checks.check_runtime
    for job in jobs:
        bench = job.cell.benchmark
        ident = canonical_hash([_component_id(bench), bench.subset.key() if bench.subset else None])
        if ident in seen:
            continue
        seen.add(ident)
        with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
            ctx = CellContext(seed=job.cell.seed, workdir=Path(tmp), cache_dir=cache_dir, device="cpu", log=log)
            try:
                data = load_benchmark(bench, ctx)  # a wrong shape: the cells say so
            except HarnessError as e:
                problems += [f"{resolved.source}: benchmarks: '{bench.label}': {line}" for line in str(e).splitlines()]
                if bench.base_label in resolved.fallbacks:  # the remote source failed: what was missing locally
                    problems.append(f"{resolved.source}: benchmarks: '{bench.label}': read from the remote source "
                                    f"because {resolved.fallbacks[bench.base_label]}")
                continue
            except Exception:  # noqa: BLE001 - see docstring
                log.debug("benchmark %s raised while checking inputs", bench.label, exc_info=True)
                continue
        if not data.test:
            problems.append(f"{resolved.source}: benchmarks: '{bench.label}': the test split has no examples")
        loaded[bench.label] = data
    problems += _check_system_outputs(resolved, jobs, loaded)
    from ..experiment.checks import check_runtime

    problems += check_runtime(resolved, jobs, loaded)
    broken: set[str] = set()
    for spec in {job.cell.model.path: job.cell.model for job in jobs
                 if job.cell.model.local and not job.cell.model.outputs}.values():
        from ..models.hf import load_config

        try:
            load_config(spec)
        except HarnessError as e:
            problems.append(f"{resolved.source}: models: '{spec.display}': {e}")
            broken.add(spec.path)
    for (spec, auto, new_head) in _weight_checks(jobs, broken):
        from ..models.hf import checkpoint_fits

        try:
            checkpoint_fits(spec, auto, new_head=new_head)
        except HarnessError as e:
            problems.append(f"{resolved.source}: models: '{spec.display}': {e}")
    if problems:
        raise DataError("\n".join(problems))


def _weight_checks(jobs: list[CellJob], skip: set[str]) -> list[tuple[Any, str, bool]]:
    """(model, transformers Auto class, whether a new head is built) for each local pretrained
    model the jobs load, so a checkpoint that does not fill its architecture stops the run
    before any cell rather than failing (or worse, running with random weights in) each."""
    from ..models.facts import model_facts, read_config_json

    out: dict[tuple[str, str, bool], tuple[Any, str, bool]] = {}
    for job in jobs:
        spec, cell = job.cell.model, job.cell
        if not spec.local or spec.outputs or spec.init != "pretrained" or spec.path in skip:
            continue
        if cell.task == "classification":
            auto, new_head = "AutoModelForSequenceClassification", cell.strategy.name != "none"
        else:
            try:
                kind = model_facts(read_config_json(spec.path), spec).kind
            except HarnessError:
                continue
            if kind not in ("seq2seq", "causal"):
                continue  # the cell says the model cannot translate
            auto, new_head = ("AutoModelForSeq2SeqLM" if kind == "seq2seq" else "AutoModelForCausalLM"), False
        out.setdefault((spec.path, auto, new_head), (spec, auto, new_head))
    # a checkpoint loaded strictly somewhere need not also be checked with a new head
    strict = {(p, a) for (p, a, n) in out if not n}
    return [v for (p, a, n), v in out.items() if not (n and (p, a) in strict)]


def cache_dir_not_a_dir(p: Path, where: str) -> None:
    """The read-only half of :func:`check_cache_dir` (before the inputs are checked)."""
    existing = next((a for a in (p, *p.parents) if os.path.lexists(a)), None)
    if existing is not None and not existing.is_dir():
        raise HarnessError(f"cache directory {p} ({where}): {existing} is a {'file' if existing.is_file() else 'special file'}, "
                           "not a directory; point HARNESS_CACHE or --cache-dir at a directory")


def check_cache_dir(cache_dir: Path, where: str) -> None:
    """One line before anything runs when the shared cache cannot be used, instead of the same
    traceback in every cell: not a directory (a config mistake, exit 2), or not writable (exit 2
    for permissions; 3 when the filesystem is read-only or full: a machine fault, as for results).
    The directory is created here, as the first cell would; nothing else is written."""
    import errno as errnos

    from ..store import OutputWriteError, STORAGE_ERRNOS

    p = Path(cache_dir)
    cache_dir_not_a_dir(p, where)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=p, prefix=".harness-probe-", delete=True)
        probe.close()
    except OSError as e:
        if e.errno in STORAGE_ERRNOS:
            raise OutputWriteError(p, e) from None
        why = "permission denied" if e.errno in (errnos.EACCES, errnos.EPERM) else (e.strerror or str(e))
        raise HarnessError(f"cache directory {p} ({where}): cannot be written ({why}); point HARNESS_CACHE or "
                           "--cache-dir at a directory you can write") from None


def _check_system_outputs(resolved: ResolvedExperiment, jobs: list[CellJob], loaded: dict[str, Any]) -> list[str]:
    """System outputs files (``kind: outputs``) that cannot be read or hold another number of
    segments than their benchmark's test set; benchmarks without sources given to a model that
    would have to translate them."""
    from ..models.outputs import aligned, count_problem, read_outputs

    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    read: dict[str, Any] = {}
    for job in jobs:
        spec, bench = job.cell.model, job.cell.benchmark
        data = loaded.get(bench.label)
        if data is None or (spec.path, bench.label) in seen:
            continue
        seen.add((spec.path, bench.label))
        where = f"{resolved.source}: models: '{spec.display}'"
        if not spec.outputs:
            if job.cell.task == "translation" and data.test and not any(ex.source.strip() for ex in data.test):
                problems.append(f"{where}: benchmark '{bench.label}' has no source segments to translate (give it "
                                "a source file), or score given outputs with kind: outputs")
            continue
        if spec.path not in read:
            try:
                read[spec.path] = read_outputs(spec.path)
            except HarnessError as e:
                read[spec.path] = None
                problems.append(f"{where}: {e}")
        if read[spec.path] is not None:
            refs = data.meta.get("references") if isinstance(data.meta.get("references"), list) else None
            problem = count_problem(read[spec.path], len(data.test), bench.label, refs, _full_size(data))
            if not problem:
                try:
                    aligned(read[spec.path], [ex.id for ex in data.test])
                except HarnessError as e:
                    problem = str(e)
            if problem:
                problems.append(f"{where}: {problem}")
    return problems


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
                   progress: Progress | None = None, check_data: bool = True, overwrite: bool = False,
                   threads: int | None = None) -> RunSummary:
    """Run every cell of ``resolved`` into ``outdir`` (reusing finished cells) and write the results.

    Raises :class:`HarnessError` (nothing written) for bad data, a directory another run holds,
    or one holding results of another config (unless ``overwrite``). A file that cannot be
    written (disk full...) stops the run: what can still be written is, and the summary's
    ``write_errors`` say which file failed. ``threads``: torch threads per cell (default: see
    :func:`decide_threads`).
    """
    outdir = Path(outdir)
    where = "--cache-dir" if cache_dir else "HARNESS_CACHE" if os.environ.get("HARNESS_CACHE") else "the default cache"
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir_not_a_dir(cache_dir, where)
    started = time.time()
    cells = resolved.cells()
    n_threads, threads_source = decide_threads(resolved, threads)
    n_training, training_source = decide_training_threads(resolved)
    jobs = [CellJob(cell_key(c, n_training), c, resolved.metrics_for(c.task), str(outdir), str(cache_dir), i + 1,
                    len(cells), threads=n_threads, training_threads=n_training)
            for i, c in enumerate(cells)]
    progress = progress or make_progress(quiet=quiet)
    checking_log = ""
    if check_data:
        # read-only look, before the lock creates anything: fail fast on data every such cell would choke on.
        # What libraries print meanwhile (datasets' "Generating test split" bars) goes to OUTDIR/log.txt.
        with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
            with progress.cell_output(Path(tmp) / "log.txt"):
                check_inputs(resolved, plan_jobs(jobs, retry_failed=retry_failed, only_failed=only_failed).run,
                             cache_dir)
            if (Path(tmp) / "log.txt").is_file():
                checking_log = (Path(tmp) / "log.txt").read_text(encoding="utf-8", errors="replace")

    def refusals() -> tuple[Any, Plan]:
        """Everything that refuses the directory, read-only: run before the lock creates anything
        (so a refused directory is left byte for byte as it was), and again under it."""
        files = claim(outdir, also=(cache_dir,))
        if not overwrite:
            refuse_other_config(resolved, outdir, jobs)
        plan = plan_jobs(jobs, retry_failed=retry_failed, only_failed=only_failed)
        # everything the run will write or delete, before the first cell: only the harness's own files
        check_run_paths(files, outdir, [j.celldir for j in plan.run], list(prediction_names(jobs).values()),
                        [outdir / n for n in ("metrics.csv", "manifest.json", "results.json", "log.txt",
                                              *report_outputs(resolved))])
        return files, plan

    for name in report_outputs(resolved):  # a reporter's file name is never a way out of the run directory
        target = Path(os.path.normpath(outdir / name))
        if Path(name).is_absolute() or Path(os.path.normpath(outdir)) not in target.parents:
            raise HarnessError(f"reporter file name '{name}' is outside the output directory {outdir}; allowed: a name "
                               "inside it (e.g. report.html)")
    if os.path.lexists(outdir):
        refusals()
    check_cache_dir(cache_dir, where)
    with RunLock(outdir):
        files, plan = refusals()
        files.save_if_new()
        remove_temp_files(outdir)
        if checking_log:
            text = "# printed while checking the inputs\n" + checking_log
            try:
                files.will_write({outdir / "log.txt": text.encode("utf-8")})
                atomic_write_text(outdir / "log.txt", text)
            except OutputWriteError:
                pass  # the same error stops the run at its first cell write, with the cell summary
        outcomes: dict[int, CellOutcome] = {}

        bad_reports: list[str] = []

        def on_done(o: CellOutcome, ran: bool = True) -> None:
            if not isinstance(o, CellOutcome):  # an executor plugin's bug: its cell becomes a failure below
                bad_reports.append(describe_value(o))
                return
            outcomes[o.index] = o
            progress.cell_finished(o, ran)

        worker = Worker(progress)
        progress.start(len(jobs), len(plan.run), cached=len(plan.cached), interrupted=plan.interrupted)
        write_errors: list[str] = []
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
            executor_error = ""
            if plan.run:
                try:
                    resolved.executor.instantiate().run(plan.run, worker, on_done)
                except (OutputWriteError, HarnessError, KeyboardInterrupt):
                    raise
                except (Exception, SystemExit) as e:  # noqa: BLE001 - the executor's bug: its unfinished cells fail
                    log.debug("executor %s failed", resolved.executor.name, exc_info=True)
                    executor_error = f" (it failed: {describe_exception(e)})"
            if bad_reports:
                executor_error += f" (it reported {', '.join(sorted(set(bad_reports)))} instead of a CellOutcome)"
            for job in plan.run:  # an executor plugin that dropped a job must not make its cell vanish
                if job.index not in outcomes:
                    on_done(record_failure(job, f"not run: executor '{resolved.executor.name}' returned no result "
                                                f"for this cell{executor_error}"))
            leaders = {job.key: outcomes[job.index] for job in plan.run}
            for job in plan.followers:
                leader = leaders.get(job.key)
                if leader.status == "done":
                    on_done(worker.score(job, read_jsonl(job.celldir / "predictions.jsonl"), "cached", leader.seconds),
                            ran=False)
                else:
                    on_done(CellOutcome(job.key, job.cell.labels(), "failed", error=leader.error,
                                        index=job.index, traceback=leader.traceback), ran=False)
        except OutputWriteError as e:  # disk full, read-only...: stop, keep what finished, write what we can
            log.debug("the run stops: %s", e, exc_info=True)
            write_errors.append(str(e))
            for job in jobs:
                if job.index not in outcomes:  # the cell that met it restarts on the next run, as if killed
                    outcomes[job.index] = CellOutcome(job.key, job.cell.labels(), "skipped", index=job.index,
                                                      error=f"not run: the run stopped ({e})")
        finally:
            progress.close()
        ordered = [outcomes[j.index] for j in jobs if j.index in outcomes]
        report_errors: list[str] = []
        written = write_results(resolved, outdir, jobs, ordered, started, report_errors, write_errors,
                                threads={"torch": n_threads, "source": threads_source, "training": n_training,
                                         "training_source": training_source}, files=files)
    return RunSummary(outdir, ordered, written, report_errors, write_errors, n_threads)
