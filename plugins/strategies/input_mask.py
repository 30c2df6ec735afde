"""``input_mask``: fine-tuning on BERT-style corrupted inputs, evaluated on clean ones.

At every training step each input token (never a special token such as [CLS]/[SEP]/</s> or
padding) is selected with probability ``mask_prob``; a selected token becomes the mask token
(``mask_ratio``, 80% by default), a random non-special token (``random_ratio``, 10%) or stays
as it is (``keep_ratio``, 10%), the corruption of Devlin et al. (2019). Masks are drawn anew at
every step from a stream seeded by the cell's seed. The loss is the task's ordinary one
(classification cross-entropy; for translation, cross-entropy on the target with the *source*
corrupted, a form of source word dropout). Tokenizers without a mask token (Marian, T5) use
their unknown token as the mask. Evaluation always sees the clean text.
"""
from __future__ import annotations

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import FineTuneParams, Masking, MaskingParams, Objective, fine_tune


class InputMaskParams(MaskingParams, FineTuneParams):
    pass


class InputMask(Strategy):
    name = "input_mask"
    version = "2"  # 2: transformers' mega-batch rule for length grouping
    description = "Fine-tune on inputs with BERT-style 80/10/10 token masking (redrawn each step); evaluate clean."
    Params = InputMaskParams
    tasks = ("classification", "translation")

    def prepare(self, model, data, ctx):
        # keyed as input_mask's in a subclass too: matched_mask inherits this training (and only
        # masks the test inputs besides), so the two share every checkpoint
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=self.params,
                         objective=Objective("supervised", input_masking=Masking.from_params(self.params)),
                         trains_as=(InputMask.name, InputMask.version))


@hookimpl
def register_strategies(register):
    register(InputMask)
