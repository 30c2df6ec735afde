"""``bleu``, ``chrf``, ``ter``: corpus-level translation metrics computed by sacrebleu.

Each value carries sacrebleu's signature (tokeniser, smoothing, version...) so that scores
from different runs are only compared when they were computed the same way. Parameters mirror
the sacrebleu CLI options of the same names (``--tokenize``, ``--chrf-word-order``,
``--ter-normalized``...), and the tests check values and signatures against that CLI.

Examples with several references are scored against all of them, as sacrebleu's CLI is with
several reference files. Non-goals: sentence-level scores, sacrebleu's bootstrap/paired
significance (the harness has its own significance tests).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import Metric, MetricValue, reference_streams
from harness.errors import HarnessError
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
    lowercase: bool = Field(False, description="case-insensitive chrF")
    whitespace: bool = Field(False, description="include whitespace in character n-grams")
    eps_smoothing: bool = Field(False, description="smooth zero n-gram matches as chrF++.py/NLTK/Moses do")


class TerParams(Params):
    normalized: bool = Field(False, description="basic normalisation and tokenisation before scoring")
    no_punct: bool = Field(False, description="remove punctuation before scoring")
    asian_support: bool = Field(False, description="split Asian characters (use with normalized)")
    case_sensitive: bool = Field(False, description="case-sensitive TER (sacrebleu's default is insensitive)")


class _SacreMetric(Metric):
    task = "translation"
    value_range = (0.0, 100.0)
    decimals = 2  # as sacrebleu prints them (-w 2), whatever the values: a BLEU of 0.5 is not 0.5000
    signature_source = "sacrebleu"

    def scorer(self):
        raise NotImplementedError

    def compute(self, outputs, examples, nbest=None):
        if len(outputs) != len(examples):
            raise HarnessError(f"{self.name}: {len(outputs)} outputs for {len(examples)} examples")
        if not examples:  # sacrebleu fails on an empty corpus with an IndexError
            return MetricValue(float("nan"), details={"n": 0})
        refs = reference_streams(examples)  # one stream per reference position
        scorer = self.scorer()
        score = scorer.corpus_score(list(outputs), refs)
        return MetricValue(float(score.score), signature=str(scorer.get_signature()), details=self.details(score))

    def details(self, score) -> dict:
        return {}


class Bleu(_SacreMetric):
    name = "bleu"
    description = "sacreBLEU corpus BLEU (Papineni et al. 2002; Post 2018)."
    Params = BleuParams
    title = "BLEU"

    def scorer(self):
        from sacrebleu.metrics import BLEU

        p = self.params
        return BLEU(tokenize=p.tokenize, lowercase=p.lowercase, smooth_method=p.smooth_method)

    def details(self, score) -> dict:
        return {"precisions": [round(x, 4) for x in score.precisions], "bp": round(score.bp, 4),
                "sys_len": score.sys_len, "ref_len": score.ref_len}


class Chrf(_SacreMetric):
    name = "chrf"
    description = "chrF / chrF++ (Popović 2015) via sacrebleu."
    Params = ChrfParams
    title = "chrF"

    def scorer(self):
        from sacrebleu.metrics import CHRF

        p = self.params
        return CHRF(char_order=p.char_order, word_order=p.word_order, beta=p.beta, lowercase=p.lowercase,
                    whitespace=p.whitespace, eps_smoothing=p.eps_smoothing)


class Ter(_SacreMetric):
    name = "ter"
    description = "Translation edit rate (Snover et al. 2006) via sacrebleu; lower is better."
    Params = TerParams
    higher_is_better = False
    title = "TER"
    value_range = (0.0, None)  # more edits than reference words give TER above 100

    # hypothesis words x reference words of one segment. TER's shift search (sacrebleu's port of
    # tercom) grows faster than that product: measured here, 1,000 x 1,000 words take about a
    # minute on a busy core, 200 words against a 5 MB reference segment hours. Beyond the bound the
    # segment is refused by name instead of stalling the run (per-example scores leave it out).
    max_word_pairs = 1_000_000

    def compute(self, outputs, examples, nbest=None):
        for h, ex in zip(outputs, examples):
            refs = [r for r in ex.all_references() if r is not None]
            pairs = len(str(h).split()) * max([len(str(r).split()) for r in refs] or [0])
            if pairs > self.max_word_pairs:
                raise HarnessError(
                    f"ter: example '{ex.id}' has {len(str(h).split()):,} output words and "
                    f"{max(len(str(r).split()) for r in refs):,} reference words; TER's shift search grows faster "
                    f"than the product of the two ({pairs:,} word pairs; allowed {self.max_word_pairs:,}, about a "
                    "minute of CPU), so it would stall the run. Split the segment (a file without line breaks?) or "
                    "leave ter out for this benchmark")
        return super().compute(outputs, examples, nbest)

    def scorer(self):
        from sacrebleu.metrics import TER

        p = self.params
        return TER(normalized=p.normalized, no_punct=p.no_punct, asian_support=p.asian_support,
                   case_sensitive=p.case_sensitive)

    def details(self, score) -> dict:
        return {"edits": score.num_edits, "ref_length": score.ref_length}


@hookimpl
def register_metrics(register):
    for cls in (Bleu, Chrf, Ter):
        register(cls)
