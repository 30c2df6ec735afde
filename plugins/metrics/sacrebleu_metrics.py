"""``bleu``, ``chrf``, ``ter``: corpus-level translation metrics computed by sacrebleu.

Each value carries sacrebleu's signature (tokeniser, smoothing, version...) so that scores
from different runs are only compared when they were computed the same way.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import Metric, MetricValue
from harness.hookspecs import hookimpl
from harness.params import Params


class BleuParams(Params):
    tokenize: Literal["13a", "none", "intl", "char", "zh", "ja-mecab", "ko-mecab", "flores101", "flores200"] = Field(
        "13a", description="sacrebleu tokeniser")
    lowercase: bool = Field(False, description="case-insensitive BLEU")
    smooth_method: Literal["exp", "floor", "add-k", "none"] = Field("exp", description="sacrebleu smoothing")


class ChrfParams(Params):
    char_order: int = Field(6, ge=1, description="character n-gram order")
    word_order: int = Field(0, ge=0, description="word n-gram order (2 gives chrF++)")
    beta: int = Field(2, ge=1, description="recall weight")
    lowercase: bool = False


class TerParams(Params):
    normalized: bool = False
    no_punct: bool = False
    case_sensitive: bool = False


class _SacreMetric(Metric):
    task = "translation"

    def scorer(self):
        raise NotImplementedError

    def compute(self, outputs, examples, nbest=None):
        refs = [[ex.reference or "" for ex in examples]]
        scorer = self.scorer()
        score = scorer.corpus_score(list(outputs), refs)
        return MetricValue(float(score.score), signature=str(scorer.get_signature()))


class Bleu(_SacreMetric):
    name = "bleu"
    description = "sacreBLEU corpus BLEU (Papineni et al. 2002; Post 2018)."
    Params = BleuParams

    def scorer(self):
        from sacrebleu.metrics import BLEU

        p = self.params
        return BLEU(tokenize=p.tokenize, lowercase=p.lowercase, smooth_method=p.smooth_method)


class Chrf(_SacreMetric):
    name = "chrf"
    description = "chrF / chrF++ (Popović 2015) via sacrebleu."
    Params = ChrfParams

    def scorer(self):
        from sacrebleu.metrics import CHRF

        p = self.params
        return CHRF(char_order=p.char_order, word_order=p.word_order, beta=p.beta, lowercase=p.lowercase)


class Ter(_SacreMetric):
    name = "ter"
    description = "Translation edit rate (Snover et al. 2006) via sacrebleu; lower is better."
    Params = TerParams
    higher_is_better = False

    def scorer(self):
        from sacrebleu.metrics import TER

        p = self.params
        return TER(normalized=p.normalized, no_punct=p.no_punct, case_sensitive=p.case_sensitive)


@hookimpl
def register_metrics(register):
    for cls in (Bleu, Chrf, Ter):
        register(cls)
