"""A load-time probe: does a rewritten model still compute what the checkpoint computes?

A faster way to run a model (oneDNN-prepacked Linear layers, :mod:`.kernels`) is worth taking
by default only where it gives the same model. :func:`probe_logprobs` scores a few seeded
inputs teacher-forced -- the log-probabilities of every position's next token for a seq2seq or
causal LM, of every label for a classifier -- and :func:`logprob_gap` is the largest difference
between two such measurements. The CTranslate2 conversion check
(:mod:`harness.engines.ct2_conversion`) asks the same question of another engine.

The inputs are token ids drawn from the model's vocabulary with a fixed seed (no tokenizer is
needed, and the same model is always probed alike), short enough for any position table.
Non-goals: proving equality on every input (a probe bounds the rounding on a sample, which is
what differs between correct GEMM kernels); timing.
"""
from __future__ import annotations

from typing import Any

PROBES = ((7, 5), (12, 9), (3, 14))
"""(source or prompt length, target length) in tokens of the probe inputs (decoder-only models and
classifiers read source + target as one sequence)."""


def probe_inputs(config: Any, seed: int = 0) -> list[dict[str, Any]]:
    """The probe's inputs for a model with this (transformers) config: one dict of keyword
    arguments per probe, tensors of shape (1, length)."""
    import torch

    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    vocab = int(getattr(text, "vocab_size", None) or getattr(config, "vocab_size", 2) or 2)
    dec_vocab = getattr(config, "decoder_vocab_size", None) or vocab
    vocab = max(2, min(vocab, int(dec_vocab)))
    positions = getattr(text, "max_position_embeddings", None) or getattr(config, "max_position_embeddings", None)
    g = torch.Generator().manual_seed(seed)
    out = []
    for src, tgt in PROBES:
        if positions:  # a tiny position table (or BERT's 2-token offset) must not make the probe fail
            src, tgt = max(1, min(src, int(positions) // 2 - 2)), max(1, min(tgt, int(positions) // 2 - 2))
        if getattr(config, "is_encoder_decoder", False):
            out.append({"input_ids": torch.randint(0, vocab, (1, src), generator=g),
                        "decoder_input_ids": torch.randint(0, vocab, (1, tgt), generator=g)})
        else:
            out.append({"input_ids": torch.randint(0, vocab, (1, src + tgt), generator=g)})
    return out


def probe_logprobs(model: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    """Teacher-forced log-probabilities (float64 tensors: positions x vocabulary, or 1 x labels for
    a classifier) of ``model`` on each probe input."""
    import torch

    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = []
    with torch.inference_mode():
        for kw in inputs:
            logits = model(**{k: v.to(dev) for k, v in kw.items()}, return_dict=True).logits
            out.append(logits.float().log_softmax(-1).double().reshape(-1, logits.shape[-1]).cpu())
    return out


def logprob_gap(a: list[Any], b: list[Any]) -> float:
    """Largest |difference| between two probe measurements; infinite when their shapes or their
    impossible tokens (-inf, NaN) differ."""
    import torch

    gap = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return float("inf")
        fx, fy = torch.isfinite(x), torch.isfinite(y)
        if not bool(torch.equal(fx, fy)) or not bool(torch.equal(x[~fx].nan_to_num(0.0), y[~fy].nan_to_num(0.0))):
            return float("inf")
        if bool(fx.any()):
            gap = max(gap, float((x[fx] - y[fy]).abs().max()))
    return gap
