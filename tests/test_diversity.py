"""Diversity and oracle metrics over n-best lists: values checked by hand."""
from __future__ import annotations

import math

import pytest

from harness.api import Example
from harness.config import DEFAULT_METRICS
from harness.plugins import default_plugins

NAMES = ["distinct_1", "distinct_2", "self_bleu", "oracle_bleu", "oracle_chrf"]


def metric(name, **params):
    cls = default_plugins().get("metric", name)
    return cls(cls.Params(**params))


def examples(*refs):
    return [Example(id=str(i), source="x", reference=r) for i, r in enumerate(refs)]


def test_registered_for_translation_and_opt_in():
    for name in NAMES:
        assert default_plugins().get("metric", name).task == "translation"
        assert name not in DEFAULT_METRICS["translation"]
    assert default_plugins().get("metric", "self_bleu").higher_is_better is False


def test_distinct_n_counts_over_all_hypotheses_of_all_lists():
    nbest = [["a b a", "a c"], ["d"]]
    ex = examples("r", "r")
    # unigrams a b a a c d: 4 distinct of 6; bigrams (a b) (b a) (a c): 3 of 3
    assert metric("distinct_1").compute(["a b a", "d"], ex, nbest).value == pytest.approx(400 / 6)
    assert metric("distinct_2").compute(["a b a", "d"], ex, nbest).value == pytest.approx(100.0)
    v = metric("distinct_1").compute(["a b a", "d"], ex, nbest)
    assert v.details == {"distinct": 4, "total": 6} and v.signature.startswith("distinct-1|")
    # without n-best lists: the 1-best outputs ("a b a", "d" -> a b d distinct of 4)
    assert metric("distinct_1").compute(["a b a", "d"], ex, None).value == pytest.approx(75.0)
    assert metric("distinct_1", lowercase=True).compute(["A a"], examples("r"), None).value == pytest.approx(50.0)


def test_self_bleu_is_100_for_copies_0_for_disjoint_lists_and_undefined_for_single_hypotheses():
    copies = ["the cat sat on the mat today", "the cat sat on the mat today", "the cat sat on the mat today"]
    disjoint = ["one two three four", "five six seven eight", "nine ten eleven twelve"]
    ex = examples("r", "r")
    assert metric("self_bleu").compute([copies[0]], ex[:1], [copies]).value == pytest.approx(100.0)
    assert metric("self_bleu").compute([disjoint[0]], ex[:1], [disjoint]).value == pytest.approx(0.0)
    # sentences are averaged with equal weight
    both = metric("self_bleu").compute([copies[0], disjoint[0]], ex, [copies, disjoint])
    assert both.value == pytest.approx(50.0) and both.details == {"sentences": 2}
    assert math.isnan(metric("self_bleu").compute(["a b"], ex[:1], None).value)


def test_self_bleu_uses_the_other_hypotheses_as_references():
    from sacrebleu.metrics import BLEU

    hyps = ["the cat sat on the mat", "the cat sat on a mat", "a dog ran to the house"]
    bleu = BLEU(effective_order=True)
    expected = sum(bleu.sentence_score(h, hyps[:i] + hyps[i + 1:]).score for i, h in enumerate(hyps)) / 3
    got = metric("self_bleu").compute([hyps[0]], examples("r"), [hyps]).value
    assert got == pytest.approx(expected) and 0 < got < 100


def test_oracle_picks_the_best_hypothesis_of_each_list():
    refs = ["the cat sat on the mat", "a dog ran to the big house"]
    nbest = [["a cat was on a mat", "the cat sat on the mat"], ["a dog ran to the big house", "dogs run"]]
    outputs = [n[0] for n in nbest]
    ex = examples(*refs)
    oracle = metric("oracle_bleu").compute(outputs, ex, nbest)
    assert oracle.value == pytest.approx(100.0)
    assert oracle.details["picked_rank_mean"] == pytest.approx(1.5)  # ranks 2 and 1
    assert metric("oracle_chrf").compute(outputs, ex, nbest).value == pytest.approx(100.0)
    one_best = metric("bleu").compute(outputs, ex).value
    assert one_best < oracle.value


def test_oracle_without_nbest_lists_is_the_corpus_score():
    refs = ["the cat sat on the mat", "a dog ran to the big house"]
    outputs = ["a cat sat on the mat", "the dog ran to a house"]
    ex = examples(*refs)
    assert metric("oracle_bleu").compute(outputs, ex).value == pytest.approx(metric("bleu").compute(outputs, ex).value)
    assert metric("oracle_chrf").compute(outputs, ex).value == pytest.approx(metric("chrf").compute(outputs, ex).value)
