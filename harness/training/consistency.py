"""Consistency terms between a classifier's predictions on two views of the same batch.

- :func:`js_divergence`: the Jensen-Shannon divergence of the two predicted label distributions,
  ``JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m)`` with ``m = (p + q) / 2``, the consistency loss of
  Cutoff (Shen et al. 2020, section 3.2, with two views);
- :func:`symmetric_kl`: ``1/2 (KL(p || q) + KL(q || p))``, the symmetric form R-Drop uses (Liang
  et al. 2021).

Both take logits ``(batch, classes)``, work in natural logarithms (nats), average over the batch
and let the gradient flow into both views. Non-goals: temperatures, more than two views.
"""
from __future__ import annotations

import math


def _log_probs(logits_a, logits_b):
    return logits_a.float().log_softmax(-1), logits_b.float().log_softmax(-1)


def js_divergence(logits_a, logits_b):
    """Mean over the batch of JS(softmax(a), softmax(b)), in nats (at most ln 2)."""
    import torch

    lp, lq = _log_probs(logits_a, logits_b)
    log_m = torch.logsumexp(torch.stack([lp, lq]), dim=0) - math.log(2.0)
    kl_pm = (lp.exp() * (lp - log_m)).sum(-1)
    kl_qm = (lq.exp() * (lq - log_m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).mean()


def symmetric_kl(logits_a, logits_b):
    """Mean over the batch of 1/2 (KL(p || q) + KL(q || p)), in nats."""
    lp, lq = _log_probs(logits_a, logits_b)
    return (0.5 * ((lp.exp() - lq.exp()) * (lp - lq)).sum(-1)).mean()


CONSISTENCY = {"js": js_divergence, "symmetric_kl": symmetric_kl}
"""The consistency terms by the name a strategy's parameters use."""
