"""What a run writes into its output directory, and whose results a directory holds.

After the cells: ``predictions/``, ``outputs/`` (plain text, :mod:`.text_exports`), ``metrics.csv``, then ``manifest.json`` (config, resolved plugins,
packages, git, hardware, per-cell status and identity, digests of the other files), then the
reports and ``results.json`` (:func:`write_results`). Before them: a directory holding another
config's finished results is refused (:func:`refuse_other_config`).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import HarnessError, describe_exception
from ..store import (OutputWriteError, atomic_write_bytes, canonical_hash, read_jsonl, safe_child, sha256_file, slug,
                     storage_fault)
from .example_scores import with_scores
from .ownership import RunFiles
from .provenance import data_files, hub_revisions
from .returns import check_written_files

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment.config import Cell, ResolvedExperiment
    from .jobs import CellJob, CellOutcome

log = logging.getLogger("harness")

METRIC_COLUMNS = ["model", "benchmark", "strategy", "decoder", "seed", "metric", "value", "task", "signature",
                  "n", "cell", "model_path", "benchmark_params", "strategy_params", "decoder_params", "testset",
                  "precision"]


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



LABEL_KEYS = ("model", "benchmark", "strategy", "decoder", "seed")


def config_hash(raw: Any) -> str:
    """Hash of a config as written (after ``--set``), shown when a run directory is refused."""
    return canonical_hash(raw, 12)


def _relative_paths(value: Any, base: Path) -> Any:
    """Absolute paths under ``base`` made relative to it, so that an identity survives moving
    the checkout (config and data together)."""
    if isinstance(value, dict):
        return {k: _relative_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, base) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        try:
            return Path(value).relative_to(base).as_posix()
        except ValueError:
            return value
    return value


def cell_identity(cell: Cell, base_dir: Path) -> str:
    """What a cell *is* in its config: labels, seed and every parameter, but neither the content
    of its data and model (editing a file is not another config) nor plugin or harness versions
    (upgrading is not either). Recorded per cell in the manifest, so a later run can tell which
    finished results it would replace."""
    model = {k: v for k, v in cell.model.model_dump(mode="json").items() if k not in ("path", "local", "device")}
    if not model.get("allow_missing_weights"):  # added later: cells recorded before it keep their identity
        model.pop("allow_missing_weights", None)
    return canonical_hash({
        "labels": cell.labels(),
        "model": model,
        **{section: (None if c is None else {"plugin": c.name, "params": _relative_paths(c.params_dict(), base_dir)})
           for section, c in (("benchmark", cell.benchmark), ("strategy", cell.strategy), ("decoder", cell.decoder))},
        **({"subset": cell.benchmark.subset.key()} if cell.benchmark.subset is not None else {}),
    })


def refuse_other_config(resolved: ResolvedExperiment, outdir: Path, jobs: list[CellJob]) -> None:
    """Refuse ``outdir`` when it holds results this config would silently replace.

    The same config, or one that extends it (more seeds, decoders, strategies, models,
    benchmarks or metrics), may write into it: that is how a run is resumed or grown. Refused:
    another experiment ``name``, or a config that no longer has a cell the run directory holds
    finished results for, with the same labels, seed and parameters (:func:`cell_identity`:
    ``num_beams: 4`` changed to 5 under the label ``beam`` counts). ``--overwrite`` allows it;
    finished cells stay cached.
    """
    try:
        old = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no manifest (new, or killed before its first): nothing to protect
        return
    if not isinstance(old, dict):
        return
    old_hash = old.get("config_hash") or config_hash(old.get("config"))
    new_hash = config_hash(resolved.raw)
    if old_hash == new_hash:
        return
    name = resolved.experiment.name
    if old.get("experiment") != name:
        reason = f"they are experiment '{old.get('experiment')}', this config is '{name}'"
    else:
        grid = {tuple(str(j.cell.labels()[k]) for k in LABEL_KEYS) for j in jobs}
        identities = {cell_identity(j.cell, resolved.base_dir) for j in jobs}
        finished = [c for c in old.get("cells", []) if isinstance(c, dict) and c.get("status") in ("done", "cached")]
        lost = [c for c in finished if (c["identity"] not in identities if c.get("identity")  # manifests before
                                        else tuple(str(c.get(k)) for k in LABEL_KEYS) not in grid)]  # identities
        if not lost:
            return
        reason = (f"{len(lost)} of its finished cells are not in this config's grid with the same parameters, e.g. "
                  f"{' / '.join(str(lost[0].get(k)) for k in LABEL_KEYS)}")
    raise HarnessError(f"{outdir}: holds the results of another config (config {old_hash}; this one is {new_hash}): "
                       f"{reason}. Choose another -o, or pass --overwrite to replace them "
                       "(finished cells stay cached and are reused)")


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


def report_outputs(resolved: ResolvedExperiment) -> list[str]:
    """The files the run's reporters say they will write (those that know in advance)."""
    names: list[str] = []
    for comp in resolved.reporters:
        try:
            known = comp.instantiate().outputs()
        except Exception:  # noqa: BLE001 - a reporter plugin's bug: its write() reports it later
            known = None
        names += [str(n) for n in known or [] if isinstance(n, str)]
    return names


