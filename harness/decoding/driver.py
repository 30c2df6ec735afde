"""Parameters, per-sentence seeds and the decode driver every search-based decoder shares.

The built-in decoders (greedy, beam, diverse_beam, sample, mbr) and third-party ones build on
these, through :mod:`harness.decoding` (the public API). Torch-free at import: the searches
(:mod:`.search`, :mod:`.sampling`) are imported inside :func:`run_search` only, so a plugin
may subclass the parameter models at its module level.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import Field, model_validator

from ..api import CellContext, Hypothesis
from ..errors import DataError
from ..params import Params


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


class DiverseBeamParams(BeamParams):
    """:class:`BeamParams` plus beam groups and the Hamming diversity strength."""

    num_beams: int = Field(6, ge=1, description="hypotheses kept per sentence, over all groups")
    num_groups: int = Field(3, ge=1, description="groups the beams are split into; must divide num_beams")
    diversity_strength: float = Field(
        0.5, ge=0.0, description="lambda: penalty per earlier-group beam that chose the same token at this step")

    @model_validator(mode="after")
    def _groups_divide_beams(self):
        if self.num_beams % self.num_groups:
            divisors = [d for d in range(1, self.num_beams + 1) if self.num_beams % d == 0]
            raise ValueError(f"num_groups ({self.num_groups}) must divide num_beams ({self.num_beams}); allowed "
                             f"num_groups for num_beams={self.num_beams}: {', '.join(map(str, divisors))}")
        return self


class SampleParams(SearchParams):
    """:class:`SearchParams` plus the ``sample`` decoder's: samples per sentence and the warpers."""

    num_samples: int = Field(1, ge=1, description="samples drawn per sentence (the n-best list)")
    temperature: float = Field(1.0, ge=0.0, description="divide the logits by this; 0: always the most probable token")
    top_k: int = Field(0, ge=0, description="draw only from the k most probable tokens (0: off)")
    top_p: float = Field(1.0, gt=0.0, le=1.0,
                         description="nucleus sampling: the smallest set of tokens with this much probability (1: off)")
    epsilon: float = Field(0.0, ge=0.0, lt=1.0,
                           description="epsilon sampling (Hewitt et al. 2022): drop tokens below this probability (0: off)")
    order: Literal["score", "drawn"] = Field(
        "score", description="n-best order: score (most probable sample first) or drawn (the first draw first)")
    batch_size: int = Field(8, ge=1, description="sentences decoded together, each with num_samples rows")


def example_ids(ctx, n: int) -> list[str]:
    """The ids that key each sentence's random stream: the cell's example ids when the runner
    gives them, else the positions 0..n-1."""
    ids = getattr(ctx, "example_ids", None)
    return [str(i) for i in ids] if ids is not None and len(ids) == n else [str(i) for i in range(n)]


def sentence_seed(seed: int, example_id: str, stream: str = "sample") -> int:
    """A 63-bit seed for one sentence's generator, from the cell seed, the example id and a
    stream name (so that, e.g., MBR's candidates and pseudo-references are independent draws)."""
    digest = hashlib.sha256(f"{stream}\x1f{seed}\x1f{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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

    ``core`` offers the searches and their settings under the same five names whatever runs the
    model (``greedy_search``, ``beam_search``, ``sample_search``, ``BeamConfig``, ``SampleConfig``):
    :mod:`harness.decoding.core` with ``step_model`` an :class:`HFStepModel`, or, for a model run
    by another engine (harness.engines), the engine itself, as both arguments."""
    from . import core
    from .search import HFStepModel, rules_from_model

    prompts = model.encode(sources)
    empty = [i for i, p in enumerate(prompts) if not p]
    if empty:
        raise DataError(f"source #{empty[0] + 1} ({sources[empty[0]]!r}) is empty after tokenization; a decoder-only "
                        f"model needs at least one prompt token (set a prompt_template)")
    rules = rules_from_model(model, max_new_tokens=params.max_new_tokens, min_new_tokens=params.min_new_tokens,
                             no_repeat_ngram_size=params.no_repeat_ngram_size)
    engine = getattr(model, "search_engine", None)
    if engine is not None:
        # another engine (harness.engines, e.g. ctranslate2) runs the whole search: it offers the
        # names of harness.decoding.core, and is its own step model
        results = search(engine, prompts, rules, engine)
    else:
        # the harness's own step where the loader chose it (kernels: auto, harness.models.seq2seq_step)
        step = getattr(model, "step_model", None) or HFStepModel(model)
        results = search(step, prompts, rules, core)
    return [[Hypothesis(model.decode_text(h.tokens), h.score, h.tokens) for h in nbest] for nbest in results]
