"""scripts/build_translation_model.py: a BPE tokenizer + Marian config trained on a small corpus,
loaded through the harness's own loading code, round-tripping text exactly."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.models.hf import load_hf_model, load_tokenizer
from harness.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_translation_model.py"
EN = ["A man in an orange hat is looking at something.", "Two dogs run across the green grass.",
      "A woman, wearing a red dress, sings on a stage.", "Children are playing soccer in the park.",
      "A dog jumps over a fence.", "The man is riding a bicycle down the street."]
DE = ["Ein Mann mit einem orangefarbenen Hut starrt etwas an.", "Zwei Hunde laufen über das grüne Gras.",
      "Eine Frau in einem roten Kleid singt auf einer Bühne.", "Kinder spielen im Park Fußball.",
      "Ein Hund springt über einen Zaun.", "Der Mann fährt mit dem Fahrrad die Straße hinunter."]


def _script():
    if "build_translation_model" not in sys.modules:  # dataclasses need their module registered
        spec = importlib.util.spec_from_file_location("build_translation_model", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["build_translation_model"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["build_translation_model"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    (d / "train.en").write_text("\n".join(EN * 5) + "\n", encoding="utf-8")
    (d / "train.de").write_text("\n".join(DE * 5) + "\n", encoding="utf-8")
    out = d / "model"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--source", str(d / "train.en"), "--target", str(d / "train.de"),
                           "--out", str(out), "--vocab-size", "300", "--d-model", "32", "--layers", "1", "--heads", "2",
                           "--ffn-dim", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out}"
    return out


def test_the_directory_loads_through_the_harness_as_a_marian_model(built):
    spec = ModelSpec(path=str(built), local=True, init="random")
    model = load_hf_model(spec, "AutoModelForSeq2SeqLM", seed=0, device="cpu")
    tok = load_tokenizer(spec)
    assert type(model).__name__ == "MarianMTModel"
    cfg = model.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_ffn_dim) == (32, 1, 1, 64)
    assert cfg.vocab_size == len(tok) <= 300 and cfg.share_encoder_decoder_embeddings
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2) == \
        (cfg.pad_token_id, cfg.eos_token_id, 2)
    assert cfg.decoder_start_token_id == 0
    assert json.loads((built / "generation_config.json").read_text())["max_length"] == 96
    info = json.loads((built / "build_info.json").read_text())
    assert info["trained_on"] == ["train.en", "train.de"] and info["vocab_size"] == len(tok)


@pytest.mark.parametrize("text", [EN[0], DE[1], DE[3], "Der Hund, ein Mann und Kinder laufen über das Gras.",
                                  "A  man ,in the park."])
def test_encode_decode_round_trips_exactly(built, text):
    """Sentences made of the corpus's characters come back exactly, spacing and punctuation included."""
    tok = load_tokenizer(ModelSpec(path=str(built), local=True))
    ids = tok(text)["input_ids"]
    assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok(text_target=text)["input_ids"] == ids, "one joint vocabulary for source and target"


def test_a_character_the_corpus_never_shows_becomes_unk(built):
    tok = load_tokenizer(ModelSpec(path=str(built), local=True))
    ids = tok("A dog @ the park.")["input_ids"]
    assert ids.count(tok.unk_token_id) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "A dog  the park.", "the character is lost, its space kept"


def test_frequent_words_become_single_tokens_and_punctuation_is_split_off(built):
    tok = load_tokenizer(ModelSpec(path=str(built), local=True))
    pieces = tok.convert_ids_to_tokens(tok("A dog jumps over a fence.")["input_ids"])
    assert pieces == ["▁A", "▁dog", "▁jumps", "▁over", "▁a", "▁fence", ".", "</s>"]


def test_build_is_deterministic(built, tmp_path):
    corpus = built.parent
    _script().build([corpus / "train.en"], [corpus / "train.de"], tmp_path / "again", vocab_size=300,
                    arch=_script().Architecture(d_model=32, layers=1, heads=2, ffn_dim=64))
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (built / "tokenizer.json").read_bytes()


def test_a_non_utf8_corpus_is_one_error_line(tmp_path):
    (tmp_path / "a.en").write_bytes(b"fine\ncaf\xe9\n")
    (tmp_path / "a.de").write_text("gut\ncafe\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--source", str(tmp_path / "a.en"), "--target",
                           str(tmp_path / "a.de"), "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {tmp_path / 'a.en'}:2: not UTF-8")
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- configs/multi30k-scratch.yaml

CONFIG = ROOT / "configs" / "multi30k-scratch.yaml"
MODEL_DIR = ROOT / "configs" / "models" / "multi30k-marian"


