"""Pairwise sentence utilities and minimum Bayes risk (MBR) selection.

MBR decoding (Kumar & Byrne 2004; for NMT e.g. Eikema & Aziz 2020, Freitag et al. 2022) picks,
among candidates c_1..c_N, the one with the highest expected utility against pseudo-references
r_1..r_M drawn from the model: ``argmax_i  sum_j w_j u(c_i, r_j) / sum_j w_j``. That is N x M
utility calls per sentence; this module computes the whole N x M matrix at once, *exactly*:

- :class:`ChrfUtility` equals ``sacrebleu.sentence_chrf(c, [r])`` (any char/word order, beta,
  lowercase, whitespace, eps_smoothing) to float rounding. Each distinct string's character
  (and word) n-grams are extracted once, not once per pair. A clipped match count
  ``sum_g min(count_c(g), count_r(g))`` equals a dot product of 0/1 vectors over
  (n-gram, occurrence) features (the k-th occurrence of g is a feature of every string with at
  least k of them), so each order's N x M match counts are one sparse integer matrix product.
  The F-score is then evaluated on the (N, M) arrays in sacrebleu's order of operations.
- :class:`BleuUtility` equals ``sacrebleu.sentence_bleu(c, [r])`` (effective order, its
  smoothing and tokeniser): match counts as above on word n-grams, then sacrebleu's own
  ``BLEU.compute_bleu`` per pair on those statistics.
- :class:`MetricUtility` turns any translation metric plugin into a sentence utility by scoring
  one (candidate, reference) pair at a time: exact by definition, and as slow as the plugin.

Identical strings are scored once: duplicate candidates collapse to one (the first keeps its
place), duplicate pseudo-references become one with a weight equal to their count; the
expected utilities are unchanged. No approximation (reference aggregation, DeMBR, pruning)
is made. Non-goals: neural utilities, multi-reference utilities, GPU computation.
numpy and scipy are imported inside the functions that need them.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

PUNCTUATION = frozenset('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')
"""The characters sacrebleu's chrF splits off the start or end of a word (chrF++ word n-grams)."""


_BLAS: Any = None


