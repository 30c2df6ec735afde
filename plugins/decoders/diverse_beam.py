"""``diverse_beam``: diverse beam search (Vijayakumar et al. 2016, "Diverse Beam Search:
Decoding Diverse Solutions from Neural Sequence Models", arXiv:1610.02424).

The B beams are split into G groups of B/G. At every step the groups are expanded in turn;
a group's log-probabilities are lowered by ``diversity_strength`` x (how many beams of the
earlier groups chose that token at this step) — the paper's Hamming diversity. Each group
otherwise runs beam search with B/G beams and keeps its own finished hypotheses; the n-best
list pools all groups, best first.

The same texts, order and scores as transformers 4.x group beam search
(``generate(num_beam_groups=G, diversity_penalty=lambda)``, which transformers v5 moved out of
its core), tested against outputs recorded from 4.55: the penalty is part of the returned
scores, and a group stops by 4.x's rule (docs/beam_search.md). G=1 is ``beam``;
diversity_strength=0 (which 4.x refuses) runs G identical groups. Non-goals: the paper's other
diversity functions (n-gram, neural embedding).
"""
from __future__ import annotations

from harness.api import Decoder
from harness.decoding import DiverseBeamParams, resolve_beam_settings, run_search
from harness.hookspecs import hookimpl


class DiverseBeam(Decoder):
    name = "diverse_beam"
    description = "Diverse beam search (Vijayakumar et al. 2016): beam groups with a Hamming diversity penalty."
    Params = DiverseBeamParams
    version = "2"  # groups stop by transformers 4.x's rule (was v5's), finished lists kept as 4.x kept them

    def decode(self, model, sources, ctx):
        p = self.params
        length_penalty, early_stopping = resolve_beam_settings(p, model.generation_config)

        def search(step_model, prompts, rules, core):
            config = core.BeamConfig(num_beams=p.num_beams, num_groups=p.num_groups,
                                     diversity_strength=p.diversity_strength, length_penalty=length_penalty,
                                     early_stopping=early_stopping, num_return_sequences=p.num_return_sequences)
            return core.beam_search(step_model, prompts, rules, config, batch_size=p.batch_size,
                                    max_tokens=p.max_tokens, progress=ctx.progress)

        return run_search(model, sources, ctx, p, search)


@hookimpl
def register_decoders(register):
    register(DiverseBeam)
