"""`kernels: onednn` on a model: float32 Linear layers with oneDNN-prepacked weights for decoding."""
from __future__ import annotations

import pytest

from harness.engines.load import load_generation_model
from harness.models.spec import ModelSpec
from harness.testing import run_config
from test_int8 import assert_one_line_error, config  # the one-model translation experiment


def test_onednn_model_has_prepacked_linear_layers(tiny_marian):
    gm = load_generation_model(ModelSpec(path=str(tiny_marian), local=True, kernels="onednn"))
    kinds = {type(m).__name__ for m in gm.model.modules()}
    assert "PackedLinear" in kinds and "Linear" not in kinds
    assert gm.device == "cpu"
    # the output projection is tied to the embeddings: its dense weight stays readable, the others drop it
    assert gm.model.lm_head.weight is gm.model.get_input_embeddings().weight
    assert gm.model.model.decoder.layers[0].fc1.weight is None


def test_onednn_decodes_the_same_tokens_as_default_kernels(tmp_path, tiny_marian, translation_files):
    src, ref = translation_files
    decoders = ["greedy", {"name": "beam", "params": {"num_beams": 3, "num_return_sequences": 3, "max_new_tokens": 10}}]
    cfg = config({"path": str(tiny_marian), "label": "plain", "kernels": "default"}, src, ref, decoders)
    cfg["models"].append({"path": str(tiny_marian), "label": "onednn", "kernels": "onednn"})
    res = run_config(cfg, tmp_path / "out")
    cells = {(c["model"], c["decoder"]): c["key"] for c in res.cells}
    assert len(set(cells.values())) == 4, "kernels is part of the model's identity: separate cells"
    for dec in ("greedy", "beam"):
        ours = [(r["output"], r.get("nbest")) for r in res.predictions(cells[("onednn", dec)])]
        plain = [(r["output"], r.get("nbest")) for r in res.predictions(cells[("plain", dec)])]
        assert ours == plain and len(ours) == 4


@pytest.mark.parametrize("model, expected", [
    ({"kernels": "onednn", "dtype": "bfloat16"},
     "models[0]: kernels onednn runs float32 Linear layers on the CPU with engine transformers; got engine "
     "transformers, dtype bfloat16, device auto (allowed: engine transformers, dtype auto or float32, device auto or cpu)"),
    ({"kernels": "onednn", "device": "cuda"}, "got engine transformers, dtype auto, device cuda"),
    ({"kernels": "mkl"}, "models[0].kernels: Input should be 'auto', 'default' or 'onednn' (got 'mkl')"),
])
def test_onednn_mistakes_are_one_line_errors(tiny_marian, translation_files, model, expected):
    assert_one_line_error({"path": str(tiny_marian), **model}, translation_files, expected)


def test_cpu_decoding_keeps_freed_memory_for_reuse(tiny_marian):
    """Loading a model for CPU decoding sets glibc's malloc to reuse freed large blocks (no
    page faults for the per-step logits); it is process-wide and happens once."""
    import sys

    from harness.models import kernels

    load_generation_model(ModelSpec(path=str(tiny_marian), local=True, device="cpu"))
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert kernels._allocator_tuned is True
    assert kernels.keep_freed_memory() is True


def test_onednn_folds_the_final_logits_bias_and_decodes_like_generate(tmp_path):
    """A Marian head adds final_logits_bias after the output projection; with kernels onednn the
    bias moves into the prepacked projection (the buffer is zeroed), model() still gives the same
    logits, and beam search still gives generate()'s hypotheses on a 6,000-word model whose EOS
    bias is fitted (so a lost bias would change every output length)."""
    import torch
    from decoding_models import SOURCES, build_marian_varied
    from test_decoders import assert_same, assert_varied, ctx, decoder, generate

    from harness.models import kernels

    path = build_marian_varied(tmp_path / "m", extra_words=6000)
    plain = load_generation_model(ModelSpec(path=str(path), device="cpu", kernels="default"))
    fast = load_generation_model(ModelSpec(path=str(path), kernels="onednn"))
    assert float(plain.model.final_logits_bias.abs().max()) > 0.1
    assert kernels.split_head(fast.model) is not None and float(fast.model.final_logits_bias.abs().max()) == 0.0
    ids = torch.tensor([[5, 6, 7, 1]])
    with torch.no_grad():
        a = plain.model(input_ids=ids, decoder_input_ids=torch.tensor([[0, 8]])).logits
        b = fast.model(input_ids=ids, decoder_input_ids=torch.tensor([[0, 8]])).logits
    assert torch.allclose(a, b, atol=1e-5)
    for name, params in [("greedy", {}), ("beam", {"num_beams": 4, "num_return_sequences": 2})]:
        ours = decoder(name, max_new_tokens=16, **params).decode(fast, SOURCES, ctx(tmp_path))
        assert_varied(ours, at_least=2)  # see test_a_large_vocabulary_decodes_like_generate
        assert_same(ours, generate(plain, SOURCES, **params), plain)


