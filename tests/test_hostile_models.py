"""Hostile catalogue, broken models: never evaluated. A checkpoint that does not fill its
architecture (a layer missing, weights of another model, tensors of the wrong shape), damaged
files (truncated safetensors, an index naming missing shards, a zip with two archives, no or a
broken tokenizer) and a model that cannot serve the benchmark's task are each one ``error:`` line
naming the model (and its architecture) or the file, exit 2, before any cell, nothing written.
The paths that build a new head on purpose (classification, the strategies' MLM head) keep working,
and ``allow_missing_weights: true`` is the opt-in for anything else.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tree_state
from harness.cli import main

SRC = "the cat sat on the mat\nthe dog ran to the house\na big red cat\n"
REF = "die katze sass auf der matte\nder hund lief zum haus\neine grosse rote katze\n"


def translation(model: str = "./broken", extra: str = "") -> str:
    return (f"name: broken\nmodels: [{{path: {model}{extra}}}]\nbenchmarks:\n"
            "  - {name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt}}\n"
            "decoders: [{name: greedy, params: {max_new_tokens: 3}}]\nmetrics: [chrf]\n")


def classification(model: str = "./broken", strategy: str = "none") -> str:
    return (f"name: broken\nmodels: [{{path: {model}}}]\nbenchmarks:\n"
            "  - {name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}\n"
            f"strategies: [{strategy}]\n")


@pytest.fixture
def work(tmp_path):
    (tmp_path / "src.txt").write_text(SRC)
    (tmp_path / "ref.txt").write_text(REF)
    (tmp_path / "train.tsv").write_text("text\tlabel\ngood movie\tpos\nbad movie\tneg\ngreat film\tpos\n")
    (tmp_path / "test.tsv").write_text("text\tlabel\nfine movie\tpos\nawful film\tneg\n")
    return tmp_path


def _weights(model: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model / "model.safetensors")


def _save(model: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})


def _without(prefix: str):
    return lambda d: _save(d, {k: v for k, v in _weights(d).items() if prefix not in k})


def _reshaped(suffix: str):
    def edit(d):
        import torch

        w = _weights(d)
        key = next(k for k in w if k.endswith(suffix))
        w[key] = torch.zeros(w[key].shape[0] + 1, *w[key].shape[1:])
        _save(d, w)
    return edit


def _with_extra(d):
    import torch

    _save(d, {**_weights(d), "model.decoder.layers.7.fc1.weight": torch.zeros(4, 4)})


def _config_of(other: str):
    def edit(d, tiny_models):
        (d / "config.json").write_text((tiny_models[other] / "config.json").read_text())
    return edit


# (case, base model, how to break it, config, what the line says) -- run's check before any cell
BROKEN_WEIGHTS = [
    ("decoder_layer_missing", "marian", _without("decoder.layers.1."), translation(),
     ["model '{d}/broken' (MarianMTModel, model_type 'marian'): 26 of its weights are missing from the checkpoint "
      "(e.g. model.decoder.layers.1.encoder_attn.k_proj.bias"]),
    ("encoder_layer_missing", "marian", _without("encoder.layers.0."), translation(),
     ["(MarianMTModel, model_type 'marian'): 16 of its weights are missing", "the checkpoint is incomplete"]),
    ("unexpected_weights", "marian", _with_extra, translation(),
     ["1 weights in the checkpoint have no place in it (model.decoder.layers.7.fc1.weight)"]),
    ("wrong_shape", "marian", _reshaped("decoder.layers.0.fc1.weight"), translation(),
     ["1 weights have another shape than its config.json gives (model.decoder.layers.0.fc1.weight is (65, 32) in "
      "the checkpoint, (64, 32) in the model)"]),
    ("gpt2_layer_missing", "gpt2", _without("h.1."), translation(extra=", prompt_template: '{source} =>'"),
     ["(GPT2LMHeadModel, model_type 'gpt2'): 12 of its weights are missing"]),
    ("bert_encoder_layer_missing_for_a_new_head", "bert", _without("encoder.layer.1."),
     classification(strategy="{name: unmasked, params: {epochs: 1}}"),
     ["(BertForSequenceClassification, model_type 'bert'): 16 of its weights are missing"]),
    ("classifier_head_missing_without_a_strategy", "bert", _without("classifier."), classification(),
     ["2 of its weights are missing from the checkpoint (classifier.bias, classifier.weight)"]),
]
CONFIG_MISMATCH = [
    ("config_says_marian_weights_are_bert", "bert", _config_of("marian"), translation(),
     ["(MarianMTModel, model_type 'marian'): 88 of its weights are missing", "41 weights in the checkpoint have no "
      "place in it (e.g. bert.embeddings.LayerNorm.bias", "its config.json (model_type 'marian') does not describe these "
      "weights"]),
    ("config_says_bert_weights_are_marian", "marian", _config_of("bert"), classification(),
     ["(BertForSequenceClassification, model_type 'bert')", "its config.json (model_type 'bert') does not describe"]),
]


@pytest.fixture(scope="module")
def tiny_models(tiny_marian, tiny_bert, tiny_gpt2):
    return {"marian": tiny_marian, "bert": tiny_bert, "gpt2": tiny_gpt2}


def _expect_refused(work, config: str, needles: list[str], commands=("run",)):
    (work / "exp.yaml").write_text(config)
    for command in commands:
        before = tree_state(work)
        args = [command, str(work / "exp.yaml")]
        if command == "run":
            args += ["-o", str(work / "out"), "--cache-dir", str(work / "cache")]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        assert isinstance(res.exception, SystemExit) and res.stdout == ""
        [line] = res.stderr.splitlines()
        assert line.startswith(f"error: {work / 'exp.yaml'}"), line
        for needle in needles:
            assert needle.replace("{d}", str(work)) in line, line
        assert tree_state(work) == before  # no output directory, no cache, nothing touched


@pytest.mark.parametrize("case", BROKEN_WEIGHTS + CONFIG_MISMATCH, ids=lambda c: c[0])
def test_a_checkpoint_that_does_not_fill_its_architecture_is_never_evaluated(work, tiny_models, case):
    _, base, edit, config, needles = case
    shutil.copytree(tiny_models[base], work / "broken")
    try:
        edit(work / "broken")
    except TypeError:
        edit(work / "broken", tiny_models)
    _expect_refused(work, config, needles + ["set allow_missing_weights: true on this model entry"])


def test_allow_missing_weights_is_the_explicit_opt_in(work, tiny_marian):
    shutil.copytree(tiny_marian, work / "broken")
    _without("decoder.layers.1.")(work / "broken")
    (work / "exp.yaml").write_text(translation(extra=", allow_missing_weights: true"))
    res = CliRunner().invoke(main, ["run", str(work / "exp.yaml"), "-o", str(work / "out"), "--cache-dir",
                                    str(work / "cache"), "-q"])
    assert res.exit_code == 0, res.output


def test_the_missing_weights_check_holds_at_load_time_too(tiny_marian, tmp_path):
    """The second line of defence, for whatever loads a model without the run's check (plugins,
    API users, other executors): the loader itself refuses."""
    from harness.errors import ModelLoadError
    from harness.models.hf import load_hf_model
    from harness.models.spec import ModelSpec

    shutil.copytree(tiny_marian, tmp_path / "broken")
    _without("decoder.layers.1.")(tmp_path / "broken")
    with pytest.raises(ModelLoadError, match=r"26 of its weights are missing from the checkpoint"):
        load_hf_model(ModelSpec(path=str(tmp_path / "broken"), local=True, device="cpu"), "AutoModelForSeq2SeqLM")


# ----------------------------------------------------------------------------- damaged files (validate too)


def _truncated(d):
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _garbage_header(d):
    (d / "model.safetensors").write_bytes(b"\xff" * 8 + b"not a header")


def _sharded_missing_shard(d):
    (d / "model.safetensors").rename(d / "model-00001-of-00002.safetensors")
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))


def _zip_with_two_archives(d):
    import torch

    torch.save(_weights(d), d / "one.bin")
    (d / "model.safetensors").unlink()
    with zipfile.ZipFile(d / "one.bin") as z, zipfile.ZipFile(d / "pytorch_model.bin", "w") as out:
        for n in z.namelist():
            out.writestr(n, z.read(n))
            out.writestr("second/" + n.split("/", 1)[1], z.read(n))
    (d / "one.bin").unlink()


def _no_tokenizer(d):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (d / name).unlink()


def _broken_tokenizer(d):
    (d / "tokenizer.json").write_text('{"version": "1.0", "model": {')


DAMAGED_FILES = [
    ("truncated_safetensors", _truncated, "{d}/broken/model.safetensors: truncated: "),
    ("safetensors_garbage_header", _garbage_header, "{d}/broken/model.safetensors: its header claims "),
    ("index_names_a_missing_shard", _sharded_missing_shard,
     "{d}/broken/model.safetensors.index.json: names 1 weight file(s) that are missing, e.g. "
     "{d}/broken/model-00002-of-00002.safetensors"),
    ("zip_checkpoint_with_two_archives", _zip_with_two_archives,
     "{d}/broken/pytorch_model.bin: a zip checkpoint holding 2 archives"),
    ("no_tokenizer_files", _no_tokenizer, "{d}/broken holds no tokenizer files"),
    ("tokenizer_json_not_json", _broken_tokenizer, "{d}/broken/tokenizer.json: not valid JSON"),
]


@pytest.mark.parametrize("case", DAMAGED_FILES, ids=lambda c: c[0])
def test_a_damaged_model_file_is_one_line_at_validate_and_run(work, tiny_marian, case):
    _, edit, needle = case
    shutil.copytree(tiny_marian, work / "broken")
    edit(work / "broken")
    _expect_refused(work, translation(), [f":2: models[0]: model 'broken': {needle}"], commands=("validate", "run"))


# ----------------------------------------------------------------------------- the static pickle scan


def _payload_pickle(memoised: bool) -> bytes:
    """A pickle that would call posix.system: its names pushed through the memo (BINGET) so that
    the strings literally before STACK_GLOBAL name a harmless global."""
    def s(x: str) -> bytes:
        return b"\x8c" + bytes([len(x)]) + x.encode()
    if not memoised:
        return b"\x80\x04" + s("posix") + s("system") + b"\x93" + s("true") + b"\x85R."
    return (b"\x80\x04" + s("posix") + b"\x940" + s("system") + b"\x940" + s("collections") + b"0" +
            s("OrderedDict") + b"0" + b"h\x00h\x01\x93" + s("true") + b"\x85R.")


@pytest.mark.parametrize("memoised", [False, True])
def test_the_static_pickle_scan_stands_on_its_own(work, tiny_marian, memoised):
    """validate imports no torch: the scan alone refuses the payload, whatever torch's loader would do."""
    shutil.copytree(tiny_marian, work / "broken")
    (work / "broken" / "model.safetensors").unlink()
    with zipfile.ZipFile(work / "broken" / "pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", _payload_pickle(memoised))
    _expect_refused(work, translation(), ["pytorch_model.bin: its weights hold pickled objects that are not plain "
                                          "tensors (posix.system)"], commands=("validate", "run"))


