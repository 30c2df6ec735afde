"""``mask_augment``: masked copies *in addition to* the clean examples; nothing thrown away.

Tests the study note's argument (2), data loss: "fine-tuning data is small and masking throws
part of it away". Every step trains on the clean batch and on a BERT-style masked copy of it
(``mask_prob``, 80/10/10, redrawn every step): loss = CE(clean) + ``augment_weight`` x
CE(masked copy). The optimizer steps, the sentences and their order are those of ``unmasked`` and
``input_mask`` with the same parameters and seed (equal steps; each step processes twice the
sequences). Against ``input_mask`` (the masked copy *instead of* the clean one) the difference is
what masking costs by hiding the tokens it hides; against ``unmasked``, what the extra masked
copies add.

It is also the masked-input classifier of argument (1) at the compute of ``aux_mlm``: both run the
encoder on the clean batch and on a masked copy drawn from the same stream in the same way (the
same masks under one seed), and differ only in the loss on that copy (the task's label here,
the masked words there). Classification only.
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import FineTuneParams, Masking, MaskingParams, Objective, SecondView, fine_tune


class MaskAugmentParams(MaskingParams, FineTuneParams):
    augment_weight: float = Field(1.0, gt=0, description="weight of the loss on the masked copy (the clean batch's "
                                                         "is 1)")


class MaskAugment(Strategy):
    name = "mask_augment"
    version = "1"
    description = "Fine-tune on each clean batch plus a BERT-style masked copy of it (augmentation, equal steps)."
    Params = MaskAugmentParams
    tasks = ("classification",)

    def prepare(self, model, data, ctx):
        p = self.params
        view = SecondView(Masking.from_params(p), ce_weight=p.augment_weight)
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=p,
                         objective=Objective("supervised", second_view=view))


@hookimpl
def register_strategies(register):
    register(MaskAugment)
