"""``tapt``: task-adaptive pre-training, then standard fine-tuning (Gururangan et al. 2020).

The paper's shape: stage 1 continues masked-LM pre-training of the encoder on the task's own
training texts (labels unused; test and dev texts are never seen) for ``mlm_epochs`` epochs
(or ``mlm_max_steps``), with BERT's 15% / 80-10-10 masking (``mask_prob`` etc.); stage 2
fine-tunes the adapted encoder exactly like ``unmasked`` (same seed: same new classification
head, same data order). Both stages share batch size, length limit and weight decay; stage 1
has its own learning rate. The MLM head is the checkpoint's pretrained one when it has one;
otherwise it is built as BERT's (output layer tied to the input word embeddings, new transform
and bias) and, with ``mlm_head_warmup_steps``, trained alone with the encoder frozen before
stage 1, so that stage 1 adapts the encoder rather than spending its steps on a head that
knows nothing. finetune.json's ``mlm_head`` records the MLM loss before and after the warm-up
and after stage 1.

The paper ran 100 TAPT epochs on small tasks (lr 1e-4); the default here is one epoch, to keep
cells affordable on a CPU: a study sets ``mlm_epochs`` to what its budget allows and says so.

Classification only.
"""
from __future__ import annotations

from pydantic import Field

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import (FineTuneParams, Masking, MaskingParams, MLMHeadParams, MLMStage, Objective,
                              fine_tune)


class TaptParams(MLMHeadParams, MaskingParams, FineTuneParams):
    mlm_epochs: int = Field(1, ge=1, description="masked-LM epochs over the training texts (stage 1)")
    mlm_max_steps: int | None = Field(None, ge=1, description="stage 1 optimizer steps; overrides mlm_epochs")
    mlm_learning_rate: float = Field(1e-4, ge=0, description="stage 1 peak learning rate (paper: 1e-4)")


class Tapt(Strategy):
    name = "tapt"
    version = "3"  # 3: a new MLM head is tied, its bias starts at the unigram prior; head warm-up
    description = "Task-adaptive pre-training: masked-LM on the task's training texts, then unmasked fine-tuning."
    Params = TaptParams
    tasks = ("classification",)

    def prepare(self, model, data, ctx):
        p = self.params
        stage = MLMStage(learning_rate=p.mlm_learning_rate, epochs=p.mlm_epochs, max_steps=p.mlm_max_steps,
                         masking=Masking.from_params(p))
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=p,
                         objective=Objective("supervised"), mlm_stage=stage, mlm_head_params=p)


@hookimpl
def register_strategies(register):
    register(Tapt)
