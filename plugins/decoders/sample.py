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

from harness.api import Decoder, Hypothesis
from harness.decoding import SampleParams, example_ids, run_search, sentence_seed
from harness.hookspecs import hookimpl


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
        p = self.params
        seeds = [sentence_seed(ctx.seed, i, stream) for i in example_ids(ctx, len(sources))]

        def search(step_model, prompts, rules, core):
            config = core.SampleConfig(num_samples=p.num_samples, temperature=p.temperature, top_k=p.top_k,
                                       top_p=p.top_p, epsilon=p.epsilon)
            out = core.sample_search(step_model, prompts, rules, config, seeds, batch_size=p.batch_size,
                                     max_tokens=p.max_tokens, progress=ctx.progress)
            if p.order == "score":  # stable: equal scores keep the draw order
                out = [sorted(hyps, key=lambda h: -h.score) for hyps in out]
            return out

        return run_search(model, sources, ctx, p, search)


@hookimpl
def register_decoders(register):
    register(Sample)