def test_onednn_on_a_decoder_only_model_decodes_like_generate(tmp_path):
    """GPT-2's Conv1D blocks (not nn.Linear) become Linear layers and are packed with the output
    projection; no final_logits_bias to fold, so the step runs the model's own forward."""
    from decoding_models import SOURCES, build_gpt2_varied
    from test_decoders import assert_same, ctx, decoder, generate

    from harness.models import kernels

    path = build_gpt2_varied(tmp_path / "g")
    plain = load_generation_model(ModelSpec(path=str(path), device="cpu", kernels="default",
                                            prompt_template="{source} ="))
    fast = load_generation_model(ModelSpec(path=str(path), kernels="onednn", prompt_template="{source} ="))
    assert type(fast.model.lm_head).__name__ == "PackedLinear" and kernels.split_head(fast.model) is None
    kinds = {name: type(m).__name__ for name, m in fast.model.named_modules()}
    assert kinds["transformer.h.0.attn.c_attn"] == kinds["transformer.h.1.mlp.c_proj"] == "PackedLinear"
    assert "Conv1D" not in kinds.values()
    for name, params in [("greedy", {}), ("beam", {"num_beams": 3, "num_return_sequences": 3})]:
        ours = decoder(name, max_new_tokens=16, **params).decode(fast, SOURCES, ctx(tmp_path))
        assert_same(ours, generate(plain, SOURCES, **params), plain)


# ----------------------------------------------------------------------------- kernels: auto (the default)


def test_auto_keeps_the_cell_keys_of_models_written_before_kernels_existed():
    """The default (kernels: auto, or kernels unwritten) keys a model exactly as before kernels
    existed, so every cached cell is reused; an explicit kernels: default promises transformers'
    own kernels and keys apart. The literals are model_fingerprint's values on main before auto
    existed (Hub ids: no file content enters them)."""
    from harness.store import model_fingerprint

    hub = "Helsinki-NLP/opus-mt-en-de"
    assert model_fingerprint(ModelSpec(path=hub)) == "e754aba067c50730"
    assert model_fingerprint(ModelSpec(path=hub, kernels="auto")) == "e754aba067c50730"
    assert model_fingerprint(ModelSpec(path=hub, kernels="onednn")) == "158f0d058331963f"
    assert model_fingerprint(ModelSpec(path=hub, kernels="default")) not in ("e754aba067c50730", "158f0d058331963f")


