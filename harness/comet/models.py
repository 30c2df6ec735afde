"""The COMET model classes over one checkpoint's weights: what each computes from encoder states.

- ``regression_metric`` (COMET, Rei et al. 2020; wmt20/wmt22-comet-da): source, translation and
  reference are encoded *separately* into sentence embeddings s, h, r (layer mix + pooling), and
  the estimator reads ``[h; r; h*r; |h-r|; h*s; |h-s|]``.
- ``referenceless_regression_metric`` (COMET-QE, Rei et al. 2020/2021): ``[h; s; h*s; |h-s|]``.
- ``unified_metric`` (UniTE-style, Wan et al. 2022; CometKiwi, Rei et al. 2022): the translation
  and the source and/or reference are encoded *jointly* (``<s> mt </s></s> src </s>``), the
  estimator reads the first position of the mixed states; with word-level training a linear
  layer tags every subword of the translation (OK / minor / major [/ critical]).
- ``xcomet_metric`` (XCOMET, Guerreiro et al. 2023): a unified model with word-level tags whose
  final score mixes the three joint inputs' scores (clipped at 1) with an MQM-like score of the
  tagged error spans (see :mod:`harness.comet.scoring`).

Weights are read with ``torch.load(weights_only=True)`` after :mod:`harness.comet.checkpoint`
has checked the pickle; parameters the scoring does not use (optimizer state, loss weights,
dropout buffers) are ignored.
"""
from __future__ import annotations

import pickle
from typing import Any

from .checkpoint import CheckpointInfo, CometCheckpointError
from .encoder import Encoder
from .layers import FeedForward, LayerMix, pool


def load_state_dict(info: CheckpointInfo) -> dict[str, Any]:
    import torch

    try:
        ckpt = torch.load(info.ckpt, map_location="cpu", weights_only=True, mmap=zipfile_format(info))
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CometCheckpointError(f"{info.ckpt}: torch.load(weights_only=True) refused it: {first}") from None
    return ckpt["state_dict"]


def zipfile_format(info: CheckpointInfo) -> bool:
    import zipfile

    return zipfile.is_zipfile(info.ckpt)


class CometNet:
    """Encoder, layer mixing and heads of one checkpoint, on one device and dtype."""

    def __init__(self, info: CheckpointInfo, device, dtype):
        import torch

        state = load_state_dict(info)
        missing = [k for k in info.tensors if k not in state]
        if missing:
            raise CometCheckpointError(f"{info.ckpt}: torch.load gave no '{missing[0]}'")
        hp = info.hparams
        self.info = info
        self.device, self.dtype = device, dtype
        self.encoder = Encoder(state, info.encoder.config, xl=info.xl, device=device, dtype=dtype)
        layer = hp.get("sent_layer" if info.unified else "layer", "mix")
        self.mix = None if layer != "mix" else LayerMix(
            state, self.encoder.num_layers, transformation=str(hp.get("layer_transformation")),
            layer_norm=bool(hp.get("layer_norm")), device=device, dtype=dtype)
        self.layer = None if layer == "mix" else int(layer)
        self.pool_kind = str(hp.get("pool", "avg"))
        self.estimator = FeedForward(state, "estimator.ff", len(hp["hidden_sizes"]) + 1, str(hp["activations"]),
                                     hp.get("final_activation"), device, dtype)
        self.tagger = None
        if info.word_level:
            self.tagger = (state["hidden2tag.weight"].to(device=device, dtype=dtype),
                           state["hidden2tag.bias"].to(device=device, dtype=dtype))
            self.word_layer = int(hp["word_layer"])
        del state
        self.pad_id = self.encoder.pad_id
        self._inference = torch.inference_mode

    def _mixed(self, states, mask):
        return self.mix(states, mask) if self.mix is not None else states[self.layer]

    def sentence_embeddings(self, ids, mask):
        """(batch, hidden) sentence embeddings (regression classes)."""
        with self._inference():
            states = self.encoder(ids, mask)
            return pool(self.pool_kind, ids, self._mixed(states, mask), mask, self.pad_id, states[-1])

    def _estimator(self, x):
        """The estimator on rows padded to a multiple of 8 (row 0 repeated): a matrix product of
        one row takes another kernel than one of many, and a segment's score must not depend on how
        many others are scored with it."""
        import torch

        x = x.to(self.dtype)  # mean pooling divides by a float32 count: 16-bit embeddings come back float32
        n = x.shape[0]
        m = -(-n // 8) * 8
        if m != n:
            x = torch.cat([x, x[:1].expand(m - n, -1)])
        return self.estimator(x).view(-1)[:n]

    def estimate(self, features):
        with self._inference():
            return self._estimator(features)

    def regression_features(self, src, mt, ref):
        import torch

        if ref is None:  # referenceless_regression_metric
            return torch.cat((mt, src, mt * src, torch.abs(mt - src)), dim=1)
        return torch.cat((mt, ref, mt * ref, torch.abs(mt - ref), mt * src, torch.abs(mt - src)), dim=1)

    def joint(self, ids, mask):
        """Scores (batch,) and, for word-level models, tag probabilities (batch, length, labels)."""
        import torch
        import torch.nn.functional as F

        with self._inference():
            states = self.encoder(ids, mask)
            scores = self._estimator(self._mixed(states, mask)[:, 0, :])
            if self.tagger is None:
                return scores, None
            return scores, torch.softmax(F.linear(states[self.word_layer], *self.tagger), dim=2)
