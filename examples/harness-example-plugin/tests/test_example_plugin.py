"""Tests of the example plugins, written the way a plugin package tests itself: with the tiny
models and the `run_config` helper of `harness.testing` (no network, a few seconds on a CPU)."""
from __future__ import annotations

import pytest
import sacrebleu

import harness_example_plugin
from harness.testing import REFERENCES, SOURCES, build_tiny_marian, run_config, write_translation_files
from harness_example_plugin import LengthRatio


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_marian(tmp_path_factory.mktemp("model"))


def experiment(model, src, ref, **sections):
    return {"name": "example", "models": [{"path": str(model)}],
            "benchmarks": [{"name": "parallel_text", "label": "toy", "params": {"source": str(src), "reference": str(ref)}}],
            **sections}


def test_copy_source_outputs_the_source_and_is_scored_like_sacrebleu(tmp_path, model):
    src, ref = write_translation_files(tmp_path)
    # plugins=[module]: registered for this run without installing the package's entry point
    results = run_config(experiment(model, src, ref, decoders=["copy_source"], metrics=["bleu", "length_ratio"]),
                         tmp_path / "out", plugins=[harness_example_plugin])
    (cell,) = results.cells
    assert cell["status"] == "done"
    assert [p["output"] for p in results.predictions(cell["key"])] == SOURCES
    values = dict(zip(results.metrics["metric"], results.metrics["value"]))
    assert values["bleu"] == pytest.approx(sacrebleu.corpus_bleu(SOURCES, [REFERENCES]).score)
    assert values["length_ratio"] == pytest.approx(21 / 20)  # source words / reference words


def test_copy_source_next_to_a_built_in_decoder(tmp_path, model):
    src, ref = write_translation_files(tmp_path)
    results = run_config(experiment(model, src, ref, decoders=["greedy", "copy_source"], metrics=["length_ratio"]),
                         tmp_path / "out", plugins=[harness_example_plugin])
    assert sorted(results.metrics["decoder"]) == ["copy_source", "greedy"]


def test_length_ratio_counts_words():
    from harness.api import Example

    metric = LengthRatio(LengthRatio.Params())
    examples = [Example(id="1", source="x", reference="a b c d")]
    assert metric.compute(["a b"], examples).value == 0.5