def test_auto_runs_onednn_on_this_cpu_and_each_cell_records_the_kernels(tmp_path, tiny_marian, translation_files):
    """On an x86 CPU in float32 the default decodes with oneDNN-prepacked layers once the probe
    agrees, with the outputs of the default kernels; cell.json says which kernels ran and why."""
    import json

    from harness.models import kernels

    if kernels.auto_problem("cpu", True) is not None:
        pytest.skip(kernels.auto_problem("cpu", True))
    gm = load_generation_model(ModelSpec(path=str(tiny_marian), local=True))
    assert "PackedLinear" in {type(m).__name__ for m in gm.model.modules()}
    assert (gm.kernels.asked, gm.kernels.used) == ("auto", "onednn")
    assert 0 <= gm.kernels.probe_gap <= kernels.PROBE_TOLERANCE

    src, ref = translation_files
    cfg = config({"path": str(tiny_marian), "label": "auto"}, src, ref, ["greedy"])
    cfg["models"].append({"path": str(tiny_marian), "label": "default", "kernels": "default"})
    out = tmp_path / "out"
    res = run_config(cfg, out)
    cells = {c["model"]: c["key"] for c in res.cells}
    records = {m: json.loads((out / "cells" / k / "cell.json").read_text())["kernels"] for m, k in cells.items()}
    assert {k: records["default"][k] for k in ("asked", "used", "reason")} == {"asked": "default", "used": "default",
                                                                             "reason": "asked for"}
    assert (records["auto"]["asked"], records["auto"]["used"]) == ("auto", "onednn")
    assert "probe" in records["auto"]["reason"] and records["auto"]["probe_gap"] <= kernels.PROBE_TOLERANCE
    assert [r["output"] for r in res.predictions(cells["auto"])] == [r["output"] for r in res.predictions(cells["default"])]


def test_auto_falls_back_to_the_default_kernels_when_the_probe_disagrees(tmp_path, tiny_marian, monkeypatch):
    """A packing that computes another model (here: every packed weight scaled by 1.01) is caught by
    the probe: the model is loaded again and decodes with the default kernels, and the reason
    names the gap."""
    import torch

    from harness.models import kernels

    if kernels.auto_problem("cpu", True) is not None:
        pytest.skip(kernels.auto_problem("cpu", True))
    real = kernels.pack_linear_layers

    def wrong(model):
        with torch.no_grad():
            for m in model.modules():
                if type(m) is torch.nn.Linear:
                    m.weight.mul_(1.01)
        return real(model)

    monkeypatch.setattr(kernels, "pack_linear_layers", wrong)
    gm = load_generation_model(ModelSpec(path=str(tiny_marian), local=True))
    plain = load_generation_model(ModelSpec(path=str(tiny_marian), local=True, kernels="default"))
    assert gm.kernels.used == "default" and gm.kernels.probe_gap > kernels.PROBE_TOLERANCE
    assert gm.kernels.reason.startswith("probe log-probabilities differ by ")
    assert "PackedLinear" not in {type(m).__name__ for m in gm.model.modules()}
    ids, dec = torch.tensor([[5, 6, 7, 1]]), torch.tensor([[0, 8]])
    with torch.no_grad():
        assert torch.equal(gm.model(input_ids=ids, decoder_input_ids=dec).logits,
                           plain.model(input_ids=ids, decoder_input_ids=dec).logits)


@pytest.mark.parametrize("model, used, reason", [
    ({"dtype": "int8"}, "int8", "dtype int8"),
    ({"dtype": "bfloat16"}, "default", "not float32"),
])
def test_auto_keeps_other_precisions_on_their_own_kernels(tiny_marian, model, used, reason):
    gm = load_generation_model(ModelSpec(path=str(tiny_marian), local=True, device="cpu", **model))
    assert gm.kernels.used == used and reason in gm.kernels.reason


def test_auto_says_why_it_leaves_a_gpu_alone():
    from harness.models import kernels

    assert kernels.auto_problem("cuda", True) == "device cuda: oneDNN packing is a CPU lever"


def test_auto_on_a_classifier_probes_its_labels_and_is_recorded(tmp_path):
    from test_classification import ctx, data_for, labelled_bert

    from harness.models import kernels
    from harness.run.classify import predict

    if kernels.auto_problem("cpu", True) is not None:
        pytest.skip(kernels.auto_problem("cpu", True))
    path = labelled_bert(tmp_path / "m", {0: "neg", 1: "pos"})
    record: dict = {}
    data = data_for(["neg", "pos"])
    auto = predict(ModelSpec(path=str(path), local=True), data, ctx(tmp_path), record=record)
    assert (record["kernels"]["used"], record["kernels"]["asked"]) == ("onednn", "auto")
    plain = predict(ModelSpec(path=str(path), local=True, kernels="default"), data, ctx(tmp_path))
    assert [p["label"] for p in auto] == [p["label"] for p in plain]
    assert [q for p in auto for q in p["probs"]] == pytest.approx([q for p in plain for q in p["probs"]], abs=1e-5)
