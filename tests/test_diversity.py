"""Diversity and oracle metrics over n-best lists: values checked by hand."""
from __future__ import annotations

import math

import pytest

from harness.api import Example
from harness.experiment.config import DEFAULT_METRICS
from harness.plugins import default_plugins

NAMES = ["distinct_1", "distinct_2", "nbest_distinct_1", "nbest_distinct_2", "self_bleu", "oracle_bleu", "oracle_chrf"]


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


def test_distinct_n_is_over_the_1_best_outputs_whatever_the_decoder_returned():
    nbest = [["a b a", "a c"], ["d"]]
    ex = examples("r", "r")
    # 1-best outputs "a b a", "d": unigrams a b a d -> 3 distinct of 4; bigrams (a b) (b a): 2 of 2
    for lists in (nbest, None):  # the n-best lists do not change it: greedy and beam compare like with like
        assert metric("distinct_1").compute(["a b a", "d"], ex, lists).value == pytest.approx(75.0)
        assert metric("distinct_2").compute(["a b a", "d"], ex, lists).value == pytest.approx(100.0)
    v = metric("distinct_1").compute(["a b a", "d"], ex, nbest)
    assert v.details == {"distinct": 3, "total": 4} and v.signature.startswith("distinct-1|of:1-best|")
    assert metric("distinct_1", lowercase=True).compute(["A a"], examples("r"), None).value == pytest.approx(50.0)


def test_nbest_distinct_is_per_list_and_undefined_without_lists():
    ex = examples("r", "r", "r")
    # list 1: a b a / a c -> unigrams a b a a c: 3 of 5 = 60%; list 2: d e / d e -> 2 of 4 = 50%; list 3 has one
    # hypothesis and does not count
    nbest = [["a b a", "a c"], ["d e", "d e"], ["f"]]
    v = metric("nbest_distinct_1").compute(["a b a", "d e", "f"], ex, nbest)
    assert v.value == pytest.approx(55.0) and v.details == {"lists": 2}
    # bigrams: (a b) (b a) -> 2 of 2; (d e) (d e) -> 1 of 2
    assert metric("nbest_distinct_2").compute(["a b a", "d e", "f"], ex, nbest).value == pytest.approx(75.0)
    greedy = metric("nbest_distinct_2").compute(["a b a", "d e", "f"], ex, None)
    assert math.isnan(greedy.value) and "undefined: no n-best list has 2 hypotheses" in greedy.signature
    for name in ("nbest_distinct_1", "nbest_distinct_2", "self_bleu"):
        assert default_plugins().get("metric", name).scope == "lists"
    for name in ("distinct_1", "distinct_2", "oracle_bleu"):
        assert default_plugins().get("metric", name).scope == "outputs"


def test_the_report_says_n_a_for_list_metrics_of_one_hypothesis_decoders_and_never_ranks_them(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from report_helpers import degrade, translation_benchmark, write_run

    from harness.report import analyze
    from harness.results import load_run

    tb = translation_benchmark(8)
    refs = tb["references"]
    greedy, beam = degrade(refs, 3), degrade(refs, 4)
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, extra_metric_plugins={"nbest_distinct_2": "nbest_distinct_2"},
                    cells=[dict(benchmark="t", decoder="greedy", outputs=greedy, extra={"nbest_distinct_2": math.nan}),
                           dict(benchmark="t", decoder="beam", outputs=beam, nbest=[[o, o + " x"] for o in beam],
                                extra={"nbest_distinct_2": 80.0})])
    data = analyze(load_run(out))
    rows = {r.config.label: r for r in data.benchmarks[0].rows["nbest_distinct_2"]}
    assert rows["greedy"].value is None and rows["greedy"].rank is None and not rows["greedy"].best
    assert rows["greedy"].na_reason == ("n/a: greedy returns one hypothesis per source, and distinct-2 (n-best lists) "
                                        "is a property of n-best lists")
    assert rows["beam"].rank == 1 and rows["beam"].verdict == ""  # no comparison with a decoder that has no lists
    assert data.benchmarks[0].metrics[-1].title == "distinct-2 (n-best lists)"


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
