"""A second, corrupted view of every training batch, trained beside the clean one (classification).

The loss of a step with a :class:`SecondView` is

    CE(clean batch) + ce_weight x CE(corrupted copy) + consistency_weight x D(clean, corrupted)

where the corrupted copy is the same batch (same sentences, same labels) after one of

- BERT-style masking (:class:`~harness.training.Masking`, drawn by ``mask_tokens`` from the
  loop's mask stream exactly as ``aux_mlm`` draws its masked copy): masked copies *in addition*
  to the clean examples, nothing thrown away (the ``mask_augment`` strategy);
- a cutoff (:class:`~harness.training.corruption.Cutoff`, Shen et al. 2020): token or span
  erasure (the ``cutoff`` strategy),

and D is a consistency term between the predicted label distributions on the two views
(:mod:`.consistency`; none by default). Both views pass through the same encoder and head in
the same optimizer step, so a step processes twice the sequences of plain fine-tuning.

Non-goals: more than one corrupted view per example, translation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .consistency import CONSISTENCY
from .corruption import Cutoff, cutoff_positions, erase
from .masking import Masking, mask_tokens


@dataclass(frozen=True)
class SecondView:
    """How the second view is made and weighed."""

    corruption: Masking | Cutoff
    ce_weight: float = 1.0                                          # task loss on the corrupted copy
    consistency: Literal["none", "js", "symmetric_kl"] = "none"     # divergence clean vs corrupted predictions
    consistency_weight: float = 0.0


def second_view_loss(model, batch: dict[str, Any], special, clean_logits, labels, view: SecondView, vocab,
                     generator, *, to_dev, autocast, smoothing: float = 0.0) -> tuple[Any, dict[str, float]]:
    """The second view's part of the loss, and its parts for the training history.

    ``batch``: the clean batch on the CPU (input_ids, attention_mask, ...; without labels and
    special); ``clean_logits``: the model's logits on it this step; ``labels`` on the CPU.
    Returns ``(loss, {"view_loss": ..., "consistency_loss": ...})``."""
    import torch.nn.functional as F

    if isinstance(view.corruption, Cutoff):
        cut = cutoff_positions(special, view.corruption, generator)
        inputs = erase(model, to_dev(batch), cut, view.corruption, vocab.mask_id if vocab is not None else None)
    else:
        corrupted, _ = mask_tokens(batch["input_ids"], special, view.corruption, vocab, generator)
        inputs = to_dev({**batch, "input_ids": corrupted})
    with autocast():
        logits = model(**inputs).logits
    ce = F.cross_entropy(logits.float(), labels.to(logits.device), label_smoothing=smoothing)
    loss = view.ce_weight * ce
    parts = {"view_loss": ce.item()}
    if view.consistency != "none":
        d = CONSISTENCY[view.consistency](clean_logits, logits)
        loss = loss + view.consistency_weight * d
        parts["consistency_loss"] = d.item()
    return loss, parts