def limit_record(resolved: ResolvedExperiment) -> dict[str, Any] | None:
    """What the report's banner says: test sets cut short (by --limit/`limit:` or a benchmark's own
    limit) give numbers that are not comparable to full-test-set results. None when none is cut."""
    exp = resolved.experiment
    # the core's subset (--limit, or limit: for a plugin without one), else the plugin's own limit
    per = {c.label: c.subset.limit if c.subset is not None else getattr(c.params, "limit", None)
           for c in resolved.components["benchmarks"]}
    per = {label: n for label, n in per.items() if n is not None}
    if exp.limit is None and not per:
        return None
    return {"n": exp.limit, "sample": exp.sample, "benchmarks": per}


def metrics_record(resolved: ResolvedExperiment, outcomes: list[CellOutcome]) -> dict[str, Any]:
    """Per metric label: its plugin, the signature(s) of its corpus values and of the per-example
    ``scores`` in predictions/*.jsonl (recorded here once rather than as a JSONL header line)."""
    out: dict[str, Any] = {}
    for comp in resolved.components.get("metrics", []):
        sigs = sorted({str(m["signature"]) for o in outcomes for m in o.metrics
                       if m.get("metric") == comp.label and m.get("signature")})
        row = sorted({o.score_signatures[comp.label] for o in outcomes if comp.label in o.score_signatures})
        out[comp.label] = {"plugin": comp.name, "signature": " ; ".join(sigs) or None,
                           "example_scores": " ; ".join(row) or None}
    return out


