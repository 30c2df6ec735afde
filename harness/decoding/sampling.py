"""The sampler of :mod:`harness.decoding`: ancestral sampling over the step model of :mod:`.search`.

Each step, for every live sample: the generation rules of ``search.Rules`` are applied to
the logits (as greedy does, so min/max length, forced BOS/EOS, bad words, no_repeat_ngram...
hold for samples too), then the sampling warpers in transformers' order (temperature, top-k,
top-p, epsilon: ``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``,
``EpsilonLogitsWarper``, each keeping at least one token), then one token is drawn.

Randomness is per sentence, never per batch: sentence i gets its own ``torch.Generator``
seeded by ``seeds[i]`` (``harness.decoding.sentence_seed``), which fills a
(max_new_tokens x num_samples) table of uniforms up front.
Sample j of the sentence draws its token at step t by inverting the CDF of its distribution at
``U[t, j]``. A sentence's samples therefore do not depend on which other sentences share its
batch, on the batch size or on the order the batches run in (up to float rounding in the
model's logits, which would have to move a CDF boundary across a uniform to change a token).

The score of a sample is its mean log-probability per generated token under the model's
distribution after the rules (temperature 1, no truncation): the same quantity greedy
reports, so sample and greedy scores are comparable.

Non-goals: typical / eta / min-p sampling, contrastive search, speculative sampling. Imports
torch at module level, as :mod:`.search` does.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .search import Finished, Rules, StepModel, device_of, left_padded, plan_batches, top_k


@dataclass(frozen=True)
class SampleConfig:
    """Settings of :func:`sample_search` (transformers' warper meanings; 0 / 1.0 switch a warper off)."""

    num_samples: int = 1
    temperature: float = 1.0  # 0: argmax (the limit of temperature -> 0)
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    epsilon: float = 0.0  # 0.0: off


def warp(scores: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
    """Temperature, top-k, top-p and epsilon truncation (transformers' warper semantics and
    order); returns new scores, ``-inf`` where a token may not be drawn."""
    if cfg.temperature != 1.0:
        scores = scores / cfg.temperature
    vocab = scores.shape[-1]
    if 0 < cfg.top_k < vocab:
        kth = top_k(scores, cfg.top_k)[0][..., -1:]
        scores = scores.masked_fill(scores < kth, -float("inf"))  # ties with the k-th token stay
    if cfg.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop = cum <= (1 - cfg.top_p)  # the smallest tokens whose total mass is at most 1 - top_p
        drop[..., -1] = False  # the most probable token always stays
        scores = scores.masked_fill(drop.scatter(-1, order, drop), -float("inf"))
    if cfg.epsilon > 0.0:
        # Hewitt et al. 2022, "Truncation Sampling as Language Model Desmoothing": drop tokens
        # whose probability is below epsilon, keeping the most probable one
        probs = scores.softmax(dim=-1)
        drop = (probs < cfg.epsilon) & (scores < scores.max(dim=-1, keepdim=True).values)
        scores = scores.masked_fill(drop, -float("inf"))
    return scores


def draw(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row: the inverse CDF of softmax(scores) at the uniforms ``u`` (rows,).
    A token of probability 0 is never drawn: its CDF step is empty."""
    probs = scores.softmax(dim=-1)
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)
    vocab = probs.shape[1]
    tok = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(1).clamp_(max=vocab - 1)
    # u * total can round up to total (then the search runs past the last token of positive
    # probability): take that last token instead. Rare, so only those rows are looked at.
    bad = (probs.gather(1, tok[:, None]).squeeze(1) == 0).nonzero().squeeze(1)
    if bad.numel():
        tok[bad] = vocab - 1 - (probs[bad] > 0).flip(1).to(torch.int8).argmax(dim=1)
    return tok


def sample_search(model: StepModel, prompts: Sequence[Sequence[int]], rules: Rules, config: SampleConfig,
                  seeds: Sequence[int], *, batch_size: int = 8, max_tokens: int | None = None,
                  progress=None) -> list[list[Finished]]:
    """``config.num_samples`` samples per prompt, in the order drawn (sample 0 first)."""
    results: list[list[Finished] | None] = [None] * len(prompts)
    done = 0
    N = config.num_samples
    with torch.inference_mode():
        for chunk in plan_batches([len(p) for p in prompts], batch_size, max_tokens, N):
            out = _sample_chunk(model, [prompts[i] for i in chunk], rules, config, [seeds[i] for i in chunk])
            for i, hyps in zip(chunk, out):
                results[i] = hyps
                done += 1
                if progress is not None:
                    progress(done, len(prompts))
    return results  # type: ignore[return-value]


def _sample_chunk(model: StepModel, prompts, rules: Rules, cfg: SampleConfig, seeds) -> list[list[Finished]]:
    session = model.start(prompts)
    hist_s, plen_s = left_padded(session.prefixes, device_of(session))
    dev = hist_s.device
    n, N, T = len(prompts), cfg.num_samples, rules.max_new_tokens
    # every sentence's uniforms come from its own generator, drawn before anything else happens
    U = torch.stack([torch.rand((T, N), generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                     for s in seeds]).to(dev)
    eos = torch.tensor(rules.eos_token_ids, dtype=torch.long, device=dev)
    row_sent = torch.arange(n, device=dev).repeat_interleave(N)  # row r: sentence r // N, sample r % N
    row_samp = torch.arange(N, device=dev).repeat(n)
    alive = torch.arange(n * N, device=dev)
    hist, plen = hist_s[row_sent], plen_s[row_sent]
    out = torch.full((n * N, T), rules.pad_token_id, dtype=torch.long, device=dev)
    total = torch.zeros(n * N, dtype=torch.float64, device=dev)
    length = torch.zeros(n * N, dtype=torch.long, device=dev)
    left = [N] * n  # samples of each sentence still running
    results: list[list[Finished] | None] = [None] * n
    logits = session.step(None).index_select(0, row_sent)  # one row per sentence: all its samples start alike
    for t in range(T):
        scores = rules.apply(logits, hist, plen, t)
        logp = scores.log_softmax(dim=-1)
        if cfg.temperature == 0.0:
            tok = scores.argmax(dim=-1)
        else:
            tok = draw(warp(scores, cfg), U[row_sent[alive], t, row_samp[alive]])
        total[alive] += logp.gather(1, tok[:, None]).squeeze(1).double()
        out[alive, t] = tok
        fin = torch.isin(tok, eos) if t + 1 < T else torch.ones_like(tok, dtype=torch.bool)
        keep = None
        if bool(fin.any()):
            ended = alive[fin]
            length[ended] = t + 1
            for s in row_sent[ended].tolist():
                left[s] -= 1
                if left[s] == 0:
                    rows = range(s * N, (s + 1) * N)
                    lens, sums = length[s * N:(s + 1) * N].tolist(), total[s * N:(s + 1) * N].tolist()
                    toks = out[s * N:(s + 1) * N].tolist()
                    results[s] = [Finished(toks[j][:lens[j]], sums[j] / lens[j]) for j in range(len(rows))]
            keep = (~fin).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            alive, tok, hist, plen = alive[keep], tok[keep], hist[keep], plen[keep]
        if t == 0:
            session.select(row_sent[alive], layout_unchanged=False)  # one session row per live sample
        elif keep is not None:
            session.select(keep, layout_unchanged=False)
        hist = torch.cat([hist, tok[:, None]], dim=1)
        logits = session.step(tok)
    return results  # type: ignore[return-value]
