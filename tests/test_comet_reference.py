"""``harness.comet`` against scores recorded from unbabel-comet 2.2.7's own ``predict``.

tests/fixtures/comet/ holds five tiny random XLM-R-based COMET models, one per class the public
checkpoints use (``regression_metric`` like wmt22-comet-da, ``referenceless_regression_metric``
like COMET-QE, ``unified_metric`` [mt, src] like CometKiwi and [mt, src, ref], ``xcomet_metric``
like XCOMET-XL on an XLM-R XL encoder), built with COMET's own classes and saved as COMET saves
them, and ``reference.json``: 48 (src, mt, ref) triples and what ``model.predict(samples,
batch_size=8, gpus=0)`` returned for each model, with references and, where the class can, without.
scripts/record_comet_reference.py made both, in a side virtualenv with COMET 2.2.7.

The models are loaded through the harness's own reader and scored in other batches (16, length
sorted and padded differently): every segment score, the system score and every sub-score must be
within 1e-5, MQM scores equal, error spans identical (text, offsets, severity; confidence to 1e-5).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "comet"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text(encoding="utf-8"))
RUNS = REFERENCE["runs"]
TRIPLES = REFERENCE["triples"]
TOL = 1e-5


@pytest.fixture(scope="module")
def threads():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def scorer(model: str):
    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    return Scorer(inspect_checkpoint(FIXTURE / model), "cpu", "float32")


def test_the_reference_is_comet_227_and_exercises_what_it_should():
    assert REFERENCE["comet"] == "2.2.7" and REFERENCE["transformers"].startswith("4.")
    assert len(TRIPLES) >= 40
    assert {(r["model"], r["mode"]) for r in RUNS} == {
        ("regression", "ref"), ("referenceless", "qe"), ("kiwi", "qe"), ("kiwi", "ref"), ("unified", "ref"),
        ("unified", "qe"), ("xcomet", "ref"), ("xcomet", "qe")}
    for r in RUNS:  # segments score differently, by more than the tolerance many times over
        assert max(r["scores"]) - min(r["scores"]) > 1000 * TOL, r["model"]
    xcomet = [r for r in RUNS if r["model"] == "xcomet"]
    for r in xcomet:  # spans of every severity, several MQM scores
        severities = {s["severity"] for spans in r["metadata"]["error_spans"] for s in spans}
        assert severities == {"minor", "major", "critical"}
        assert len(set(r["metadata"]["mqm_scores"])) >= 4
    # with references, some of the three regression scores are above 1: XCOMET clips them
    assert any(s > 1 for s in xcomet[0]["metadata"]["src_scores"] + xcomet[0]["metadata"]["unified_scores"])
    # a joint input longer than the tiny encoder's 80 positions, and a segment cut at 78 tokens
    assert max(len(ids) for ids in REFERENCE["token_ids"].values()) == 78


def test_the_tokenizer_gives_comets_ids(threads):
    tok = scorer("regression").tok
    texts = list(REFERENCE["token_ids"])
    assert [list(p.ids) for p in tok(texts)] == [REFERENCE["token_ids"][t] for t in texts]


@pytest.mark.parametrize("run", RUNS, ids=[f"{r['model']}-{r['mode']}" for r in RUNS])
def test_segment_and_system_scores_equal_comets(run, threads):
    s = scorer(run["model"])
    src = [t["src"] for t in TRIPLES]
    mt = [t["mt"] for t in TRIPLES]
    ref = [t["ref"] for t in TRIPLES] if run["mode"] == "ref" else None
    res = s.score(src, mt, ref)
    assert len(res.scores) == len(run["scores"])
    assert res.scores == pytest.approx(run["scores"], abs=TOL)
    assert res.system_score == pytest.approx(run["system_score"], abs=TOL)
    assert set(res.metadata) == set(run["metadata"])
    for key, theirs in run["metadata"].items():
        ours = res.metadata[key]
        if key == "error_spans":
            assert [[{k: v for k, v in x.items() if k != "confidence"} for x in spans] for spans in ours] == \
                   [[{k: v for k, v in x.items() if k != "confidence"} for x in spans] for spans in theirs]
            assert [x["confidence"] for spans in ours for x in spans] == pytest.approx(
                [x["confidence"] for spans in theirs for x in spans], abs=TOL)
        elif key == "mqm_scores":
            assert ours == theirs
        else:
            assert ours == pytest.approx(theirs, abs=TOL), key


@pytest.mark.parametrize("model", ["regression", "xcomet"])
def test_a_segment_scores_the_same_whatever_is_scored_with_it(model, threads):
    """Bucketed padding and estimator rows padded to 8: batch-mates change no bit of a score."""
    src = [t["src"] for t in TRIPLES]
    mt = [t["mt"] for t in TRIPLES]
    ref = [t["ref"] for t in TRIPLES]
    together = scorer(model).score(src, mt, ref).scores
    alone = scorer(model)
    alone.batch_size = 3
    assert [alone.score([a], [b], [c]).scores[0] for a, b, c in zip(src, mt, ref)] == together