def write_results(resolved: ResolvedExperiment, outdir: Path, jobs: list[CellJob], outcomes: list[CellOutcome],
                  started: float, report_errors: list[str] | None = None, write_errors: list[str] | None = None,
                  threads: dict[str, Any] | None = None, files: RunFiles | None = None) -> list[Path]:
    """Write predictions/, metrics.csv, then manifest.json (which lists the digests of the other
    two, so a reader can tell a set of files written together), then the reports.

    Each file is replaced atomically; a kill between two of them leaves a mix of whole old and
    whole new files, which the next run overwrites with the same bytes. Returns the files written;
    a reporter that raises is appended to ``report_errors`` (a broken reporter must not lose results).
    A file that cannot be written (:class:`OutputWriteError`) is appended to ``write_errors`` and
    the others are still attempted; the manifest lists only what was written, and reports are
    rendered only when metrics.csv and manifest.json both were.

    Every file is recorded in the run directory's ledger (``files``, :mod:`.ownership`) before it
    is written, and a stale prediction is deleted only when the ledger vouches for it.
    """
    import pandas as pd

    ledger = files if files is not None else RunFiles(outdir)
    write_errors = write_errors if write_errors is not None else []
    pred_dir = outdir / "predictions"
    names = prediction_names(jobs)
    by_index = {o.index: o for o in outcomes}
    contents: dict[int, tuple[Path, bytes]] = {}
    for job in jobs:
        o = by_index.get(job.index)
        if o is None or o.status not in ("done", "cached"):
            continue
        # the cell's rows (whose digest cell.json records) plus each row's scores from this run's metrics
        scored = with_scores(read_jsonl(job.celldir / "predictions.jsonl"), o.row_scores)
        contents[job.index] = (safe_child(outdir, f"predictions/{names[job.index]}"),
                               "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in scored).encode("utf-8"))
    rows = [m for o in outcomes for m in o.metrics]
    identities = {job.index: cell_identity(job.cell, resolved.base_dir) for job in jobs}
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    metrics_bytes = metrics.to_csv(index=False).encode("utf-8")
    try:
        ledger.will_write({**dict(contents.values()), outdir / "metrics.csv": metrics_bytes})
    except OutputWriteError as e:  # a full disk: the files below would not fit either
        write_errors.append(str(e))
        return []
    written: dict[int, str] = {}
    for index, (target, data) in contents.items():
        try:
            atomic_write_bytes(target, data)
        except OutputWriteError as e:
            write_errors.append(str(e))
            continue
        written[index] = f"predictions/{target.name}"
    keep = {Path(v).name for v in written.values()} | {t.name for t, _ in contents.values()}
    if pred_dir.is_dir() and not pred_dir.is_symlink():  # stale predictions would pass for current results
        for stale in pred_dir.glob("*.jsonl"):
            if stale.name not in keep and ledger.deletable(stale):  # only what the harness wrote
                try:
                    stale.unlink()
                except OSError as e:
                    write_errors.append(str(OutputWriteError(stale, e)))

    from .text_exports import write_text_exports

    text_files = write_text_exports(outdir, jobs, by_index, write_errors, ledger)  # outputs/: what sacrebleu reads
    files = [outdir / v for v in written.values()] + text_files
    try:
        atomic_write_bytes(outdir / "metrics.csv", metrics_bytes)
        files.insert(0, outdir / "metrics.csv")
    except OutputWriteError as e:
        write_errors.append(str(e))

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
        "limit": limit_record(resolved),
        "harness_version": __version__,
        "packages": _package_versions(resolved),
        "git": {"config": _git_commit(resolved.base_dir), "harness": _git_commit(Path(__file__).parent)},
        "hardware": _hardware(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "status": "complete" if counts["failed"] == counts["skipped"] == 0 and not write_errors else "incomplete",
        "counts": counts,
        "config_hash": config_hash(resolved.raw),
        "threads": threads or {"torch": None, "source": "not set"},
        **({"write_errors": list(write_errors)} if write_errors else {}),
        "outputs": {str(f.relative_to(outdir)): sha256_file(f) for f in files},
        "metrics": metrics_record(resolved, outcomes),
        "data_files": data_files(resolved),  # sha256 of every local file the benchmarks name
        "hub_revisions": hub_revisions(resolved),  # commits the Hub ids resolve to in the local cache
        "cells": [{"key": o.key, **o.labels, "identity": identities.get(o.index), "status": o.status,
                   "seconds": round(o.seconds, 3),
                   # a metric that failed or gave NaN is flagged on its (otherwise fine) cell, so reports show it
                   "error": o.error or ("; ".join(o.metric_errors) if o.metric_errors else None),
                   **({"metric_errors": o.metric_errors} if o.metric_errors else {}),
                   "predictions": written.get(o.index), "cell_dir": f"cells/{o.key}",
                   **({"traceback": o.traceback} if o.status == "failed" and o.traceback else {})}
                  for o in outcomes],
    }
    report_errors = report_errors if report_errors is not None else []
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n").encode()
    try:
        ledger.will_write({outdir / "manifest.json": manifest_bytes})
        atomic_write_bytes(outdir / "manifest.json", manifest_bytes)
        files += [outdir / "manifest.json"]
    except OutputWriteError as e:
        write_errors.append(str(e))
    if outdir / "metrics.csv" not in files or outdir / "manifest.json" not in files:
        return files  # reports of a half-written result set would contradict it
    from ..results import load_run

    results = load_run(outdir)
    try:  # reporters write files whose bytes are not known in advance: their names are recorded first
        ledger.will_write_unknown([outdir / n for n in report_outputs(resolved)] + [outdir / "results.json"])
    except (OutputWriteError, ValueError) as e:
        write_errors.append(str(e))
        return files
    before = len(files)
    for comp in resolved.reporters:
        try:
            files += check_written_files(comp, comp.instantiate().write(results, outdir))
        except (Exception, SystemExit) as e:  # noqa: BLE001 - results are on disk; say what failed, keep going
            log.debug("reporter %s failed", comp.label, exc_info=True)
            fault = storage_fault(e)
            if fault is not None:
                write_errors.append(str(fault))
            else:
                report_errors.append(f"reporter '{comp.label}' failed: {describe_exception(e)}")
    from ..report import results_json

    try:  # after the reporters: it reuses their analysis (same settings), so its p-values are theirs
        files.append(results_json.write(results, outdir))
    except (Exception, SystemExit) as e:  # noqa: BLE001 - like a reporter: the other results stay
        log.debug("results.json failed", exc_info=True)
        fault = storage_fault(e)
        if fault is not None:
            write_errors.append(str(fault))
        else:
            report_errors.append(f"results.json failed: {describe_exception(e)}")
    try:
        ledger.wrote(files[before:])
    except OutputWriteError as e:
        write_errors.append(str(e))
    return files
