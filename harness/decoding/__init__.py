"""The public API for writing decoders, and the search code behind it: everything the built-in
``greedy``, ``beam``, ``diverse_beam``, ``sample`` and ``mbr`` decoders are built from.

The built-in decoders (``plugins/decoders/``) import only these names, as a third-party decoder
does. Where the code lives: :mod:`.driver` (parameter models, :func:`run_search`, per-sentence
seeds; torch-free), :mod:`.search` (step interface, rules, greedy and beam search),
:mod:`.sampling` (the sampler), :mod:`.core` (what ``core`` is for the transformers engine) and
:mod:`.mbr` (exact sentence utilities and MBR ranking).

What a decoder gets and what it can build on:

- :class:`GenerationModel`, the ``model`` argument of ``Decoder.decode``: ``encode(sources)``
  gives prompt token ids, ``decode_text(ids)`` turns generated ids into text, and it carries the
  special ids and the model's ``generation_config``.
- :func:`run_search`, the driver of the built-in decoders: it encodes the sources, builds the
  generation rules, wraps the model in a step model (:class:`HFStepModel`) and calls your
  ``search(step_model, prompts, rules, core)``; it turns the :class:`Finished` results into
  :class:`Hypothesis` objects. ``core`` offers ``greedy_search``, ``beam_search``,
  ``sample_search``, ``BeamConfig`` and ``SampleConfig`` (the ones exported here, or another
  engine's when a model runs on one: write the search against ``core`` and it runs on both).
- The step interface (:class:`StepModel`, :class:`Session`): ``start(prompts)`` encodes a batch
  once; ``session.step(tokens)`` returns next-token logits (rows, vocab); ``session.select(rows,
  ...)`` reorders or drops rows of the KV cache.
- :class:`Rules` (from :func:`rules_from_model`): the generation_config rules generate()
  applies (min/max length, forced BOS/EOS, bad words, no_repeat_ngram_size, repetition penalty,
  ...); ``rules.apply(logits, hist, prefix_len, t)`` with the histories of :func:`left_padded`.
- Searches: :func:`greedy_search`, :func:`beam_search` (:class:`BeamConfig`; groups give diverse
  beam search), :func:`sample_search` (:class:`SampleConfig`, :func:`warp`, :func:`draw`).
- Parameter models to subclass: :class:`SearchParams` (length limits, batching),
  :class:`BeamParams`, :class:`DiverseBeamParams`, :class:`SampleParams`;
  :func:`resolve_beam_settings` fills beam settings left null from the generation_config.
- Helpers: :func:`plan_batches` and :func:`run_batches` (length-sorted batches, progress
  reporting through ``ctx.progress``), :func:`device_of`, and per-sentence seeds for sampling
  decoders (:func:`sentence_seed` keyed by :func:`example_ids`), so batching never changes what
  a sentence draws.
- Reranking: :func:`mbr_rank` over exact sentence utilities (:class:`ChrfUtility`,
  :class:`BleuUtility`, or any metric plugin through :class:`MetricUtility`).

Importing this module is cheap and torch-free: each name is imported on first use (module
``__getattr__``), and :mod:`.search` and :mod:`.sampling` import torch then. Use these names inside
``Decoder.decode``, or import them at a plugin module's top level: the import stays light.

Non-goals: a stable API for the search internals (``_BeamChunk`` and the batched beam state),
engines other than transformers for third-party decoders (the ctranslate2 engine runs only the
built-in decoders; the config check refuses others), constrained or speculative decoding.

Example: top-k sampling with temperature, one sentence at a time (``top_k: 1`` gives greedy's
tokens and scores; tests/test_decoding_api.py runs this very code)::

    from pydantic import Field

    from harness.api import Decoder
    from harness.decoding import Finished, SearchParams, device_of, example_ids, left_padded, run_search, sentence_seed
    from harness.hookspecs import hookimpl


    class TopKParams(SearchParams):
        top_k: int = Field(10, ge=1, description="draw from the k most probable tokens")
        temperature: float = Field(1.0, gt=0.0, description="divide the logits by this before drawing")


    class TopK(Decoder):
        name = "top_k"
        description = "Top-k sampling with temperature, one sentence at a time."
        Params = TopKParams
        deterministic = False  # the cell's seed changes the output

        def decode(self, model, sources, ctx):
            import torch

            p = self.params
            seeds = [sentence_seed(ctx.seed, i, "top_k") for i in example_ids(ctx, len(sources))]

            def one(step_model, prompt, rules, seed):
                gen = torch.Generator().manual_seed(seed)
                session = step_model.start([prompt])
                hist, plen = left_padded(session.prefixes, device_of(session))
                logits, tokens, logp = session.step(None), [], 0.0
                for t in range(rules.max_new_tokens):
                    scores = rules.apply(logits, hist, plen, t)[0]  # the generation_config rules
                    top = torch.topk(scores / p.temperature, p.top_k)
                    tok = top.indices[torch.multinomial(top.values.softmax(-1), 1, generator=gen)]
                    logp += float(scores.log_softmax(-1)[tok])  # scored as greedy scores
                    tokens.append(int(tok))
                    if tokens[-1] in rules.eos_token_ids:
                        break
                    hist = torch.cat([hist, tok.view(1, 1)], dim=1)
                    logits = session.step(tok)
                return [Finished(tokens, logp / len(tokens))]

            def search(step_model, prompts, rules, core):
                with torch.inference_mode():  # the rules edit logits in place
                    out = []
                    for prompt, seed in zip(prompts, seeds):
                        out.append(one(step_model, prompt, rules, seed))
                        ctx.progress(len(out), len(prompts))
                return out

            return run_search(model, sources, ctx, p, search)


    @hookimpl
    def register_decoders(register):
        register(TopK)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..api import CellContext, Decoder, Hypothesis

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; at run time __getattr__ imports
    from harness.decoding.driver import (BeamParams, DiverseBeamParams, SampleParams, SearchParams, example_ids,
                                         resolve_beam_settings, run_search, sentence_seed)
    from harness.decoding.mbr import BleuUtility, ChrfUtility, MetricUtility, mbr_rank
    from harness.decoding.sampling import SampleConfig, draw, sample_search, warp
    from harness.decoding.search import (BeamConfig, Finished, HFStepModel, Rules, Session, StepModel, beam_search,
                                         device_of, greedy_search, left_padded, plan_batches, rules_from_model,
                                         run_batches)
    from harness.models.hf import GenerationModel

# name -> module it lives in: imported on first use, so that only the names a decoder uses are
# paid for (the searches import torch)
_DRIVER = "harness.decoding.driver"
_SEARCH = "harness.decoding.search"  # imports torch
_SAMPLING = "harness.decoding.sampling"  # imports torch
_MBR = "harness.decoding.mbr"
_LOCATIONS: dict[str, str] = {
    "GenerationModel": "harness.models.hf",
    "run_search": _DRIVER,
    "SearchParams": _DRIVER,
    "BeamParams": _DRIVER,
    "resolve_beam_settings": _DRIVER,
    "DiverseBeamParams": _DRIVER,
    "SampleParams": _DRIVER,
    "example_ids": _DRIVER,
    "sentence_seed": _DRIVER,
    "StepModel": _SEARCH,
    "Session": _SEARCH,
    "HFStepModel": _SEARCH,
    "Rules": _SEARCH,
    "rules_from_model": _SEARCH,
    "Finished": _SEARCH,
    "greedy_search": _SEARCH,
    "BeamConfig": _SEARCH,
    "beam_search": _SEARCH,
    "plan_batches": _SEARCH,
    "run_batches": _SEARCH,
    "left_padded": _SEARCH,
    "device_of": _SEARCH,
    "SampleConfig": _SAMPLING,
    "sample_search": _SAMPLING,
    "warp": _SAMPLING,
    "draw": _SAMPLING,
    "mbr_rank": _MBR,
    "ChrfUtility": _MBR,
    "BleuUtility": _MBR,
    "MetricUtility": _MBR,
}

__all__ = ["CellContext", "Decoder", "Hypothesis", *_LOCATIONS]


def __getattr__(name: str) -> Any:
    """Import a public name from the module it lives in, on first use (PEP 562)."""
    try:
        module = _LOCATIONS[name]
    except KeyError:
        raise AttributeError(f"module 'harness.decoding' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
