"""The checkpoint cache: a fine-tuned model is keyed by everything that determines it, trained
into a temporary directory and renamed into place, so it is either complete or absent. Its
record (``finetune.json``) holds the sha256 of every file, checked at each reuse: a damaged
entry (truncated weights, a garbage record) is trained again rather than failing every run."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import atomic_write_json, canonical_hash, damaged_file, directory_digests, model_fingerprint
from .loop import cpu_bfloat16
from .params import FineTuneParams

if TYPE_CHECKING:  # pragma: no cover
    from ..api import BenchmarkData, CellContext
    from ..models.spec import ModelSpec

# Bump when a change to this package changes what a cached checkpoint would contain.
# 4: training runs at a fixed thread count (CellContext.training_threads), part of the key; the
#    checkpoints of version 3 ran at whatever count the machine gave, which the key did not hold
TRAINING_VERSION = "4"
META_FILE = "finetune.json"


def data_fingerprint(data: BenchmarkData, *, with_dev: bool) -> str:
    """Content hash of what training reads: train (and dev) examples and the label set."""
    h = hashlib.sha256()
    h.update(json.dumps([data.task, data.labels]).encode())
    for split in (data.train or [], data.dev or [] if with_dev else []):
        h.update(b"\x00split")
        for ex in split:
            h.update(json.dumps([ex.source, ex.source_pair, ex.reference, ex.label], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _key_lock(path: Path):
    """Serialise training of one checkpoint across processes sharing the cache."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _whole(final: Path, log) -> dict | None:
    """The record of a cached checkpoint that is whole, else None: its ``finetune.json`` parses, every
    file it recorded still has its digest (older records, without digests: every safetensors
    file is complete). A damaged entry (a truncated weight file, a garbage record) is reported
    and trained again instead of failing every later run the same way."""
    from ..models.weights import safetensors_problem

    if final.is_symlink() or not final.is_dir() or not (final / META_FILE).is_file():
        if os.path.lexists(final) and log is not None:
            log.warning("cached checkpoint %s is damaged (not a checkpoint directory): training it again", final)
        return None
    try:
        record = json.loads((final / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    problem = None
    if not isinstance(record, dict):
        problem = f"{final / META_FILE} is not a checkpoint record"
    elif isinstance(record.get("files"), dict):
        bad = damaged_file(final, {k: v for k, v in record["files"].items() if isinstance(v, str)})
        problem = f"{final / bad} is missing or changed since it was trained" if bad else None
    else:
        problem = next((p for p in map(safetensors_problem, sorted(final.glob("*.safetensors"))) if p), None)
    if problem is None:
        return record
    if log is not None:
        log.warning("cached checkpoint %s is damaged (%s): training it again", final, problem)
    return None


@contextlib.contextmanager
def intra_op_threads(n: int):
    """torch runs with ``n`` intra-op threads inside, and with its former count again after: a
    training's float sums depend on the count (harness.run.threads), its decoding keeps the cell's."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def checkpoint_model(spec: ModelSpec, device: str) -> ModelSpec:
    """The model as it enters a checkpoint's key: what training reads, not how the checkpoint is
    decoded afterwards. Decoding-only fields (engine, compute_type, kernels) are reset; ``dtype:
    int8`` (quantized only after a float32 training) keys as ``auto`` on the CPU; and the device
    that int8 or oneDNN pinned to the CPU keys as the one written (``auto``) when that is the CPU
    here. So one trained model is decoded in float32, int8, oneDNN or CTranslate2 without training
    it again, and checkpoints keyed before these fields existed keep their keys."""
    from ..models.hf import resolve_device

    update: dict[str, Any] = {"engine": "transformers", "compute_type": "auto", "kernels": "auto"}
    if device == "cpu":
        if spec.dtype == "int8":
            update["dtype"] = "auto"
        requested = spec._requested_device or spec.device
        if spec.device == "cpu" and requested == "auto" and resolve_device("auto") == "cpu":
            update["device"] = "auto"
    return spec.model_copy(update=update)


def checkpoint_params(params: FineTuneParams) -> dict[str, Any]:
    """The parameters as they enter a checkpoint's key. ``train_seed`` is left out: the seed it
    sets is keyed itself, so a checkpoint trained by a cell of seed 0 and one asked for with
    ``train_seed: 0`` are the same; with later fields at their defaults, checkpoints cached before
    those fields existed keep their keys."""
    d = params.model_dump(mode="json")
    d.pop("train_seed", None)
    # fields added after checkpoints were first cached are left out at their defaults (old keys hold)
    for name, default in (("label_smoothing", 0.0),):
        if d.get(name) == default:
            d.pop(name)
    return d


def cached_checkpoint(spec: ModelSpec, data: BenchmarkData, ctx: CellContext, *, strategy: str, version: str,
                      params: FineTuneParams, build: Callable[[Path], dict[str, Any]], uses_dev: bool,
                      device: str) -> ModelSpec:
    """Return the spec of the checkpoint for these inputs, training it with ``build(tmpdir)`` on a miss.

    ``build`` saves the model and tokenizer into the directory it is given and returns the
    training record, written as ``finetune.json`` in the checkpoint and copied into the cell's
    workdir. The directory is renamed into place only when complete.
    """
    # CPU bfloat16 training arrived later than the key: only its checkpoints carry the mark
    amp = {"amp": "cpu-bfloat16"} if cpu_bfloat16(device, spec.dtype) else {}
    threads = ctx.training_threads
    key = canonical_hash({"training": TRAINING_VERSION, "model": model_fingerprint(checkpoint_model(spec, device)),
                          "data": data_fingerprint(data, with_dev=uses_dev), "strategy": strategy,
                          "version": version, "params": checkpoint_params(params), "seed": ctx.seed,
                          "threads": threads, **amp})
    root = Path(ctx.cache_dir) / "finetuned"
    final = root / f"{strategy}-{key}"
    hit = _whole(final, ctx.log) is not None
    if not hit:
        with _key_lock(root / f".{strategy}-{key}.lock"):
            hit = _whole(final, ctx.log) is not None  # another process may have finished it meanwhile
            if not hit:
                tmp = root / f".tmp-{strategy}-{key}-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                try:
                    with intra_op_threads(threads):
                        record = build(tmp)
                    record = {"strategy": strategy, "strategy_version": version, "key": key, "seed": ctx.seed,
                              "base_model": spec.path, "params": params.model_dump(mode="json"),
                              "torch_threads": threads, **record,
                              "files": directory_digests(tmp)}  # what a reuse verifies
                    atomic_write_json(tmp / META_FILE, record)
                    if final.is_symlink() or final.is_file():  # a damaged leftover that is not even a directory
                        final.unlink()
                    shutil.rmtree(final, ignore_errors=True)  # an incomplete or damaged leftover
                    os.replace(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
    ctx.log.info("%s checkpoint %s: %s", strategy, "reused" if hit else "trained", final)
    record = json.loads((final / META_FILE).read_text(encoding="utf-8"))
    record.pop("files", None)
    with contextlib.suppress(OSError):
        atomic_write_json(Path(ctx.workdir) / META_FILE, {**record, "checkpoint": str(final), "cache_hit": hit})
    # The tokenizer was saved with the checkpoint; evaluation truncates inputs as training did.
    return spec.model_copy(update={"path": str(final), "local": True, "init": "pretrained", "revision": None,
                                   "tokenizer": None, "label": spec.display,
                                   "max_source_length": params.max_length})
