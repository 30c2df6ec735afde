"""The searches of :mod:`harness.decoding`: greedy, beam and diverse beam search over a step model.

The search talks to a model only through a small step interface (:class:`StepModel`):
``start(prompts)`` encodes a batch once and returns a session; ``session.step(tokens)``
returns next-token logits, one row per live hypothesis; ``session.select(index, ...)``
reorders or drops rows of the session's state (the KV cache). :class:`HFStepModel`
implements it for Hugging Face models with transformers' public Cache API; tests drive the
very same search code with scripted fake models.

What the searches reproduce, and from where:

- ``greedy_search``: the tokens of ``model.generate(do_sample=False, num_beams=1)``
  (transformers v5 ``_sample``): argmax of the processed float32 logits, EOS or
  ``max_new_tokens`` ends a sentence.
- ``beam_search`` with one group: the tokens and ``sequences_scores`` of
  ``generate(num_beams=B, do_sample=False)`` (transformers v5 ``_beam_search``): log-softmax,
  then the generation rules, top ``max(2, 1 + #EOS) * B`` continuations of the B x V
  expansion, a finished hypothesis scored ``sum log p / generated_len ** length_penalty``,
  only candidates ranked in the top B may finish, the same early-stopping heuristic and the
  same ``-1e9`` "impossible beam" arithmetic.
- ``beam_search`` with G > 1 groups: diverse beam search (Vijayakumar et al. 2016,
  arXiv:1610.02424) exactly as transformers 4.x ``_group_beam_search`` (``num_beam_groups``,
  ``diversity_penalty``) runs it: groups are expanded in turn at every step; a group's
  log-probabilities are lowered by ``diversity_strength x`` the number of times the earlier
  groups chose that token at this step (Hamming diversity, applied before the other rules as
  4.x's processor order did); the penalty stays in the scores; every group keeps its own B/G
  finished hypotheses with 4.x's ``BeamSearchScorer`` / ``BeamHypotheses`` rules (a group is
  done when no candidate of the step, finished ones included, can beat its worst finished
  hypothesis; after the last step its running beams are added); the n-best list pools all
  groups sorted by score. Tested against outputs recorded from transformers 4.55
  (tests/fixtures/diverse_beam/).

Unlike generate(), a sentence leaves the running batch as soon as it is finished (its rows
are dropped from the cache), inputs are sorted by length to cut padding, a beam's encoder
output and cross-attention cache are not copied when beams are merely reordered, and a
decoder-only prompt is prefilled once per sentence, not once per beam.

Non-goals: sampling, constrained/prefix-constrained search, speculative decoding, static
caches, models without a transformers Cache. This module imports torch at module level, so
``harness.decoding`` imports it on first use of a name defined here (never when a plugin
module imports the public API at its top level).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

NEG = -1.0e9
"""transformers' score for impossible beams; kept identical so that ties and roundings match."""

# generation_config fields a decoder must honour to match generate(); anything else that is set
# to a non-default value is refused by rules_from_model, so outputs never differ silently.
UNSUPPORTED_SETTINGS: dict[str, Callable[[Any], bool]] = {
    "sequence_bias": lambda v: bool(v),
    "encoder_repetition_penalty": lambda v: v is not None and v != 1.0,
    "encoder_no_repeat_ngram_size": lambda v: bool(v),
    "guidance_scale": lambda v: v is not None and v != 1,
    "watermarking_config": lambda v: v is not None,
    "stop_strings": lambda v: bool(v),
    "forced_decoder_ids": lambda v: bool(v),
    "token_healing": lambda v: bool(v),
    "max_time": lambda v: v is not None,
    "constraints": lambda v: bool(v),
    "force_words_ids": lambda v: bool(v),
}
SUPPORTED_SETTINGS = ("min_length", "min_new_tokens", "forced_bos_token_id", "forced_eos_token_id", "bad_words_ids",
                      "suppress_tokens", "begin_suppress_tokens", "no_repeat_ngram_size", "repetition_penalty",
                      "exponential_decay_length_penalty", "remove_invalid_values", "renormalize_logits")


# ----------------------------------------------------------------------------- step interface


class Session(Protocol):
    """One batch being decoded. Rows are live hypotheses; the search owns their order."""

    prefixes: list[list[int]]
    """Per sentence, the tokens the target side starts from: [decoder_start] for encoder-decoder
    models, the prompt for decoder-only ones. Rules such as no_repeat_ngram_size see them."""

    def step(self, tokens: torch.Tensor | None) -> torch.Tensor:
        """Feed one new token per row (None on the first call: score the prefixes, one row per
        sentence) and return float32 next-token logits, shape (rows, vocab). The tensor is the
        caller's until its next ``step`` call: the search overwrites it (the rules' bans, the
        log-softmax in place), so a session never reads back a tensor it returned; it may write
        the next step's logits into the same memory (copy what must outlive a step)."""

    def select(self, index: torch.Tensor, layout_unchanged: bool) -> None:
        """Keep rows ``index`` (old row numbers, in their new order; may repeat or drop rows).
        ``layout_unchanged``: every row position still belongs to the same sentence as before
        (beams were only permuted within their sentence), so per-sentence state such as the
        encoder output and the cross-attention cache can stay as it is."""


class StepModel(Protocol):
    """What a search decodes with: ``start(prompts)`` opens a :class:`Session` for a batch."""

    def start(self, prompts: Sequence[Sequence[int]]) -> Session:
        """Encode a batch of prompts (token ids) once."""


# ----------------------------------------------------------------------------- rules (logits processors)


