"""`kernels: onednn` on a model: float32 Linear layers with oneDNN-prepacked weights for decoding."""
from __future__ import annotations

import pytest

from harness.models import ModelSpec, load_generation_model
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
    cfg = config({"path": str(tiny_marian), "label": "plain"}, src, ref, decoders)
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
    ({"kernels": "mkl"}, "models[0].kernels: Input should be 'default' or 'onednn' (got 'mkl')"),
])
def test_onednn_mistakes_are_one_line_errors(tiny_marian, translation_files, model, expected):
    assert_one_line_error({"path": str(tiny_marian), **model}, translation_files, expected)


def test_cpu_decoding_keeps_freed_memory_for_reuse(tiny_marian):
    """Loading a model for CPU decoding sets glibc's malloc to reuse freed large blocks (no
    page faults for the per-step logits); it is process-wide and happens once."""
    import sys

    from harness import kernels

    load_generation_model(ModelSpec(path=str(tiny_marian), local=True, device="cpu"))
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert kernels._allocator_tuned is True
    assert kernels.keep_freed_memory() is True
