"""`dtype: int8` on a model: its Linear layers in int8 (weights and activations per row), CPU only, marked in results."""
from __future__ import annotations

import json

import pytest

from harness.experiment.load import load_experiment_dict
from harness.errors import ConfigError, ConfigErrors
from harness.engines.load import load_generation_model
from harness.models.spec import ModelSpec
from harness.store import canonical_hash, model_fingerprint
from harness.testing import run_config


def config(model: dict, src, ref, decoders=("greedy",)) -> dict:
    return {"name": "int8", "models": [model],
            "benchmarks": [{"name": "parallel_text", "label": "toy", "params": {"source": str(src), "reference": str(ref)}}],
            "decoders": list(decoders)}


def test_int8_model_has_quantized_linear_layers_and_decodes(tiny_marian):
    import torch

    gm = load_generation_model(ModelSpec(path=str(tiny_marian), local=True, dtype="int8"))
    kinds = {type(m).__name__ for m in gm.model.modules()}
    assert "Int8Linear" in kinds
    assert not any(type(m) is torch.nn.Linear for m in gm.model.modules())
    assert gm.device == "cpu"

    full = load_generation_model(ModelSpec(path=str(tiny_marian), local=True, dtype="float32"))
    ids = torch.tensor([full.encode(["the cat sat on the mat"])[0]])
    dec = torch.tensor([[full.decoder_start_token_id]])
    with torch.inference_mode():
        a = full.model(input_ids=ids, decoder_input_ids=dec).logits
        b = gm.model(input_ids=ids, decoder_input_ids=dec).logits
    # int8 weights move the logits, but only a little: the same model, not another one
    assert not torch.equal(a, b)
    assert torch.allclose(a, b, atol=0.05), (a - b).abs().max()


def test_int8_quantizes_gpt2s_conv1d_blocks_too(tiny_gpt2):
    """GPT-2's attention and MLP are transformers Conv1D layers, not nn.Linear: quantizing Linear
    layers alone would leave all of them float32 under an int8 label."""
    import torch

    plain = load_generation_model(ModelSpec(path=str(tiny_gpt2), local=True, dtype="float32"))
    gm = load_generation_model(ModelSpec(path=str(tiny_gpt2), local=True, dtype="int8"))
    names = {name for name, m in gm.model.named_modules() if type(m).__name__ == "Int8Linear"}
    assert {"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.1.mlp.c_fc",
            "transformer.h.1.mlp.c_proj", "lm_head"} <= names
    assert not [m for m in gm.model.modules() if type(m).__name__ == "Conv1D"]
    ids = torch.tensor([plain.encode(["the cat sat on the mat"])[0]])
    with torch.inference_mode():
        a, b = plain.model(input_ids=ids).logits, gm.model(input_ids=ids).logits
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.05), (a - b).abs().max()


