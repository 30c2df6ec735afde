"""harness.testing: the public helpers a plugin package's tests use."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness.testing as testing
from harness.errors import HarnessError
from harness.testing import SOURCES, build_word_tokenizer, run_config, write_translation_files

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "harness-example-plugin"


def test_public_names_have_no_underscores_and_docstrings():
    for name in testing.__all__:
        assert not name.startswith("_")
        obj = getattr(testing, name)
        if callable(obj):
            assert obj.__doc__, name


def test_word_tokenizer_ids(tmp_path):
    tok, vocab = build_word_tokenizer(tmp_path)
    assert [vocab[t] for t in ("<pad>", "</s>", "<unk>", "<s>")] == [0, 1, 2, 3]
    assert tok("the cat zebra")["input_ids"] == [vocab["the"], vocab["cat"], 2, 1]
    _, bert_vocab = build_word_tokenizer(tmp_path / "bert", bert_style=True)
    assert list(bert_vocab)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def experiment(model, src, ref, **extra):
    return {"name": "t", "models": [{"path": str(model)}],
            "benchmarks": [{"name": "parallel_text", "label": "toy",
                            "params": {"source": str(src), "reference": str(ref)}}], **extra}


def test_run_config_with_a_dict_returns_the_results(tmp_path, tiny_marian):
    src, ref = write_translation_files(tmp_path)
    results = run_config(experiment(tiny_marian, src, ref, metrics=["bleu"], decoders=["greedy"]), tmp_path / "out",
                         overrides=["decoders.0.params.max_new_tokens=3"])
    (cell,) = results.cells
    predictions = results.predictions(cell["key"])
    assert [p["source"] for p in predictions] == SOURCES
    assert all(len(p["output"].split()) <= 3 for p in predictions)  # the override reached the decoder
    assert list(results.metrics["metric"]) == ["bleu"]
    assert (tmp_path / "out" / "report.html").is_file()


def test_run_config_with_a_yaml_file_matches_the_cli(tmp_path, tiny_marian):
    from click.testing import CliRunner

    from harness.cli import main

    src, ref = write_translation_files(tmp_path)
    (tmp_path / "exp.yaml").write_text(
        f"name: t\nmodels: [{{path: {tiny_marian}}}]\n"
        "benchmarks: [{name: parallel_text, params: {source: test.en, reference: test.de}}]\nmetrics: [chrf]\n")
    results = run_config(tmp_path / "exp.yaml", tmp_path / "api")
    r = CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "cli"), "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cli" / "metrics.csv").read_bytes() == (tmp_path / "api" / "metrics.csv").read_bytes()
    assert list(results.metrics["metric"]) == ["chrf"]


def test_run_config_errors_name_the_override(tmp_path, tiny_marian):
    src, ref = write_translation_files(tmp_path)
    with pytest.raises(HarnessError) as info:
        run_config(experiment(tiny_marian, src, ref, decoders=["greedy"]), tmp_path / "out",
                   overrides=["decoders.0.params.batch_size=0"])
    assert str(info.value).startswith("--set decoders.0.params.batch_size=0: decoders[0].params.batch_size: ")
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_example_plugin_tests_pass_in_a_subprocess():
    """The example package's own tests (which use harness.testing) pass, run as its author would."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=EXAMPLE, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 passed" in out.stdout
