"""Example third-party plugins: the ``copy_source`` decoder and the ``length_ratio`` metric.

Deliberately tiny: it shows the whole contract (a Params model, a plugin class, a hook
implementation, one entry point) and nothing else.
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Decoder, Hypothesis, Metric, MetricValue
from harness.hookspecs import hookimpl
from harness.params import Params


class CopySource(Decoder):
    name = "copy_source"
    description = "Output the source unchanged (lower-bound baseline; ignores the model)."

    def decode(self, model, sources, ctx):
        ctx.progress(len(sources), len(sources))
        return [[Hypothesis(text=s, score=0.0)] for s in sources]


class LengthRatioParams(Params):
    lowercase: bool = Field(False, description="no effect on counts; shows how a parameter is declared")


class LengthRatio(Metric):
    name = "length_ratio"
    task = "translation"
    description = "Total hypothesis words / total reference words."
    Params = LengthRatioParams

    def compute(self, outputs, examples, nbest=None):
        hyp = sum(len(o.split()) for o in outputs)
        ref = sum(len((ex.reference or "").split()) for ex in examples)
        return MetricValue(hyp / ref if ref else 0.0, signature="words:whitespace")


@hookimpl
def register_decoders(register):
    register(CopySource)


@hookimpl
def register_metrics(register):
    register(LengthRatio)
