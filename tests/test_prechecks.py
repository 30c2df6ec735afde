"""What a model config and this machine allow (harness.models.facts and .machine), and the checks
of harness.experiment.checks built on them, decided before any cell runs.

The catalogue in tests/test_hostile_inputs.py runs the user-visible cases through the CLI; these
tests pin the rules behind them (position limits per architecture, device detection, the memory
estimate, static pickle reading) and the run-time checks that need the loaded data.
"""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.experiment import checks
from harness.models import facts, machine
from harness.models.facts import json_too_deep, model_facts
from harness.models.machine import device_problem
from harness.models.spec import ModelSpec

SPEC = ModelSpec.model_validate({"path": "x/y"}, context={"check_files": False})


@pytest.mark.parametrize("cfg, kind, enc, dec", [
    ({"model_type": "marian", "is_encoder_decoder": True, "max_position_embeddings": 512, "d_model": 512},
     "seq2seq", 512, 512),
    ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_positions": 1024}, "causal", 1024, 1024),
    # RoBERTa reserves padding_idx + 1 rows: 514 entries hold 512 tokens
    ({"model_type": "roberta", "architectures": ["RobertaForSequenceClassification"], "max_position_embeddings": 514,
      "pad_token_id": 1}, "classifier", 512, 512),
    ({"model_type": "bert", "architectures": ["BertForMaskedLM"], "max_position_embeddings": 512,
      "position_embedding_type": "relative_key"}, "classifier", None, None),
    # relative buckets, rotary and ALiBi have no table to run off
    ({"model_type": "t5", "is_encoder_decoder": True, "n_positions": 512, "relative_attention_num_buckets": 32},
     "seq2seq", None, None),
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
      "rope_theta": 10000.0}, "causal", None, None),
    ({"model_type": "m2m_100", "is_encoder_decoder": True, "max_position_embeddings": 1024}, "seq2seq", None, None),
])
def test_position_limits_follow_the_architecture(cfg, kind, enc, dec):
    f = model_facts(cfg, SPEC)
    assert (f.kind, f.encoder_positions, f.decoder_positions) == (kind, enc, dec)


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_too_deep('{"a": "[[[[[[[[[[[["}', limit=2) is None
    assert json_too_deep('{"a":\n [[1]]}', limit=2) == 2
    assert json_too_deep("[" * 101 + "]" * 101) == 1
    assert json_too_deep("[" * 100 + "]" * 100) is None


def test_device_rules_without_importing_torch(monkeypatch):
    monkeypatch.setattr(machine, "_torch_build", lambda: ("2.13.0+cpu", False))
    assert device_problem("cuda") == "this torch build (2.13.0+cpu) has no CUDA support; allowed here: auto, cpu"
    assert device_problem("cpu") is None and device_problem("auto") is None
    monkeypatch.setattr(machine, "_torch_build", lambda: ("2.13.0+cu128", True))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert device_problem("cuda:1") is None
    assert device_problem("cuda:3") == "this machine has 2 CUDA device(s); allowed: cuda:0..cuda:1, auto, cpu"
    monkeypatch.setattr(machine.platform, "system", lambda: "Linux")
    assert device_problem("mps").startswith("mps is Apple silicon's GPU and this is not an Apple silicon Mac")


def test_decode_memory_estimate_is_a_lower_bound_from_the_config():
    f = model_facts({"model_type": "marian", "is_encoder_decoder": True, "vocab_size": 58101, "d_model": 512,
                     "decoder_layers": 6, "max_position_embeddings": 512}, SPEC)
    # opus-mt-en-de: float32 logits + log-probs (2 x 4 x 58,101) + one K/V position of self- and
    # cross-attention in 6 layers (2 x 6 x 512 x 4 x 2)
    assert facts.decode_row_bytes(f, SPEC) == 2 * 4 * 58101 + 2 * 6 * 512 * 4 * 2
    # beam 5 x batch 16 needs ~40 MB: far from refused on any machine
    assert 5 * 16 * facts.decode_row_bytes(f, SPEC) < 50e6


def _experiment(d, model, strategy_params: str, train_lines: int = 20, words: int = 3):
    (d / "train.tsv").write_text("text\tlabel\n" + "".join(
        f"{' '.join(['good'] * words)}\t{'pos' if i % 2 else 'neg'}\n" for i in range(train_lines)))
    (d / "test.tsv").write_text("text\tlabel\ngood movie\tpos\nbad movie\tneg\n")
    cfg = d / "exp.yaml"
    cfg.write_text(f"name: pre\nmodels: [{{path: {model}}}]\nbenchmarks:\n"
                   "  - {name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}\n"
                   f"strategies:\n  - {{name: unmasked, params: {strategy_params}}}\n")
    return cfg


def test_training_batch_beyond_ram_is_refused_by_run_with_the_batch_that_fits(tmp_path, tiny_bert, monkeypatch):
    """The training batch is min(batch_size, training examples) at the longest example's length."""
    monkeypatch.setattr(checks, "ram_bytes", lambda: 2_000_000)  # a 2 MB machine
    cfg = _experiment(tmp_path, tiny_bert, "{batch_size: 64, max_length: 64}", words=40)
    assert CliRunner().invoke(main, ["validate", str(cfg)]).exit_code == 0  # the data decides: run's check
    res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(
        f"error: {cfg}:6: strategies[0].params.batch_size: 64: a training batch of 20 examples of 42 tokens with "
        f"model '{tiny_bert.name}' needs at least ")
    assert "more than this machine's 2.0 MB of RAM; allowed: batch_size <= " in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "c").exists()