@dataclass
class Rules:
    """The generation_config rules generate() applies by default, in generate()'s order.

    ``apply`` works on (rows, vocab) scores with each row's token history ``hist`` (prefix +
    generated, right-aligned, left-padded with -1) and the step ``t`` (tokens generated so far).
    """

    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    max_new_tokens: int
    min_new_tokens: int = 0
    min_length: int = 0  # prefix + generated, like generation_config.min_length
    forced_bos_token_id: int | None = None
    forced_bos_needs_unit_prefix: bool = False  # decoder-only: generate() forces BOS only after a 1-token prompt
    forced_eos_token_ids: tuple[int, ...] = ()
    bad_words_ids: tuple[tuple[int, ...], ...] = ()
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    begin_suppress_step: int = 0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    exponential_decay_length_penalty: tuple[int, float] | None = None
    remove_invalid_values: bool = False
    renormalize_logits: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _tensors(self, vocab: int, device) -> dict[str, Any]:
        key = (vocab, str(device))
        if key not in self._cache:
            def ids(tokens):
                kept = sorted({t for t in tokens if t < vocab})
                return torch.tensor(kept, dtype=torch.long, device=device) if kept else None

            multi: dict[int, list[tuple[int, ...]]] = {}
            for w in self.bad_words_ids:
                if len(w) > 1:
                    multi.setdefault(len(w) - 1, []).append(w)
            self._cache[key] = {
                "eos": ids(self.eos_token_ids),
                "banned": ids(w[0] for w in self.bad_words_ids if len(w) == 1),
                "multi": [(torch.tensor([w[:-1] for w in ws], device=device),
                           torch.tensor([w[-1] for w in ws], device=device)) for ws in multi.values()],
                "suppress": ids(self.suppress_tokens),
                "begin_suppress": ids(self.begin_suppress_tokens),
                "forced_eos": ids(self.forced_eos_token_ids),
            }
        return self._cache[key]

    def apply(self, scores: torch.Tensor, hist: torch.Tensor, prefix_len: torch.Tensor, t: int) -> torch.Tensor:
        """Apply the rules; ``scores`` belongs to the caller's step and is modified in place where
        possible. Bans touch only their columns (index_fill_), never a whole-vocabulary mask:
        the values are the same as generate()'s processors, at a fraction of the memory traffic."""
        rows, vocab = scores.shape
        c = self._tensors(vocab, scores.device)
        neg_inf = -math.inf
        if self.repetition_penalty != 1.0:
            # generate() penalises every token of the prompt (padding excluded) and of the output.
            seen = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=scores.device)
            seen.scatter_(1, torch.where(hist < 0, vocab, hist.clamp(max=vocab)), True)
            p = self.repetition_penalty
            scores = torch.where(seen[:, :vocab], torch.where(scores < 0, scores * p, scores / p), scores)
        n = self.no_repeat_ngram_size
        if n > 0 and hist.shape[1] >= n:
            # A window whose first n-1 tokens equal the last n-1 tokens bans its last token (the
            # -1 padding never matches a real history, see NoRepeatNGramLogitsProcessor).
            prefix = hist[:, hist.shape[1] + 1 - n:]
            windows = hist.unfold(1, n, 1)
            matches = (windows[..., :-1] == prefix.unsqueeze(1)).all(-1)
            last = windows[..., -1]
            banned = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=scores.device)
            banned.scatter_(1, torch.where(matches & (last >= 0), last.clamp(max=vocab), vocab), True)
            scores.masked_fill_(banned[:, :vocab], neg_inf)
        if c["banned"] is not None:
            scores.index_fill_(1, c["banned"], neg_inf)
        for prefixes, last in c["multi"]:
            k = prefixes.shape[1]
            if hist.shape[1] >= k:
                hit = (hist[:, None, -k:] == prefixes).all(-1)
                if bool(hit.any()):
                    r, j = hit.nonzero(as_tuple=True)
                    scores[r, last[j]] = neg_inf
        if c["eos"] is not None:
            if self.min_length > 0:
                short = ((prefix_len + t) < self.min_length).nonzero().squeeze(1)
                if short.numel():
                    scores[short[:, None], c["eos"]] = neg_inf
            if t < self.min_new_tokens:
                scores.index_fill_(1, c["eos"], neg_inf)
        if self.forced_bos_token_id is not None and t == 0:
            force = (prefix_len == 1).nonzero().squeeze(1) if self.forced_bos_needs_unit_prefix else None
            if force is None:
                scores.fill_(neg_inf)
                scores[:, self.forced_bos_token_id] = 0.0
            elif force.numel():
                scores[force] = neg_inf
                scores[force, self.forced_bos_token_id] = 0.0
        if c["forced_eos"] is not None and t == self.max_new_tokens - 1:
            scores.fill_(neg_inf)
            scores.index_fill_(1, c["forced_eos"], 0.0)
        if self.remove_invalid_values:
            finfo = torch.finfo(scores.dtype)
            scores = torch.nan_to_num(scores, nan=0.0, posinf=finfo.max, neginf=finfo.min)
        if self.exponential_decay_length_penalty is not None and c["eos"] is not None:
            start, factor = self.exponential_decay_length_penalty
            if t > start:
                cur = scores[:, c["eos"]]
                penalty = (torch.abs(cur) * (pow(factor, t - start) - 1)).masked_fill(~torch.isfinite(cur), 0.0)
                scores[:, c["eos"]] = cur + penalty
        if c["suppress"] is not None:
            scores.index_fill_(1, c["suppress"], neg_inf)
        if c["begin_suppress"] is not None and t == self.begin_suppress_step:
            scores.index_fill_(1, c["begin_suppress"], neg_inf)
        if self.renormalize_logits:
            scores = log_softmax_(scores)
        return scores


def log_softmax_(x: torch.Tensor) -> torch.Tensor:
    """``x.log_softmax(-1)`` written into ``x`` when it is contiguous (the step's own logits): the
    same values bit for bit, without a fresh rows x vocabulary tensor per step, whose first touch of
    new pages cost 2-3x the pass itself (measured here: 6.3 vs 2.2 ms at 80 x 58k, one thread)."""
    if x.is_contiguous():
        return torch.log_softmax(x, dim=-1, out=x)
    return x.log_softmax(dim=-1)