# ----------------------------------------------------------------------------- the model does not fit the task


def test_a_multimodal_checkpoint_is_not_taken_for_a_classifier_silently(work):
    d = work / "gemma"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForConditionalGeneration"],
                                               "model_type": "gemma3", "text_config": {"hidden_size": 32}}))
    (d / "model.safetensors").write_bytes(b"\x02\0\0\0\0\0\0\0{}")
    (d / "tokenizer.json").write_text("{}")
    _expect_refused(work, translation("./gemma"), [
        "the grid is empty", "model 'gemma' (architectures: Gemma3ForConditionalGeneration; model_type gemma3) was "
        "taken for a classifier", "set kind: causal on its entry"], commands=("validate", "run"))


def test_a_model_in_no_cell_of_a_mixed_grid_is_named(work, tiny_marian, tiny_bert):
    (work / "m").symlink_to(tiny_marian)
    (work / "b").symlink_to(tiny_bert)
    _expect_refused(work, translation("./m}, {path: ./b"), [
        ":2: models[1]: model 'b' (architectures: BertForSequenceClassification; model_type bert) was taken for a "
        "classifier", "it fits none of the benchmarks (translation), so it would be in no cell"],
        commands=("validate",))


# ----------------------------------------------------------------------------- new heads keep working


def _electra(path: Path) -> Path:
    import torch
    from transformers import ElectraConfig, ElectraForPreTraining

    from harness.testing import build_word_tokenizer

    _, vocab = build_word_tokenizer(path, bert_style=True)
    torch.manual_seed(0)
    ElectraForPreTraining(ElectraConfig(vocab_size=len(vocab), embedding_size=32, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=64,
                                        max_position_embeddings=128)).save_pretrained(path)
    return path