def test_int8_run_records_reduced_precision(tmp_path, tiny_marian, translation_files):
    src, ref = translation_files
    out = tmp_path / "out"
    res = run_config(config({"path": str(tiny_marian), "dtype": "int8"}, src, ref,
                            decoders=["greedy", {"name": "beam", "params": {"num_beams": 2, "max_new_tokens": 8}}]), out)
    assert set(res.metrics["precision"]) == {"int8"}
    key = res.metrics["cell"].iloc[0]
    cell = json.loads((out / "cells" / key / "cell.json").read_text())
    assert cell["status"] == "done" and cell["precision"] == "int8"
    rows = [json.loads(line) for line in (out / "predictions").glob("*greedy*.jsonl").__next__().read_text().splitlines()]
    assert len(rows) == 4 and all(isinstance(r["output"], str) for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resolved"]["models"][0]["dtype"] == "int8"
    assert manifest["resolved"]["models"][0]["device"] == "cpu"  # int8 runs where its kernels are


def test_float32_and_int8_cells_have_different_keys(tmp_path, tiny_marian, translation_files):
    src, ref = translation_files
    r32 = load_experiment_dict(config({"path": str(tiny_marian), "dtype": "float32"}, src, ref))
    r8 = load_experiment_dict(config({"path": str(tiny_marian), "dtype": "int8"}, src, ref))
    from harness.run.runner import cell_key

    assert cell_key(r32.cells()[0]) != cell_key(r8.cells()[0])
    assert r32.cells()[0].model.precision == "float32"


def test_new_model_fields_leave_cached_cell_keys_alone(tiny_marian):
    # cells cached before `engine` / `compute_type` / `kernels` / `allow_missing_weights` existed keep their keys
    spec = ModelSpec(path=str(tiny_marian), local=True)
    old = spec.model_dump(mode="json")
    for name in ("label", "engine", "compute_type", "kernels", "path", "max_batch_tokens", "allow_missing_weights"):
        old.pop(name)
    from harness.store import content_digest

    old["content"] = content_digest(spec.path)
    assert model_fingerprint(spec) == canonical_hash(old)


@pytest.mark.parametrize("model, expected", [
    ({"dtype": "int8", "device": "cuda"},
     "models[0]: dtype int8 (fbgemm int8 Linear layers) runs on the CPU only, not on device 'cuda'; "
     "set device: cpu, or dtype float16 / bfloat16 on a GPU"),
    ({"dtype": "int4"}, "models[0].dtype: Input should be 'auto', 'float32', 'float16', 'bfloat16' or 'int8' (got 'int4')"),
    ({"compute_type": "int8"},
     "models[0]: compute_type applies to engine: ctranslate2 only; for transformers set dtype "
     "(allowed: auto, float32, float16, bfloat16, int8)"),
])
def test_int8_mistakes_are_one_line_errors(tiny_marian, translation_files, model, expected):
    assert_one_line_error({"path": str(tiny_marian), **model}, translation_files, expected)


def assert_one_line_error(model: dict, translation_files, expected: str) -> None:
    """The one-model experiment with this model entry is refused with one line holding ``expected``."""
    src, ref = translation_files
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load_experiment_dict(config(model, src, ref))
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and expected in lines[0], lines


def test_report_marks_reduced_precision_configurations(tmp_path, tiny_marian, translation_files):
    src, ref = translation_files
    cfg = config({"path": str(tiny_marian), "dtype": "float32", "label": "fp32"}, src, ref)
    cfg["models"].append({"path": str(tiny_marian), "dtype": "int8", "label": "q8"})
    cfg["reporters"] = ["markdown", "html"]
    out = tmp_path / "out"
    run_config(cfg, out)
    md = (out / "report.md").read_text()
    assert "q8 [int8]" in md
    assert "fp32 [" not in md, "float32 is not marked"
    assert ("Reduced precision: configurations marked [int8] decoded below float32 (int8: Linear layers in int8, "
            "weights and activations per row (CPU)); their outputs can differ from float32 decoding of the "
            "same weights.") in md
    html = (out / "report.html").read_text()
    assert "q8 [int8]" in html and "Reduced precision: configurations marked [int8]" in html


@pytest.mark.parametrize("precision, mark", [("float32", None), ("ct2:float32", None), (None, None), ("int8", "int8"),
                                             ("bfloat16", "bfloat16"), ("ct2:int8_float32", "ct2:int8_float32")])
def test_which_precisions_are_marked_as_reduced(precision, mark):
    from harness.report.analysis.pairing import reduced_precision

    assert reduced_precision(precision) == mark


def test_a_baseline_model_pairs_each_model_with_it_at_the_same_decoder(tmp_path, tiny_marian, translation_files):
    from harness.report import analyze
    from harness.results import load_run

    src, ref = translation_files
    cfg = config({"path": str(tiny_marian), "label": "fp32"}, src, ref,
                 decoders=["greedy", {"name": "beam", "params": {"num_beams": 2, "max_new_tokens": 8}}])
    cfg["models"].append({"path": str(tiny_marian), "dtype": "int8", "label": "q8"})
    cfg["baseline"] = {"model": "fp32", "decoder": "greedy"}
    run_config(cfg, tmp_path / "out")
    data = analyze(load_run(tmp_path / "out"))
    rows = {r.config.label: r for r in data.benchmarks[0].rows["bleu"]}
    assert {k: (r.baseline.label if r.baseline else None, r.is_baseline) for k, r in rows.items()} == {
        "fp32 / greedy": (None, True), "fp32 / beam": ("fp32 / greedy", False),
        "q8 / greedy [int8]": ("fp32 / greedy", False), "q8 / beam [int8]": ("fp32 / beam", False)}
    assert data.benchmarks[0].baseline_label == "fp32 / greedy"

    cfg["baseline"] = {"model": "fp16"}
    with pytest.raises((ConfigError, ConfigErrors), match="baseline.model: no model labelled 'fp16'"):
        load_experiment_dict(cfg)


def test_int8_quantizes_each_row_whatever_the_other_rows_of_its_batch(tiny_marian):
    """Activations are quantized per row: each row of an Int8Linear's output equals that row alone,
    bit for bit, next to rows 1,000x larger (one scale per batch, as torch's dynamic quantization
    measures, would coarsen the small rows). On this tiny model, whose float32 layers round padded
    batches alike, a sentence's logits are then the same alone and in a batch of four (on larger
    models the float32 attention over padding differs in the last bits and int8 can amplify that:
    docs/engines.md)."""
    import torch

    from harness.models.int8 import int8_linear_class

    torch.manual_seed(0)
    layer = int8_linear_class()(torch.nn.Linear(64, 48), 7)
    rows = torch.randn(6, 64) * torch.tensor([1.0, 1000.0, 0.001, 1.0, 50.0, 0.0])[:, None]
    together = layer(rows)
    for i in range(6):
        assert torch.equal(layer(rows[i:i + 1])[0], together[i]), i

    gm = load_generation_model(ModelSpec(path=str(tiny_marian), local=True, dtype="int8", kernels="default"))
    texts = ["the cat sat on the mat", "a dog", "the mat sat on a cat dog", "cat"]
    batch = gm.tokenizer(texts, return_tensors="pt", padding=True)
    dec = torch.full((4, 1), gm.decoder_start_token_id)
    with torch.inference_mode():
        together = gm.model(**batch, decoder_input_ids=dec).logits
        for i in range(4):
            one = gm.tokenizer(texts[i:i + 1], return_tensors="pt")
            alone = gm.model(**one, decoder_input_ids=dec[:1]).logits
            assert torch.equal(alone[0], together[i]), i


def test_int8_cells_do_not_reuse_cells_of_the_old_int8_scheme():
    """The scheme enters the model's key: cells cached by torch's dynamic quantization (the key on
    main before this scheme, a Hub id so that no file content enters it) are not served as int8."""
    old = "5784e334063e75c8"
    assert model_fingerprint(ModelSpec(path="Helsinki-NLP/opus-mt-en-de", dtype="int8")) != old
    assert model_fingerprint(ModelSpec(path="Helsinki-NLP/opus-mt-en-de")) == "e754aba067c50730"


def test_int8_is_recorded_with_its_activation_grid(tmp_path, tiny_marian, translation_files):
    from harness.models import int8

    src, ref = translation_files
    out = tmp_path / "out"
    res = run_config(config({"path": str(tiny_marian), "dtype": "int8"}, src, ref), out)
    record = json.loads((out / "cells" / res.cells[0]["key"] / "cell.json").read_text())["kernels"]
    # the tiny model's 11-word vocabulary is below int8.WIDE: no layer goes through oneDNN
    assert record["used"] == "int8" and f"({int8.activation_bits()}-bit activations; 0 output layer(s) of " \
        f"{int8.WIDE}+ outputs through oneDNN)" in record["reason"]


@pytest.mark.parametrize("bits", [8, 7])
def test_int8_wide_layers_compute_the_fbgemm_result_through_onednn(bits, monkeypatch):
    """A layer of int8.WIDE+ outputs (an output layer) runs through oneDNN where the build has it:
    the same integers, so its result equals fbgemm's to float32 rescaling (1e-6 of a row's largest
    output), still row by row (each row alone equals it in the batch, next to rows 1,000x larger)."""
    import torch

    from harness.models import int8

    if not int8.onednn_available():
        pytest.skip("this torch build has no oneDNN int8 linear")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, int8.WIDE + 3)
    wide = int8.int8_linear_class()(linear, bits)
    monkeypatch.setattr(int8, "WIDE", 10 ** 9)
    narrow = int8.int8_linear_class()(linear, bits)
    assert (wide.onednn, narrow.onednn) == (True, False) and "oneDNN" in repr(wide)
    rows = torch.randn(5, 64) * torch.tensor([1.0, 1000.0, 0.001, 50.0, 0.0])[:, None]
    with torch.inference_mode():
        a, b = wide(rows), narrow(rows)
        top = b.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        assert float(((a - b).abs() / top).max()) < 1e-6
        assert float((b - linear(rows)).abs().max()) > 1e-4  # int8 does move the outputs: the check has teeth
        for i in range(5):
            assert torch.equal(wide(rows[i:i + 1])[0], a[i]), i
