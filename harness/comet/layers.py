"""What COMET puts on top of the encoder: layer mixing, pooling and the feed-forward estimator.

- **Layer mixing** (Peters et al. 2018's scalar mix, as COMET uses it, Rei et al. 2020 §2.2):
  ``gamma * sum_k w_k h_k`` over the encoder's hidden states, with ``w`` the softmax, or the
  sparsemax (Martins & Astudillo 2016: the Euclidean projection onto the simplex, which zeroes
  low layers), of one learned scalar per layer. With ``layer_norm`` each hidden state is first
  normalised per sentence over its unpadded positions and all dimensions (mean and variance
  pooled, epsilon 1e-12, no affine parameters).
- **Pooling** of a sentence embedding: the mean over unpadded positions (pad positions zeroed,
  divided by the number of unpadded positions), the maximum, the first position (``cls``), or
  ``default``: the first position of the last hidden state, unmixed.
- **Feed-forward**: Linear, activation, ..., Linear (one output), with an optional final
  activation; the weights are the checkpoint's ``estimator.ff.{0,3,6,...}`` (dropout layers sit
  in between in COMET's ``nn.Sequential``, inactive at inference).

Summation orders follow COMET's so that scores agree to float rounding. Non-goals: dropout and
Monte Carlo dropout, COMET's document-context pooling.
"""
from __future__ import annotations

from typing import Any


def sparsemax(z):
    """Sparsemax of a 1-d tensor: ``max(z - tau, 0)`` with tau such that the result sums to 1."""
    import torch

    s, _ = torch.sort(z, descending=True)
    k = torch.arange(1, z.numel() + 1, device=z.device, dtype=z.dtype)
    cum = s.cumsum(0)
    support = (1 + k * s) > cum
    n = int(support.sum())
    tau = (cum[n - 1] - 1) / n
    return torch.clamp(z - tau, min=0)


class LayerMix:
    def __init__(self, state: dict[str, Any], num_layers: int, *, transformation: str, layer_norm: bool, device, dtype):
        import torch

        weights = torch.cat([state[f"layerwise_attention.scalar_parameters.{i}"].float().view(1)
                             for i in range(num_layers)])
        # COMET: sparsemax only for the name "sparsemax"; every other value is softmax
        normed = sparsemax(weights) if transformation == "sparsemax" else torch.softmax(weights, dim=0)
        self.weights = [w.to(device=device, dtype=dtype) for w in normed.split(1)]
        self.gamma = state["layerwise_attention.gamma"].to(device=device, dtype=dtype)
        self.layer_norm = layer_norm

    def __call__(self, states, mask):
        import torch

        if not self.layer_norm:
            total = 0
            for w, h in zip(self.weights, states):
                total = total + w * h
            return self.gamma * total
        m = mask.to(states[0].dtype)
        bm = m.unsqueeze(-1)
        count = m.sum(1) * states[0].shape[-1]
        total = 0
        for w, h in zip(self.weights, states):
            masked = h * bm
            B = h.shape[0]
            mean = (masked.view(B, -1).sum(1) / count).view(B, 1, 1)
            var = (((masked - mean) * bm) ** 2).view(B, -1).sum(1) / count
            total = total + w * ((h - mean) / torch.sqrt(var + 1e-12).view(B, 1, 1))
        return self.gamma * total


def pool(kind: str, ids, embeddings, mask, pad_id: int, last_state):
    """A sentence embedding per row (see the module docstring)."""
    pad = ids.eq(pad_id).unsqueeze(-1)
    if kind == "avg":
        summed = embeddings.float().masked_fill(pad, 0.0).type_as(embeddings).sum(1)
        return summed / mask.unsqueeze(-1).expand(embeddings.size()).float().sum(1)
    if kind == "max":
        return embeddings.float().masked_fill(pad, float("-inf")).type_as(embeddings).max(dim=1)[0]
    if kind == "cls":
        return embeddings[:, 0, :]
    return last_state[:, 0, :]  # "default": the encoder's own sentence embedding


class FeedForward:
    def __init__(self, state: dict[str, Any], prefix: str, n_linear: int, activation: str,
                 final_activation: str | None, device, dtype):
        import torch

        self.linear = [(state[f"{prefix}.{3 * i}.weight"].to(device=device, dtype=dtype),
                        state[f"{prefix}.{3 * i}.bias"].to(device=device, dtype=dtype)) for i in range(n_linear)]
        self.act = getattr(torch.nn, activation.title())()
        self.final = getattr(torch.nn, final_activation.title())() if final_activation else None

    def __call__(self, x):
        import torch.nn.functional as F

        for w, b in self.linear[:-1]:
            x = self.act(F.linear(x, w, b))
        x = F.linear(x, *self.linear[-1])
        return self.final(x) if self.final is not None else x