def test_an_electra_discriminator_gets_a_new_mlm_head_warmed_up_and_says_so(work, caplog):
    """ElectraForPreTraining is a pre-training checkpoint, but its head detects replaced tokens: the
    MLM head the strategy needs is new (its loss starts near ln |V|), so it is warmed up, and the
    cell's log says why."""
    _electra(work / "electra")
    (work / "exp.yaml").write_text(classification("./electra", "{name: aux_mlm, params: {epochs: 1, batch_size: 2, "
                                                                         "mlm_head_warmup_steps: 2}}"))
    res = CliRunner().invoke(main, ["run", str(work / "exp.yaml"), "-o", str(work / "out"), "--cache-dir",
                                    str(work / "cache"), "-q"])
    assert res.exit_code == 0, res.output
    [celldir] = (work / "out" / "cells").iterdir()
    record = json.loads((celldir / "finetune.json").read_text())
    assert record["mlm_head"]["new_head"] is True
    assert record["mlm_head"]["warmup_steps"] > 0 and "loss_after_warmup" in record["mlm_head"]
    # (the harness logger's warnings reach stderr in a terminal; pytest captures them here)
    assert "its checkpoint (a pre-training architecture) has no masked-LM head (5 head weights missing" in caplog.text


# ----------------------------------------------------------------------------- engine ctranslate2


