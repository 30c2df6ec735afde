"""``qe_rerank``: rerank another decoder's n-best list with a reference-free COMET model.

For each sentence the ``candidates`` decoder (``beam``, ``diverse_beam`` or ``sample``, with its own
parameters; the same choice as ``mbr``'s) gives a list of hypotheses; each distinct one is scored
by a quality-estimation checkpoint (CometKiwi, COMET-QE, or XCOMET without its reference) against
the source alone, and the list is returned best score first, the score being the QE score: the
output is the candidate the QE model prefers (QE reranking, e.g. Fernandes et al. 2022), the
n-best list the whole pool. Ties keep the candidates' order.

The checkpoint parameters are the ``comet`` metric's (``checkpoint``, ``encoder``, ``batch_size``,
``max_tokens``, ``device``, ``dtype``); a reference-based checkpoint is refused at validation, as
it cannot score without a reference. All candidates of all sentences are scored in one batched,
length-sorted pass. Non-goals: combining the QE score with the decoder's own score, reranking with
references (that is ``mbr`` with ``utility: comet``).
"""
from __future__ import annotations

import dataclasses

from pydantic import Field

from harness.api import Decoder, Hypothesis
from harness.comet.params import ScorerParams
from harness.hookspecs import hookimpl

from .mbr import BeamSource, CandidateSource


class QeRerankParams(ScorerParams):
    candidates: CandidateSource = Field(
        default_factory=lambda: BeamSource(decoder="beam"),
        description="{decoder: beam | diverse_beam | sample, params: {...}}: the n-best list to rerank")

    def problem(self, info):
        if info.references == "required":
            return (f"{info.directory} is a reference-based COMET model ({info.class_identifier}, inputs "
                    f"[{', '.join(info.input_segments)}]); qe_rerank scores without references: use a reference-free "
                    f"checkpoint (e.g. Unbabel/wmt22-cometkiwi-da) or XCOMET")
        return None


class QeRerank(Decoder):
    name = "qe_rerank"
    description = "Rerank a decoder's n-best list by a reference-free COMET (CometKiwi) score of each candidate."
    Params = QeRerankParams
    deterministic = False  # sampled candidates depend on the seed

    def decode(self, model, sources, ctx):
        from .beam import Beam
        from .diverse_beam import DiverseBeam
        from .sample import Sample

        p = self.params
        n = len(sources)
        first = dataclasses.replace(ctx, progress=lambda done, total=None: ctx.progress(done, 2 * n))
        src = p.candidates
        if src.decoder == "sample":
            cands = Sample(src.params).draw(model, sources, first, stream="sample")
        else:
            cls = Beam if src.decoder == "beam" else DiverseBeam
            cands = cls(src.params).decode(model, sources, first)
        distinct = []
        for hyps in cands:  # each distinct text once, where it first occurs
            seen: dict[str, Hypothesis] = {}
            for h in hyps:
                seen.setdefault(h.text, h)
            distinct.append(list(seen.values()))
        flat_src = [s for s, hyps in zip(sources, distinct) for _ in hyps]
        flat_mt = [h.text for hyps in distinct for h in hyps]
        scores = p.scorer().score(flat_src, flat_mt, None).scores
        out, k = [], 0
        for i, hyps in enumerate(distinct):
            mine = scores[k:k + len(hyps)]
            k += len(hyps)
            order = sorted(range(len(hyps)), key=lambda j: (-mine[j], j))
            out.append([Hypothesis(hyps[j].text, mine[j], hyps[j].tokens) for j in order])
            ctx.progress(n + i + 1, 2 * n)
        return out


@hookimpl
def register_decoders(register):
    register(QeRerank)
