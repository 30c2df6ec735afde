"""``mbr``: minimum Bayes risk decoding over candidates from another decoder.

For each sentence: the ``candidates`` decoder (``sample``, ``beam`` or ``diverse_beam``, with
its own parameters) gives a list of hypotheses; the pseudo-references are the samples of
``references`` (a ``sample`` decoder) or, when it is null, the candidates themselves (the
common sampling-based MBR of Eikema & Aziz 2020; Freitag et al. 2022). Every candidate is
scored by its expected utility, the mean utility against the pseudo-references (a sample
drawn twice counts twice), and the n-best list returns the distinct candidates, highest
expected utility first, with the expected utility as the score: the output is the MBR choice,
and the n-best list (what diversity and oracle metrics read) is the candidate pool.

Utilities: ``chrf`` (default) and ``bleu`` equal sacrebleu's ``sentence_chrf`` /
``sentence_bleu`` and are computed exactly and fast (:mod:`harness.decoding.mbr`: n-grams extracted
once per distinct string, one sparse product for all pairs); ``utility_params`` takes the
parameters of the ``chrf`` / ``bleu`` metric plugins. ``comet`` takes the ``comet`` metric's
(``checkpoint``...): a metric plugin with an ``mbr_utility()`` supplies its own pairwise form, here
each candidate and pseudo-reference encoded once (Freitag et al. 2022's MBR with a neural utility;
the trick of ZurichNLP/mbr and mbrs), the source bound per sentence (``for_source``). Any other
translation metric plugin name works too, one (candidate, reference) pair per call (slow: N x M
calls per sentence).

Randomness: sampled candidates use the ``sample`` decoder's stream, so with the same seed and
sampling parameters MBR reranks exactly the samples a ``sample`` cell draws; pseudo-references
drawn by ``references`` use a stream of their own (independent samples). Including a candidate
among its own pseudo-references (null ``references``) adds the same 100/M chrF to every non-empty
candidate, which does not change the choice.

Non-goals: third-party decoders as candidate sources (the choice is validated against the
built-ins' parameters at config time), approximations (reference aggregation, DeMBR).
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationInfo, model_validator

from harness.api import Decoder, Hypothesis
from harness.decoding import BeamParams, DiverseBeamParams, SampleParams
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.params import Params


class SampleSource(Params):
    decoder: Literal["sample"] = Field(description="draw the candidates with the sample decoder")
    params: SampleParams = Field(default_factory=lambda: SampleParams(num_samples=32),
                                 description="the sample decoder's parameters")


class BeamSource(Params):
    decoder: Literal["beam"] = Field(description="the candidates are beam search's n-best list")
    params: BeamParams = Field(default_factory=lambda: BeamParams(num_beams=8, num_return_sequences=8),
                               description="the beam decoder's parameters")


class DiverseBeamSource(Params):
    decoder: Literal["diverse_beam"] = Field(description="the candidates are diverse beam search's n-best list")
    params: DiverseBeamParams = Field(
        default_factory=lambda: DiverseBeamParams(num_beams=8, num_groups=4, num_return_sequences=8),
        description="the diverse_beam decoder's parameters")


def _source_name(v: Any) -> str | None:
    return v.get("decoder") if isinstance(v, dict) else getattr(v, "decoder", None)


# a callable discriminator: the choice is made on ``decoder`` alone, so an error names that key
# and the allowed decoders instead of listing every branch's complaints
CandidateSource = Annotated[
    Union[Annotated[SampleSource, Tag("sample")], Annotated[BeamSource, Tag("beam")],
          Annotated[DiverseBeamSource, Tag("diverse_beam")]],
    Discriminator(_source_name, custom_error_type="unknown_decoder",
                  custom_error_message="unknown candidate decoder; allowed: sample, beam, diverse_beam")]
FAST_UTILITIES = ("chrf", "bleu")


class MbrParams(Params):
    candidates: CandidateSource = Field(
        default_factory=lambda: SampleSource(decoder="sample"),
        description="{decoder: sample | beam | diverse_beam, params: {...}}: where the candidates come from")
    references: SampleSource | None = Field(
        None, description="{decoder: sample, params: {...}}: pseudo-references drawn apart; null: the candidates")
    utility: str = Field("chrf", description="chrf | bleu (exact and fast) | comet (a COMET checkpoint, each text "
                                             "encoded once) | any translation metric plugin's name")
    utility_params: dict[str, Any] = Field(default_factory=dict,
                                           description="parameters of the utility's metric plugin, e.g. {word_order: 2}")

    @model_validator(mode="after")
    def _known_utility(self, info: ValidationInfo):
        from pydantic import ValidationError

        try:
            cls = metric_class(self.utility)
        except HarnessError as e:
            raise ValueError(f"utility: {e}") from None
        if getattr(cls, "task", "translation") != "translation":
            raise ValueError(f"utility: metric '{self.utility}' scores {cls.task}, not translations")
        try:
            # the config's context: paths among the utility's parameters are relative to the config file
            validated = cls.Params.model_validate(self.utility_params, context=info.context)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ValueError(f"utility_params{'.' + where if where else ''}: {msg} "
                             f"(parameters of metric '{self.utility}': "
                             f"{', '.join(cls.Params.model_fields) or 'none'})") from None
        check = getattr(cls, "utility_problem", None)  # a metric that cannot always be a utility says why
        problem = check(validated) if callable(check) and (info.context or {}).get("check_files", True) else None
        if problem:
            raise ValueError(f"utility {self.utility}: {problem}")
        # the keys as given, with their validated values (relative paths made absolute)
        dumped = validated.model_dump(mode="json")
        object.__setattr__(self, "utility_params", {k: dumped[k] for k in self.utility_params})
        return self


def metric_class(name: str):
    """The metric plugin class behind a utility name. chrf, bleu and comet are built-ins, imported
    directly (validating these params must not need the plugin registry, which may be building)."""
    if name in FAST_UTILITIES:
        from harness_plugins.metrics.sacrebleu_metrics import Bleu, Chrf

        return Chrf if name == "chrf" else Bleu
    if name == "comet":
        from harness_plugins.metrics.comet import Comet

        return Comet
    from harness.plugins import default_plugins

    return default_plugins().get("metric", name)


def make_utility(name: str, params: dict[str, Any]):
    """The sentence utility of :mod:`harness.decoding` (MBR) for a metric name and its plugin parameters."""
    from harness.decoding import BleuUtility, ChrfUtility, MetricUtility

    cls = metric_class(name)
    p = cls.Params.model_validate(params)
    if name == "chrf":
        return ChrfUtility(char_order=p.char_order, word_order=p.word_order, beta=p.beta, lowercase=p.lowercase,
                           whitespace=p.whitespace, eps_smoothing=p.eps_smoothing)
    if name == "bleu":
        return BleuUtility(tokenize=p.tokenize, lowercase=p.lowercase, smooth_method=p.smooth_method)
    metric = cls(p)
    own = getattr(metric, "mbr_utility", None)  # a metric with its own pairwise form (comet)
    return own() if callable(own) else MetricUtility(metric)


class Mbr(Decoder):
    name = "mbr"
    description = "Minimum Bayes risk decoding: the candidate with the highest expected utility (chrF by default)."
    Params = MbrParams
    deterministic = False  # sampled candidates or pseudo-references depend on the seed

    def decode(self, model, sources, ctx):
        from harness.decoding import mbr_rank

        from .beam import Beam
        from .diverse_beam import DiverseBeam
        from .sample import Sample

        p = self.params
        n = len(sources)
        phases = 3 if p.references is not None else 2

        def phase(k):  # progress over all phases: candidates, pseudo-references, selection
            return dataclasses.replace(ctx, progress=lambda done, total=None: ctx.progress(k * n + done, phases * n))

        src = p.candidates
        if src.decoder == "sample":
            cands = Sample(src.params).draw(model, sources, phase(0), stream="sample")
        else:
            cls = Beam if src.decoder == "beam" else DiverseBeam
            cands = cls(src.params).decode(model, sources, phase(0))
        if p.references is not None:
            refs = Sample(p.references.params).draw(model, sources, phase(1), stream="mbr-references")
        else:
            refs = cands
        utility = make_utility(p.utility, p.utility_params)
        if hasattr(utility, "prepare"):  # a neural utility encodes every distinct text at once
            utility.prepare(sources, [h.text for hyps in (*cands, *refs) for h in hyps])
        out = []
        for i, (hyps, pseudo) in enumerate(zip(cands, refs)):
            # a utility that reads the source (comet) is bound to this sentence's
            u = utility.for_source(sources[i]) if hasattr(utility, "for_source") else utility
            ranked = mbr_rank([h.text for h in hyps], [h.text for h in pseudo], u)
            out.append([Hypothesis(r.text, r.expected_utility, hyps[r.index].tokens) for r in ranked])
            ctx.progress((phases - 1) * n + i + 1, phases * n)
        return out


@hookimpl
def register_decoders(register):
    register(Mbr)
