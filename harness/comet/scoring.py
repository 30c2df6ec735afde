"""Scoring (source, translation[, reference]) triples with a loaded COMET checkpoint, batched and cached.

How the classes turn encoder outputs into COMET 2.2.7's ``predict`` scores:

- regression classes: each distinct text is encoded once into its sentence embedding, cached by
  content (so ten systems scored on one test set encode its sources and references once), and
  the estimator runs on the features of each triple;
- unified classes: each (translation, source[, reference]) is encoded jointly; with source and
  reference the score is the mean over the three inputs [mt, src], [mt, ref], [mt, src, ref]
  (COMET's UnifiedMetric), and XCOMET's is ``0.12 c(s1) + 0.33 c(s2) + 0.33 c(s3) + 0.22 mqm``
  with ``c(x) = min(x, 1)`` (without a reference: ``0.78 c(s1) + 0.22 mqm``), where ``mqm =
  (25 - min(25, sum of 1 / 5 / 10 per minor / major / critical span)) / 25``;
- error spans (word-level models): each translation subword is tagged with its most probable label
  (probabilities averaged over the three inputs with weights 0.1667 / 0.3333 / 0.5); a span is a
  run of non-OK tags (its severity the first tag's, its confidence the mean of the tags'
  probabilities, its characters from the first to the last subword's offsets); a run still open
  at the last subword (the closing </s>) is not reported, as in COMET.

Batches hold texts of similar length (sorted, padded to a multiple of 8, at most ``batch_size``
rows and ``max_tokens`` padded tokens): a segment is computed the same way whatever else is
scored with it. An out-of-memory batch is split in half and retried; a single segment that does
not fit is a :class:`CometMemoryError` naming the setting to lower.

Non-goals: Monte Carlo dropout, COMET's multi-GPU prediction, document-level context.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import HarnessError
from .checkpoint import CheckpointInfo
from .tokenizer import CometTokenizer, Piece

XCOMET_WEIGHTS = [0.12, 0.33, 0.33, 0.22]  # [mt, src], [mt, ref], [mt, src, ref], MQM (Guerreiro et al. 2023)
SPAN_INPUT_WEIGHTS = [0.1667, 0.3333, 0.5]  # the three inputs' weights in the averaged tag probabilities
MQM_PENALTY = {"minor": 1, "major": 5, "critical": 10}
PAD_MULTIPLE = 8


class CometMemoryError(HarnessError):
    """A single segment does not fit in memory with the requested device and dtype."""


@dataclass
class CometResult:
    """What COMET's ``predict`` returns: segment scores in input order, their mean, metadata."""

    scores: list[float]
    system_score: float
    metadata: dict[str, list] = field(default_factory=dict)


def _is_oom(e: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, (MemoryError, oom)) or (isinstance(e, RuntimeError) and (
        "out of memory" in str(e).lower() or "can't allocate memory" in str(e).lower()))


