"""``unmasked``: standard fine-tuning on the benchmark's train split.

Classification: a sequence-classification head on the encoder (a new head, seeded by the
cell's seed, unless the checkpoint already predicts the benchmark's labels), trained with
cross-entropy on clean inputs. Translation: a seq2seq model trained with token-level
cross-entropy on the reference translations (teacher forcing).

This is the baseline the masking strategies are compared against. The training loop, its
parameters and the checkpoint cache live in :mod:`harness.training`.
"""
from __future__ import annotations

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import FineTuneParams, Objective, fine_tune


class UnmaskedParams(FineTuneParams):
    pass


class Unmasked(Strategy):
    name = "unmasked"
    version = "2"  # 2: transformers' mega-batch rule for length grouping
    description = "Standard fine-tuning: cross-entropy on clean inputs (classification head, or seq2seq)."
    Params = UnmaskedParams
    tasks = ("classification", "translation")

    def prepare(self, model, data, ctx):
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=self.params,
                         objective=Objective("supervised"))


@hookimpl
def register_strategies(register):
    register(Unmasked)
