"""The harness's own decoder step for Marian models: one token per row, without transformers' forward.

A decoding step of a transformers Marian model spends as much time around its matrix products as
in them: per step it builds attention masks, grows every layer's key/value cache by
concatenation (and copies it again when beam search reorders beams), runs scaled-dot-product
attention kernels made for long queries on a query of one token, and expands the encoder's keys
and values to every beam. :class:`MarianStep` computes the same step from the same modules
(their Linear layers are called as they are: default, oneDNN-prepacked or int8) with:

- key/value caches in row-major buffers with spare capacity (``(rows, heads, capacity, dim)``,
  the capacity a multiple of :data:`CAPACITY_STEP`): a step writes one position, and no step copies
  the past; beam reordering copies only the entries that change (a beam takes its new source's
  entries from the first position the two were fed different tokens), or, when most change, is
  one ``index_select`` into a second buffer;
- self-attention as two batched matrix products per layer (``bmm``) over the whole capacity, the
  positions not yet written masked (they hold zeros): each row and head's keys are then one
  contiguous block, and MKL's batched product over contiguous blocks reads the cache 2.6-2.8x
  faster than over time-major positions strided by the rows (measured: 80 rows x 8 heads x 64
  dims, six layers, one thread: 32 positions 3.2 vs 8.3 ms, 48 positions 4.9 vs 13.8 ms), which
  pays for reading up to CAPACITY_STEP - 1 masked positions; the encoder's keys and values are
  padded from 9..15 source positions to 16 (:func:`attention_width`);
- cross-attention keys and values computed once per batch and kept per *sentence*: while the
  rows are the sentences' beams in order (greedy, beam search), the beams of a sentence share one
  matrix product against them;
- ``final_logits_bias`` added by the output projection when it was folded there.

It is used only where :func:`step_gap` shows it computes what transformers computes (teacher-forced
log-probabilities of seeded probes, step by step against one full forward; see :mod:`.probe`),
by ``kernels: auto`` and ``dtype: int8`` (:mod:`harness.models.hf`). Scope: ``model_type`` marian
(OPUS-MT and the models this harness trains; post-norm, sinusoidal positions); any other model,
or a Marian with an unexpected layout, runs transformers' own forward. Non-goals: prefill of
decoder prompts, decoder-only models, sliding windows, GPUs (the gains are CPU overheads).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .kernels import BlockedHead

CAPACITY_STEP = 16
"""A cache holds a multiple of this many positions and grows by it when full (the past copied once):
self-attention reads the whole capacity, so a step reads at most CAPACITY_STEP - 1 masked positions,
and the copies on growth cost about one step's attention reads per CAPACITY_STEP steps."""
PADDED_UP_TO = 16  # attention_width pads source lengths only up to here


def attention_width(n: int) -> int:
    """How many encoder positions the cross-attention products over ``n`` source tokens run on: 16
    for 9..15 (the added ones masked), else ``n``. Measured here (one thread, MKL's batched sgemm,
    a beam's 5 query rows x 8 heads x 64 dims): 9..15 positions take 162-249 us and 16 take 130;
    2..6 are already fast (55-96 us against 114 at 8), and from 17 on the next multiple of 8 is not
    faster on average."""
    return PADDED_UP_TO if 8 < n < PADDED_UP_TO else n


