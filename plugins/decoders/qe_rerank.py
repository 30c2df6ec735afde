"""``qe_rerank``: rerank another decoder's n-best list with a reference-free metric (CometKiwi).

For each sentence the ``candidates`` decoder (``beam``, ``diverse_beam`` or ``sample``, with its own
parameters; the same choice as ``mbr``'s) gives a list of hypotheses; each distinct one is scored
against the source alone by a quality-estimation metric, and the list is returned best score first,
the score being the QE score: the output is the candidate the QE model prefers (QE reranking, e.g.
Fernandes et al. 2022), the n-best list the whole pool. Ties keep the candidates' order.

The metric is a metric plugin offering ``qe_scores(sources, outputs)``: ``comet`` with a
reference-free checkpoint (``metric_params: {checkpoint: DIR}``: Unbabel/wmt22-cometkiwi-da,
COMET-QE, or XCOMET without its reference). Its parameters are validated at the config edge, with
the config's directory as the base of relative paths, and a checkpoint that needs references is
refused there. All candidates of all sentences are scored in one batched, length-sorted pass.
Non-goals: combining the QE score with the decoder's own score, reranking with references (that is
``mbr`` with ``utility: comet``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import Field, ValidationInfo, model_validator

from harness.decoding import Decoder, Hypothesis
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.params import Params

from .mbr import BeamSource, CandidateSource, metric_class


class QeRerankParams(Params):
    candidates: CandidateSource = Field(
        default_factory=lambda: BeamSource(decoder="beam"),
        description="{decoder: beam | diverse_beam | sample, params: {...}}: the n-best list to rerank")
    metric: str = Field("comet", description="the metric plugin whose reference-free score reranks (qe_scores): comet")
    metric_params: dict[str, Any] = Field(
        default_factory=dict, description="its parameters, e.g. {checkpoint: DIR} of a CometKiwi checkpoint")

    @model_validator(mode="after")
    def _qe_metric(self, info: ValidationInfo):
        from pydantic import ValidationError

        try:
            cls = metric_class(self.metric)
        except HarnessError as e:
            raise ValueError(f"metric: {e}") from None
        if not callable(getattr(cls, "qe_scores", None)):
            raise ValueError(f"metric: '{self.metric}' gives no reference-free scores (no qe_scores); allowed: comet")
        try:
            validated = cls.Params.model_validate(self.metric_params, context=info.context)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ValueError(f"metric_params{'.' + where if where else ''}: {msg} (parameters of metric "
                             f"'{self.metric}': {', '.join(cls.Params.model_fields)})") from None
        check = getattr(cls, "qe_problem", None)
        problem = check(validated) if callable(check) and (info.context or {}).get("check_files", True) else None
        if problem:
            raise ValueError(f"metric {self.metric}: {problem}")
        dumped = validated.model_dump(mode="json")  # the keys as given, relative paths made absolute
        object.__setattr__(self, "metric_params", {k: dumped[k] for k in self.metric_params})
        return self


class QeRerank(Decoder):
    name = "qe_rerank"
    description = "Rerank a decoder's n-best list by a reference-free metric of each candidate (CometKiwi)."
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
        metric = metric_class(p.metric)
        scorer = metric(metric.Params.model_validate(p.metric_params))
        scores = scorer.qe_scores([s for s, hyps in zip(sources, distinct) for _ in hyps],
                                  [h.text for hyps in distinct for h in hyps])
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