def rules_from_model(gm, *, max_new_tokens: int, min_new_tokens: int | None = None,
                     no_repeat_ngram_size: int | None = None) -> Rules:
    """The rules generate() would apply for this model's generation_config, with the decoder's
    explicit parameters taking precedence (None: the generation_config's value)."""
    from ..errors import HarnessError

    gc = gm.generation_config
    get = (lambda name, default=None: getattr(gc, name, default)) if gc is not None else (lambda name, default=None: default)
    bad = []
    for name, active in UNSUPPORTED_SETTINGS.items():
        v = get(name)
        if v is not None and active(v):
            bad.append(f"{name}={v!r}")
    if bad:
        raise HarnessError(
            f"model '{gm.spec.path}': its generation_config sets {', '.join(bad)}, which the harness decoders do not "
            f"implement, so their outputs would differ from generate(). Remove it from generation_config.json. "
            f"Supported settings: {', '.join(SUPPORTED_SETTINGS)}")
    eos = tuple(gm.eos_token_ids)
    bad_words = tuple(tuple(int(i) for i in w) for w in (get("bad_words_ids") or []))
    # NoBadWordsLogitsProcessor never bans a lone EOS: it would make sentences endless.
    bad_words = tuple(w for w in bad_words if not (len(w) == 1 and w[0] in eos))
    forced_eos = get("forced_eos_token_id")
    forced_eos = () if forced_eos is None else ((forced_eos,) if isinstance(forced_eos, int) else tuple(forced_eos))
    forced_bos = gm.forced_bos_token_id
    begin_suppress = tuple(get("begin_suppress_tokens") or ())
    decay = get("exponential_decay_length_penalty")
    return Rules(
        eos_token_ids=eos,
        pad_token_id=int(gm.pad_token_id),
        max_new_tokens=max_new_tokens,
        min_new_tokens=int(min_new_tokens if min_new_tokens is not None else (get("min_new_tokens") or 0)),
        min_length=int(get("min_length") or 0),
        forced_bos_token_id=forced_bos,
        forced_bos_needs_unit_prefix=not gm.is_encoder_decoder,
        forced_eos_token_ids=forced_eos,
        bad_words_ids=bad_words,
        suppress_tokens=tuple(get("suppress_tokens") or ()),
        begin_suppress_tokens=begin_suppress,
        # generate() suppresses at the first generated position, one later when a forced BOS takes it
        begin_suppress_step=1 if (gm.is_encoder_decoder and forced_bos is not None) else 0,
        no_repeat_ngram_size=int(no_repeat_ngram_size if no_repeat_ngram_size is not None
                                 else (get("no_repeat_ngram_size") or 0)),
        repetition_penalty=float(get("repetition_penalty") or 1.0),
        exponential_decay_length_penalty=tuple(decay) if decay else None,
        remove_invalid_values=bool(get("remove_invalid_values")),
        renormalize_logits=bool(get("renormalize_logits")),
    )


# ----------------------------------------------------------------------------- batching


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None,
                 rows_per_sentence: int = 1) -> list[list[int]]:
    """Indices grouped into batches, longest inputs first (the peak memory shows up at once,
    and similar lengths share a batch, which cuts padding). ``max_tokens`` caps
    sentences x rows_per_sentence x longest input of the batch."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        too_many = len(cur) >= batch_size
        too_big = max_tokens is not None and cur and (len(cur) + 1) * rows_per_sentence * longest > max_tokens
        if too_many or too_big:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


@dataclass
class Finished:
    """One hypothesis as a search returns it: generated token ids and score (``run_search``
    turns it into a :class:`harness.api.Hypothesis` with the decoded text)."""

    tokens: list[int]  # generated ids, EOS included when the hypothesis ended with one
    score: float


def left_padded(prefixes: Sequence[Sequence[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """The token histories :meth:`Rules.apply` reads: ``(hist, prefix_len)``, where ``hist`` is
    (rows, longest prefix) with each prefix right-aligned and left-padded with -1, and
    ``prefix_len`` the prefix lengths. Append each step's tokens as a new last column."""
    width = max(len(p) for p in prefixes)
    hist = torch.full((len(prefixes), width), -1, dtype=torch.long, device=device)
    for i, p in enumerate(prefixes):
        if p:
            hist[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long, device=device)
    return hist, torch.tensor([len(p) for p in prefixes], dtype=torch.long, device=device)




def run_batches(model: StepModel, prompts: Sequence[Sequence[int]], batch_size: int, max_tokens: int | None,
                rows_per_sentence: int, run_chunk, progress) -> list[list[Finished]]:
    """Run ``run_chunk(model, chunk_prompts, emit)`` over the batches of :func:`plan_batches`,
    under ``torch.inference_mode()``. ``run_chunk`` calls ``emit(j, nbest)`` once for the j-th
    prompt of its chunk (in any order); results come back in the order of ``prompts``, and
    ``progress(done, total)`` (e.g. ``ctx.progress``; None: silent) is called after every emit."""
    results: list[list[Finished] | None] = [None] * len(prompts)
    done = 0

    def emit(index: int, hyps: list[Finished]) -> None:
        nonlocal done
        results[index] = hyps
        done += 1
        if progress is not None:
            progress(done, len(prompts))

    with torch.inference_mode():
        for chunk in plan_batches([len(p) for p in prompts], batch_size, max_tokens, rows_per_sentence):
            run_chunk(model, [prompts[i] for i in chunk], lambda j, hyps, chunk=chunk: emit(chunk[j], hyps))
    return results  # type: ignore[return-value]


_run_batches = run_batches  # old private name, kept for existing imports


# ----------------------------------------------------------------------------- greedy