def marian_problem(model: Any) -> str | None:
    """Why :class:`MarianStep` cannot run ``model`` (None: it can)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "marian" or not getattr(config, "is_encoder_decoder", False):
        return f"model type {getattr(config, 'model_type', '?')}: the own step covers marian only"
    decoder = getattr(getattr(model, "model", None), "decoder", None)
    needed = ("embed_tokens", "embed_positions", "embed_scale", "layers")
    if decoder is None or not all(hasattr(decoder, n) for n in needed) or getattr(model, "lm_head", None) is None:
        return "an unexpected Marian layout (decoder embeddings, layers or lm_head missing)"
    if getattr(decoder, "layernorm_embedding", None) is not None or getattr(decoder, "layer_norm", None) is not None:
        return "a pre-norm Marian (layer norms outside the layers)"
    for layer in decoder.layers:
        for name in ("self_attn", "encoder_attn", "self_attn_layer_norm", "encoder_attn_layer_norm", "fc1", "fc2",
                     "final_layer_norm", "activation_fn"):
            if not hasattr(layer, name):
                return f"an unexpected Marian decoder layer (no {name})"
    return None


def add_fused_projections(model: Any) -> None:
    """Give every decoder self-attention one Linear for its query, key and value projections
    (``harness_qkv``: the three weights stacked), before the Linear layers are packed or quantized,
    so a step makes one call where it made three. The three layers stay for transformers' own
    forward. In int8 the fused layer computes exactly the three (integer products, per-row scales);
    in float32 the probe checks it like the rest of the step."""
    import torch

    with torch.no_grad():
        for layer in model.model.decoder.layers:
            sa = layer.self_attn
            parts = (sa.q_proj, sa.k_proj, sa.v_proj)
            bias = all(p.bias is not None for p in parts)
            fused = torch.nn.Linear(parts[0].in_features, sum(p.out_features for p in parts), bias=bias,
                                    device=parts[0].weight.device, dtype=parts[0].weight.dtype)
            fused.weight.copy_(torch.cat([p.weight for p in parts]))
            if bias:
                fused.bias.copy_(torch.cat([p.bias for p in parts]))
            sa.harness_qkv = fused.eval()


def remove_fused_projections(model: Any) -> None:
    for layer in model.model.decoder.layers:
        if hasattr(layer.self_attn, "harness_qkv"):
            del layer.self_attn.harness_qkv


class MarianStep:
    """:class:`harness.decoding.search.StepModel` for a Marian :class:`~harness.models.hf.GenerationModel`."""

    def __init__(self, gm: Any):
        import torch

        self.gm, self.model = gm, gm.model
        self.device = torch.device(gm.device) if not isinstance(gm.device, torch.device) else gm.device
        dec = self.model.model.decoder
        self.decoder = dec
        self.layers = list(dec.layers)
        attn = self.layers[0].self_attn
        self.heads, self.head_dim = attn.num_heads, attn.head_dim
        self.scaling = float(attn.scaling)
        self.embed_scale = float(dec.embed_scale)
        self.positions = dec.embed_positions.weight
        from .kernels import split_head

        split = split_head(self.model)
        self.head = split[1] if split is not None else self.model.lm_head
        bias = getattr(self.model, "final_logits_bias", None)
        # folded into the head (kernels.fold_final_logits_bias): the buffer is zero, nothing to add
        self.bias = None if split is not None or bias is None else bias.reshape(-1)

    def start(self, prompts: Sequence[Sequence[int]]) -> MarianSession:
        return MarianSession(self, prompts)


class MarianSession:
    """One batch: encoder output, per-sentence cross-attention keys/values, per-row self-attention caches."""

    def __init__(self, ms: MarianStep, prompts: Sequence[Sequence[int]]):
        import torch

        self.ms, self.device = ms, ms.device
        gm = ms.gm
        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((n, width), gm.pad_token_id, dtype=torch.long, device=self.device)
        mask = torch.zeros((n, width), dtype=torch.long, device=self.device)
        for i, p in enumerate(prompts):
            ids[i, :len(p)] = torch.tensor(list(p), device=self.device)
            mask[i, :len(p)] = 1
        enc = ms.model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
        H = ms.heads
        # per layer: keys and values of every source sentence, (sentences * heads, length, dim), with
        # zero rows up to attention_width (masked like the padding of shorter sentences)
        pad = attention_width(width) - width
        self.cross_all = [(self._heads(layer.encoder_attn.k_proj(enc), pad), self._heads(layer.encoder_attn.v_proj(enc), pad))
                          for layer in ms.layers]
        neg = torch.finfo(enc.dtype).min
        if pad:
            mask = torch.cat([mask, mask.new_zeros((n, pad))], dim=1)
        self.mask_all = torch.zeros((n, 1, width + pad), dtype=enc.dtype, device=self.device).masked_fill_(
            mask[:, None, :] == 0, neg).repeat_interleave(H, dim=0)  # (sentences * heads, 1, length)
        self.neg = neg
        self.self_masks: dict[tuple[int, int], Any] = {}
        self.width = width
        self.row_src = torch.arange(n, device=self.device)  # each row's source sentence
        self._use_sources(self.row_src, 1)
        self.t = 0
        self.rows = n
        self.cache: list[tuple[Any, Any]] | None = None  # per layer: (keys, values), (capacity, rows, H, D)
        self.spare: list[tuple[Any, Any]] | None = None
        self.fed: Any = None  # (rows, positions): the token each row was fed at each cached position
        self.prefixes = [[gm.decoder_start_token_id] for _ in prompts]
        self.dtype = enc.dtype
        self.head = BlockedHead(ms.head, ms.bias)  # large batches: row blocks into one reused buffer

    def _heads(self, x, pad: int = 0):
        """(sentences, length, d) -> (sentences * heads, length + pad, head_dim), zeros in the pad."""
        import torch

        n, L, _ = x.shape
        x = x.view(n, L, self.ms.heads, self.ms.head_dim).transpose(1, 2)
        if pad:
            x = torch.cat([x, x.new_zeros((n, self.ms.heads, pad, self.ms.head_dim))], dim=2)
        return x.reshape(n * self.ms.heads, L + pad, self.ms.head_dim)

    def _self_mask(self, t: int, width: int):
        """(1, 1, width): 0 at the cached positions 0..t, the dtype's minimum after them."""
        import torch

        key = (t, width)
        m = self.self_masks.get(key)
        if m is None:
            m = torch.zeros((1, 1, width), dtype=self.dtype, device=self.device)
            m[..., t + 1:] = self.neg
            self.self_masks[key] = m
        return m

    def _use_sources(self, sources, group: int) -> None:
        """Cross-attention against ``sources`` (sentence ids), each shared by ``group`` consecutive rows."""
        H = self.ms.heads
        idx = (sources[:, None] * H + self.row_src.new_tensor(range(H))[None, :]).reshape(-1)
        self.cross = [(k.index_select(0, idx), v.index_select(0, idx)) for k, v in self.cross_all]
        self.mask = self.mask_all.index_select(0, idx)
        self.group = group

    def _empty(self, batch: int, width: int):
        import torch

        return torch.empty((batch, 1, width), dtype=self.dtype, device=self.device)

    def _new_buffers(self, capacity: int, rows: int, filled: int) -> list[tuple[Any, Any]]:
        """Buffers ``(rows, heads, capacity, dim)`` whose first ``filled`` positions the caller writes
        at once (a copy of the past). Attention reads every position, the unwritten ones masked, and
        a masked position must still hold a finite value (0 x NaN is NaN in the values' product):
        positions ``filled`` and later are zeroed."""
        import torch

        shape = (rows, self.ms.heads, capacity, self.ms.head_dim)
        buffers = [(torch.empty(shape, dtype=self.dtype, device=self.device),
                    torch.empty(shape, dtype=self.dtype, device=self.device)) for _ in self.ms.layers]
        for k, v in buffers:
            k[:, :, filled:].zero_()
            v[:, :, filled:].zero_()
        return buffers

    def _with_rows(self, buffers: list[tuple[Any, Any]], rows: int) -> list[tuple[Any, Any]]:
        """The first entries of each buffer's memory viewed as (rows, heads, capacity, dim), for fewer
        rows than it holds (its values stay finite: zeros or earlier keys and values)."""
        _, H, capacity, D = buffers[0][0].shape
        n = rows * H * capacity * D
        return [(k.view(-1)[:n].view(rows, H, capacity, D), v.view(-1)[:n].view(rows, H, capacity, D))
                for k, v in buffers]

    def step(self, tokens):
        import torch

        ms = self.ms
        if tokens is None:
            tokens = torch.full((self.rows,), self.ms.gm.decoder_start_token_id, dtype=torch.long, device=self.device)
        R, H, D, t = tokens.shape[0], ms.heads, ms.head_dim, self.t
        if self.cache is None:
            self.cache = self._new_buffers(CAPACITY_STEP, R, 0)
        elif t == self.cache[0][0].shape[2]:  # full: CAPACITY_STEP more positions, the past copied once
            grown = self._new_buffers(t + CAPACITY_STEP, R, t)
            for (k, v), (k2, v2) in zip(self.cache, grown):
                k2[:, :, :t].copy_(k)
                v2[:, :, :t].copy_(v)
            self.cache, self.spare = grown, None
        x = ms.decoder.embed_tokens(tokens) * ms.embed_scale + ms.positions[t]
        C = self.cache[0][0].shape[2]
        self_mask = self._self_mask(t, C) if C > t + 1 else None
        n_src = R // self.group
        for layer, (k_buf, v_buf), (ck, cv) in zip(ms.layers, self.cache, self.cross):
            sa = layer.self_attn
            qkv = getattr(sa, "harness_qkv", None)
            if qkv is not None:
                q, k, v = qkv(x).view(R, 3, H, D).unbind(1)
            else:
                q, k, v = sa.q_proj(x), sa.k_proj(x), sa.v_proj(x)
            k_buf[:, :, t] = k.view(R, H, D)
            v_buf[:, :, t] = v.view(R, H, D)
            keys = k_buf.view(R * H, C, D).transpose(1, 2)  # per row and head one contiguous block
            vals = v_buf.view(R * H, C, D)
            if self_mask is None:
                s = torch.baddbmm(self._empty(R * H, C), q.reshape(R * H, 1, D), keys, beta=0.0, alpha=ms.scaling)
            else:
                s = torch.baddbmm(self_mask, q.reshape(R * H, 1, D), keys, alpha=ms.scaling)
            a = torch.bmm(s.softmax(-1), vals).view(R, H * D)
            x = layer.self_attn_layer_norm(x + sa.out_proj(a))
            ea = layer.encoder_attn
            # rows r*g .. r*g+g-1 share sentence r: one (g x L) product per sentence and head
            q = ea.q_proj(x).view(n_src, self.group, H, D).transpose(1, 2).reshape(n_src * H, self.group, D)
            s = torch.baddbmm(self.mask, q, ck.transpose(1, 2), alpha=ms.scaling)
            a = torch.bmm(s.softmax(-1), cv).view(n_src, H, self.group, D).transpose(1, 2).reshape(R, H * D)
            x = layer.encoder_attn_layer_norm(x + ea.out_proj(a))
            x = layer.final_layer_norm(x + layer.fc2(layer.activation_fn(layer.fc1(x))))
        logits = self.head(x)
        self.t = t + 1
        self.fed = tokens[:, None] if self.fed is None else torch.cat([self.fed, tokens[:, None]], dim=1)
        return logits.float()

    def select(self, index, layout_unchanged: bool) -> None:
        import torch

        t, R = self.t, index.shape[0]
        if self.cache is not None and not (layout_unchanged and self._select_in_place(index)):
            old, spare = self.cache, self.spare
            capacity = old[0][0].shape[2]
            if spare is not None and spare[0][0].shape[2] == capacity and spare[0][0].shape[0] >= R:
                # rows only shrink after the first step: the spare's memory holds R rows, already
                # touched (a fresh buffer's first-touch page faults cost more than the copy)
                new = spare if spare[0][0].shape[0] == R else self._with_rows(spare, R)
            else:
                new = self._new_buffers(capacity, R, capacity)
            for (k, v), (k2, v2) in zip(old, new):  # whole rows: the masked positions stay finite
                torch.index_select(k, 0, index, out=k2)
                torch.index_select(v, 0, index, out=v2)
            self.cache, self.spare = new, old
        if self.fed is not None:
            self.fed = self.fed.index_select(0, index)
        self.rows = R
        if layout_unchanged:
            return  # beams moved within their sentence: the rows still map to the same sentences
        self.row_src = self.row_src.index_select(0, index)
        sources, counts = torch.unique_consecutive(self.row_src, return_counts=True)
        grouped = bool((counts == counts[0]).all()) and sources.numel() == torch.unique(sources).numel()
        if grouped:
            self._use_sources(sources, int(counts[0]))
        else:  # rows of one sentence not side by side: every row gets its sentence's keys
            self._use_sources(self.row_src, 1)

    def _select_in_place(self, index) -> bool:
        """Beam reordering within sentences, copying only the cache entries that change.

        A cache entry at position p depends on the tokens a row was fed at positions 0..p. Within a
        sentence, two running beams fed the same tokens up to p hold copies of one computation
        there (the beam they both descend from), so row r needs its new source's entries only from
        the first position where the two were fed different tokens. In beam search the beams of a
        sentence share most of their past: 11% of (position, row) entries change per step at 40
        forced steps, 28% at natural lengths (Marian-base, 64 Multi30k sentences), against the
        whole cache that a full reorder copies. False (nothing done) when the rows are not the ones
        cached, or when more than 40% would change: gather and scatter move each changed entry twice,
        one index_select into the spare buffer moves every entry once."""
        import torch

        t, R = self.t, index.shape[0]
        fed = self.fed
        if fed is None or fed.shape != (R, t) or self.cache[0][0].shape[0] != R:
            return False
        differs = fed != fed.index_select(0, index)
        first = torch.where(differs.any(dim=1), differs.to(torch.uint8).argmax(dim=1), t)
        if int((t - first).sum()) * 5 > 2 * t * R:
            return False
        pos, row = (torch.arange(t, device=index.device)[:, None] >= first[None, :]).nonzero(as_tuple=True)
        _, H, C, D = self.cache[0][0].shape
        heads = torch.arange(H, device=index.device) * C
        # entry (row, head, position) of the buffers viewed as (rows * heads * capacity, dim)
        dst = ((row * (H * C) + pos)[:, None] + heads).reshape(-1)
        src = ((index.index_select(0, row) * (H * C) + pos)[:, None] + heads).reshape(-1)
        for k, v in self.cache:
            for buf in (k, v):
                flat = buf.view(-1, D)
                flat.index_copy_(0, dst, flat.index_select(0, src))
        return True


def step_gap(model: Any, step: MarianStep, inputs: list[dict[str, Any]]) -> float:
    """Largest |difference| between the log-probabilities ``model``'s full forward gives each probe's
    target tokens (teacher-forced) and those of ``step``, fed the same tokens one at a time, with
    the beam-search moves on the way: the sentence doubled into two rows, swapped at every step."""
    import torch

    from .probe import logprob_gap

    full, stepped = [], []
    with torch.inference_mode():
        for kw in inputs:
            src, tgt = kw["input_ids"], kw["decoder_input_ids"]
            full.append(model(input_ids=src, decoder_input_ids=tgt, return_dict=True).logits[0].float()
                        .log_softmax(-1).double())
            session = step.start([src[0].tolist()])
            session.select(torch.tensor([0, 0]), layout_unchanged=False)  # two rows of one sentence
            rows = []
            for j in range(tgt.shape[1]):
                if j:
                    session.select(torch.tensor([1, 0]), layout_unchanged=True)
                rows.append(session.step(tgt[0, j].repeat(2)).log_softmax(-1).double())
            stepped.append(torch.stack([r[j % 2] for j, r in enumerate(rows)]))
    return logprob_gap(full, stepped)
