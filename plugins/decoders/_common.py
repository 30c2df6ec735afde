"""Parameters and the decode driver shared by the built-in decoders (greedy, beam, diverse_beam).

Torch-free at import: the search core (``_search``) is imported inside :func:`run_search` only.
Third-party decoders import these names from :mod:`harness.decoding` (the public API), not from here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import Field, model_validator

from harness.api import CellContext, Hypothesis
from harness.errors import DataError
from harness.params import Params


class SearchParams(Params):
    """Length limits and batching every search-based decoder takes (greedy's parameters)."""

    max_new_tokens: int = Field(128, ge=1, description="stop a hypothesis after this many generated tokens (EOS included)")
    min_new_tokens: int | None = Field(
        None, ge=0, description="EOS is suppressed before this many tokens; null: the model's generation_config")
    no_repeat_ngram_size: int | None = Field(
        None, ge=0, description="never repeat an n-gram of this size (0: off); null: the model's generation_config")
    batch_size: int = Field(32, ge=1, description="sentences decoded together (inputs are sorted by length first)")
    max_tokens: int | None = Field(
        None, ge=1, description="also cap a batch at sentences x beams x longest input tokens (null: no cap)")


class BeamParams(SearchParams):
    """:class:`SearchParams` plus beam search's: beams, length penalty, early stopping, n-best size."""

    num_beams: int = Field(5, ge=1, description="hypotheses kept per sentence at every step")
    length_penalty: float | None = Field(
        None, description="score = sum log-probs / length**length_penalty; null: the model's generation_config (1.0)")
    early_stopping: bool | Literal["never"] | None = Field(
        None, description="true: stop when num_beams hypotheses are finished; false: stop when no better one is "
                          "likely (heuristic); never: only when none is possible; null: the model's generation_config")
    num_return_sequences: int = Field(1, ge=1, description="hypotheses returned per sentence (the n-best list)")
    batch_size: int = Field(16, ge=1, description="sentences decoded together (inputs are sorted by length first)")

    @model_validator(mode="after")
    def _return_at_most_beams(self):
        if self.num_return_sequences > self.num_beams:
            raise ValueError(f"num_return_sequences ({self.num_return_sequences}) must be <= num_beams "
                             f"({self.num_beams}); allowed num_return_sequences: 1..{self.num_beams}")
        return self


def resolve_beam_settings(params: BeamParams, generation_config) -> tuple[float, bool | str]:
    """length_penalty and early_stopping as generate() would pick them when not given."""
    lp = params.length_penalty
    if lp is None:
        lp = getattr(generation_config, "length_penalty", None)
    es = params.early_stopping
    if es is None:
        es = getattr(generation_config, "early_stopping", None)
    return (1.0 if lp is None else float(lp)), (False if es is None else es)


def run_search(model, sources: Sequence[str], ctx: CellContext, params: SearchParams,
               search: Callable) -> list[list[Hypothesis]]:
    """Encode ``sources`` (an empty prompt is a DataError), build the generation rules from the
    model and ``params``, run ``search(step_model, prompts, rules, core)`` and turn its n-best
    lists of :class:`Finished` into Hypothesis objects (text, score, generated token ids).

    ``core`` offers the search functions (``greedy_search``, ``beam_search``, ``BeamConfig``...):
    the search module with ``step_model`` an :class:`HFStepModel`, or, for a model run by another
    engine (harness.engines), the engine itself, as both arguments."""
    from . import _search

    prompts = model.encode(sources)
    empty = [i for i, p in enumerate(prompts) if not p]
    if empty:
        raise DataError(f"source #{empty[0] + 1} ({sources[empty[0]]!r}) is empty after tokenization; a decoder-only "
                        f"model needs at least one prompt token (set a prompt_template)")
    rules = _search.rules_from_model(model, max_new_tokens=params.max_new_tokens, min_new_tokens=params.min_new_tokens,
                                     no_repeat_ngram_size=params.no_repeat_ngram_size)
    engine = getattr(model, "search_engine", None)
    if engine is not None:
        # another engine (harness.engines, e.g. ctranslate2) runs the whole search: it offers the
        # functions of the search module under the same names, and is its own step model
        results = search(engine, prompts, rules, engine)
    else:
        results = search(_search.HFStepModel(model), prompts, rules, _search)
    return [[Hypothesis(model.decode_text(h.tokens), h.score, h.tokens) for h in nbest] for nbest in results]