@pytest.fixture
def ct2_cache(tmp_path, monkeypatch):
    pytest.importorskip("ctranslate2")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "harness-cache"))


def _same_as_transformers(path: Path, beam: bool = True) -> float:
    """Decode with both engines; tokens must agree. Returns the largest score difference."""
    from harness.api import CellContext
    from harness.engines.load import load_generation_model
    from harness.models.spec import ModelSpec
    from harness.plugins import default_plugins

    ctx = CellContext(seed=0, workdir=Path("."), cache_dir=Path("."))
    sources = ["the cat sat on the mat", "a big red dog ran", "the house"]
    gap = 0.0
    for name, params in [("greedy", {}), ("beam", {"num_beams": 3, "early_stopping": True})][: 2 if beam else 1]:
        cls = default_plugins().get("decoder", name)
        out = [cls(cls.Params(max_new_tokens=12, **params)).decode(
            load_generation_model(ModelSpec(path=str(path), local=True, device="cpu", engine=engine)), sources, ctx)
            for engine in ("transformers", "ctranslate2")]
        assert [h[0].tokens for h in out[1]] == [h[0].tokens for h in out[0]]
        gap = max(gap, *(abs(a[0].score - b[0].score) for a, b in zip(*out)))
    return gap


def test_ctranslate2_runs_an_mbart_whose_tokenizer_has_no_bos_token(tmp_path, ct2_cache):
    """CTranslate2 writes the tokenizer's null bos_token into its config and then fails to load it
    in every cell ("type must be string, but is null"): the conversion fills in the token the
    decoder starts from."""
    from decoding_models import build_family

    path = build_family("mbart", tmp_path / "mbart")
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**cfg, "bos_token": None}))
    assert _same_as_transformers(path) < 1e-4


def test_ctranslate2_converts_an_opus_layout_marian_trained_with_transformers(tmp_path, ct2_cache):
    """OPUS-MT's layout (<pad> last) but a trained, non-zero <pad> row: CTranslate2's own Marian loader
    would start the decoder from a zero vector and be refused by the conversion check; the
    keep-pad loader converts it to what transformers computes."""
    import torch
    from test_engine_ct2 import build_opus_layout_marian
    from transformers import MarianMTModel

    path = build_opus_layout_marian(tmp_path / "opus-trained")
    model = MarianMTModel.from_pretrained(path)
    pad = model.config.pad_token_id
    row = torch.randn(model.config.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for emb in {id(e): e for e in (model.model.shared, model.model.encoder.embed_tokens,
                                       model.model.decoder.embed_tokens)}.values():
            emb.weight[pad] = row
    model.save_pretrained(path)
    assert torch.equal(MarianMTModel.from_pretrained(path).get_decoder().embed_tokens.weight[pad], row)
    assert _same_as_transformers(path, beam=False) < 1e-4
    from harness.engines.ct2_conversion import converted_dir
    from harness.models.spec import ModelSpec

    target = converted_dir(ModelSpec(path=str(path), local=True, device="cpu", engine="ctranslate2"))
    assert json.loads((target / "harness-check.json").read_text())["max_logprob_gap"] < 1e-4
    assert "<pad>" in json.loads((target / "shared_vocabulary.json").read_text())  # the keep-pad loader
