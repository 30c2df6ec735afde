"""``aux_mlm``: classification loss plus a weighted masked-LM loss on the same batch.

loss = CE(classifier(clean batch)) + mlm_weight x MLM(encoder(masked batch)). Both terms share
the encoder; the classifier sees clean inputs, the masked-LM head sees the batch corrupted the
BERT way (``mask_prob``, 80/10/10) and predicts the original tokens at the selected positions.
This is the auxiliary language-modelling objective of e.g. Chronopoulou et al. (2019), with
BERT's MLM in place of a left-to-right LM. The MLM head is the checkpoint's pretrained one when it
has one (BertForMaskedLM ``cls``). A checkpoint without one (the packaged MiniLM) gets a head
built as BERT's: a new transform (dense, activation, LayerNorm), an output layer whose weight
*is* the encoder's input word-embedding matrix, and a new bias (started at the training tokens'
log unigram frequencies). ``mlm_head_warmup_steps`` first trains that head alone, encoder
frozen, so the joint objective does not start from a head that knows nothing (Chronopoulou et
al. likewise warm up new layers before unfreezing). finetune.json's ``mlm_head`` records the MLM
loss before and after the warm-up. Only the classifier is saved and evaluated.

Classification only. ``mlm_weight: 0`` trains exactly like ``unmasked`` (same seed, same result).
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import FineTuneParams, Masking, MaskingParams, MLMHeadParams, Objective, fine_tune


class AuxMLMParams(MLMHeadParams, MaskingParams, FineTuneParams):
    mlm_weight: float = Field(0.1, ge=0, description="lambda: weight of the masked-LM loss")


class AuxMLM(Strategy):
    name = "aux_mlm"
    version = "3"  # 3: a new MLM head is tied, its bias starts at the unigram prior; head warm-up
    description = "Classification loss + mlm_weight x masked-LM loss on the shared encoder (same batch)."
    Params = AuxMLMParams
    tasks = ("classification",)

    def prepare(self, model, data, ctx):
        p = self.params
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=p,
                         objective=Objective("aux_mlm", mlm_masking=Masking.from_params(p), mlm_weight=p.mlm_weight),
                         mlm_head_params=p)


@hookimpl
def register_strategies(register):
    register(AuxMLM)
