"""The masked-LM head a classifier's encoder is trained with (aux_mlm) or trained as (TAPT).

Its own module because both the training loop (:mod:`.loop`, which computes its loss every step)
and the code that builds, warms up and probes it (:mod:`.heads`, which runs the loop) use it.
torch is imported inside :meth:`MLMHead.loss` only.
"""
from __future__ import annotations


class MLMHead:
    """A masked-LM head sharing the encoder of a classifier (aux_mlm) or of itself (TAPT).

    ``model`` is a transformers ``...ForMaskedLM`` whose base model is the shared encoder. When it
    has one head module taking hidden states (BERT's ``cls``, RoBERTa's ``lm_head``), the loss
    runs the head only on the selected positions, which saves the vocabulary projection on the
    other ~85% of tokens; otherwise it falls back to the model's full forward.
    """

    def __init__(self, mlm_model):
        self.model = mlm_model
        prefix = mlm_model.base_model_prefix
        heads = [m for n, m in mlm_model.named_children() if n != prefix and any(True for _ in m.parameters())]
        self.head = heads[0] if len(heads) == 1 else None

    def loss(self, encoder, batch_inputs: dict, selected):
        import torch.nn.functional as F

        labels = batch_inputs["input_ids_clean"]
        inputs = {k: v for k, v in batch_inputs.items() if k != "input_ids_clean"}
        if not selected.any():
            return None
        if self.head is not None:
            hidden = encoder(**inputs).last_hidden_state
            logits = self.head(hidden[selected])
            return F.cross_entropy(logits.float(), labels[selected])
        target = labels.masked_fill(~selected, -100)
        return self.model(**inputs, labels=target).loss