class Scorer:
    """One checkpoint on one device and dtype, with its caches (see the module docstring)."""

    def __init__(self, info: CheckpointInfo, device: str, dtype: str, *, cache_bytes: int = 1 << 30):
        import torch

        from .models import CometNet

        self.info = info
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.net = CometNet(info, self.device, self.dtype)
        max_positions = int(info.encoder.config.get("max_position_embeddings", 514)) - 2
        self.tok = CometTokenizer(info.encoder, max_positions)
        self.batch_size, self.max_tokens = 16, None
        self.labels = ["O"] + [f"I-{x}" for x in (["minor", "major", "critical"] if info.class_identifier ==
                                                 "xcomet_metric" else info.hparams.get("error_labels", []))]
        self._pieces: OrderedDict[str, Piece] = OrderedDict()
        self._embeddings: OrderedDict[str, Any] = OrderedDict()  # text -> sentence embedding (regression)
        self._joint: OrderedDict[tuple[int, ...], tuple[float, Any]] = OrderedDict()  # joint ids -> score, probs
        self._cache_bytes, self._used = cache_bytes, 0
        self.stats = {"texts_encoded": 0, "joint_inputs_encoded": 0, "batches": 0}

    # ------------------------------------------------------------------ batching

    def _pieces_of(self, texts: Sequence[str]) -> list[Piece]:
        new = [t for t in dict.fromkeys(texts) if t not in self._pieces]
        for t, p in zip(new, self.tok(new)):
            self._pieces[t] = p
        while len(self._pieces) > 200_000:
            self._pieces.popitem(last=False)
        return [self._pieces[t] for t in texts]

    def _plan(self, lengths: Sequence[int]) -> list[list[int]]:
        """Batches of indices: sorted by length, one padded length per batch."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            width = -(-lengths[i] // PAD_MULTIPLE) * PAD_MULTIPLE
            cap = self.batch_size if self.max_tokens is None else max(1, min(self.batch_size, self.max_tokens // width))
            last = batches[-1] if batches else None
            if last and len(last) < cap and -(-lengths[last[0]] // PAD_MULTIPLE) * PAD_MULTIPLE == width:
                last.append(i)
            else:
                batches.append([i])
        return batches

    def _tensor(self, seqs: Sequence[Sequence[int]]):
        import torch

        width = -(-max(len(s) for s in seqs) // PAD_MULTIPLE) * PAD_MULTIPLE
        ids = torch.full((len(seqs), width), self.tok.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, :len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _run(self, seqs: list[Sequence[int]], forward: Callable, what: str) -> list:
        """``forward(ids, mask)`` over ``seqs`` in planned batches; one output row per sequence.
        An out-of-memory batch is halved and retried down to one sequence."""
        out: list = [None] * len(seqs)
        for batch in self._plan([len(s) for s in seqs]):
            stack = [batch]
            while stack:
                part = stack.pop()
                try:
                    rows = forward(*self._tensor([seqs[i] for i in part]))
                    self.stats["batches"] += 1
                except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                    if not _is_oom(e):
                        raise
                    rows = None
                if rows is None:  # out of memory (memory is freed here, once the exception is gone)
                    self._release()
                    if len(part) == 1:
                        raise CometMemoryError(
                            f"comet: out of memory encoding one {what} of {len(seqs[part[0]])} tokens on "
                            f"{self.device} ({str(self.dtype).removeprefix('torch.')}): use a device with more "
                            f"memory, dtype bfloat16/float16 on a GPU, or a smaller checkpoint") from None
                    half = len(part) // 2
                    stack += [part[half:], part[:half]]
                    continue
                for i, row in zip(part, rows):
                    out[i] = row
        return out

    def _release(self) -> None:
        import gc

        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _remember(self, cache: OrderedDict, key, value, nbytes: int) -> None:
        """Keep ``value``, forgetting the least recently used entries beyond the byte budget."""
        cache[key] = value
        self._used += nbytes
        while self._used > self._cache_bytes and len(cache) > 1:
            _, old = cache.popitem(last=False)
            self._used -= _nbytes(old[1] if isinstance(old, tuple) else old) + (64 if isinstance(old, tuple) else 0)

    # ------------------------------------------------------------------ regression classes

    def embeddings(self, texts: Sequence[str]) -> list:
        """Sentence embeddings of ``texts`` (regression classes), each distinct text encoded once."""
        found = self._cached(self._embeddings, texts)
        todo = [t for t in dict.fromkeys(texts) if t not in found]
        if todo:
            rows = self._run([p.ids for p in self._pieces_of(todo)],
                             lambda ids, mask: self.net.sentence_embeddings(ids, mask), "segment")
            for t, row in zip(todo, rows):
                found[t] = row = row.clone()  # a view would keep its whole batch alive in the cache
                self._remember(self._embeddings, t, row, _nbytes(row))
            self.stats["texts_encoded"] += len(todo)
        return [found[t] for t in texts]

    def _cached(self, cache: OrderedDict, keys) -> dict:
        """The entries of ``cache`` among ``keys``, marked as recently used."""
        found = {}
        for k in dict.fromkeys(keys):
            if k in cache:
                cache.move_to_end(k)
                found[k] = cache[k]
        return found

    def _estimate(self, src: list, mt: list, ref: list | None, chunk: int = 4096) -> list[float]:
        import torch

        scores: list[float] = []
        for i in range(0, len(mt), chunk):
            s = torch.stack(src[i:i + chunk])
            h = torch.stack(mt[i:i + chunk])
            r = torch.stack(ref[i:i + chunk]) if ref is not None else None
            scores += self.net.estimate(self.net.regression_features(s, h, r)).float().tolist()
        return scores

    # ------------------------------------------------------------------ unified classes

    def _joint_outputs(self, seqs: list[tuple[int, ...]], mt_lengths: list[int]) -> list[tuple[float, Any]]:
        """(score, tag probabilities of the translation's subwords or None) per joint input."""
        found = self._cached(self._joint, seqs)
        todo = [s for s in dict.fromkeys(seqs) if s not in found]
        if todo:
            keep = dict(zip(seqs, mt_lengths))

            def forward(ids, mask):
                scores, probs = self.net.joint(ids, mask)
                return list(zip(scores.float().tolist(), [None] * len(scores) if probs is None else probs))

            for s, (score, probs) in zip(todo, self._run(todo, forward, "joint input")):
                if probs is not None:  # only the translation's subwords are read, copied out of the batch
                    probs = probs[:keep[s]].float().clone()
                found[s] = (score, probs)
                self._remember(self._joint, s, found[s], _nbytes(probs) + 64)
            self.stats["joint_inputs_encoded"] += len(todo)
        return [found[s] for s in seqs]

    def _decode_spans(self, probs, piece: Piece) -> list[dict[str, Any]]:
        """COMET's ``UnifiedMetric.decode`` for one translation (see the module docstring)."""
        values, labels = probs.topk(1, dim=-1)
        values, labels = values[:, 0], labels[:, 0].tolist()
        spans, current = [], None
        for t, lab in enumerate(labels):
            name = self.labels[lab]
            if name.startswith("I"):
                if current is None:
                    current = {"tokens": [piece.ids[t]], "severity": name.split("-")[1],
                               "offset": list(piece.offsets[t]), "confidence": [t]}
                else:
                    current["tokens"].append(piece.ids[t])
                    current["confidence"].append(t)
                    current["offset"][1] = piece.offsets[t][1]
            elif current is not None:
                spans.append(current)
                current = None
        return [{"text": self.tok.decode(s["tokens"]), "confidence": values[s["confidence"]].mean().item(),
                 "severity": s["severity"], "start": s["offset"][0], "end": s["offset"][1]} for s in spans]

    def _unified(self, sources: Sequence[str], outputs: Sequence[str], references: Sequence[str] | None) -> CometResult:
        import torch

        segs = self.info.input_segments
        use_src = "src" in segs
        use_ref = references is not None and "ref" in segs
        mt_p = self._pieces_of(outputs)
        src_p = self._pieces_of(sources) if use_src else None
        ref_p = self._pieces_of(references) if use_ref else None
        if use_src and use_ref:
            inputs = [[(m, s) for m, s in zip(mt_p, src_p)], [(m, r) for m, r in zip(mt_p, ref_p)],
                      [(m, s, r) for m, s, r in zip(mt_p, src_p, ref_p)]]
        else:
            inputs = [[(m, s) for m, s in zip(mt_p, src_p if use_src else ref_p)]]
        n = len(outputs)
        flat = [self.tok.joint(x) for inp in inputs for x in inp]
        got = self._joint_outputs(flat, [len(m.ids) for _ in inputs for m in mt_p])
        per_input = [got[k * n:(k + 1) * n] for k in range(len(inputs))]
        score_t = [torch.tensor([s for s, _ in rows], dtype=torch.float32) for rows in per_input]
        meta: dict[str, list] = {}
        spans = None
        if self.net.tagger is not None:
            if len(inputs) == 3:
                w = torch.tensor(SPAN_INPUT_WEIGHTS)
                probs = [torch.sum(torch.stack([rows[i][1] * w[k] for k, rows in enumerate(per_input)]), dim=0)
                         for i in range(n)]
            else:
                probs = [per_input[0][i][1] for i in range(n)]
            spans = [self._decode_spans(p, m) for p, m in zip(probs, mt_p)]
        xcomet = self.info.class_identifier == "xcomet_metric"
        if xcomet:
            mqm = _mqm(spans)
            if len(inputs) == 3:
                reg = torch.stack([torch.where(s > 1.0, 1.0, s) * w for s, w in zip(score_t, XCOMET_WEIGHTS[:3])],
                                  dim=0).sum(dim=0)
                final = reg + mqm * XCOMET_WEIGHTS[3]
                meta = {"src_scores": score_t[0].tolist(), "ref_scores": score_t[1].tolist(),
                        "unified_scores": score_t[2].tolist(), "mqm_scores": mqm.tolist(), "error_spans": spans}
            else:
                reg = torch.where(score_t[0] > 1.0, 1.0, score_t[0])
                final = reg * sum(XCOMET_WEIGHTS[:3]) + mqm * XCOMET_WEIGHTS[3]
                meta = {"src_scores": reg.tolist(), "mqm_scores": mqm.tolist(), "error_spans": spans}
        else:
            if len(inputs) == 3:
                final = torch.stack(score_t, dim=0).mean(dim=0)
                meta = {"src_scores": score_t[0].tolist(), "ref_scores": score_t[1].tolist(),
                        "unified_scores": score_t[2].tolist()}
            else:
                final = score_t[0]
            if spans is not None:
                meta["error_spans"] = spans
        return _result(final.tolist(), meta)

    # ------------------------------------------------------------------ the public entry points

    def score(self, sources: Sequence[str], outputs: Sequence[str],
              references: Sequence[str] | None = None) -> CometResult:
        """COMET's scores of ``outputs`` (one per source); ``references`` None scores without them
        (reference-free models ignore any they are given, as COMET does)."""
        if not outputs:
            return CometResult([], float("nan"))
        if references is None and self.info.references == "required":
            raise HarnessError(f"comet: {self.info.directory} is a reference-based model; it needs references")
        if self.info.unified:
            return self._unified(sources, outputs, references)
        ref_based = self.info.class_identifier == "regression_metric"
        emb = self.embeddings([*sources, *outputs, *(references if ref_based else [])])
        n = len(outputs)
        return _result(self._estimate(emb[:n], emb[n:2 * n], emb[2 * n:] if ref_based else None), {})

    def pairwise(self, source: str, candidates: Sequence[str], references: Sequence[str]):
        """(N, M) float64 array: COMET(source, candidate i, reference j), each text encoded once
        (regression classes: N + M + 1 encoder inputs, not N x M)."""
        import numpy as np

        N, M = len(candidates), len(references)
        if self.info.unified:
            res = self.score([source] * (N * M), [c for c in candidates for _ in references], list(references) * N)
            return np.asarray(res.scores, dtype=float).reshape(N, M)
        emb = self.embeddings([source, *candidates, *references])
        s, cands, refs = emb[0], emb[1:1 + N], emb[1 + N:]
        scores = self._estimate([s] * (N * M), [c for c in cands for _ in range(M)], list(refs) * N)
        return np.asarray(scores, dtype=float).reshape(N, M)


def _nbytes(t) -> int:
    return 0 if t is None else int(t.numel() * t.element_size())


def _mqm(spans):
    import torch

    totals = [min(25, sum(MQM_PENALTY.get(s["severity"], 0) for s in sent)) for sent in spans]
    return (torch.tensor(totals) * -1 + 25) / 25


def _result(scores: list[float], meta: dict[str, list]) -> CometResult:
    return CometResult(scores, sum(scores) / len(scores), meta)
