"""``matched_mask``: BERT-style masking at training *and* at test time, at the same rate.

Tests the study note's argument (4), the train/test mismatch, from the other side: instead of
removing [MASK] from training (``input_noise``), it puts it into the test inputs. Training is
exactly ``input_mask``'s (same parameters, same seed: the same weights, bit for bit); at
prediction every test input is corrupted the same way (``mask_prob``, ``mask_ratio``,
``random_ratio``, ``keep_ratio``), each example with its own draw seeded by the cell's seed and
its id, written to the cell's ``test_corruption.json`` (positions and the ids they now hold). If
the mismatch is what hurts, this arm does better than ``input_mask`` (trained alike, tested
clean); if it does worse, losing the test tokens costs more than the mismatch.

The checkpoint is its own (keyed by this strategy's name), although training equals
``input_mask``'s: arms never share checkpoints. Classification only.
"""
from __future__ import annotations

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import FineTuneParams, Masking, MaskingParams, Objective, fine_tune


class MatchedMaskParams(MaskingParams, FineTuneParams):
    pass


class MatchedMask(Strategy):
    name = "matched_mask"
    version = "1"
    description = "Fine-tune on BERT-style masked inputs and mask the test inputs alike (seeded, recorded)."
    Params = MatchedMaskParams
    tasks = ("classification",)

    def prepare(self, model, data, ctx):
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=self.params,
                         objective=Objective("supervised", input_masking=Masking.from_params(self.params)))

    def test_time_corruption(self):
        return Masking.from_params(self.params)


@hookimpl
def register_strategies(register):
    register(MatchedMask)
