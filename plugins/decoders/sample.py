"""``sample``: ancestral sampling, with temperature, top-k, top-p and epsilon truncation.

``num_samples`` draws per sentence form its n-best list, each scored by its mean
log-probability per token under the model (after the generation rules, before temperature
and truncation: the quantity greedy reports). ``order: score`` sorts them best first, so the
output is the most probable of the samples; ``order: drawn`` keeps the draw order, so the
output is the first draw: an unbiased single sample (use it, or ``num_samples: 1``, to
measure the quality of sampling itself).

The generation_config rules greedy and beam honour (min/max length, forced BOS/EOS, bad words,
suppressed tokens, no_repeat_ngram_size, repetition penalty...) hold for samples too. Unlike
``generate(do_sample=True)``, the sampling knobs come only from these parameters: a model's
generation_config ``temperature`` / ``top_k`` / ``top_p`` are not applied (transformers'
default ``top_k=50`` would otherwise silently truncate "pure" sampling).

Seeded per cell and per example: each sentence draws from its own generator keyed by the
cell seed and the example id (``ctx.example_ids``; the position when a caller gives none), so
the same seed gives the same samples on any batch size and in any batch order.
Non-goals: typical, eta and min-p sampling; beam sampling.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import Decoder, Hypothesis
from harness.hookspecs import hookimpl

from ._common import SearchParams


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


class Sample(Decoder):
    name = "sample"
    description = "Ancestral sampling with temperature, top-k, top-p and epsilon truncation; seeded per example."
    Params = SampleParams
    deterministic = False

    def decode(self, model, sources, ctx):
        return self.draw(model, sources, ctx, stream="sample")

    def draw(self, model, sources, ctx, *, stream: str) -> list[list[Hypothesis]]:
        """Decode with the random stream ``stream`` (other decoders, e.g. ``mbr``, draw
        independent sample sets by naming other streams)."""
        from . import _sampling
        from ._common import run_search

        p = self.params
        seeds = [_sampling.sentence_seed(ctx.seed, i, stream) for i in example_ids(ctx, len(sources))]

        def search(step_model, prompts, rules, _search):
            # an engine (harness.engines) brings its own sampler; the search module has none
            sampler = _search if hasattr(_search, "sample_search") else _sampling
            config = sampler.SampleConfig(num_samples=p.num_samples, temperature=p.temperature, top_k=p.top_k,
                                          top_p=p.top_p, epsilon=p.epsilon)
            out = sampler.sample_search(step_model, prompts, rules, config, seeds, batch_size=p.batch_size,
                                        max_tokens=p.max_tokens, progress=ctx.progress)
            if p.order == "score":  # stable: equal scores keep the draw order
                out = [sorted(hyps, key=lambda h: -h.score) for hyps in out]
            return out

        return run_search(model, sources, ctx, p, search)


@hookimpl
def register_decoders(register):
    register(Sample)
