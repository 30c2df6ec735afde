"""``cutoff``: token or span cutoff with a consistency term (Shen et al. 2020).

The counter-evidence to the study note: erasing part of the input *helps* when the erased view
is trained beside the clean one with a consistency loss. Shen, Zheng, Shen, Qu and Chen (2020),
"A Simple but Tough-to-Beat Data Augmentation Approach for Natural Language Understanding and
Generation" report GLUE gains with RoBERTa and +1.4 BLEU on IWSLT14 de-en. Every step:

    loss = CE(clean) + cutoff_ce_weight x CE(cut view) + consistency_weight x D(clean, cut view)

The cut view erases ``cutoff_rate`` of each example's non-special tokens (``round(rate x n)``, at
least one): scattered (``cutoff: token``) or one run of consecutive tokens (``cutoff: span``);
``erase: zero`` removes them the paper's way (word embedding and attention zeroed), ``erase:
mask`` replaces them with the mask token instead, which makes this the note's masking with the
consistency term the literature adds. D is the Jensen-Shannon divergence of the two predicted
label distributions (``consistency: js``, the paper's) or the symmetric KL (``symmetric_kl``).
Equal steps to ``unmasked`` (same sentences and order; twice the sequences per step); evaluation
sees clean text. Classification only.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.api import Strategy
from harness.hookspecs import hookimpl
from harness.training import Cutoff, FineTuneParams, Objective, SecondView, fine_tune


class CutoffParams(FineTuneParams):
    cutoff: Literal["token", "span"] = Field("token", description="token: scattered tokens; span: one run of "
                                                                  "consecutive tokens")
    cutoff_rate: float = Field(0.1, gt=0, le=1, description="share of each example's non-special tokens erased "
                                                           "(round(rate x n), at least one)")
    erase: Literal["zero", "mask"] = Field("zero", description="zero: word embedding and attention set to 0 (Shen et "
                                                               "al.); mask: the mask token instead")
    cutoff_ce_weight: float = Field(1.0, ge=0, description="weight of the task loss on the cut view")
    consistency: Literal["js", "symmetric_kl", "none"] = Field(
        "js", description="divergence between the predictions on the clean and the cut view")
    consistency_weight: float = Field(1.0, ge=0, description="weight of the consistency term")


class CutoffStrategy(Strategy):
    name = "cutoff"
    version = "1"
    description = "Clean batch + a token/span cutoff view of it, with a Jensen-Shannon consistency term (Shen et al. 2020)."
    Params = CutoffParams
    tasks = ("classification",)

    def prepare(self, model, data, ctx):
        p = self.params
        view = SecondView(Cutoff(p.cutoff_rate, span=p.cutoff == "span", erase=p.erase), ce_weight=p.cutoff_ce_weight,
                          consistency=p.consistency, consistency_weight=p.consistency_weight)
        return fine_tune(model, data, ctx, strategy=self.name, version=self.version, params=p,
                         objective=Objective("supervised", second_view=view))


@hookimpl
def register_strategies(register):
    register(CutoffStrategy)
