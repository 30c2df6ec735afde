"""Loading a model for decoding, with the engine its spec names (``engine:`` on a model entry).

:func:`load_generation_model` is what a cell calls (the runner's worker) and what tests and
benchmarks use: ``transformers`` loads through :mod:`harness.models.hf`, ``ctranslate2`` converts
the model once (cached) and loads it in :mod:`.ctranslate2`. Either way the decoders get a
:class:`~harness.models.hf.GenerationModel`. Non-goals: classification models (loaded by the
classify step and the strategies directly).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..models.hf import GenerationModel
    from ..models.spec import ModelSpec


def load_generation_model(spec: ModelSpec, *, seed: int = 0) -> GenerationModel:
    """Load ``spec`` for the engine it names: transformers (:mod:`harness.models.hf`) or another
    engine (converting and caching the model on first use)."""
    if spec.engine == "transformers":
        from ..models.hf import load_transformers_model

        return load_transformers_model(spec, seed=seed)
    if spec.engine == "ctranslate2":
        from .ctranslate2 import load_ct2_model

        return load_ct2_model(spec, seed=seed)
    raise ValueError(f"unknown engine {spec.engine!r}")  # ModelSpec allows only the engines above
