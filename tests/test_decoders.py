"""Decoders on real (tiny, random) Hugging Face models: the same tokens and scores as
``model.generate()``, n-best lists, batching, generation_config rules, errors, the run output.

The models come from tests/decoding_models.py: a Marian (encoder-decoder) and a GPT-2
(decoder-only) whose outputs end at many different lengths, so batches really shrink while
they are decoded. Every parity test first checks that this is so.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import pytest
from conftest import harness_cli
from decoding_models import SOURCES, build_gpt2_varied, build_marian_varied

from harness.api import CellContext, Hypothesis
from harness.errors import HarnessError
from harness.engines.load import load_generation_model
from harness.models.hf import GenerationModel
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins

MAX_NEW = 16


def _transformers_major() -> int:
    from importlib.metadata import version

    return int(version("transformers").split(".")[0])


TRANSFORMERS_4 = _transformers_major() < 5  # CI also runs this module on the declared floor, 4.55


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared machine idle-spinning OpenMP
    threads make every small op slow; one thread keeps this module fast and its timing stable."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, GenerationModel]:
    import transformers

    transformers.logging.set_verbosity_error()  # "both max_new_tokens and max_length set" on every generate()
    marian = build_marian_varied(tmp_path_factory.mktemp("varied-marian"))
    gpt2 = build_gpt2_varied(tmp_path_factory.mktemp("varied-gpt2"))
    return {"marian": load_generation_model(ModelSpec(path=str(marian), device="cpu")),
            "gpt2": load_generation_model(ModelSpec(path=str(gpt2), device="cpu", prompt_template="{source} ="))}


def ctx(tmp_path, progress=None) -> CellContext:
    kw = {"progress": progress} if progress else {}
    return CellContext(seed=0, workdir=tmp_path, cache_dir=tmp_path, **kw)


def decoder(name: str, **params):
    cls = default_plugins().get("decoder", name)
    return cls(cls.Params(**params))


def until_eos(seq: list[int], gm: GenerationModel) -> list[int]:
    out = []
    for tok in seq:
        out.append(tok)
        if tok in gm.eos_token_ids:
            break
    return out


def generate(gm: GenerationModel, sources, **kw) -> list[list[tuple[list[int], float | None]]]:
    """What a user gets from generate() on the whole padded batch: per source, (tokens, score)."""
    import torch

    ids = gm.encode(sources)
    enc = gm.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
    nrs = kw.get("num_return_sequences", 1)
    with torch.inference_mode():
        out = gm.model.generate(**enc, do_sample=False, max_new_tokens=kw.pop("max_new_tokens", MAX_NEW),
                                return_dict_in_generate=True, output_scores=True, **kw)
    start = 1 if gm.is_encoder_decoder else enc["input_ids"].shape[1]
    seqs = [until_eos(s, gm) for s in out.sequences[:, start:].tolist()]
    scores = out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None else [None] * len(seqs)
    flat = list(zip(seqs, scores))
    return [flat[i * nrs:(i + 1) * nrs] for i in range(len(sources))]


def generate_each(gm: GenerationModel, sources, **kw):
    """generate() one source at a time (no padding at all)."""
    return [generate(gm, [s], **kw)[0] for s in sources]


def assert_same(ours: list[list[Hypothesis]], ref, gm: GenerationModel):
    assert [[h.tokens for h in hyps] for hyps in ours] == [[t for t, _ in r] for r in ref]
    for hyps, r in zip(ours, ref):
        for h, (_, score) in zip(hyps, r):
            if score is not None:
                assert h.score == pytest.approx(score, rel=1e-5, abs=1e-4)
        assert [h.text for h in hyps] == [gm.decode_text(h.tokens) for h in hyps]


def assert_varied(hyps: list[list[Hypothesis]], at_least: int = 4):
    lengths = {len(h[0].tokens) for h in hyps}
    assert len(lengths) >= at_least, f"test model too degenerate: output lengths {lengths}"


# ----------------------------------------------------------------------------- greedy


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_greedy_gives_the_tokens_of_generate(models, kind, tmp_path):
    gm = models[kind]
    ours = decoder("greedy", max_new_tokens=MAX_NEW, batch_size=5).decode(gm, SOURCES, ctx(tmp_path))
    assert_varied(ours)
    assert [[h.tokens for h in hyps] for hyps in ours] == [[t for t, _ in r] for r in generate(gm, SOURCES, num_beams=1)]
    assert all(len(hyps) == 1 and hyps[0].text == gm.decode_text(hyps[0].tokens) for hyps in ours)
    # score: mean log-probability of the chosen tokens (so negative, finite)
    assert all(-50 < hyps[0].score < 0 for hyps in ours)


def set_generation_config(gm: GenerationModel, **settings) -> GenerationModel:
    """A GenerationModel over the same weights with these generation_config settings."""
    gm.model.generation_config = copy.deepcopy(gm.model.generation_config)
    for k, v in settings.items():
        setattr(gm.model.generation_config, k, v)
    return GenerationModel(gm.spec, gm.model, gm.tokenizer, gm.device)


def rule_settings(rule: str, plain: list[list[int]], eos: list[int]) -> dict:
    """generation_config settings for one rule, aimed at the tokens this model actually outputs."""
    from collections import Counter

    common = [t for t, _ in Counter(t for seq in plain for t in seq if t not in eos).most_common(4)]
    pairs = [p for p, _ in Counter(tuple(seq[i:i + 2]) for seq in plain for i in range(len(seq) - 1)
                                   if eos[0] not in seq[i:i + 2]).most_common(3)]
    firsts = [seq[0] for seq in plain if seq and seq[0] not in eos][:3]
    return {
        "min_new_tokens": dict(min_new_tokens=6),
        "min_length": dict(min_length=12),
        "no_repeat_ngram_size": dict(no_repeat_ngram_size=2),
        "bad_words_single": dict(bad_words_ids=[[t] for t in common[:3]] + [[eos[0]]]),  # a lone EOS is ignored
        "bad_words_sequence": dict(bad_words_ids=[list(p) for p in pairs]),
        "suppress_tokens": dict(suppress_tokens=common),
        "begin_suppress_tokens": dict(begin_suppress_tokens=firsts + eos),
        "repetition_penalty": dict(repetition_penalty=1.8),
        "forced_bos_token_id": dict(forced_bos_token_id=10),
        "forced_eos_token_id": dict(forced_eos_token_id=eos[0]),
        "exponential_decay_length_penalty": dict(exponential_decay_length_penalty=(3, 1.5)),
        "renormalize_and_remove_invalid": dict(renormalize_logits=True, remove_invalid_values=True,
                                               bad_words_ids=[[common[0]]]),
    }[rule]


RULES = ["min_new_tokens", "min_length", "no_repeat_ngram_size", "bad_words_single", "bad_words_sequence",
         "suppress_tokens", "begin_suppress_tokens", "repetition_penalty", "forced_bos_token_id",
         "forced_eos_token_id", "exponential_decay_length_penalty", "renormalize_and_remove_invalid"]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_generation_config_rules_are_honoured_like_generate(models, kind, rule, tmp_path):
    base = models[kind]
    saved = base.model.generation_config
    plain = [[t for t, _ in r] for r in generate(base, SOURCES, num_beams=1)]
    try:
        gm = set_generation_config(base, **rule_settings(rule, [p[0] for p in plain], base.eos_token_ids))
        # Decoder-only: our rules see each prompt without padding; generate() counts the padding
        # of its batch in min_length and no_repeat_ngram_size (transformers 4.x also penalises the
        # pad token of a padded prompt for repetition_penalty), so compare with unpadded calls.
        padding_matters = not gm.is_encoder_decoder and rule in ("min_length", "no_repeat_ngram_size") + (
            ("repetition_penalty",) if TRANSFORMERS_4 else ())
        reference = generate_each if padding_matters else generate
        ref = reference(gm, SOURCES, num_beams=1)
        ours = decoder("greedy", max_new_tokens=MAX_NEW, batch_size=5).decode(gm, SOURCES, ctx(tmp_path))
        assert [[h.tokens for h in hyps] for hyps in ours] == [[t for t, _ in r] for r in ref]
        beam_ref = reference(gm, SOURCES[:6], num_beams=3, num_return_sequences=2)
        beam = decoder("beam", num_beams=3, num_return_sequences=2, max_new_tokens=MAX_NEW).decode(gm, SOURCES[:6], ctx(tmp_path))
        assert_same(beam, beam_ref, gm)
    finally:
        base.model.generation_config = saved
    # the rule must have changed something, or this test proves nothing
    changed = plain != [[h.tokens for h in hyps] for hyps in ours] or \
        [[t for t, _ in r] for r in generate(base, SOURCES[:6], num_beams=3, num_return_sequences=2)] != \
        [[h.tokens for h in hyps] for hyps in beam]
    # (Marian's config already forces EOS; generate() forces a BOS after a decoder-only prompt only
    # when the prompt is one token long)
    no_op = {("marian", "forced_eos_token_id"), ("gpt2", "forced_bos_token_id")}
    assert changed or (kind, rule) in no_op, f"{rule} changed no output"


def test_decoder_parameters_override_the_generation_config(models, tmp_path):
    gm = models["marian"]
    ours = decoder("greedy", max_new_tokens=MAX_NEW, min_new_tokens=5, no_repeat_ngram_size=2).decode(gm, SOURCES, ctx(tmp_path))
    ref = generate(gm, SOURCES, num_beams=1, min_new_tokens=5, no_repeat_ngram_size=2)
    assert [[h.tokens for h in hyps] for hyps in ours] == [[t for t, _ in r] for r in ref]
    assert min(len(h[0].tokens) for h in ours) >= 5


def test_unsupported_generation_config_setting_is_refused_by_name(models, tmp_path):
    base = models["marian"]
    saved = base.model.generation_config
    try:
        gm = set_generation_config(base, sequence_bias=[[[5], 2.0]])
        with pytest.raises(HarnessError, match=r"generation_config sets sequence_bias=.*Supported settings: min_length"):
            decoder("greedy").decode(gm, SOURCES[:2], ctx(tmp_path))
    finally:
        base.model.generation_config = saved


# ----------------------------------------------------------------------------- beam


GRID = list(itertools.product([1.0, 2.0, -0.5], [False, True, "never"], [1, 3]))


@pytest.mark.parametrize("length_penalty,early_stopping,nrs", GRID, ids=[f"lp{a}-es{b}-n{c}" for a, b, c in GRID])
@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_beam_gives_the_hypotheses_and_scores_of_generate(models, kind, length_penalty, early_stopping, nrs, tmp_path):
    gm = models[kind]
    sources = SOURCES[:8]
    ours = decoder("beam", num_beams=3, length_penalty=length_penalty, early_stopping=early_stopping,
                   num_return_sequences=nrs, max_new_tokens=MAX_NEW, batch_size=3).decode(gm, sources, ctx(tmp_path))
    if length_penalty == 1.0:  # a strong length penalty rightly runs every beam to max_new_tokens
        assert_varied(ours)
    ref = generate(gm, sources, num_beams=3, length_penalty=length_penalty, early_stopping=early_stopping,
                   num_return_sequences=nrs)
    assert_same(ours, ref, gm)
    assert all(len(h) == nrs and [x.score for x in h] == sorted((x.score for x in h), reverse=True) for h in ours)


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_beam_with_five_beams_and_default_settings(models, kind, tmp_path):
    gm = models[kind]
    ours = decoder("beam", num_beams=5, num_return_sequences=5, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    assert_same(ours, generate(gm, SOURCES, num_beams=5, num_return_sequences=5), gm)


@pytest.mark.parametrize("name,params", [("beam", {"num_beams": 4, "num_return_sequences": 4}),
                                         ("diverse_beam", {"num_beams": 4, "num_groups": 2, "num_return_sequences": 4,
                                                           "diversity_strength": 1.0})])
@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_a_batch_gives_what_one_sentence_at_a_time_gives(models, kind, name, params, tmp_path):
    gm = models[kind]
    batched = decoder(name, batch_size=12, max_new_tokens=MAX_NEW, **params).decode(gm, SOURCES, ctx(tmp_path))
    single = decoder(name, batch_size=1, max_new_tokens=MAX_NEW, **params).decode(gm, SOURCES, ctx(tmp_path))
    assert [[h.tokens for h in hyps] for hyps in batched] == [[h.tokens for h in hyps] for hyps in single]
    for a, b in zip(batched, single):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_one_beam_is_greedy(models, kind, tmp_path):
    gm = models[kind]
    beam = decoder("beam", num_beams=1, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    greedy = decoder("greedy", max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    assert [h[0].tokens for h in beam] == [h[0].tokens for h in greedy]


# ----------------------------------------------------------------------------- diverse beam


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_diverse_beam_with_one_group_is_beam_search(models, kind, tmp_path):
    gm = models[kind]
    diverse = decoder("diverse_beam", num_beams=4, num_groups=1, diversity_strength=2.0, num_return_sequences=4,
                      max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    beam = decoder("beam", num_beams=4, num_return_sequences=4, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    assert [[(h.tokens, h.score) for h in x] for x in diverse] == [[(h.tokens, h.score) for h in x] for x in beam]


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_without_diversity_the_groups_are_identical(models, kind, tmp_path):
    """diversity_strength 0 (which 4.x itself refuses) runs G identical groups: every hypothesis
    G times, whatever G is. Each group is 4.x's beam search with B/G beams, whose stopping rule
    is not `beam`'s (transformers v5), so it is not compared with `beam` (docs/beam_search.md)."""
    gm = models[kind]

    def lists(num_beams, num_groups):
        out = decoder("diverse_beam", num_beams=num_beams, num_groups=num_groups, diversity_strength=0.0,
                      num_return_sequences=num_beams, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
        return [[(h.tokens, h.score) for h in x] for x in out]

    three, two = lists(6, 3), lists(4, 2)
    for t, w in zip(three, two):
        assert [tok for tok, _ in t] == [tok for tok, _ in w[::2] for _ in range(3)]
        assert [tok for tok, _ in w] == [tok for tok, _ in w[::2] for _ in range(2)]
        # identical rows at different batch positions may round differently in the last bits
        assert [s for _, s in t] == pytest.approx([s for _, s in w[::2] for _ in range(3)], rel=1e-5)


@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_diversity_strength_makes_the_nbest_list_more_diverse(models, kind, tmp_path):
    gm = models[kind]

    def distinct_first_tokens(strength):
        out = decoder("diverse_beam", num_beams=6, num_groups=3, diversity_strength=strength, num_return_sequences=6,
                      max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
        return sum(len({tuple(h.tokens[:2]) for h in hyps}) for hyps in out), out

    plain, _ = distinct_first_tokens(0.0)
    diverse, out = distinct_first_tokens(5.0)
    assert diverse > plain
    # the penalty is part of the score (as in transformers 4.x), and lists stay sorted
    assert all([h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True) for hyps in out)


# ----------------------------------------------------------------------------- every decoder


DECODERS = {"greedy": {}, "beam": {"num_beams": 3, "num_return_sequences": 2},
            "diverse_beam": {"num_beams": 4, "num_groups": 2, "num_return_sequences": 3}}


def test_every_builtin_decoder_is_covered_here():
    assert set(DECODERS) <= set(default_plugins().registry("decoder").names())


@pytest.mark.parametrize("name", list(DECODERS))
@pytest.mark.parametrize("kind", ["marian", "gpt2"])
def test_decoder_contract(models, kind, name, tmp_path):
    gm = models[kind]
    calls = []
    out = decoder(name, max_new_tokens=MAX_NEW, batch_size=4, **DECODERS[name]).decode(
        gm, SOURCES, ctx(tmp_path, lambda done, total: calls.append((done, total))))
    n = DECODERS[name].get("num_return_sequences", 1)
    assert len(out) == len(SOURCES) and all(len(h) == n for h in out)
    for hyps in out:
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert all(isinstance(h.text, str) and h.text == gm.decode_text(h.tokens) for h in hyps)
        assert all(1 <= len(h.tokens) <= MAX_NEW and math.isfinite(h.score) for h in hyps)
    assert calls == [(i, len(SOURCES)) for i in range(1, len(SOURCES) + 1)]
    again = decoder(name, max_new_tokens=MAX_NEW, batch_size=7, **DECODERS[name]).decode(gm, SOURCES, ctx(tmp_path))
    assert [[h.tokens for h in x] for x in again] == [[h.tokens for h in x] for x in out]


def test_max_tokens_caps_batches_without_changing_outputs(models, tmp_path):
    gm = models["marian"]
    capped = decoder("beam", num_beams=3, max_tokens=40, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    free = decoder("beam", num_beams=3, max_new_tokens=MAX_NEW).decode(gm, SOURCES, ctx(tmp_path))
    assert [h[0].tokens for h in capped] == [h[0].tokens for h in free]


def test_batches_are_sorted_by_length_and_capped():
    from harness.decoding import plan_batches

    assert plan_batches([3, 9, 1, 9, 5], batch_size=2) == [[1, 3], [4, 0], [2]]
    # max_tokens: sentences x rows x longest input <= 20
    assert plan_batches([3, 9, 1, 9, 5], batch_size=8, max_tokens=20, rows_per_sentence=1) == [[1, 3], [4, 0, 2]]
    assert plan_batches([3, 9, 1, 9, 5], batch_size=8, max_tokens=20, rows_per_sentence=2) == [[1], [3], [4, 0], [2]]


def test_empty_decoder_only_prompt_is_a_data_error(models, tmp_path):
    gm = models["gpt2"]
    bare = GenerationModel(gm.spec.model_copy(update={"prompt_template": None}), gm.model, gm.tokenizer, gm.device)
    bare.encode = lambda sources: [[5, 6] if s else [] for s in sources]
    with pytest.raises(HarnessError, match=r"source #2 \(''\) is empty after tokenization"):
        decoder("greedy").decode(bare, ["the cat", ""], ctx(tmp_path))


@pytest.fixture(scope="module")
def large_vocab_marian(tmp_path_factory) -> GenerationModel:
    path = build_marian_varied(tmp_path_factory.mktemp("large-vocab-marian"), extra_words=6000)
    return load_generation_model(ModelSpec(path=str(path), device="cpu"))


@pytest.mark.parametrize("beams,nrs,length_penalty", [(5, 5, 1.0), (3, 2, -0.5), (8, 1, 2.0)])
def test_a_large_vocabulary_decodes_like_generate(large_vocab_marian, beams, nrs, length_penalty, tmp_path):
    """6,000+ tokens per row: beam search picks its candidates through the chunked top-k
    (harness/decoding/search.top_k), which only rows of thousands of tokens take."""
    from harness.decoding import search as _search

    gm = large_vocab_marian
    assert gm.model.config.vocab_size * beams >= 8 * beams * _search.TOPK_CHUNK
    ours = decoder("beam", num_beams=beams, num_return_sequences=nrs, length_penalty=length_penalty,
                   max_new_tokens=MAX_NEW, batch_size=4).decode(gm, SOURCES, ctx(tmp_path))
    # 6,000 random extra rows make near-ties common: the model's outputs (built with MKL, whose
    # last bits depend on memory alignment) vary between processes, e.g. 5 lengths alone, 3 in
    # CI's full run. Sentences finishing at different steps is what matters here.
    assert_varied(ours, at_least=2)
    assert_same(ours, generate(gm, SOURCES, num_beams=beams, num_return_sequences=nrs, length_penalty=length_penalty), gm)


def test_multi30k_sentences_decode_like_generate(models, tmp_path):
    from conftest import shared_data

    path = shared_data("multi30k", "test_2016_flickr.en")
    sources = path.read_text(encoding="utf-8").splitlines()[:16]
    gm = models["marian"]
    ours = decoder("beam", num_beams=3, num_return_sequences=2, max_new_tokens=MAX_NEW, batch_size=6).decode(
        gm, sources, ctx(tmp_path))
    assert_same(ours, generate(gm, sources, num_beams=3, num_return_sequences=2), gm)


# ----------------------------------------------------------------------------- config errors and run outputs


CONFIG = """\
name: nbest
models: [{path: ./model, label: tiny}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders:
  - name: DECODER
    params: PARAMS
metrics: [bleu, distinct_1, distinct_2, self_bleu, oracle_bleu, oracle_chrf]
"""


@pytest.fixture
def project(tmp_path, translation_files, models):
    (tmp_path / "model").symlink_to(Path(models["marian"].spec.path))
    return tmp_path


@pytest.mark.parametrize("decoder_name,params,expected", [
    ("diverse_beam", "{num_beams: 6, num_groups: 4}",
     "exp.yaml:9: decoders[0].params: num_groups (4) must divide num_beams (6); allowed num_groups for num_beams=6: "
     "1, 2, 3, 6"),
    ("beam", "{num_beams: 2, num_return_sequences: 3}",
     "exp.yaml:9: decoders[0].params: num_return_sequences (3) must be <= num_beams (2); allowed "
     "num_return_sequences: 1..2"),
    ("beam", "{early_stopping: sometimes}", "decoders[0].params.early_stopping"),
])
def test_bad_search_parameters_are_config_errors(project, decoder_name, params, expected):
    (project / "exp.yaml").write_text(CONFIG.replace("DECODER", decoder_name).replace("PARAMS", params))
    res = harness_cli(project, "validate", "exp.yaml")
    assert res.returncode == 2
    assert expected in res.stderr
    assert "Traceback" not in res.stderr


def test_nbest_lists_and_diversity_metrics_land_in_the_run_outputs(project):
    params = "{num_beams: 4, num_groups: 2, num_return_sequences: 3, diversity_strength: 1.0, max_new_tokens: 12}"
    (project / "exp.yaml").write_text(CONFIG.replace("DECODER", "diverse_beam").replace("PARAMS", params))
    res = harness_cli(project, "run", "exp.yaml", "-o", "out")
    assert res.returncode == 0, res.stderr
    pred = next((project / "out" / "predictions").iterdir())
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(rows) == 4
    for r in rows:
        assert len(r["nbest"]) == 3
        assert r["nbest"][0]["text"] == r["output"] and r["nbest"][0]["score"] == r["score"]
        scores = [h["score"] for h in r["nbest"]]
        assert scores == sorted(scores, reverse=True)
    import pandas as pd

    metrics = pd.read_csv(project / "out" / "metrics.csv")
    assert set(metrics.metric) == {"bleu", "distinct_1", "distinct_2", "self_bleu", "oracle_bleu", "oracle_chrf"}
    value = dict(zip(metrics.metric, metrics.value))
    assert 0 < value["distinct_1"] <= 100 and value["oracle_bleu"] >= value["bleu"]
