"""MBR decoding: the fast pairwise utilities equal sacrebleu's sentence scores, the expected
utilities equal the naive double loop, hand-made candidate sets pick the known answer, and the
``mbr`` decoder reranks exactly the candidates its candidate decoder gives.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from decoding_models import SOURCES, build_marian_varied

from harness.api import CellContext
from harness.decoding.mbr import (BleuUtility, ChrfUtility, MetricUtility, expected_utilities, mbr_rank,
                         naive_expected_utilities)
from harness.engines.load import load_generation_model
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins

WORDS = "der die das Hund Katze läuft, schnell. (rot) grün! a b c Mann-Frau ! . , der der 汉字 ñ".split()


def random_sentences(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 12))) for _ in range(n)]


# corner cases: empty, whitespace only, shorter than the n-gram order, repeated n-grams, punctuation
EDGE = ["", " ", "a", "ab", "aaaa aaa", "a a a a", "(hi)", "x.", ".x", "Der Hund, der Hund.", "der hund der hund"]
HYPS = random_sentences(25, 0) + EDGE
REFS = random_sentences(20, 1) + EDGE


@pytest.mark.parametrize("settings", [{}, {"word_order": 2}, {"char_order": 3, "beta": 1}, {"lowercase": True},
                                      {"whitespace": True}, {"eps_smoothing": True},
                                      {"eps_smoothing": True, "word_order": 2, "beta": 3}])
def test_chrf_matrix_equals_sacrebleu_sentence_chrf(settings):
    from sacrebleu.metrics import CHRF

    scorer = CHRF(**settings)
    got = ChrfUtility(**settings).matrix(HYPS, REFS)
    assert got.shape == (len(HYPS), len(REFS))
    for i, h in enumerate(HYPS):
        for j, r in enumerate(REFS):
            assert abs(got[i, j] - scorer.sentence_score(h, [r]).score) <= 1e-9, (h, r)


def test_default_chrf_equals_the_sentence_chrf_function():
    import sacrebleu

    got = ChrfUtility().matrix(HYPS, REFS)
    want = [[sacrebleu.sentence_chrf(h, [r]).score for r in REFS] for h in HYPS]
    assert abs(got - want).max() <= 1e-9


@pytest.mark.parametrize("settings", [{}, {"smooth_method": "floor"}, {"smooth_method": "add-k"},
                                      {"smooth_method": "none", "lowercase": True}, {"tokenize": "char"}])
def test_bleu_matrix_equals_sacrebleu_sentence_bleu(settings):
    import sacrebleu

    got = BleuUtility(**settings).matrix(HYPS, REFS)
    for i, h in enumerate(HYPS):
        for j, r in enumerate(REFS):
            assert abs(got[i, j] - sacrebleu.sentence_bleu(h, [r], **settings).score) <= 1e-9, (h, r)


def test_chrf_on_real_sentences_equals_sacrebleu():
    from conftest import shared_data
    from sacrebleu.metrics import CHRF

    lines = shared_data("multi30k", "test_2016_flickr.de").read_text(encoding="utf-8").splitlines()[:40]
    got = ChrfUtility(word_order=2).matrix(lines[:20], lines[20:])
    scorer = CHRF(word_order=2)
    assert max(abs(got[i, j] - scorer.sentence_score(h, [r]).score)
               for i, h in enumerate(lines[:20]) for j, r in enumerate(lines[20:])) <= 1e-9


def test_expected_utilities_equal_the_naive_double_loop_with_duplicates():
    import sacrebleu

    cands = random_sentences(12, 2)
    cands += cands[:4]  # duplicates among candidates and references count as often as they occur
    refs = cands + random_sentences(5, 3)
    fast = expected_utilities(cands, refs, ChrfUtility())
    naive = naive_expected_utilities(cands, refs, lambda c, r: sacrebleu.sentence_chrf(c, [r]).score)
    assert max(abs(a - b) for a, b in zip(fast, naive)) <= 1e-9
    assert len(set(round(x, 6) for x in fast)) > 5  # not a degenerate set


def test_the_majority_wins_with_hand_computed_expected_utilities():
    # identical strings score chrF 100, strings without a common character 0
    samples = ["A B", "A B", "C D", "A B"]
    ranked = mbr_rank(samples, samples, ChrfUtility())
    assert [(r.text, r.expected_utility, r.index) for r in ranked] == [("A B", 75.0, 0), ("C D", 25.0, 2)]
    ranked = mbr_rank(["x y", "C D", "A B"], ["A B", "C D", "A B"], ChrfUtility())
    assert [(r.text, round(r.expected_utility, 9)) for r in ranked] == [("A B", round(200 / 3, 9)),
                                                                       ("C D", round(100 / 3, 9)), ("x y", 0.0)]


def test_the_consensus_candidate_beats_the_most_probable_outlier():
    # the first candidate (say, the beam's 1-best) shares little with what the model samples;
    # MBR picks the one closest to all samples, and equal utilities keep the earlier candidate
    cands = ["ein Hund spielt im Schnee", "a dog plays in the snow", "the dog plays in the snow"]
    refs = ["a dog plays in the snow", "the dog plays in snow", "a dog is playing in the snow", "dog plays in the snow"]
    ranked = mbr_rank(cands, refs, ChrfUtility())
    assert ranked[0].text == "a dog plays in the snow" and ranked[-1].text == "ein Hund spielt im Schnee"
    tie = mbr_rank(["b a", "a b"], ["a", "b"], ChrfUtility())
    assert tie[0].expected_utility == tie[1].expected_utility and tie[0].text == "b a"


def test_any_translation_metric_plugin_is_a_utility_lower_is_better_negated():
    ter = default_plugins().get("metric", "ter")
    utility = MetricUtility(ter(ter.Params()))
    import sacrebleu

    got = utility.matrix(["a b c", "a x c"], ["a b c", "a b"])
    want = [[-sacrebleu.sentence_ter(h, [r]).score for r in ["a b c", "a b"]] for h in ["a b c", "a x c"]]
    assert got.tolist() == want
    assert mbr_rank(["a x c", "a b c"], ["a b c", "a b"], utility)[0].text == "a b c"


# ----------------------------------------------------------------------------- the decoder

MAX_NEW = 12


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    return load_generation_model(ModelSpec(path=str(build_marian_varied(tmp_path_factory.mktemp("m"))), device="cpu"))


def decoder(name: str, **params):
    cls = default_plugins().get("decoder", name)
    return cls(cls.Params.model_validate(params))


def ctx(tmp_path, seed=0, progress=None):
    kw = {"progress": progress} if progress else {}
    return CellContext(seed=seed, workdir=tmp_path, cache_dir=tmp_path, **kw)


def test_mbr_reranks_the_samples_of_the_sample_decoder(marian, tmp_path):
    import sacrebleu

    sample = {"num_samples": 8, "max_new_tokens": MAX_NEW, "temperature": 0.7}
    calls = []
    out = decoder("mbr", candidates={"decoder": "sample", "params": sample}).decode(
        marian, SOURCES, ctx(tmp_path, progress=lambda done, total: calls.append((done, total))))
    samples = decoder("sample", **sample).decode(marian, SOURCES, ctx(tmp_path))
    for hyps, drawn in zip(out, samples):
        texts = [h.text for h in drawn]
        assert sorted(h.text for h in hyps) == sorted(set(texts))  # the distinct samples, nothing else
        naive = {c: sum(sacrebleu.sentence_chrf(c, [r]).score for r in texts) / len(texts) for c in texts}
        for h in hyps:
            assert h.score == pytest.approx(naive[h.text], abs=1e-9)
            assert h.text == marian.decode_text(h.tokens)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert hyps[0].text == max(naive, key=naive.get)  # the MBR choice of the naive loop
    assert calls[-1] == (2 * len(SOURCES), 2 * len(SOURCES))
    assert any(len(h) > 1 for h in out)
    assert [[h.text for h in x] for x in out] != [[h.text for h in x] for x in decoder(
        "mbr", candidates={"decoder": "sample", "params": sample}).decode(marian, SOURCES, ctx(tmp_path, seed=1))]


def test_mbr_over_the_beam_n_best_with_separate_pseudo_references(marian, tmp_path):
    import sacrebleu

    from harness.decoding import SampleParams
    from harness_plugins.decoders.sample import Sample

    beam = {"num_beams": 4, "num_return_sequences": 4, "max_new_tokens": MAX_NEW}
    refs = {"num_samples": 6, "max_new_tokens": MAX_NEW}
    out = decoder("mbr", candidates={"decoder": "beam", "params": beam},
                  references={"decoder": "sample", "params": refs}, utility="bleu").decode(marian, SOURCES, ctx(tmp_path))
    nbest = decoder("beam", **beam).decode(marian, SOURCES, ctx(tmp_path))
    pseudo = Sample(SampleParams(**refs)).draw(marian, SOURCES, ctx(tmp_path), stream="mbr-references")
    own = decoder("sample", **refs).decode(marian, SOURCES, ctx(tmp_path))
    # the pseudo-references are not the sample decoder's own draws: they have a stream of their own
    assert [[h.text for h in x] for x in pseudo] != [[h.text for h in x] for x in own]
    for hyps, cands, refs_i in zip(out, nbest, pseudo):
        assert sorted(h.text for h in hyps) == sorted({h.text for h in cands})
        r = [h.text for h in refs_i]
        for h in hyps:
            assert h.score == pytest.approx(sum(sacrebleu.sentence_bleu(h.text, [x]).score for x in r) / len(r),
                                            abs=1e-9)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


# ----------------------------------------------------------------------------- config errors

CONFIG = """\
name: mbr
models: [{path: ./model, label: tiny}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders:
  - name: mbr
    params: PARAMS
reporters: []
"""


@pytest.mark.parametrize("params,expected", [
    ("{candidates: {decoder: greedy}}",
     "decoders[0].params.candidates: unknown candidate decoder; allowed: sample, beam, diverse_beam"),
    ("{candidates: {decoder: beam, params: {num_beams: 0}}}",
     "decoders[0].params.candidates.params.num_beams: Input should be greater than or equal to 1"),
    ("{utility: bleux}", "decoders[0].params: utility: unknown metric 'bleux'; did you mean 'bleu'?"),
    ("{utility: chrf, utility_params: {word_ordr: 2}}",
     "decoders[0].params: utility_params.word_ordr: Extra inputs are not permitted (parameters of metric 'chrf'"),
])
def test_bad_mbr_parameters_are_config_errors(tmp_path, translation_files, marian, params, expected):
    (tmp_path / "model").symlink_to(Path(marian.spec.path))
    (tmp_path / "exp.yaml").write_text(CONFIG.replace("PARAMS", params))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "exp.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_the_decoders_study_config_compares_six_arms_with_seeds_only_where_they_matter():
    from conftest import SHARED_DATA

    from harness.experiment.load import load_experiment
    from harness.run.runner import cell_key

    if not SHARED_DATA.exists():
        pytest.skip(f"configs/decoders-study.yaml reads ../shared/data, absent at {SHARED_DATA}")
    exp = load_experiment(Path(__file__).resolve().parents[1] / "configs" / "decoders-study.yaml")
    keys: dict[str, set[str]] = {}
    for cell in exp.cells():
        keys.setdefault(cell.decoder.label, set()).add(cell_key(cell))
    assert {k: len(v) for k, v in keys.items()} == {"greedy": 1, "beam5": 1, "diverse_beam": 1, "sample_t1": 3,
                                                    "sample_eps": 3, "mbr_chrf": 3}
    mbr = next(c.decoder for c in exp.cells() if c.decoder.label == "mbr_chrf")
    assert mbr.params.candidates.params.num_samples == 32 and mbr.params.utility == "chrf"


def test_the_report_places_mbr_in_the_diversity_plot_with_its_expected_utility_and_oracle(tmp_path):
    import json as _json

    from report_helpers import translation_benchmark, write_run

    from harness.report import analyze
    from harness.results import load_run
    from harness_plugins.reporters._plots import diversity_plot

    bench = translation_benchmark(12)
    refs = bench["references"]
    cells = [{"benchmark": "toy", "decoder": "greedy", "outputs": refs[:6] + ["x"] * 6, "extra": {"self_bleu": 100.0}},
             {"benchmark": "toy", "decoder": "mbr", "outputs": refs[:9] + ["x"] * 3,
              "decoder_params": {"utility": "chrf"}, "nbest": [[r, "x"] for r in refs],
              "extra": {"self_bleu": 40.0, "oracle_bleu": 90.0}}]
    out = write_run(tmp_path / "run", benchmarks={"toy": bench}, cells=cells,
                    extra_metric_plugins={"self_bleu": "self_bleu", "oracle_bleu": "oracle_bleu"})
    # the scores write_run gives every prediction; an MBR run writes each choice's expected utility there
    pred = next(out.glob("cells/*/predictions.jsonl"))
    rows = [_json.loads(line) for line in pred.read_text().splitlines()]
    points = {p["name"]: p for p in analyze(load_run(out)).benchmarks[0].plots["diversity"]["points"]}
    assert points["mbr"]["expected_utility"] == pytest.approx(-0.5) and points["mbr"]["utility"] == "chrf"
    assert points["mbr"]["oracle"] == 90.0 and "expected_utility" not in points["greedy"]
    assert rows and all(r["score"] == -0.5 for r in rows)
    assert "(E[chrf] -0.5)" in diversity_plot({"x_label": "self-BLEU", "y_label": "BLEU", "points": list(points.values())})
