"""COMET-family neural translation metrics, scored by this project's own implementation.

A local COMET checkpoint directory (``hparams.yaml`` + ``checkpoints/model.ckpt``, e.g. a
download of ``Unbabel/wmt22-comet-da``, ``Unbabel/wmt22-cometkiwi-da`` or ``Unbabel/XCOMET-XL``)
is read and scored here on this project's stack (transformers 5, numpy 2), with no Hub access,
no pytorch-lightning and nothing unpickled but tensors. Segment scores equal unbabel-comet
2.2.7's ``predict`` to 1e-5 on the recorded fixture (tests/test_comet_reference.py).

What plugins use (importing this package is torch-free; torch is imported when a model loads):

- :func:`inspect_checkpoint` ``(directory, encoder=None)``: the :class:`CheckpointInfo` of a
  checkpoint (class, hyper-parameters, whether it reads references, its encoder files), validated
  without torch; a :class:`CometCheckpointError` (one line) otherwise.
- :func:`checkpoint_digest` ``(info)``: sha256 of everything that decides the scores (hparams,
  weights, the encoder's config and tokenizer), for signatures and cache keys.
- :func:`load_scorer` ``(info, device, dtype)``: a :class:`Scorer`, kept per process (the last
  two loaded), with ``score(sources, outputs, references)`` -> :class:`CometResult` (segment
  scores, system score, COMET's metadata: sub-scores, MQM scores, error spans) and
  ``pairwise(source, candidates, references)`` (MBR's N x M utility matrix, each text encoded
  once). Its caches make ten systems on one test set encode the sources and references once.

Modules: ``checkpoint`` (torch-free reading and validation), ``tokenizer``, ``encoder`` (XLM-R /
XLM-R XL in torch), ``layers`` (layer mixing, pooling, feed-forward), ``models`` (the classes),
``scoring`` (batching, caches, spans, XCOMET's score). Non-goals: training, Monte Carlo dropout,
COMET's ranking models and non-XLM-R encoders, downloading checkpoints.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import CheckpointInfo, CometCheckpointError, inspect_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from .scoring import CometResult, Scorer

IMPLEMENTATION_VERSION = "1"
"""Bumped whenever a change can alter a score; part of every COMET signature."""

__all__ = ["IMPLEMENTATION_VERSION", "CheckpointInfo", "CometCheckpointError", "CometMemoryError", "CometResult",
           "Scorer", "checkpoint_digest", "inspect_checkpoint", "load_scorer", "resolve_device"]

_LOADED: dict[tuple, Scorer] = {}  # (digest, device, dtype) -> scorer, the two most recent
_KEEP = 2


def checkpoint_digest(info: CheckpointInfo) -> str:
    """sha256 over the hparams, the weights and the encoder's config and tokenizer files."""
    from ..store import content_digest

    h = hashlib.sha256()
    files = [("hparams.yaml", info.directory / "hparams.yaml"), ("model.ckpt", info.ckpt)]
    enc = info.encoder.directory
    files += [(f"encoder/{n}", enc / n) for n in ("config.json", "tokenizer.json", "sentencepiece.bpe.model",
                                                   "tokenizer_config.json", "special_tokens_map.json")
              if (enc / n).is_file()]
    for name, path in files:
        h.update(f"{name}\0{content_digest(path)}\n".encode())
    return h.hexdigest()


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_scorer(info: CheckpointInfo, device: str = "auto", dtype: str = "float32") -> Scorer:
    """The :class:`Scorer` of ``info`` on ``device`` in ``dtype``, loaded once per process."""
    from .scoring import Scorer

    dev = resolve_device(device)
    key = (checkpoint_digest(info), str(Path(info.encoder.directory).resolve()), dev, dtype)
    scorer = _LOADED.pop(key, None)
    if scorer is None:
        while len(_LOADED) >= _KEEP:  # free the oldest before loading another
            _LOADED.pop(next(iter(_LOADED)))
        scorer = Scorer(info, dev, dtype)
    _LOADED[key] = scorer
    return scorer


def __getattr__(name: str):
    if name in ("CometResult", "Scorer", "CometMemoryError"):
        from . import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module 'harness.comet' has no attribute {name!r}")