def greedy_search(model: StepModel, prompts: Sequence[Sequence[int]], rules: Rules, *, batch_size: int = 32,
                  max_tokens: int | None = None, progress=None) -> list[list[Finished]]:
    """Greedy decoding. Score: mean log-probability of the chosen tokens under the distribution
    greedy decoded from (log-softmax of the processed logits)."""

    def chunk(model, prompts, emit):
        session = model.start(prompts)
        hist, plen = left_padded(session.prefixes, device_of(session))
        dev = hist.device
        n, T = len(prompts), rules.max_new_tokens
        eos = torch.tensor(rules.eos_token_ids, dtype=torch.long, device=dev)
        alive = torch.arange(n, device=dev)
        out = torch.full((n, T), rules.pad_token_id, dtype=torch.long, device=dev)
        total = torch.zeros(n, dtype=torch.float32, device=dev)
        logits = session.step(None)
        for t in range(T):
            scores = rules.apply(logits, hist, plen, t)
            chosen, tok = arg_max(scores)
            # renormalised scores are log-probabilities already: skip a pass over the vocabulary.
            # Otherwise log_softmax's value at the chosen token (torch's logsumexp is 1.7x slower on the CPU)
            total[alive] += chosen if rules.renormalize_logits else \
                log_softmax_(scores).gather(1, tok[:, None]).squeeze(1)
            out[alive, t] = tok
            fin = torch.isin(tok, eos) if t + 1 < T else torch.ones_like(tok, dtype=torch.bool)
            if bool(fin.any()):
                rows = out[alive[fin], :t + 1].tolist()
                for j, toks, s in zip(alive[fin].tolist(), rows, total[alive[fin]].tolist()):
                    emit(j, [Finished(toks, s / (t + 1))])
                keep = (~fin).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                alive, tok, hist, plen = alive[keep], tok[keep], hist[keep], plen[keep]
                session.select(keep, layout_unchanged=False)
            hist = torch.cat([hist, tok[:, None]], dim=1)
            logits = session.step(tok)

    return run_batches(model, prompts, batch_size, max_tokens, 1, chunk, progress)


def device_of(session) -> torch.device:
    """The device a session's tensors live on (the CPU for sessions that do not say)."""
    return getattr(session, "device", torch.device("cpu"))  # scripted test models have none




TOPK_CHUNK = 128
"""Chunk length of :func:`top_k`'s prefilter (64..256 measured alike; 32 is slower)."""