def test_multi30k_scratch_config_trains_the_built_model_two_ways_and_decodes_three_ways():
    from conftest import shared_data
    from harness.experiment.load import load_experiment

    shared_data("multi30k", "train.en")
    resolved = load_experiment(CONFIG)
    cells = resolved.cells()
    assert len(cells) == 6
    model = resolved.experiment.models[0]
    assert Path(model.path) == MODEL_DIR and model.init == "random"
    strategies = resolved.components["strategies"]
    assert [s.name for s in strategies] == ["unmasked", "input_mask"]
    a, b = (s.params_dict() for s in strategies)
    assert {k: v for k, v in b.items() if k not in a} == {"mask_prob": 0.1, "mask_ratio": 0.8, "random_ratio": 0.1,
                                                        "keep_ratio": 0.1}
    assert all(a[k] == b[k] for k in a), "the arms differ only in the source masking"
    decoders = {d.label: d.params_dict() for d in resolved.components["decoders"]}
    assert list(decoders) == ["greedy", "beam5", "diverse_beam"]
    assert decoders["beam5"]["num_beams"] == 5 and decoders["diverse_beam"]["num_groups"] == 3
    bench = resolved.components["benchmarks"][0].params_dict()
    assert Path(bench["source"]).name == "test_2016_flickr.en" and Path(bench["train_reference"]).name == "train.de"
    # the header's step count: 29,000 pairs / 64 per batch = 454 steps per epoch
    assert "6 epochs = 2,724 optimizer steps of 64 pairs" in CONFIG.read_text(encoding="utf-8")
    assert a["epochs"] * -(-29000 // a["batch_size"]) == 2724
    assert a["eval_steps"] * 2 == 454 and a["label_smoothing"] == 0.1


@pytest.mark.parametrize("name", ["decoders-study-scratch.yaml", "precision-study.yaml"])
def test_studies_of_the_trained_model_reuse_its_checkpoint_and_seeds_only_where_they_matter(name):
    """Same model directory, strategy parameters and training/dev data as multi30k-scratch's
    unmasked arm (train_seed 0 = the seed it trained with): the checkpoint key is the same, so these
    studies decode the cached model; deterministic decoders give one cell over all seeds."""
    from conftest import shared_data

    from harness.experiment.load import load_experiment
    from harness.run.runner import cell_key
    from harness.store import model_fingerprint
    from harness.training import checkpoint_model, checkpoint_params

    import torch

    if torch.cuda.is_available():
        pytest.skip("with a GPU, device auto trains there and int8/oneDNN (CPU) checkpoints are other ones")
    shared_data("multi30k", "train.en")
    scratch = load_experiment(CONFIG)
    study = load_experiment(ROOT / "configs" / name)
    arm = scratch.components["strategies"][0]
    strat = study.components["strategies"][0]
    assert strat.name == arm.name == "unmasked" and strat.params.train_seed == 0 and scratch.experiment.seeds == [0]
    assert checkpoint_params(strat.params) == checkpoint_params(arm.params)
    base = scratch.experiment.models[0]
    for model in study.experiment.models:
        assert model_fingerprint(checkpoint_model(model, "cpu")) == model_fingerprint(checkpoint_model(base, "cpu")), \
            model.display
    ours, theirs = (r.components["benchmarks"][0].instantiate().load(None) for r in (study, scratch))
    assert [(e.source, e.reference) for e in ours.train] == [(e.source, e.reference) for e in theirs.train]
    assert [(e.source, e.reference) for e in ours.dev] == [(e.source, e.reference) for e in theirs.dev]
    keys: dict[tuple, set[str]] = {}
    for cell in study.cells():
        keys.setdefault((cell.model.display, cell.decoder.label), set()).add(cell_key(cell))
    for (model, decoder), k in keys.items():
        sampled = decoder.startswith(("sample", "mbr"))
        assert len(k) == (len(study.experiment.seeds) if sampled else 1), (model, decoder)


def test_the_committed_model_directory_is_what_the_script_builds_from_multi30k(tmp_path):
    from conftest import shared_data

    data = shared_data("multi30k")
    out = _script().build([data / "train.en"], [data / "train.de"], tmp_path / "m")
    for name in ("tokenizer.json", "config.json", "generation_config.json"):
        built = (out / name).read_text(encoding="utf-8")
        committed = (MODEL_DIR / name).read_text(encoding="utf-8")
        if name != "tokenizer.json":  # the transformers version that wrote them is incidental
            built, committed = (json.loads(x) for x in (built, committed))
            built.pop("transformers_version"), committed.pop("transformers_version")
        assert built == committed, name