def _one_blas_thread():
    """A context in which BLAS runs one thread. The match products here are small (strings x
    features); OpenBLAS's default threads spin-wait for each other, and on a busy 2-core machine
    that made MBR-chrF 0.55-0.83x fastchrf's speed instead of 6x (benchmarks/mbr_speed.py).
    threadpoolctl's controller is built once (it inspects the loaded libraries)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Ranked:
    """One distinct candidate: its text, its expected utility and where it first occurred."""

    text: str
    expected_utility: float
    index: int  # position of its first occurrence in the candidate list


def _match_matrices(feats: dict[str, Sequence[Counter]], hypotheses: Sequence[str], references: Sequence[str],
                    orders: int):
    """Per order, the N x M clipped match counts between hypotheses and references, and the
    n-gram totals of each side (N x orders and M x orders int64 arrays). ``feats`` holds each
    distinct string's n-gram Counters, one per order.

    Each distinct string's (n-gram, occurrence) features are numbered once. A hypothesis gets
    one row per order holding only that order's features, a reference one row holding all of
    its features: one sparse product then gives every order's matches, because features of
    different orders never share a column."""
    import numpy as np
    from scipy import sparse

    local: list[dict[Any, int]] = [{} for _ in range(orders)]  # per order: feature -> column within the order
    cols_of: dict[str, list[list[int]]] = {}
    for text, f in feats.items():
        per_order = []
        for n in range(orders):
            counter, d = f[n], local[n]
            cols = [d.setdefault(g, len(d)) for g in counter]  # the first occurrence of each n-gram
            if sum(counter.values()) > len(cols):  # repeated n-grams: the k-th occurrence is feature (g, k)
                cols += [d.setdefault((g, k), len(d)) for g, c in counter.items() if c > 1 for k in range(1, c)]
            per_order.append(cols)
        cols_of[text] = per_order
    offset = np.cumsum([0] + [len(d) for d in local])
    width = max(int(offset[-1]), 1)

    def build(texts: Sequence[str], split_orders: bool):
        rows, cols, tot = [], [], np.zeros((len(texts), orders), np.int64)
        for i, t in enumerate(texts):
            for n, c in enumerate(cols_of[t]):
                rows.append(np.full(len(c), i * orders + n if split_orders else i, np.int64))
                cols.append(np.asarray(c, np.int64) + offset[n])
                tot[i, n] = len(c)
        r, c = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        shape = (len(texts) * (orders if split_orders else 1), width)
        return sparse.csr_matrix((np.ones(len(r), np.int64), (r, c)), shape=shape), tot

    H, hyp_tot = build(hypotheses, True)
    R, ref_tot = build(references, False)
    both = (H @ R.T).toarray().reshape(len(hypotheses), orders, len(references))
    return [both[:, n, :] for n in range(orders)], hyp_tot, ref_tot


def _token_ngram_matches(seqs: Sequence[Any], orders: int):
    """Clipped n-gram match counts between every pair of token sequences, for orders 1..``orders``:
    an (orders, U, U) int64 array (``[n-1, a, b]`` = sum over n-grams g of min(count_a(g),
    count_b(g))) and the (U, orders) n-gram totals. ``seqs`` are int arrays (character code points
    or word ids), U of them.

    Vectorised over all sequences at once: n-grams are numbered exactly (an order-n id is the
    rank of the pair (order n-1 id, next token), so no hash can collide); each position's
    occurrence number among equal (sequence, n-gram) pairs gives it a 0/1 feature (g, k), and
    clipped matches are the dot products of those features, one small float32 matrix product per
    order (exact: counts stay far below 2**24)."""
    import numpy as np

    U = len(seqs)
    lens = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=U)
    totals = np.maximum(lens[:, None] - np.arange(orders)[None, :], 0)
    match = np.zeros((orders, U, U), np.int64)
    if U == 0 or not lens.any():
        return match, totals
    flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in seqs])
    owner = np.repeat(np.arange(U), lens)
    left = np.repeat(lens, lens) - (np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens))  # tokens from here on
    tok = np.unique(flat, return_inverse=True)[1].astype(np.int64)
    alphabet = int(tok.max()) + 1
    pos, ids = np.arange(len(flat)), tok
    for n in range(orders):
        if n:
            keep = left[pos] > n  # an order-(n+1) gram starts here and stays inside the sequence
            pos, ids = pos[keep], ids[keep]
            if not len(pos):
                break
            ids = np.unique(ids * alphabet + tok[pos + n], return_inverse=True)[1].astype(np.int64)
        rows = owner[pos]
        grams = int(ids.max()) + 1
        key = rows * grams + ids
        order = np.argsort(key, kind="stable")
        sk = key[order]
        first = np.r_[True, sk[1:] != sk[:-1]]
        run_start = np.maximum.accumulate(np.where(first, np.arange(len(sk)), 0))
        occurrence = np.empty(len(sk), np.int64)
        occurrence[order] = np.arange(len(sk)) - run_start  # 0 for a gram's first occurrence in its sequence
        depth = np.zeros(grams, np.int64)
        np.maximum.at(depth, ids, occurrence + 1)
        base = np.cumsum(depth) - depth
        width = int(depth.sum())
        if U * width <= 1 << 22:
            features = np.zeros((U, width), np.float32)
            features[rows, base[ids] + occurrence] = 1.0
            match[n] = np.rint(features @ features.T).astype(np.int64)
        else:  # many long strings: the same product, sparse
            from scipy import sparse

            features = sparse.csr_matrix((np.ones(len(rows), np.int64), (rows, base[ids] + occurrence)),
                                         shape=(U, width))
            match[n] = (features @ features.T).toarray()
    return match, totals


class ChrfUtility:
    """chrF / chrF++ between every candidate and every reference, equal to sacrebleu's
    ``CHRF(...).sentence_score(c, [r]).score`` (0-100)."""

    name = "chrf"

    def __init__(self, char_order: int = 6, word_order: int = 0, beta: int = 2, lowercase: bool = False,
                 whitespace: bool = False, eps_smoothing: bool = False):
        self.char_order, self.word_order, self.beta = char_order, word_order, beta
        self.lowercase, self.whitespace, self.eps_smoothing = lowercase, whitespace, eps_smoothing
        self.order = char_order + word_order

    def signature(self) -> str:
        from sacrebleu.metrics import CHRF

        return str(CHRF(char_order=self.char_order, word_order=self.word_order, beta=self.beta, lowercase=self.lowercase,
                        whitespace=self.whitespace, eps_smoothing=self.eps_smoothing).get_signature())

    @staticmethod
    def _words(text: str) -> list[str]:
        # sacrebleu's chrF++ tokenisation: one punctuation mark is split off the end of a word,
        # else off its start (so "(hi)" gives "(hi" and ")")
        out: list[str] = []
        for w in text.split():
            if len(w) == 1:
                out.append(w)
            elif w[-1] in PUNCTUATION:
                out += [w[:-1], w[-1]]
            elif w[0] in PUNCTUATION:
                out += [w[0], w[1:]]
            else:
                out.append(w)
        return out

    def features(self, text: str) -> list[Counter]:
        """The n-gram counts of one string, one Counter per order (characters, then words)."""
        if self.lowercase:
            text = text.lower()
        chars = text if self.whitespace else "".join(text.split())
        feats = [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, self.char_order + 1)]
        if self.word_order:
            words = self._words(text)
            feats += [Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
                      for n in range(1, self.word_order + 1)]
        return feats

    def _sequences(self, texts: Sequence[str]):
        """Per text, its characters (code points) and, for chrF++, its words as ids."""
        import numpy as np

        if self.lowercase:
            texts = [t.lower() for t in texts]
        chars = [t if self.whitespace else "".join(t.split()) for t in texts]
        flat = np.frombuffer("".join(chars).encode("utf-32-le"), dtype=np.uint32)
        cuts = np.cumsum([len(c) for c in chars])[:-1]
        char_seqs = np.split(flat, cuts) if len(chars) else []
        if not self.word_order:
            return char_seqs, None
        vocab: dict[str, int] = {}
        word_seqs = [np.array([vocab.setdefault(w, len(vocab)) for w in self._words(t)], np.int64) for t in texts]
        return char_seqs, word_seqs

    def _matches(self, hypotheses: Sequence[str], references: Sequence[str]):
        """Per order (characters, then words), the N x M clipped match counts, and the n-gram
        totals of each side (N x orders, M x orders): each distinct string's n-grams once."""
        import numpy as np

        distinct = list(dict.fromkeys([*hypotheses, *references]))
        where = {t: i for i, t in enumerate(distinct)}
        h = np.fromiter((where[t] for t in hypotheses), np.int64, len(hypotheses))
        r = np.fromiter((where[t] for t in references), np.int64, len(references))
        char_seqs, word_seqs = self._sequences(distinct)
        with _one_blas_thread():
            match, totals = _token_ngram_matches(char_seqs, self.char_order)
            if word_seqs is not None:
                wmatch, wtotals = _token_ngram_matches(word_seqs, self.word_order)
                match, totals = np.concatenate([match, wmatch]), np.concatenate([totals, wtotals], axis=1)
        return [m[h][:, r] for m in match], totals[h], totals[r]

    def matrix(self, hypotheses: Sequence[str], references: Sequence[str]):
        """(N, M) float64 array of sentence chrF scores."""
        import numpy as np

        match, hyp_tot, ref_tot = self._matches(hypotheses, references)
        N, M = len(hypotheses), len(references)
        eps, factor = 1e-16, self.beta ** 2
        score = np.zeros((N, M))
        avg_prec, avg_rec = np.zeros((N, M)), np.zeros((N, M))
        effective = np.zeros((N, M), np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            for n in range(self.order):
                n_ref = np.broadcast_to(ref_tot[None, :, n], (N, M))
                # sacrebleu counts no hypothesis n-grams of an order the reference has none of
                n_hyp = np.where(n_ref > 0, hyp_tot[:, None, n], 0)
                n_match = match[n]
                prec = np.where(n_hyp > 0, n_match / np.where(n_hyp > 0, n_hyp, 1), eps)
                rec = np.where(n_ref > 0, n_match / np.where(n_ref > 0, n_ref, 1), eps)
                if self.eps_smoothing:
                    denom = factor * prec + rec
                    score += np.where(denom > 0, (1 + factor) * prec * rec / np.where(denom > 0, denom, 1), eps)
                both = (n_hyp > 0) & (n_ref > 0)
                avg_prec += np.where(both, prec, 0.0)
                avg_rec += np.where(both, rec, 0.0)
                effective += both
            if self.eps_smoothing:
                return 100 * score / self.order
            avg_prec = np.where(effective > 0, avg_prec / np.maximum(effective, 1), 0.0)
            avg_rec = np.where(effective > 0, avg_rec / np.maximum(effective, 1), 0.0)
            denom = (factor * avg_prec) + avg_rec
            f = (1 + factor) * avg_prec * avg_rec
            f = f / np.where(denom != 0, denom, 1)
            return np.where(avg_prec + avg_rec != 0, 100 * f, 0.0)

    def naive(self, hypothesis: str, reference: str) -> float:
        """sacrebleu's own sentence score (the reference the tests and the benchmark compare with)."""
        from sacrebleu.metrics import CHRF

        return CHRF(char_order=self.char_order, word_order=self.word_order, beta=self.beta, lowercase=self.lowercase,
                    whitespace=self.whitespace, eps_smoothing=self.eps_smoothing).sentence_score(
            hypothesis, [reference]).score


class BleuUtility:
    """Sentence BLEU between every candidate and every reference, equal to sacrebleu's
    ``sentence_bleu(c, [r], smooth_method=..., tokenize=..., lowercase=...)`` (effective order)."""

    name = "bleu"
    MAX_ORDER = 4

    def __init__(self, tokenize: str = "13a", lowercase: bool = False, smooth_method: str = "exp"):
        from sacrebleu.metrics import BLEU

        self.scorer = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method, effective_order=True)
        self.lowercase, self.smooth_method = lowercase, smooth_method

    def signature(self) -> str:
        return str(self.scorer.get_signature())

    def features(self, text: str) -> tuple[list[Counter], int]:
        # sacrebleu's BLEU preprocessing: lowercase, then tokenise the right-stripped segment
        tokens = self.scorer.tokenizer((text.lower() if self.lowercase else text).rstrip()).split()
        grams = [Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)) for n in range(1, self.MAX_ORDER + 1)]
        return grams, len(tokens)

    def matrix(self, hypotheses: Sequence[str], references: Sequence[str]):
        import numpy as np
        from sacrebleu.metrics import BLEU

        feats = {t: self.features(t) for t in dict.fromkeys([*hypotheses, *references])}  # once per string
        hf = [feats[h] for h in hypotheses]
        rf = [feats[r] for r in references]
        match, hyp_tot, _ = _match_matrices({t: g for t, (g, _) in feats.items()}, hypotheses, references,
                                            self.MAX_ORDER)
        out = np.zeros((len(hf), len(rf)))
        for i, (_, hyp_len) in enumerate(hf):
            total = hyp_tot[i].tolist()
            for j, (_, ref_len) in enumerate(rf):
                correct = [int(match[n][i, j]) for n in range(self.MAX_ORDER)]
                out[i, j] = BLEU.compute_bleu(correct, list(total), hyp_len, ref_len, smooth_method=self.smooth_method,
                                              effective_order=True).score
        return out

    def naive(self, hypothesis: str, reference: str) -> float:
        return self.scorer.sentence_score(hypothesis, [reference]).score


