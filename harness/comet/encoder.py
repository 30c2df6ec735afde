"""The XLM-R and XLM-R XL encoders COMET models are built on, written out in torch.

XLM-R (Conneau et al. 2020) is RoBERTa's encoder: embeddings (token + position + the one token
type) and a layer norm, then post-norm transformer layers (self-attention, residual, layer norm;
feed-forward, residual, layer norm). XLM-R XL (Goyal et al. 2021) puts the layer norms before each
block instead (pre-norm), has none on the embeddings and one after the last layer. Positions count
from ``pad_id + 1`` over the non-pad tokens (fairseq's convention). Attention is
``torch.nn.functional.scaled_dot_product_attention`` with padded keys masked out.

COMET reads every hidden state: the embeddings' and each layer's output, ``num_layers + 1`` in
all (for XL, the last one after the final layer norm, as transformers 4.x returned them). Taking
them here rather than from a transformers model keeps them defined by this file, not by how a
transformers version records ``hidden_states``. The weights are the checkpoint's
``encoder.model.*`` tensors, under transformers' parameter names.

Non-goals: training (no dropout), relative position embeddings, BERT-style encoders.
"""
from __future__ import annotations

from typing import Any

PREFIX = "encoder.model."


def _activation(name: str):
    import torch.nn.functional as F

    if name == "relu":
        return F.relu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    return F.gelu  # "gelu": the exact (erf) form


class Encoder:
    """Forward pass of an XLM-R / XLM-R XL encoder over padded ids (inference only)."""

    def __init__(self, state: dict[str, Any], config: dict[str, Any], *, xl: bool, device, dtype):
        self.xl = xl
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12 if not xl else 1e-5))
        self.pad_id = int(config.get("pad_token_id", 1))
        self.act = _activation(str(config.get("hidden_act", "gelu")))

        def w(name: str):
            return state[PREFIX + name].to(device=device, dtype=dtype)

        self.word = w("embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.token_type = w("embeddings.token_type_embeddings.weight")[0]
        self.emb_norm = None if xl else (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.layers = []
        n = 0
        while PREFIX + f"encoder.layer.{n}.attention.self.query.weight" in state:
            p = f"encoder.layer.{n}."
            lin = {k: (w(p + k + ".weight"), w(p + k + ".bias")) for k in (
                "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")}
            if xl:
                norms = {"attn": (w(p + "attention.self_attn_layer_norm.weight"),
                                  w(p + "attention.self_attn_layer_norm.bias")),
                         "ffn": (w(p + "LayerNorm.weight"), w(p + "LayerNorm.bias"))}
            else:
                norms = {"attn": (w(p + "attention.output.LayerNorm.weight"), w(p + "attention.output.LayerNorm.bias")),
                         "ffn": (w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"))}
            self.layers.append((lin, norms))
            n += 1
        self.final_norm = (w("encoder.LayerNorm.weight"), w("encoder.LayerNorm.bias")) if xl else None

    @property
    def num_layers(self) -> int:
        return len(self.layers) + 1

    def _norm(self, x, wb):
        import torch.nn.functional as F

        return F.layer_norm(x, x.shape[-1:], wb[0], wb[1], self.eps)

    def _attention(self, x, lin, mask):
        import torch.nn.functional as F

        B, T, H = x.shape
        q, k, v = (F.linear(x, *lin[f"attention.self.{n}"]).view(B, T, self.heads, H // self.heads).transpose(1, 2)
                   for n in ("query", "key", "value"))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.linear(a.transpose(1, 2).reshape(B, T, H), *lin["attention.output.dense"])

    def __call__(self, ids, attention_mask) -> list:
        """All hidden states (embeddings first), each (batch, length, hidden)."""
        import torch
        import torch.nn.functional as F

        not_pad = ids.ne(self.pad_id)
        positions = torch.cumsum(not_pad, dim=1) * not_pad + self.pad_id
        x = (self.word[ids] + self.token_type) + self.position[positions]
        if self.emb_norm is not None:
            x = self._norm(x, self.emb_norm)
        mask = attention_mask.bool()[:, None, None, :]
        states = [x]
        for i, (lin, norms) in enumerate(self.layers):
            if self.xl:
                x = self._attention(self._norm(x, norms["attn"]), lin, mask) + x
                h = self.act(F.linear(self._norm(x, norms["ffn"]), *lin["intermediate.dense"]))
                x = F.linear(h, *lin["output.dense"]) + x
                # transformers 4.x gave XL's last hidden state after the final layer norm
                states.append(self._norm(x, self.final_norm) if i == len(self.layers) - 1 else x)
            else:
                x = self._norm(self._attention(x, lin, mask) + x, norms["attn"])
                h = self.act(F.linear(x, *lin["intermediate.dense"]))
                x = self._norm(F.linear(h, *lin["output.dense"]) + x, norms["ffn"])
                states.append(x)
        return states
