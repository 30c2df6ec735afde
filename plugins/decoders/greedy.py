"""``greedy``: the most probable token at every step.

Its own batched loop over the KV cache (``harness.decoding.greedy_search``): inputs sorted by length,
finished sentences dropped from the running batch, and the same tokens as
``model.generate(do_sample=False, num_beams=1)`` including the generation_config rules
generate() applies by default (see docs/beam_search.md for the list).

Score of the hypothesis: mean log-probability per generated token under the distribution
greedy decoded from. Non-goals: sampling, returning more than one hypothesis.
"""
from __future__ import annotations

from harness.api import Decoder
from harness.decoding import SearchParams, run_search
from harness.hookspecs import hookimpl


class GreedyParams(SearchParams):
    pass


class Greedy(Decoder):
    name = "greedy"
    description = "Greedy search: the argmax token at every step (same tokens as generate(num_beams=1))."
    Params = GreedyParams
    version = "2"  # own decoding loop; hypotheses now carry scores and token ids

    def decode(self, model, sources, ctx):
        p = self.params

        def search(step_model, prompts, rules, core):
            return core.greedy_search(step_model, prompts, rules, batch_size=p.batch_size, max_tokens=p.max_tokens,
                                      progress=ctx.progress)

        return run_search(model, sources, ctx, p, search)


@hookimpl
def register_decoders(register):
    register(Greedy)
