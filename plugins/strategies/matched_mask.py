"""``matched_mask``: BERT-style masking at training *and* at test time, at the same rate.

Tests the study note's argument (4), the train/test mismatch, from the other side: instead of
removing [MASK] from training (``input_noise``), it puts it into the test inputs. Training is
``input_mask``'s own (this class inherits its parameters and its ``prepare``), and so is the
checkpoint: both are keyed by what training does, so a run with both arms trains each model once
and matched_mask's cell decodes input_mask's checkpoint. At prediction every test input is
corrupted the same way (``mask_prob``, ``mask_ratio``, ``random_ratio``, ``keep_ratio``), each
example with its own draw seeded by the cell's seed and its id, written to the cell's
``test_corruption.json`` (positions and the ids they now hold); that corruption is what makes
the cell a different cell (its key holds this strategy's name and version). If the mismatch is
what hurts, this arm does better than ``input_mask`` (the same weights, tested clean); if it
does worse, losing the test tokens costs more than the mismatch.

Classification only.
"""
from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.training import Masking

from .input_mask import InputMask


class MatchedMask(InputMask):
    name = "matched_mask"
    version = "1"  # of the test-time corruption; training's version is input_mask's
    description = "Fine-tune on BERT-style masked inputs and mask the test inputs alike (seeded, recorded)."
    tasks = ("classification",)

    def test_time_corruption(self):
        return Masking.from_params(self.params)


@hookimpl
def register_strategies(register):
    register(MatchedMask)