def top_k(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(x, k, dim=1)`` (values sorted, largest first) for a 2-D float tensor, computed
    from a prefilter on long rows: every row is cut into chunks of TOPK_CHUNK, and the k largest
    elements of a row all lie in the k chunks with the largest maxima (or in the row's tail
    after the last whole chunk): an element outside those chunks has k chunk maxima, k distinct
    elements, above it. So one vectorised max pass plus a top-k over k x TOPK_CHUNK elements
    replaces the top-k over the whole row, which on the CPU copies every element into a heap
    (5.4 ms vs 0.7 ms for 16 rows of 5 x 58k here; the B x V expansion of beam search).

    The values are the same elements, so bit-identical; indices are the same except among
    exactly equal values, whose order torch.topk leaves unspecified as well. Short rows, GPUs
    (where torch.topk is already a parallel select) and rows with NaN take torch.topk itself.
    """
    rows, n = x.shape
    m = n // TOPK_CHUNK
    if x.device.type != "cpu" or m < 4 * k:
        return torch.topk(x, k, dim=1)
    body = x[:, :m * TOPK_CHUNK].view(rows, m, TOPK_CHUNK)
    chunk_max = body.amax(dim=2)
    if bool(chunk_max.isnan().any()):
        return torch.topk(x, k, dim=1)
    # chunks in index order, so that candidates keep the row's order
    chunks = torch.topk(chunk_max, k, dim=1).indices.sort(dim=1).values
    cand = body.gather(1, chunks[:, :, None].expand(rows, k, TOPK_CHUNK)).view(rows, k * TOPK_CHUNK)
    where = (chunks[:, :, None] * TOPK_CHUNK + torch.arange(TOPK_CHUNK, device=x.device)).view(rows, -1)
    if m * TOPK_CHUNK < n:
        cand = torch.cat([cand, x[:, m * TOPK_CHUNK:]], dim=1)
        where = torch.cat([where, torch.arange(m * TOPK_CHUNK, n, device=x.device).expand(rows, -1)], dim=1)
    values, i = torch.topk(cand, k, dim=1)
    return values, where.gather(1, i)


def arg_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x.amax(1), x.argmax(1))`` of a 2-D float tensor: the largest value of each row and its first
    index, as torch.argmax gives it. On the CPU torch.argmax walks the row element by element
    (0.56 ms for 16 x 58k here, while amax takes 0.05 ms): the row maximum is taken per chunk of
    TOPK_CHUNK with amax, the first chunk holding it is found among the chunk maxima, and argmax
    runs inside that chunk only. The same index (the first occurrence of the maximum); NaN rows,
    short rows and GPUs take torch.argmax itself."""
    rows, n = x.shape
    m = n // TOPK_CHUNK
    if x.device.type != "cpu" or m < 4:
        i = x.argmax(dim=1)
        return x.gather(1, i[:, None]).squeeze(1), i
    body = x[:, :m * TOPK_CHUNK].view(rows, m, TOPK_CHUNK)
    chunk_max = body.amax(dim=2)
    if m * TOPK_CHUNK < n:
        chunk_max = torch.cat([chunk_max, x[:, m * TOPK_CHUNK:].amax(dim=1, keepdim=True)], dim=1)
    best = chunk_max.amax(dim=1)
    if bool(best.isnan().any()):
        i = x.argmax(dim=1)
        return x.gather(1, i[:, None]).squeeze(1), i
    chunk = (chunk_max == best[:, None]).to(torch.uint8).argmax(dim=1)  # the first chunk holding the maximum
    start = chunk * TOPK_CHUNK
    width = torch.where(chunk < m, TOPK_CHUNK, n - m * TOPK_CHUNK)
    window = torch.arange(TOPK_CHUNK, device=x.device)
    cols = (start[:, None] + window).clamp_(max=n - 1)
    vals = x.gather(1, cols).masked_fill_(window[None, :] >= width[:, None], -math.inf)
    return best, start + (vals == best[:, None]).to(torch.uint8).argmax(dim=1)


# ----------------------------------------------------------------------------- beam / diverse beam


@dataclass(frozen=True)
class BeamConfig:
    """Settings of :func:`beam_search` (transformers' meanings; num_groups > 1: diverse beam search)."""

    num_beams: int
    num_groups: int = 1
    diversity_strength: float = 0.0
    length_penalty: float = 1.0
    early_stopping: bool | str = False  # True | False | "never", as in transformers
    num_return_sequences: int = 1


def beam_search(model: StepModel, prompts: Sequence[Sequence[int]], rules: Rules, config: BeamConfig, *,
                batch_size: int = 16, max_tokens: int | None = None, progress=None) -> list[list[Finished]]:
    """Beam search (num_groups=1) or diverse beam search (num_groups>1); n-best lists, best first."""
    if config.num_beams % config.num_groups:
        raise ValueError("num_groups must divide num_beams")
    if config.num_return_sequences > config.num_beams:
        raise ValueError("num_return_sequences must be <= num_beams")

    def chunk(model, prompts, emit):
        _BeamChunk(model, prompts, rules, config, emit).run()

    return run_batches(model, prompts, batch_size, max_tokens, config.num_beams, chunk, progress)


class _BeamChunk:
    """One batch of sentences. Every (sentence, group) pair is a unit holding b = B/G beams.
    Units are stored group-major (all group-0 units first) so that a group's rows form one
    slice; a finished unit leaves the running rows, and a sentence is emitted when all its
    units are done. Row r of the running state belongs to unit r // b."""

    def __init__(self, model: StepModel, prompts, rules: Rules, config: BeamConfig, emit):
        self.model, self.prompts, self.rules, self.cfg, self.emit = model, prompts, rules, config, emit
        self.G = config.num_groups
        self.b = config.num_beams // config.num_groups
        self.T = rules.max_new_tokens
        self.K = max(2, 1 + len(rules.eos_token_ids)) * self.b  # as transformers' beams_to_keep
        self.diverse = self.G > 1 and config.diversity_strength != 0.0
        # G > 1 is transformers 4.x group beam search, finished lists included (BeamSearchScorer +
        # BeamHypotheses); G = 1 is transformers v5 beam search (what generate() runs today).
        self.legacy = self.G > 1
        # With renormalize_logits the rules end with a log-softmax of their own. When every rule
        # before it only bans or forces tokens (no value-scaling rule), the step's first log-softmax
        # is a per-row shift that the second one undoes, so it is skipped: one B x V pass less per
        # step (3% of beam 5 on a Marian-base model), same tokens and scores up to float rounding.
        r = rules
        self.renormalized_by_rules = (r.renormalize_logits and self.G == 1 and r.repetition_penalty == 1.0
                                      and r.exponential_decay_length_penalty is None and not r.remove_invalid_values)

    def run(self) -> None:
        b, G, T, K = self.b, self.G, self.T, self.K
        rules = self.rules
        session = self.model.start(self.prompts)
        n = len(self.prompts)
        hist_s, plen_s = left_padded(session.prefixes, device_of(session))
        self.dev = dev = hist_s.device
        self.eos = torch.tensor(rules.eos_token_ids, dtype=torch.long, device=dev)
        self.top_b = torch.arange(K, device=dev) < b
        self.unit_sent = torch.arange(n, device=dev).repeat(G)  # unit k*n + s
        self.group_count = [n] * G
        A = n * G
        row_sent = self.unit_sent.repeat_interleave(b)
        # each row's history: prefix (right-aligned in P columns, -1 padded), then generated tokens
        self.hist, self.plen, self.P = hist_s[row_sent], plen_s[row_sent], hist_s.shape[1]
        # As in transformers: each group's first beam starts at 0 and the others at -1e9, so that
        # the first expansion does not pick the same token once per (identical) beam.
        self.run_scores = torch.full((A, b), NEG, dtype=torch.float32, device=dev)
        self.run_scores[:, 0] = 0.0
        self.fin_scores = torch.full((A, b), NEG, dtype=torch.float32, device=dev)
        self.fin_tokens = torch.full((A, b, T), rules.pad_token_id, dtype=torch.long, device=dev)
        self.fin_len = torch.zeros((A, b), dtype=torch.long, device=dev)
        self.fin_flag = torch.zeros((A, b), dtype=torch.bool, device=dev)
        self.heur = torch.ones(A, dtype=torch.bool, device=dev)
        if self.legacy:
            # per unit, 4.x BeamHypotheses: (score, tokens) in insertion order, and its worst_score
            self.hyps: list[list[tuple[float, list[int]]]] = [[] for _ in range(A)]
            self.worst = torch.full((A,), 1e9, dtype=torch.float64, device=dev)
            self.count = torch.zeros(A, dtype=torch.long, device=dev)
            self.best = torch.empty(A, dtype=torch.float32, device=dev)
        group_done = torch.zeros((n, G), dtype=torch.bool, device=dev)
        finished: dict[tuple[int, int], list[tuple[float, list[int]]]] = {}

        logits = session.step(None)  # one row per sentence: all beams of a sentence start identical
        t = 0
        while True:
            gen = t + 1  # length of every candidate of this step
            lp = logits if self.renormalized_by_rules else log_softmax_(logits)
            if t == 0:
                lp = lp.index_select(0, row_sent)
            A = sum(self.group_count)
            new_scores = torch.empty((A, b), dtype=torch.float32, device=dev)
            new_src = torch.empty((A, b), dtype=torch.long, device=dev)
            new_tok = torch.empty((A, b), dtype=torch.long, device=dev)
            # tokens chosen at this step by each group, per sentence (for the Hamming penalty)
            chosen_by = torch.full((n, G * b), -1, dtype=torch.long, device=dev) if self.diverse else None
            u0 = 0
            for k in range(G):
                u1 = u0 + self.group_count[k]
                earlier = chosen_by[:, :k * b] if (chosen_by is not None and k) else None
                if u1 > u0:
                    chosen = self._expand_group(u0, u1, t, lp, earlier, new_scores, new_src, new_tok)
                    if chosen_by is not None:
                        chosen_by[self.unit_sent[u0:u1], k * b:(k + 1) * b] = chosen
                if chosen_by is not None:
                    # 4.x feeds a finished group's beams pad tokens, and later groups count them too
                    chosen_by[:, k * b:(k + 1) * b].masked_fill_(group_done[:, k:k + 1], rules.pad_token_id)
                u0 = u1

            if self.legacy:
                done = self._legacy_done(gen)
                if gen >= T:
                    self._legacy_finalize(new_scores, new_src, new_tok, done, t)
                    done = torch.ones_like(done)
            else:
                # transformers v5 _check_early_stop_heuristic: can the best running beam still beat
                # the worst finished one? (sticky: once no, the unit's finished list is frozen)
                best_len = T if (self.cfg.early_stopping == "never" and self.cfg.length_penalty > 0.0) else gen
                best = new_scores[:, :1] / (best_len ** self.cfg.length_penalty)
                worst = torch.where(self.fin_flag, self.fin_scores.min(dim=1, keepdim=True).values, NEG)
                self.heur = self.heur & (best > worst).any(dim=1)
                done = ~self.heur | (self.fin_flag.all(dim=1) & (self.cfg.early_stopping is True))
                if gen >= T:
                    done = torch.ones_like(done)
            keep = None
            if bool(done.any()):
                groups = [k for k, c in enumerate(self.group_count) for _ in range(c)]
                sents = self.unit_sent.tolist()
                scores_l, lens_l, flags_l = self.fin_scores.tolist(), self.fin_len.tolist(), self.fin_flag.tolist()
                for u in done.nonzero().squeeze(1).tolist():
                    s, k = sents[u], groups[u]
                    if self.legacy:
                        finished[(s, k)] = self.hyps[u]
                    else:
                        toks = self.fin_tokens[u].tolist()
                        finished[(s, k)] = [(scores_l[u][j], toks[j][:lens_l[u][j]])
                                            for j in range(b) if flags_l[u][j]]
                    group_done[s, k] = True
                    if len([1 for kk in range(G) if (s, kk) in finished]) == G:
                        self.emit(s, self._nbest([finished.pop((s, kk)) for kk in range(G)]))
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    return
                kept = [groups[u] for u in keep.tolist()]
                self.group_count = [kept.count(k) for k in range(G)]

            # next rows: each kept unit's chosen source beams, then append the chosen tokens
            units = keep if keep is not None else torch.arange(A, device=dev)
            src_rows = (units[:, None] * b + new_src.index_select(0, units)).reshape(-1)
            tokens = new_tok.index_select(0, units).reshape(-1)
            model_rows = row_sent.index_select(0, src_rows) if t == 0 else src_rows
            self.hist = torch.cat([self.hist.index_select(0, src_rows), tokens[:, None]], dim=1)
            self.plen = self.plen.index_select(0, src_rows)
            self.run_scores = new_scores.index_select(0, units) if keep is not None else new_scores
            if keep is not None:
                for name in ("unit_sent", "fin_scores", "fin_tokens", "fin_len", "fin_flag", "heur"):
                    setattr(self, name, getattr(self, name).index_select(0, keep))
                if self.legacy:
                    self.hyps = [self.hyps[u] for u in keep.tolist()]
                    for name in ("worst", "count", "best"):
                        setattr(self, name, getattr(self, name).index_select(0, keep))
            session.select(model_rows, layout_unchanged=(t > 0 and keep is None))
            logits = session.step(tokens)
            t += 1

    def _expand_group(self, u0: int, u1: int, t: int, lp: torch.Tensor, earlier: torch.Tensor | None,
                      new_scores: torch.Tensor, new_src: torch.Tensor, new_tok: torch.Tensor) -> torch.Tensor:
        """Expand units u0..u1 (one group) by one token: B x V candidates per unit, keep b running
        beams, move the candidates that finish into the unit's finished list. Returns the tokens
        the group continues with, for the Hamming penalty of later groups."""
        b, K, T = self.b, self.K, self.T
        Au, V = u1 - u0, lp.shape[1]
        gen = t + 1
        scores = lp[u0 * b:u1 * b]
        if earlier is not None:
            # Hamming diversity: minus lambda x (how many beams of earlier groups chose the token).
            # Only the columns of those tokens change, so the penalty is written there in place
            # (lp is this step's own tensor); the values equal 4.x's scores - lambda * bincount.
            prev = earlier.index_select(0, self.unit_sent[u0:u1])
            count = (prev[:, :, None] == prev[:, None, :]).sum(-1)
            idx = prev[:, None, :].expand(Au, b, prev.shape[1])
            s3 = scores.view(Au, b, V)
            s3.scatter_(2, idx, s3.gather(2, idx) - self.cfg.diversity_strength * count[:, None, :])
        scores = self.rules.apply(scores, self.hist[u0 * b:u1 * b], self.plen[u0 * b:u1 * b], t)
        acc = scores.view(Au, b, V).add_(self.run_scores[u0:u1, :, None]).view(Au, b * V)
        top_s, top_i = top_k(acc, K)
        src, tok = top_i // V, top_i % V
        is_eos = torch.isin(tok, self.eos)
        if self.legacy:
            return self._legacy_process(u0, u1, t, top_s, src, tok, is_eos, new_scores, new_src, new_tok)
        hits = is_eos if gen < T else torch.ones_like(is_eos)
        run_cand = top_s + hits.to(torch.float32) * NEG
        nxt = torch.topk(run_cand, b, dim=1).indices
        new_scores[u0:u1] = run_cand.gather(1, nxt)
        new_src[u0:u1] = src.gather(1, nxt)
        new_tok[u0:u1] = tok.gather(1, nxt)

        # Only candidates ranked in the top b may finish, and none once the unit's list is frozen
        # (early_stopping=True and full, or the heuristic found no possible improvement).
        full = self.fin_flag[u0:u1].all(dim=1) & (self.cfg.early_stopping is True)
        add = hits & self.top_b & (self.heur[u0:u1] & ~full)[:, None]
        if bool(add.any()):
            cand = torch.where(add, top_s / (gen ** self.cfg.length_penalty), -math.inf)
            merged = torch.cat([self.fin_scores[u0:u1], cand], dim=1)
            pick = torch.topk(merged, b, dim=1).indices
            rows = (torch.arange(u0, u1, device=self.dev)[:, None] * b + src).reshape(-1)
            cand_tok = torch.full((Au * K, T), self.rules.pad_token_id, dtype=torch.long, device=self.dev)
            if t:
                cand_tok[:, :t] = self.hist.index_select(0, rows)[:, self.P:]
            cand_tok[:, t] = tok.reshape(-1)
            all_tok = torch.cat([self.fin_tokens[u0:u1], cand_tok.view(Au, K, T)], dim=1)
            self.fin_tokens[u0:u1] = all_tok.gather(1, pick[:, :, None].expand(-1, -1, T))
            self.fin_scores[u0:u1] = merged.gather(1, pick)
            lens = torch.cat([self.fin_len[u0:u1], torch.full_like(tok, gen)], dim=1)
            self.fin_len[u0:u1] = lens.gather(1, pick)
            self.fin_flag[u0:u1] = torch.cat([self.fin_flag[u0:u1], add], dim=1).gather(1, pick)
        # The tokens later groups are penalised for: 4.x took the first b candidates (in rank
        # order) that are not EOS. (The running beams are the same tokens, except when fewer
        # than b finite non-EOS candidates exist or at max_new_tokens.)
        rank = torch.arange(K, device=self.dev) + is_eos.to(torch.long) * K
        return tok.gather(1, torch.topk(rank, b, dim=1, largest=False).indices)

    # -- transformers 4.x group beam search (G > 1): BeamSearchScorer.process / finalize and
    # BeamHypotheses.add / is_done, reproduced decision for decision (their double-precision
    # Python arithmetic included), so that ties and stopping steps come out as in 4.x.

    def _legacy_process(self, u0: int, u1: int, t: int, top_s, src, tok, is_eos,
                        new_scores, new_src, new_tok) -> torch.Tensor:
        b, K = self.b, self.K
        gen = t + 1
        # The running beams are the first b candidates in rank order that do not end (4.x never
        # finishes a sentence on the length limit here: finalize() does that after the last step).
        rank = torch.arange(K, device=self.dev) + is_eos.to(torch.long) * K
        pick = torch.topk(rank, b, dim=1, largest=False).indices
        new_scores[u0:u1] = top_s.gather(1, pick)
        new_src[u0:u1] = src.gather(1, pick)
        new_tok[u0:u1] = tok.gather(1, pick)
        # 4.x's "done" test reads the best candidate of the step, an ending one included
        self.best[u0:u1] = top_s[:, 0]
        add = is_eos & self.top_b  # only an ending candidate ranked in the top b joins the list
        if bool(add.any()):
            au, aj = add.nonzero(as_tuple=True)  # row-major: each unit's candidates in rank order
            rows = (au + u0) * b + src[au, aj]
            prev = self.hist[:, self.P:].index_select(0, rows).tolist() if t else [[]] * rows.numel()
            denom = gen ** self.cfg.length_penalty
            for u, score, p, last in zip((au + u0).tolist(), top_s[au, aj].tolist(), prev, tok[au, aj].tolist()):
                self._legacy_add(u, score / denom, p + [last])
        return new_tok[u0:u1]

    def _legacy_add(self, u: int, score: float, tokens: list[int]) -> None:
        """4.x BeamHypotheses.add: keep the b best, replacing the worst only by a strictly better one."""
        hyps, worst = self.hyps[u], float(self.worst[u])
        if len(hyps) < self.b or score > worst:
            hyps.append((score, tokens))
            if len(hyps) > self.b:
                ranked = sorted((s, i) for i, (s, _) in enumerate(hyps))
                del hyps[ranked[0][1]]
                worst = ranked[1][0]
            else:
                worst = min(score, worst)
            self.worst[u] = worst
            self.count[u] = len(hyps)

    def _legacy_done(self, gen: int) -> torch.Tensor:
        """4.x BeamHypotheses.is_done, per unit: b hypotheses finished and (early_stopping=True, or
        none of this step's candidates, divided by the current length ** alpha, beats the worst;
        with "never" and alpha > 0 by max_new_tokens ** alpha)."""
        es, alpha = self.cfg.early_stopping, self.cfg.length_penalty
        full = self.count >= self.b
        if es is True:
            return full
        length = self.T if (es not in (True, False) and alpha > 0.0) else gen
        return full & (self.worst >= self.best.double() / (length ** alpha))

    def _legacy_finalize(self, new_scores, new_src, new_tok, done, t: int) -> None:
        """4.x BeamSearchScorer.finalize: a unit still running after the last step adds its b
        running beams (length max_new_tokens) to its finished list."""
        b = self.b
        units = (~done).nonzero().squeeze(1)
        if units.numel() == 0:
            return
        rows = (units[:, None] * b + new_src.index_select(0, units)).reshape(-1)
        prev = self.hist[:, self.P:].index_select(0, rows).tolist() if t else [[]] * rows.numel()
        last = new_tok.index_select(0, units).reshape(-1).tolist()
        scores = new_scores.index_select(0, units).reshape(-1).tolist()
        denom = self.T ** self.cfg.length_penalty
        for i, u in enumerate(units.tolist()):
            for j in range(b):
                k = i * b + j
                self._legacy_add(u, scores[k] / denom, prev[k] + [last[k]])

    def _nbest(self, per_group: list[list[tuple[float, list[int]]]]) -> list[Finished]:
        if self.G == 1:
            pool = per_group[0]  # already best first, in transformers v5's order
        else:
            # 4.x BeamSearchScorer.finalize pools the groups' hypotheses, sorts them by score and
            # pops from the end: best first, and among equal scores the later group first.
            pool = list(reversed(sorted((h for hyps in per_group for h in hyps), key=lambda h: h[0])))
        return [Finished(toks, score) for score, toks in pool[:self.cfg.num_return_sequences]]


# ----------------------------------------------------------------------------- Hugging Face step model


class HFStepModel:
    """:class:`StepModel` for a :class:`harness.models.hf.GenerationModel` (seq2seq or decoder-only),
    feeding the model exactly what generate() feeds it: encoder outputs + attention mask and a
    fresh ``EncoderDecoderCache(DynamicCache, DynamicCache)`` for encoder-decoder models; left
    padding, an attention mask only when there is padding, and position ids from the mask for
    decoder-only models."""

    def __init__(self, gm):
        import inspect

        self.gm = gm
        self.model = gm.model
        self.device = torch.device(gm.device) if not isinstance(gm.device, torch.device) else gm.device
        self.is_encoder_decoder = gm.is_encoder_decoder
        if gm.is_encoder_decoder and gm.decoder_start_token_id is None:
            from ..errors import ModelLoadError

            raise ModelLoadError(f"model '{gm.spec.path}' sets neither decoder_start_token_id nor bos_token_id, "
                                 f"so decoding has no first target token")
        params = inspect.signature(self.model.forward).parameters
        self.logits_to_keep = "logits_to_keep" in params
        self.position_ids = "position_ids" in params
        # transformers >= 5.2x names the KV cache ``cache`` (``past_key_values`` still works there but
        # warns that it goes away); 4.x knows only ``past_key_values``. The output field has the same name.
        self.cache_name = "cache" if "cache" in params else "past_key_values"
        # kernels: onednn folds a BART-family head's final_logits_bias into the output projection;
        # calling the base model and that head directly then skips a pass over rows x vocabulary
        from ..models.kernels import split_head

        self.split = split_head(self.model) if gm.is_encoder_decoder else None
        if self.split is not None:
            base_params = inspect.signature(self.split[0].forward).parameters
            self.base_cache_name = "cache" if "cache" in base_params else "past_key_values"
        from transformers import DynamicCache

        # DynamicCache(config=...) builds the layer types generate() builds (e.g. sliding windows);
        # transformers 4.x's DynamicCache takes no config and grows its layers as they come.
        cache_config = self.model.config.get_text_config(decoder=True)
        takes_config = "config" in inspect.signature(DynamicCache.__init__).parameters
        self.new_cache = (lambda: DynamicCache(config=cache_config)) if takes_config else DynamicCache

    def start(self, prompts: Sequence[Sequence[int]]) -> HFSession:
        return HFSession(self, prompts)


class HFSession:
    def __init__(self, hf: HFStepModel, prompts: Sequence[Sequence[int]]):
        from transformers import EncoderDecoderCache

        self.hf, self.device = hf, hf.device
        gm, model, dev = hf.gm, hf.model, hf.device
        n, width = len(prompts), max(len(p) for p in prompts)
        pad = gm.pad_token_id
        ids = torch.full((n, width), pad, dtype=torch.long, device=dev)
        mask = torch.zeros((n, width), dtype=torch.long, device=dev)
        if hf.is_encoder_decoder:
            for i, p in enumerate(prompts):
                ids[i, :len(p)] = torch.tensor(list(p), device=dev)
                mask[i, :len(p)] = 1
            self.encoder_outputs = model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True)
            self.encoder_mask = mask
            # a folded head (kernels.split_head): large batches in row blocks into one reused buffer
            from ..models.kernels import BlockedHead

            self.head = BlockedHead(hf.split[1]) if hf.split is not None else None
            self.cache = EncoderDecoderCache(hf.new_cache(), hf.new_cache())
            self.prefixes = [[gm.decoder_start_token_id] for _ in prompts]
        else:
            for i, p in enumerate(prompts):
                ids[i, width - len(p):] = torch.tensor(list(p), device=dev)
                mask[i, width - len(p):] = 1
            self.input_ids = ids
            # generate() drops an all-ones mask (no padding) and builds position ids from the mask
            self.mask = None if bool((mask == 1).all()) else mask
            pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
            self.first_positions = pos
            self.next_pos = pos[:, -1] + 1
            self.cache = hf.new_cache()
            self.prefixes = [list(p) for p in prompts]

    def step(self, tokens: torch.Tensor | None) -> torch.Tensor:
        hf = self.hf
        if hf.is_encoder_decoder:
            if tokens is None:
                dec = torch.full((len(self.prefixes), 1), hf.gm.decoder_start_token_id, dtype=torch.long, device=self.device)
            else:
                dec = tokens[:, None]
            if hf.split is not None:
                base = hf.split[0]
                out = base(encoder_outputs=self.encoder_outputs, attention_mask=self.encoder_mask, decoder_input_ids=dec,
                           use_cache=True, return_dict=True, **{hf.base_cache_name: self.cache})
                self.cache = getattr(out, hf.base_cache_name)
                return self.head(out.last_hidden_state[:, -1, :])
            out = hf.model(encoder_outputs=self.encoder_outputs, attention_mask=self.encoder_mask, decoder_input_ids=dec,
                           use_cache=True, return_dict=True, **{hf.cache_name: self.cache})
        else:
            kw: dict[str, Any] = {hf.cache_name: self.cache, "use_cache": True, "return_dict": True}
            if hf.logits_to_keep:
                kw["logits_to_keep"] = 1
            if tokens is None:
                ids, pos = self.input_ids, self.first_positions
            else:
                ids, pos = tokens[:, None], self.next_pos[:, None]
                if self.mask is not None:
                    self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
                self.next_pos = self.next_pos + 1
            if hf.position_ids:
                kw["position_ids"] = pos
            out = hf.model(input_ids=ids, attention_mask=self.mask, **kw)
        self.cache = getattr(out, hf.cache_name)
        # a view of this step's logits, which nothing else keeps: the search may write into it
        return out.logits[:, -1, :].float()

    def select(self, index: torch.Tensor, layout_unchanged: bool) -> None:
        from transformers import EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        if self.hf.is_encoder_decoder:
            if layout_unchanged and isinstance(self.cache, EncoderDecoderCache):
                # beams only moved within their sentence: cross-attention keys/values and the
                # encoder output are the same for every beam of a sentence, so leave them alone
                self.cache.self_attention_cache.reorder_cache(index)
                return
            self.cache.reorder_cache(index)
            self.encoder_outputs = BaseModelOutput(
                last_hidden_state=self.encoder_outputs.last_hidden_state.index_select(0, index))
            self.encoder_mask = self.encoder_mask.index_select(0, index)
        else:
            self.cache.reorder_cache(index)
            self.next_pos = self.next_pos.index_select(0, index)
            if self.mask is not None:
                self.mask = self.mask.index_select(0, index)
