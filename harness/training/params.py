"""What a fine-tuning strategy asks of the loop: its parameters, its objective, TAPT's MLM stage.

Strategies (``plugins/strategies``) declare :class:`FineTuneParams` (and :class:`MLMHeadParams`)
as their YAML parameters and hand the loop an :class:`Objective`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ..params import Params
from .masking import Masking

if TYPE_CHECKING:  # pragma: no cover
    from .views import SecondView


class FineTuneParams(Params):
    """Parameters shared by every fine-tuning strategy."""

    learning_rate: float = Field(5e-5, ge=0, description="peak learning rate of AdamW")
    batch_size: int = Field(32, ge=1, description="examples per forward pass")
    gradient_accumulation_steps: int = Field(1, ge=1, description="forward passes per optimizer step")
    epochs: int = Field(3, ge=1, description="passes over the training data (unless max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of the steps with linear warm-up")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up steps; instead of warmup_ratio")
    lr_scheduler: Literal["linear", "constant"] = Field(
        "linear", description="linear: decay to 0 after warm-up; constant: keep the peak rate")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases and norm weights)")
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm to this (null: no clipping)")
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="label-smoothed cross-entropy (Szegedy et al. 2016; 0.1 in Vaswani et al. "
                                     "2017): this share of each target's probability spread over the vocabulary")
    max_length: int = Field(128, ge=2, description="input tokens kept, in training and evaluation")
    max_target_length: int = Field(128, ge=2, description="translation: target tokens kept in training")
    group_by_length: bool = Field(True, description="batch examples of similar length (less padding)")
    train_limit: int | None = Field(None, ge=1, description="train on a seeded random subset of this size")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many dev evaluations without improvement (null: off)")
    early_stopping_metric: Literal["loss", "accuracy"] = Field(
        "loss", description="dev metric for early stopping (accuracy: classification only)")
    eval_steps: int | None = Field(None, ge=1, description="evaluate on the dev split every N steps and record "
                                                          "the curve in finetune.json (with early stopping, "
                                                          "default: after every epoch)")
    dev_limit: int | None = Field(None, ge=1, description="dev evaluations use a seeded dev subset of this size")
    train_seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="train with this seed instead of the cell's, so the cells of every "
                                              "seed share one checkpoint (a decoding study over one trained model)")

    @model_validator(mode="after")
    def _one_warmup(self):
        if self.warmup_steps is not None and "warmup_ratio" in self.model_fields_set:
            raise ValueError("give warmup_ratio or warmup_steps, not both")
        return self


class MLMHeadParams(Params):
    """A masked-LM head for an encoder whose checkpoint has none (aux_mlm, tapt)."""

    mlm_head_warmup_steps: int = Field(
        0, ge=0, description="a new MLM head: optimizer steps training the head alone (encoder frozen) before "
                             "the strategy's own objective; 0: no warm-up. A pretrained head is never warmed up")
    mlm_head_warmup_learning_rate: float = Field(1e-3, gt=0, description="peak learning rate of the head warm-up")



@dataclass(frozen=True)
class Objective:
    """What a fine-tuning run optimises.

    kind: ``supervised`` (classification or translation cross-entropy), ``aux_mlm``
    (classification + mlm_weight x masked-LM) or ``mlm`` (masked-LM only, TAPT's first stage).
    input_masking: corrupt the inputs the supervised loss sees (the ``input_mask`` strategy).
    mlm_masking: how the masked-LM inputs are corrupted.
    second_view: a corrupted copy of each batch trained beside it (:mod:`.views`; classification).
    """

    kind: Literal["supervised", "aux_mlm", "mlm"] = "supervised"
    input_masking: Masking | None = None
    mlm_masking: Masking | None = None
    mlm_weight: float = 0.0
    second_view: SecondView | None = None


@dataclass(frozen=True)
class MLMStage:
    """TAPT's first stage: masked-LM training on the task's own training texts."""

    learning_rate: float
    epochs: int
    max_steps: int | None
    masking: Masking