def test_default_length_beyond_positions_is_refused_only_when_the_data_is_that_long(tmp_path, tiny_bert):
    small = tmp_path / "small-bert"
    shutil.copytree(tiny_bert, small)
    cfg_json = json.loads((small / "config.json").read_text())
    (small / "config.json").write_text(json.dumps({**cfg_json, "max_position_embeddings": 16}))
    from safetensors.torch import load_file, save_file  # the weights as a 16-position BERT has them (a
    weights = load_file(small / "model.safetensors")  # config that disagrees with them is refused on its own)
    save_file({k: (v[:16] if k.endswith("position_embeddings.weight") else v) for k, v in weights.items()},
              small / "model.safetensors", metadata={"format": "pt"})
    short = _experiment(tmp_path, small, "{epochs: 1}", words=3)  # max_length defaults to 128 > 16
    assert CliRunner().invoke(main, ["validate", str(short)]).exit_code == 0
    long = _experiment(tmp_path, small, "{epochs: 1}", words=30)
    res = CliRunner().invoke(main, ["run", str(long), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2, res.output
    assert res.stderr == (
        f"error: {long}:6: strategies[0].params.max_length: 128 (the default) is longer than model 'small-bert' can "
        "read (its position table has 16 entries), and example 'train-2' has at least 32 tokens, which would "
        "fail with IndexError; allowed: an integer <= 16 for this model (longer inputs are truncated)\n")
    explicit = _experiment(tmp_path, small, "{epochs: 1, max_length: 17}")
    res = CliRunner().invoke(main, ["validate", str(explicit)])
    assert res.exit_code == 2
    assert res.stderr == (
        f"error: {explicit}:6: strategies[0].params.max_length: 17 is longer than model 'small-bert' can read: its "
        "position table has 16 entries (longer sequences fail with IndexError); allowed: an integer <= 16 for this "
        "model\n")


def test_config_file_that_is_a_device_or_fifo_is_refused_without_reading_it(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.yaml")
    for path, kind in (("/dev/zero", "character device"), (str(tmp_path / "pipe.yaml"), "FIFO (named pipe)")):
        res = CliRunner().invoke(main, ["validate", path])
        assert res.exit_code == 2
        assert res.stderr == f"error: {path}: is a {kind}; expected a YAML file\n"


def test_decoder_batch_beyond_ram_names_batch_size_at_run(tmp_path, tiny_marian, monkeypatch):
    """Validate knows one sentence's beams fit; run knows the batch holds min(batch_size, 3) sentences."""
    row = 2 * 4 * 61 + 2 * 2 * 32 * 4 * 2  # tiny Marian: vocabulary 61, 2 decoder layers, d_model 32
    monkeypatch.setattr(checks, "ram_bytes", lambda: 10_000)
    (tmp_path / "s.txt").write_text("the cat\nthe dog\na cat\n")
    (tmp_path / "r.txt").write_text("die katze\nder hund\neine katze\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: pre\nmodels: [{{path: {tiny_marian}}}]\nbenchmarks:\n"
                   "  - {name: parallel_text, label: toy, params: {source: s.txt, reference: r.txt}}\n"
                   "decoders:\n  - {name: beam, params: {num_beams: 4, batch_size: 64, max_new_tokens: 4}}\n")
    assert 4 * row <= 10_000 < 3 * 4 * row
    assert CliRunner().invoke(main, ["validate", str(cfg)]).exit_code == 0
    res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2, res.output
    assert res.stderr == (
        f"error: {cfg}:6: decoders[0].params.batch_size: one decoder step of 3 sentences x 4 beams with model "
        f"'{tiny_marian.name}' (vocabulary 61) needs at least 18.1 KB, more than this machine's 10.0 KB of RAM; "
        "allowed: batch_size <= 1\n")
    assert not (tmp_path / "out").exists()


def test_only_the_weight_files_transformers_loads_are_read(tmp_path):
    """A Trainer checkpoint's training_args.bin pickles a TrainingArguments object: transformers never
    loads it as weights, so it must not make the model refused."""
    import os
    import pickle

    from harness.models.facts import pickled_weights_problem

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "training_args.bin").write_bytes(pickle.dumps(Payload()))
    assert pickled_weights_problem(tmp_path).endswith("holds no weights (model.safetensors, model-*-of-*.safetensors "
                                                      "or pytorch_model.bin); set init: random to build the "
                                                      "architecture from config.json with seeded random weights, or "
                                                      "point path: at a directory with weights")
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))  # no globals at all
    assert pickled_weights_problem(tmp_path) is None
    (tmp_path / "pytorch_model-00001-of-00002.bin").write_bytes(pickle.dumps({"w": Payload()}))
    assert pickled_weights_problem(tmp_path) == (
        f"{tmp_path / 'pytorch_model-00001-of-00002.bin'}: its weights hold pickled objects that are not plain tensors "
        "(posix.system), refused for safety (convert it to safetensors from a trusted source)")


def test_default_source_length_is_cut_to_the_position_table(tiny_marian):
    """512 (the default) on a 128-position model truncates long inputs instead of an IndexError."""
    from harness.engines.load import load_generation_model

    spec = ModelSpec.model_validate({"path": str(tiny_marian)})
    model = load_generation_model(spec)
    assert model.max_source_length == 128
    assert len(model.encode([" ".join(["cat"] * 300)])[0]) == 128
    explicit = load_generation_model(ModelSpec.model_validate({"path": str(tiny_marian), "max_source_length": 16}))
    assert len(explicit.encode([" ".join(["cat"] * 300)])[0]) == 16
