"""COMET in decoding: ``mbr`` with ``utility: comet`` and the ``qe_rerank`` decoder.

MBR's expected utilities must equal the textbook double loop of COMET calls (one triple at a time)
while each candidate is encoded once; QE reranking must order each n-best list by the reference-free
score COMET gives each candidate. Both run end to end in ``harness run`` on a tiny Marian model
with the COMET-built fixtures (random weights: the choices test the arithmetic, not quality).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from decoding_models import SOURCES, build_marian_varied

import harness.comet
from harness.api import CellContext
from harness.engines.load import load_generation_model
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins
from harness.testing import run_config, write_translation_files

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "comet"
REGRESSION, KIWI, XCOMET = FIXTURE / "regression", FIXTURE / "kiwi", FIXTURE / "xcomet"
BEAM = {"num_beams": 4, "num_return_sequences": 4, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    return load_generation_model(ModelSpec(path=str(build_marian_varied(tmp_path_factory.mktemp("m"))), device="cpu"))


@pytest.fixture
def fresh(monkeypatch):
    """No COMET model loaded yet in this test (the process keeps the last two otherwise)."""
    monkeypatch.setattr(harness.comet, "_LOADED", {})


def decoder(name: str, **params):
    cls = default_plugins().get("decoder", name)
    return cls(cls.Params.model_validate(params))


def ctx(tmp_path):
    return CellContext(seed=0, workdir=tmp_path, cache_dir=tmp_path)


def one_at_a_time(model_dir, src, mt, ref):
    from harness.comet import inspect_checkpoint
    from harness.comet.scoring import Scorer

    return Scorer(inspect_checkpoint(model_dir), "cpu", "float32").score([src], [mt], None if ref is None else [ref])


@pytest.mark.parametrize("model", [REGRESSION, XCOMET], ids=["regression", "xcomet"])
def test_mbr_with_comet_equals_the_double_loop_and_encodes_each_candidate_once(model, marian, tmp_path, fresh):
    out = decoder("mbr", candidates={"decoder": "beam", "params": BEAM}, utility="comet",
                  utility_params={"checkpoint": str(model), "device": "cpu"}).decode(marian, SOURCES, ctx(tmp_path))
    nbest = decoder("beam", **BEAM).decode(marian, SOURCES, ctx(tmp_path))
    scorer = harness.comet.load_scorer(harness.comet.inspect_checkpoint(model), "cpu")
    for src, hyps, cands in zip(SOURCES, out, nbest):
        texts = [h.text for h in cands]
        assert sorted(h.text for h in hyps) == sorted(set(texts))
        for h in hyps:  # the mean COMET of the candidate against every candidate as pseudo-reference
            naive = sum(one_at_a_time(model, src, h.text, r).scores[0] for r in texts) / len(texts)
            assert h.score == pytest.approx(naive, abs=1e-6)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    distinct = set(SOURCES) | {h.text for hyps in nbest for h in hyps}
    if model == REGRESSION:  # one embedding per distinct text, not one per (candidate, reference) pair
        assert scorer.stats["texts_encoded"] == len(distinct)
    else:  # XCOMET encodes candidate and reference jointly: [mt, src] once per candidate, [mt, ref] and
        # [mt, src, ref] once per distinct pair (N + 2 N^2 per sentence at most: the same pairs recur)
        bound = sum(len(c) + 2 * len(c) ** 2 for c in ({h.text for h in x} for x in nbest))
        assert 0 < scorer.stats["joint_inputs_encoded"] <= bound


def test_qe_rerank_orders_the_nbest_list_by_the_reference_free_score(marian, tmp_path):
    out = decoder("qe_rerank", metric_params={"checkpoint": str(KIWI), "device": "cpu"},
                  candidates={"decoder": "beam", "params": BEAM}).decode(marian, SOURCES, ctx(tmp_path))
    nbest = decoder("beam", **BEAM).decode(marian, SOURCES, ctx(tmp_path))
    moved = 0
    for src, hyps, cands in zip(SOURCES, out, nbest):
        assert [h.text for h in hyps] == sorted(dict.fromkeys(h.text for h in cands),
                                                key=lambda t: -one_at_a_time(KIWI, src, t, None).scores[0])
        for h in hyps:
            assert h.score == one_at_a_time(KIWI, src, h.text, None).scores[0]
            assert h.tokens == next(c.tokens for c in cands if c.text == h.text)
        moved += hyps[0].text != cands[0].text
    assert moved > 0  # the QE model changes some choices of beam search


def test_qe_rerank_with_xcomet_uses_it_without_its_reference(marian, tmp_path):
    out = decoder("qe_rerank", metric_params={"checkpoint": str(XCOMET), "device": "cpu"},
                  candidates={"decoder": "beam", "params": BEAM}).decode(marian, SOURCES[:3], ctx(tmp_path))
    for src, hyps in zip(SOURCES, out):
        assert [h.score for h in hyps] == [one_at_a_time(XCOMET, src, h.text, None).scores[0] for h in hyps]


def test_mbr_and_qe_rerank_run_end_to_end_with_a_relative_checkpoint(tmp_path, marian):
    import shutil

    for d in ("regression", "kiwi", "encoder-xlmr"):
        shutil.copytree(FIXTURE / d, tmp_path / "comet" / d)
    write_translation_files(tmp_path, SOURCES, [s.upper() for s in SOURCES])
    (tmp_path / "model").symlink_to(Path(marian.spec.path))
    (tmp_path / "exp.yaml").write_text(f"""\
name: comet-decoders
models: [{{path: model, label: tiny, device: cpu}}]
benchmarks: [{{name: parallel_text, label: toy, params: {{source: test.en, reference: test.de}}}}]
decoders:
  - {{name: beam, params: {BEAM}}}
  - name: mbr
    label: mbr_comet
    params: {{candidates: {{decoder: beam, params: {BEAM}}}, utility: comet,
              utility_params: {{checkpoint: comet/regression, device: cpu}}}}
  - name: qe_rerank
    params: {{metric_params: {{checkpoint: comet/kiwi, device: cpu}}, candidates: {{decoder: beam, params: {BEAM}}}}}
metrics: [bleu, {{name: comet, label: kiwi, params: {{checkpoint: comet/kiwi, device: cpu}}}}]
reporters: []
""")
    res = run_config(tmp_path / "exp.yaml", tmp_path / "out")
    m = res.metrics.set_index(["decoder", "metric"])["value"]
    assert set(m.index.get_level_values(0)) == {"beam", "mbr_comet", "qe_rerank"}
    # reranking by the very QE model the metric uses picks, per sentence, its best candidate
    assert m["qe_rerank", "kiwi"] >= m["beam", "kiwi"] and m["qe_rerank", "kiwi"] >= m["mbr_comet", "kiwi"]
    assert m["qe_rerank", "kiwi"] > m["beam", "kiwi"]
    from harness.report import analyze
    from harness.results import load_run

    # a labelled metric is told apart from its plugin's title in the reports
    assert [x.title for x in analyze(load_run(tmp_path / "out")).benchmarks[0].metrics] == ["BLEU", "COMET (kiwi)"]
