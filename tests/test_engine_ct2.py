"""`engine: ctranslate2`: parity with the harness's own decoders, conversion cache, validation errors.

The tiny Marian here has the OPUS-MT layout CTranslate2's Marian converter expects (``<pad>`` last,
used as decoder start, banned by ``bad_words_ids``) and a calibrated EOS, so sentences end at
their own lengths. Tests that need CTranslate2 skip when it is not installed.
"""
from __future__ import annotations

import os

import random
from pathlib import Path

import pytest

from decoding_models import FAMILIES, SOURCES, build_family, calibrate_eos
from harness.api import CellContext
from harness.experiment.load import load_experiment_dict
from harness.errors import ConfigError, ConfigErrors
from harness.engines.load import load_generation_model
from harness.models.spec import ModelSpec
from harness.plugins import default_plugins
from harness.testing import WORDS, run_config


def build_opus_layout_marian(path: Path, seed: int = 1) -> Path:
    """Tiny Marian with OPUS-MT's special tokens: </s>=0 (EOS), <unk>=1, words, <pad> last."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    vocab = {"</s>": 0, "<unk>": 1}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    pad = vocab["<pad>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)
    cfg = MarianConfig(vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                       decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                       pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
                       bos_token_id=0, scale_embedding=True, init_std=0.1, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    rnd = random.Random(seed)
    texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 12))) for _ in range(64)]
    enc = fast(texts, padding=True, return_tensors="pt")
    calibrate_eos(model, enc["input_ids"], enc["attention_mask"], eos=0)
    # OPUS-MT's settings: pad banned, and logits renormalised after the ban, so the log-probabilities
    # are over the vocabulary without <pad>, as in CTranslate2 (whose converter drops it)
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.renormalize_logits = True
    model.generation_config.max_length = 64
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def opus_marian(tmp_path_factory) -> Path:
    return build_opus_layout_marian(tmp_path_factory.mktemp("opus-marian"))


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    # conversions go to a test cache, never the user's ~/.cache
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.getbasetemp() / "harness-cache"))


def decode(gm, decoder: str, sources=SOURCES, seed: int = 0, **params):
    cls = default_plugins().get("decoder", decoder)
    ctx = CellContext(seed=seed, workdir=Path("."), cache_dir=Path("."))
    return cls(cls.Params(**params)).decode(gm, list(sources), ctx)


@pytest.fixture(scope="module")
def both(opus_marian, tmp_path_factory):
    pytest.importorskip("ctranslate2")
    import os

    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.getbasetemp() / "harness-cache")
    ours = load_generation_model(ModelSpec(path=str(opus_marian), local=True, device="cpu"))
    ct2 = load_generation_model(ModelSpec(path=str(opus_marian), local=True, device="cpu", engine="ctranslate2"))
    return ours, ct2


@pytest.mark.parametrize("num_beams", [2, 5])
def test_harness_beam_matches_generate_on_a_renormalising_model(opus_marian, num_beams):
    # OPUS-MT's rules (pad banned, then renormalised) let beam search skip its own log-softmax
    # (harness.decoding.search._BeamChunk.renormalized_by_rules): the hypotheses and scores stay generate()'s
    import torch

    ours = load_generation_model(ModelSpec(path=str(opus_marian), local=True, device="cpu"))
    hyps = decode(ours, "beam", num_beams=num_beams, max_new_tokens=64)
    batch = ours.tokenizer(list(SOURCES), return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = ours.model.generate(**batch, num_beams=num_beams, do_sample=False, max_new_tokens=64,
                                  output_scores=True, return_dict_in_generate=True)
    for h, seq, score in zip(hyps, out.sequences[:, 1:].tolist(), out.sequences_scores.tolist()):
        assert h[0].tokens == seq[:seq.index(0) + 1]
        assert h[0].score == pytest.approx(score, rel=1e-5, abs=1e-5)


def test_greedy_gives_the_same_tokens_as_the_harness(both):
    ours, ct2 = both
    a, b = decode(ours, "greedy"), decode(ct2, "greedy")
    assert [h[0].tokens for h in b] == [h[0].tokens for h in a]
    assert len({len(h[0].tokens) for h in a}) > 3  # sentences end at different steps, all with EOS
    assert all(h[0].tokens[-1] == 0 for h in a)
    # both scores are the mean log-probability per token
    for x, y in zip(a, b):
        assert y[0].score == pytest.approx(x[0].score, abs=1e-4)
    assert [h[0].text for h in b] == [h[0].text for h in a]


@pytest.mark.parametrize("num_beams", [2, 3, 4, 5])
def test_beam_gives_the_same_tokens_as_the_harness_with_early_stopping_true(both, num_beams):
    # CTranslate2 stops a sentence once num_beams hypotheses are finished: generate()'s early_stopping=True
    ours, ct2 = both
    a = decode(ours, "beam", num_beams=num_beams, early_stopping=True, num_return_sequences=2)
    b = decode(ct2, "beam", num_beams=num_beams, num_return_sequences=2)
    assert [x[0].tokens for x in b] == [x[0].tokens for x in a]
    # the n-best tails may differ: which ending candidates may join the finished list is engine-specific
    assert all(len(x) == 2 and x[0].score >= x[1].score for x in b)
    for x, y in zip(a, b):
        assert y[0].score == pytest.approx(x[0].score, abs=1e-4)


def test_with_the_default_early_stopping_the_harness_searches_on_and_only_finds_better(both):
    # early_stopping=False (the default) keeps a sentence running while a running beam could still
    # win; CTranslate2 cannot: where the two differ, the harness's hypothesis scores higher
    ours, ct2 = both
    a = decode(ours, "beam", num_beams=5)
    b = decode(ct2, "beam", num_beams=5)
    differ = [(x[0], y[0]) for x, y in zip(a, b) if x[0].tokens != y[0].tokens]
    assert 0 < len(differ) <= 2
    for x, y in differ:
        assert x.score > y.score


def test_a_token_budget_batches_by_tokens_and_decodes_the_same(both, monkeypatch):
    _, ct2 = both
    engine = ct2.search_engine
    calls = []

    class Spy:  # the C++ translator cannot be patched; a proxy records what it is asked
        def translate_batch(self, *args, **kw):
            calls.append((kw.get("batch_type"), kw.get("max_batch_size")))
            return real.translate_batch(*args, **kw)

    real = engine.translator
    whole = decode(ct2, "beam", num_beams=3, early_stopping=True)
    monkeypatch.setattr(engine, "translator", Spy())
    budget = decode(ct2, "beam", num_beams=3, early_stopping=True, max_tokens=60)
    assert calls == [("tokens", 20)]  # 60 tokens / 3 beams of source tokens per batch
    assert [h[0].tokens for h in budget] == [h[0].tokens for h in whole]


def test_at_the_length_limit_ct2_does_not_force_eos(both):
    # generate() (and the harness) force EOS (forced_eos_token_id) into the last allowed position;
    # CTranslate2 stops there with whatever token won. The documented difference, pinned.
    ours, ct2 = both
    long = [SOURCES[5]]  # 15 words: its translation is longer than 3 tokens
    a = decode(ours, "greedy", long, max_new_tokens=3)[0][0].tokens
    b = decode(ct2, "greedy", long, max_new_tokens=3)[0][0].tokens
    assert len(a) == len(b) == 3
    assert a[-1] == 0 and b[-1] != 0
    assert a[:2] == b[:2]


def test_sampling_is_reproducible_and_independent_of_batch_size(both):
    _, ct2 = both
    one = decode(ct2, "sample", SOURCES[:4], seed=3, num_samples=3, batch_size=1)
    four = decode(ct2, "sample", SOURCES[:4], seed=3, num_samples=3, batch_size=4)
    assert [[h.tokens for h in x] for x in one] == [[h.tokens for h in x] for x in four]
    other = decode(ct2, "sample", SOURCES[:4], seed=4, num_samples=3)
    assert [[h.tokens for h in x] for x in other] != [[h.tokens for h in x] for x in one]
    assert all(len({tuple(h.tokens) for h in x}) > 1 for x in one)  # three draws, not one copied
    cold = decode(ct2, "sample", SOURCES[:4], temperature=0.0)
    assert [h[0].tokens for h in cold] == [h[0].tokens for h in decode(ct2, "greedy", SOURCES[:4])]


def test_conversion_is_cached_by_content(opus_marian, tmp_path):
    pytest.importorskip("ctranslate2")
    import shutil

    from harness.engines.ctranslate2 import cache_root, converted_dir

    spec = ModelSpec(path=str(opus_marian), local=True, device="cpu", engine="ctranslate2")
    first = converted_dir(spec)
    stamp = (first / "model.bin").stat().st_mtime_ns
    # another compute type and another label use the same conversion
    again = converted_dir(spec.model_copy(update={"compute_type": "int8", "label": "x"}))
    assert again == first and (first / "model.bin").stat().st_mtime_ns == stamp
    # a copy elsewhere is the same content: same conversion; edited weights: a new one
    copy = tmp_path / "copy"
    shutil.copytree(opus_marian, copy)
    assert converted_dir(ModelSpec(path=str(copy), local=True, device="cpu", engine="ctranslate2")) == first
    import json

    cfg = json.loads((copy / "generation_config.json").read_text())
    cfg["max_length"] = 32
    (copy / "generation_config.json").write_text(json.dumps(cfg))
    edited = converted_dir(ModelSpec(path=str(copy), local=True, device="cpu", engine="ctranslate2"))
    assert edited != first and (edited / "model.bin").is_file()
    assert not [p for p in cache_root().iterdir() if p.name.startswith(".")]  # no temporary leftovers
    umask = os.umask(0)
    os.umask(umask)
    assert first.stat().st_mode & 0o777 == 0o777 & ~umask, "the converted model follows the umask like other files"


def test_a_run_with_ct2_int8_records_its_precision(opus_marian, tmp_path, translation_files):
    pytest.importorskip("ctranslate2")
    src, ref = translation_files
    res = run_config({"name": "ct2", "models": [{"path": str(opus_marian), "engine": "ctranslate2",
                                                  "compute_type": "int8"}],
                      "benchmarks": [{"name": "parallel_text", "params": {"source": str(src), "reference": str(ref)}}],
                      "decoders": ["greedy", {"name": "beam", "params": {"num_beams": 3, "num_return_sequences": 2}}]},
                     tmp_path / "out")
    assert set(res.metrics["precision"]) == {"ct2:int8"}
    assert len(res.metrics.query("metric == 'bleu'")) == 2
    beam_key = res.metrics.query("decoder.str.startswith('beam')")["cell"].iloc[0]
    rows = res.predictions(beam_key)
    assert len(rows) == 4 and all(len(r["nbest"]) == 2 for r in rows)
    assert all(r["nbest"][0]["score"] >= r["nbest"][1]["score"] for r in rows)


def config(model: dict, src, ref, decoders) -> dict:
    return {"name": "t", "models": [model],
            "benchmarks": [{"name": "parallel_text", "params": {"source": str(src), "reference": str(ref)}}],
            "decoders": decoders}


def errors(cfg) -> list[str]:
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load_experiment_dict(cfg)
    return str(info.value).splitlines()


def test_diverse_beam_is_refused_at_validation_naming_the_decoders_ct2_runs(opus_marian, translation_files):
    pytest.importorskip("ctranslate2")
    src, ref = translation_files
    lines = errors(config({"path": str(opus_marian), "engine": "ctranslate2"}, src, ref,
                          ["greedy", {"name": "diverse_beam", "params": {"num_beams": 4, "num_groups": 2}}]))
    assert lines == ["<dict>: decoders[1].name: decoder 'diverse_beam' cannot run on model 'opus-marian0' (engine "
                     "ctranslate2: CTranslate2 has no diverse (group) beam search); engine ctranslate2 runs: beam, "
                     "greedy, sample"]


def test_engine_mistakes_are_one_line_errors(opus_marian, translation_files):
    pytest.importorskip("ctranslate2")
    src, ref = translation_files
    assert errors(config({"path": str(opus_marian), "engine": "ctranslate2"}, src, ref,
                         [{"name": "sample", "params": {"epsilon": 0.01}}])) == [
        "<dict>: decoders[0].params.epsilon: model 'opus-marian0' (engine ctranslate2) cannot honour epsilon=0.01: "
        "CTranslate2 has no epsilon sampling (use top_k / top_p); allowed: 0.0"]
    assert errors(config({"path": str(opus_marian), "engine": "ctranslate2"}, src, ref,
                         [{"name": "beam", "params": {"early_stopping": "never"}}])) == [
        "<dict>: decoders[0].params.early_stopping: model 'opus-marian0' (engine ctranslate2) cannot honour "
        "early_stopping='never': CTranslate2 stops a sentence once num_beams hypotheses are finished "
        "(early_stopping: true); allowed: null, true"]
    assert errors(config({"path": str(opus_marian), "engine": "ctranslate2", "dtype": "int8"}, src, ref, ["greedy"])) == [
        "<dict>: models[0]: engine ctranslate2 takes its precision from compute_type, not dtype; set compute_type: "
        "int8 and leave dtype out"]
    assert errors(config({"path": str(opus_marian), "engine": "ct2"}, src, ref, ["greedy"]))[0].startswith(
        "<dict>: models[0].engine: Input should be 'transformers' or 'ctranslate2' (got 'ct2')")
    # a compute type this machine's CTranslate2 cannot run is refused before any cell starts
    import ctranslate2

    cpu = sorted(ctranslate2.get_supported_compute_types("cpu"))
    assert "float16" not in cpu and ctranslate2.get_cuda_device_count() == 0  # this machine: CPU only
    assert errors(config({"path": str(opus_marian), "engine": "ctranslate2", "compute_type": "float16"}, src, ref,
                         ["greedy"])) == [
        f"<dict>: models[0].compute_type: float16 is not available on cpu here (CTranslate2 {ctranslate2.__version__}); "
        f"allowed: auto, {', '.join(cpu)}"]
    load_experiment_dict(config({"path": str(opus_marian), "engine": "ctranslate2", "compute_type": cpu[-1]}, src,
                                ref, ["greedy"]))  # one it can run passes


@pytest.fixture(scope="module")
def pad_first(tmp_path_factory):
    """A Marian laid out as the ones this harness trains: <pad> = decoder start = id 0, not banned,
    no renormalisation, EOS bias fitted, and a non-zero <pad> embedding row (a trained model's tied
    output row learns, so it is never the zero vector CTranslate2's Marian loader starts from)."""
    pytest.importorskip("ctranslate2")
    import torch
    from decoding_models import build_marian_varied
    from transformers import MarianMTModel

    path = build_marian_varied(tmp_path_factory.mktemp("pad-first"))
    model = MarianMTModel.from_pretrained(path)
    row = torch.randn(model.config.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for emb in {id(e): e for e in (model.model.shared, model.model.encoder.embed_tokens,
                                       model.model.decoder.embed_tokens)}.values():
            emb.weight[0] = row
    model.save_pretrained(path)
    assert torch.equal(MarianMTModel.from_pretrained(path).get_decoder().embed_tokens.weight[0], row)
    ours = load_generation_model(ModelSpec(path=str(path), local=True, device="cpu"))
    ct2 = load_generation_model(ModelSpec(path=str(path), local=True, device="cpu", engine="ctranslate2"))
    return ours, ct2


def test_a_marian_whose_pad_is_not_last_keeps_its_vocabulary_and_start_token(pad_first):
    import json

    ours, ct2 = pad_first
    config = json.loads((ct2.search_engine.path / "config.json").read_text(encoding="utf-8"))
    assert config["decoder_start_token"] == "<pad>"
    assert len(ct2.search_engine.vocab) == ours.model.config.vocab_size  # no row dropped
    a, b = decode(ours, "greedy"), decode(ct2, "greedy")
    assert [h[0].tokens for h in b] == [h[0].tokens for h in a]
    assert len({len(h[0].tokens) for h in a}) > 3
    for x, y in zip(a, b):
        assert y[0].score == pytest.approx(x[0].score, abs=1e-4)
    a = decode(ours, "beam", num_beams=4, early_stopping=True)
    b = decode(ct2, "beam", num_beams=4)
    assert [x[0].tokens for x in b] == [x[0].tokens for x in a]


def test_an_opus_layout_marian_still_converts_with_ctranslate2s_own_loader(both, pad_first):
    from ctranslate2.converters import transformers as ct2t

    _, ct2 = both
    assert "<pad>" not in ct2.search_engine.vocab  # dropped, as CTranslate2's Marian loader does
    assert type(ct2t._MODEL_LOADERS["MarianConfig"]) is ct2t.MarianMTLoader  # the registry is restored


def test_missing_ctranslate2_is_named_with_its_install_command(opus_marian, translation_files, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a))
    src, ref = translation_files
    assert errors(config({"path": str(opus_marian), "engine": "ctranslate2"}, src, ref, ["greedy"])) == [
        "<dict>: models[0].engine: engine ctranslate2 needs the ctranslate2 package, which is not installed: "
        "pip install \"nlp-eval-harness[ct2]\""]


# ----------------------------------------------------------------------------- other model families


@pytest.mark.parametrize("kind", FAMILIES)
def test_other_families_convert_to_what_transformers_computes(kind, tmp_path):
    """CTranslate2's converters read some of a model's computation from config keys transformers 5
    no longer writes or no longer means (BART-family norm placement, T5's output scaling, M2M100's
    position offset, mBART's start token); converted with those points fixed, greedy and beam give
    the harness's tokens and scores, and the conversion records how close it came."""
    pytest.importorskip("ctranslate2")
    import json

    path = build_family(kind, tmp_path / kind)
    ours = load_generation_model(ModelSpec(path=str(path), local=True, device="cpu"))
    ct2 = load_generation_model(ModelSpec(path=str(path), local=True, device="cpu", engine="ctranslate2"))
    check = json.loads((ct2.search_engine.path / "harness-check.json").read_text())
    assert check["max_logprob_gap"] < 1e-4
    for name, params in [("greedy", {}), ("beam", {"num_beams": 3, "early_stopping": True})]:
        a, b = decode(ours, name, max_new_tokens=20, **params), decode(ct2, name, max_new_tokens=20, **params)
        assert [h[0].tokens for h in b] == [h[0].tokens for h in a]
        for x, y in zip(a, b):
            assert y[0].score == pytest.approx(x[0].score, abs=1e-4)


def test_a_conversion_that_computes_something_else_is_refused_in_one_line(tmp_path, monkeypatch):
    """With CTranslate2's own loaders, a T5 whose output scaling is off (transformers 5's switch)
    is converted with the scaling on: the greedy tokens may even agree, every log-probability is
    off. The conversion's own check refuses it, and nothing is cached."""
    pytest.importorskip("ctranslate2")
    from harness.engines import ct2_conversion
    from harness.errors import ModelLoadError

    monkeypatch.setattr(ct2_conversion, "corrected_loaders", lambda config, keep_pad=False: {})
    path = build_family("t5", tmp_path / "t5", seed=2)  # not a model another test converted (and cached)
    cached = set(ct2_conversion.cache_root().iterdir()) if ct2_conversion.cache_root().is_dir() else set()
    with pytest.raises(ModelLoadError) as e:
        load_generation_model(ModelSpec(path=str(path), local=True, device="cpu", engine="ctranslate2"))
    message = str(e.value)
    assert message.startswith(f"model '{path}': CTranslate2 ") and "\n" not in message
    assert "conversion of this t5 model does not compute what transformers computes (teacher-forced " \
           "log-probabilities differ by up to " in message
    assert message.endswith(", allowed 0.01); use engine: transformers")
    assert set(ct2_conversion.cache_root().iterdir()) == cached  # neither a conversion nor a temporary leftover


def test_a_model_ctranslate2_cannot_convert_is_one_line(tmp_path, monkeypatch):
    """CTranslate2's BART loader reads normalize_before, a key only legacy configs carry."""
    pytest.importorskip("ctranslate2")
    from harness.engines import ct2_conversion
    from harness.errors import ModelLoadError

    monkeypatch.setattr(ct2_conversion, "corrected_loaders", lambda config, keep_pad=False: {})
    path = build_family("bart", tmp_path / "bart", seed=2)
    with pytest.raises(ModelLoadError, match=r"^model '.*bart' cannot be converted for engine ctranslate2: "
                                             r"AttributeError: .*normalize_before.*; use engine: transformers$"):
        load_generation_model(ModelSpec(path=str(path), local=True, device="cpu", engine="ctranslate2"))


def test_the_families_validation_accepts_are_the_ones_the_installed_ctranslate2_converts():
    pytest.importorskip("ctranslate2")
    from ctranslate2.converters import transformers as ct2t
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES as seq2seq

    from harness.engines import CT2_SEQ2SEQ_TYPES

    by_class = {cls: model_type for model_type, cls in CONFIG_MAPPING_NAMES.items()}
    converted = {by_class[name] for name in ct2t._MODEL_LOADERS if by_class.get(name) in seq2seq}
    assert set(CT2_SEQ2SEQ_TYPES) == converted


def test_a_family_ctranslate2_cannot_convert_is_refused_at_validation(tmp_path, translation_files):
    pytest.importorskip("ctranslate2")  # without it, validation says to install it first
    import json

    model = tmp_path / "blender"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "blenderbot-small", "is_encoder_decoder": True,
                                                   "architectures": ["BlenderbotSmallForConditionalGeneration"]}))
    (model / "model.safetensors").write_bytes(b"")
    src, ref = translation_files
    assert errors(config({"path": str(model), "engine": "ctranslate2"}, src, ref, ["greedy"])) == [
        "<dict>: models[0].engine: model 'blender': engine ctranslate2 cannot convert blenderbot-small models (it "
        "converts these encoder-decoders: bart, m2m_100, marian, mbart, mt5, pegasus, t5, t5gemma, t5gemma2, umt5); "
        "use engine: transformers"]
