"""``input_noise``: fine-tuning on inputs corrupted *without* the mask token; evaluated clean.

Tests the study note's argument (4), the train/test mismatch: "[MASK] never appears at
inference, so training with it creates a mismatch". This arm corrupts as many tokens as
``input_mask`` does (``mask_prob`` of the non-special tokens, redrawn every step) but, by
default, replaces every selected token by a random non-special token (``mask_ratio`` 0,
``random_ratio`` 1, ``keep_ratio`` 0: "0/100/0", the all-random mix of BERT's ablation of the
corruption, Devlin et al. 2019, Table 8, where 80/10/10 scored MNLI 84.2 and 100% [MASK] 84.3,
during pre-training). The model never sees [MASK], so
there is no [MASK]-shaped mismatch; compared with ``input_mask`` (80/10/10) at the same rate, the
difference is what the [MASK] symbol itself costs or buys. The three shares are parameters,
validated at the config edge to sum to 1 (``keep_ratio`` 1 would corrupt nothing).

Also translation (the source side), as ``input_mask``.
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import FineTuneParams, Masking, MaskingParams, Objective, fine_tune


class InputNoiseParams(MaskingParams, FineTuneParams):
    mask_ratio: float = Field(0.0, ge=0, le=1, description="of the selected tokens: share replaced by the mask "
                                                           "token (0: the model never sees it)")
    random_ratio: float = Field(1.0, ge=0, le=1, description="share replaced by a random (non-special) token")
    keep_ratio: float = Field(0.0, ge=0, le=1, description="share left unchanged")


class InputNoise(Strategy):
    name = "input_noise"
    version = "1"
    description = ("Fine-tune on inputs whose selected tokens become random tokens, no [MASK] (0/100/0); "
                   "evaluate clean.")
    Params = InputNoiseParams
    tasks = ("classification", "translation")

    def prepare(self, model, data, ctx):
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=self.params,
                         objective=Objective("supervised", input_masking=Masking.from_params(self.params)))


@hookimpl
def register_strategies(register):
    register(InputNoise)