class MetricUtility:
    """Any translation metric plugin as a sentence utility: the plugin's value on the one-pair
    corpus (candidate, reference), negated when lower is better. N x M plugin calls."""

    def __init__(self, metric):
        self.metric = metric
        self.name = metric.name
        self.sign = 1.0 if getattr(metric, "higher_is_better", True) else -1.0

    def signature(self) -> str:
        return f"metric:{self.name}"

    def naive(self, hypothesis: str, reference: str) -> float:
        from ..api import Example

        value = self.metric.compute([hypothesis], [Example(id="mbr", source="", reference=reference)]).value
        return self.sign * float(value)

    def matrix(self, hypotheses: Sequence[str], references: Sequence[str]):
        import numpy as np

        return np.array([[self.naive(h, r) for r in references] for h in hypotheses], dtype=float).reshape(
            len(hypotheses), len(references))


def expected_utilities(candidates: Sequence[str], references: Sequence[str], utility, *,
                       weights: Sequence[float] | None = None) -> list[float]:
    """Expected utility of each candidate against the (weighted) pseudo-references, computing
    each distinct (candidate, reference) string pair once."""
    import numpy as np

    if not references:
        raise ValueError("MBR needs at least one pseudo-reference")
    weights = [1.0] * len(references) if weights is None else list(weights)
    ref_weight: dict[str, float] = {}
    for r, w in zip(references, weights):
        ref_weight[r] = ref_weight.get(r, 0.0) + w
    uniq_c = list(dict.fromkeys(candidates))
    uniq_r = list(ref_weight)
    U = utility.matrix(uniq_c, uniq_r)
    w = np.array([ref_weight[r] for r in uniq_r])
    eu = dict(zip(uniq_c, (U @ w / w.sum()).tolist()))
    return [eu[c] for c in candidates]


def mbr_rank(candidates: Sequence[str], references: Sequence[str], utility) -> list[Ranked]:
    """The distinct candidates, highest expected utility first (ties: the earlier candidate)."""
    eu = expected_utilities(candidates, references, utility)
    first: dict[str, int] = {}
    for i, c in enumerate(candidates):
        first.setdefault(c, i)
    ranked = [Ranked(c, eu[i], i) for c, i in first.items()]
    return sorted(ranked, key=lambda r: (-r.expected_utility, r.index))


def naive_expected_utilities(candidates: Sequence[str], references: Sequence[str],
                             score: Callable[[str, str], float]) -> list[float]:
    """The textbook double loop (one utility call per pair), for tests and the benchmark."""
    return [sum(score(c, r) for r in references) / len(references) for c in candidates]
