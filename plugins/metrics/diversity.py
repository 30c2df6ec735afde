"""Diversity and oracle metrics (task "translation"); opt-in, not defaults.

Two kinds of diversity, each defined once, never ranked together (``Metric.scope``):

- **Diversity of the outputs** (``scope = "outputs"``, every decoder): ``distinct_1`` /
  ``distinct_2`` = distinct n-grams / all n-grams over the corpus of 1-best outputs (Li et al.
  2016, "A Diversity-Promoting Objective Function for Neural Conversation Models"), whitespace
  tokens, in %. Greedy and beam are compared on the same thing: their 1-best outputs.
- **Diversity within n-best lists** (``scope = "lists"``, only for decoders that return lists):
  ``nbest_distinct_1`` / ``nbest_distinct_2`` = for each source, distinct n-grams / all n-grams
  within its n-best list, averaged over sources; ``self_bleu`` = for each source, the mean
  sacreBLEU sentence score of each hypothesis against the other hypotheses of the same list as
  references (Zhu et al. 2018, Texygen), averaged over sources; lower = more diverse. For a
  decoder that returns one hypothesis per source they are NaN ("n/a" in the report, with the
  reason), not 0 or 100: a one-item list has no diversity to measure.

``oracle_bleu`` / ``oracle_chrf``: pick, per sentence, the hypothesis of the n-best list with the
best sentence-level BLEU / chrF against the reference, then score those picks as a corpus: an
upper bound of what reranking could reach (with one hypothesis per source, the corpus score).

Non-goals: tokenised (non-whitespace) distinct-n, embedding based diversity.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

from harness.api import Metric, MetricValue, reference_streams
from harness.hookspecs import hookimpl
from harness.params import Params


def _lists(outputs: Sequence[str], nbest: Sequence[Sequence[str]] | None) -> list[list[str]]:
    if nbest is None:
        return [[o] for o in outputs]
    return [list(n) if n else [o] for o, n in zip(outputs, nbest)]


class DistinctParams(Params):
    lowercase: bool = Field(False, description="lowercase before counting n-grams")


def _ngrams(text: str, order: int, lowercase: bool) -> list[tuple[str, ...]]:
    toks = (text.lower() if lowercase else text).split()
    return [tuple(toks[i:i + order]) for i in range(len(toks) - order + 1)]


class _Distinct(Metric):
    task = "translation"
    Params = DistinctParams
    value_range = (0.0, 100.0)
    version = "2"  # 2: over the 1-best outputs (was: over every n-best hypothesis)
    order: int = 1

    def compute(self, outputs, examples, nbest=None):
        seen: set[tuple[str, ...]] = set()
        total = 0
        for o in outputs:
            grams = _ngrams(o, self.order, self.params.lowercase)
            total += len(grams)
            seen.update(grams)
        value = 100.0 * len(seen) / total if total else 0.0
        return MetricValue(value, signature=f"distinct-{self.order}|of:1-best|tok:whitespace|lc:{self.params.lowercase}",
                           details={"distinct": len(seen), "total": total})


class Distinct1(_Distinct):
    name = "distinct_1"
    title = "distinct-1 (1-best)"
    description = "Distinct unigrams / all unigrams of the 1-best outputs (corpus), in % (Li et al. 2016)."
    order = 1


class Distinct2(_Distinct):
    name = "distinct_2"
    title = "distinct-2 (1-best)"
    description = "Distinct bigrams / all bigrams of the 1-best outputs (corpus), in % (Li et al. 2016)."
    order = 2


class _ListDistinct(Metric):
    task = "translation"
    Params = DistinctParams
    scope = "lists"
    value_range = (0.0, 100.0)
    order: int = 1

    def compute(self, outputs, examples, nbest=None):
        per_list = []
        for hyps in _lists(outputs, nbest):
            if len(hyps) < 2:
                continue
            grams = [g for h in hyps for g in _ngrams(h, self.order, self.params.lowercase)]
            if grams:
                per_list.append(100.0 * len(set(grams)) / len(grams))
        sig = f"nbest-distinct-{self.order}|of:each n-best list|tok:whitespace|lc:{self.params.lowercase}"
        if not per_list:  # one hypothesis per source: a list property that does not exist here
            return MetricValue(math.nan, signature=sig + "|undefined: no n-best list has 2 hypotheses",
                               details={"lists": 0})
        return MetricValue(sum(per_list) / len(per_list), signature=sig, details={"lists": len(per_list)})


class NbestDistinct1(_ListDistinct):
    name = "nbest_distinct_1"
    title = "distinct-1"
    description = "Distinct / all unigrams within each n-best list, averaged over sources, in %; n/a without lists."
    order = 1


class NbestDistinct2(_ListDistinct):
    name = "nbest_distinct_2"
    title = "distinct-2"
    description = "Distinct / all bigrams within each n-best list, averaged over sources, in %; n/a without lists."
    order = 2


class BleuParams(Params):
    tokenize: str = Field("13a", description="sacrebleu tokeniser")


class SelfBleu(Metric):
    name = "self_bleu"
    title = "self-BLEU"
    scope = "lists"
    value_range = (0.0, 100.0)
    description = "Mean sentence BLEU of each n-best hypothesis against its siblings (Zhu et al. 2018); lower = more diverse."
    task = "translation"
    higher_is_better = False
    Params = BleuParams

    def compute(self, outputs, examples, nbest=None):
        from sacrebleu.metrics import BLEU

        bleu = BLEU(tokenize=self.params.tokenize, effective_order=True)
        per_sentence = []
        for hyps in _lists(outputs, nbest):
            if len(hyps) < 2:
                continue
            scores = [bleu.sentence_score(h, hyps[:i] + hyps[i + 1:]).score for i, h in enumerate(hyps)]
            per_sentence.append(sum(scores) / len(scores))
        if not per_sentence:  # 1-best outputs only: there is nothing to compare a hypothesis with
            return MetricValue(math.nan, signature="self-bleu|undefined: no n-best list has 2 hypotheses",
                               details={"sentences": 0})
        return MetricValue(sum(per_sentence) / len(per_sentence), signature=f"self-bleu|{bleu.get_signature()}",
                           details={"sentences": len(per_sentence)})


class ChrfParams(Params):
    char_order: int = Field(6, ge=1, description="character n-gram order")
    word_order: int = Field(0, ge=0, description="word n-gram order (2 gives chrF++)")


class _Oracle(Metric):
    task = "translation"
    value_range = (0.0, 100.0)

    def scorers(self):
        """(sentence scorer, corpus scorer)."""
        raise NotImplementedError

    def compute(self, outputs, examples, nbest=None):
        sent, corpus = self.scorers()
        picks = []
        for hyps, ex in zip(_lists(outputs, nbest), examples):
            ref = list(ex.all_references()) or [""]  # sacrebleu takes the best match over several
            # max() keeps the first of equal scores: ties go to the better-ranked hypothesis
            picks.append(max(hyps, key=lambda h: sent.sentence_score(h, ref).score))
        score = corpus.corpus_score(picks, reference_streams(examples))
        return MetricValue(float(score.score), signature=f"oracle|{corpus.get_signature()}",
                           details={"picked_rank_mean": _mean_rank(picks, _lists(outputs, nbest))})


def _mean_rank(picks, lists) -> float:
    ranks = [hyps.index(p) + 1 for p, hyps in zip(picks, lists)]
    return sum(ranks) / len(ranks) if ranks else math.nan


class OracleBleu(_Oracle):
    name = "oracle_bleu"
    description = "Corpus BLEU of the best hypothesis of each n-best list (by sentence BLEU): a reranking upper bound."
    Params = BleuParams

    def scorers(self):
        from sacrebleu.metrics import BLEU

        return BLEU(tokenize=self.params.tokenize, effective_order=True), BLEU(tokenize=self.params.tokenize)


class OracleChrf(_Oracle):
    name = "oracle_chrf"
    description = "Corpus chrF of the best hypothesis of each n-best list (by sentence chrF): a reranking upper bound."
    Params = ChrfParams

    def scorers(self):
        from sacrebleu.metrics import CHRF

        make = lambda: CHRF(char_order=self.params.char_order, word_order=self.params.word_order)  # noqa: E731
        return make(), make()


@hookimpl
def register_metrics(register):
    for cls in (Distinct1, Distinct2, NbestDistinct1, NbestDistinct2, SelfBleu, OracleBleu, OracleChrf):
        register(cls)
