"""``beam``: beam search, the same hypotheses and scores as ``generate(num_beams=B, do_sample=False)``.

At every step each of the B kept hypotheses is expanded by every vocabulary token (B x V
candidates), the candidates are ranked by their summed log-probability, and the best B
that do not end are kept; a candidate that ends (EOS, or max_new_tokens) and ranks in the
top B joins the finished list, scored ``sum log p / length ** length_penalty``.
``early_stopping`` decides when a sentence stops (transformers semantics: true, false =
heuristic, "never"). Worked example: docs/beam_search.md.

Batched; the KV cache is reordered at each step and a finished sentence leaves the running
batch. Returns ``num_return_sequences`` hypotheses per sentence, best first (the runner
writes them as the ``nbest`` list). Non-goals: sampling, constrained beam search.
"""
from __future__ import annotations

from harness.api import Decoder
from harness.decoding import BeamParams, resolve_beam_settings, run_search
from harness.hookspecs import hookimpl


class Beam(Decoder):
    name = "beam"
    description = "Beam search (same hypotheses and scores as generate(num_beams=...)); n-best lists."
    Params = BeamParams

    def decode(self, model, sources, ctx):
        p = self.params
        length_penalty, early_stopping = resolve_beam_settings(p, model.generation_config)

        def search(step_model, prompts, rules, core):
            config = core.BeamConfig(num_beams=p.num_beams, length_penalty=length_penalty,
                                     early_stopping=early_stopping, num_return_sequences=p.num_return_sequences)
            return core.beam_search(step_model, prompts, rules, config, batch_size=p.batch_size,
                                    max_tokens=p.max_tokens, progress=ctx.progress)

        return run_search(model, sources, ctx, p, search)


@hookimpl
def register_decoders(register):
    register(Beam)
