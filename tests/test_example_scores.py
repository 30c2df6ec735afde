"""predictions/*.jsonl rows carry per-example scores: sacrebleu's sentence chrF/BLEU, `correct` for
classification, a plugin's example_scores; the manifest records how each was computed, once."""
from __future__ import annotations

import json

import pytest
import sacrebleu

from harness.api import Example, Metric, MetricValue
from harness.experiment.load import load_experiment_dict
from harness.run.example_scores import metric_example_scores
from harness.run.runner import run_experiment


def rows_of(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def scores_config(model_dir) -> dict:
    """Greedy on the toy test set with BLEU, chrF and chrF++ (a second chrf under its own label)."""
    return {
        "name": "scores", "seeds": [0], "models": [{"path": str(model_dir), "label": "tiny"}],
        "benchmarks": [{"name": "parallel_text", "label": "toy", "params": {"source": "test.en", "reference": "test.de"}}],
        "decoders": [{"name": "greedy", "params": {"max_new_tokens": 6}}],
        "metrics": ["bleu", "chrf", {"name": "chrf", "label": "chrf++", "params": {"word_order": 2}}],
        "reporters": [],
    }


@pytest.fixture
def translation_run(tmp_path, tiny_marian, translation_files):
    resolved = load_experiment_dict(scores_config(tiny_marian), base_dir=tmp_path)
    summary = run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    assert not summary.failed, [o.error for o in summary.failed]
    return tmp_path / "out"


def test_translation_rows_carry_sacrebleus_sentence_scores(translation_run):
    rows = rows_of(translation_run / "predictions" / "tiny__toy__none__greedy__0.jsonl")
    assert len(rows) == 4
    for r in rows:
        assert set(r["scores"]) == {"bleu", "chrf", "chrf++"}
        assert r["scores"]["chrf"] == pytest.approx(sacrebleu.sentence_chrf(r["output"], [r["reference"]]).score, abs=1e-6)
        assert r["scores"]["chrf++"] == pytest.approx(
            sacrebleu.sentence_chrf(r["output"], [r["reference"]], word_order=2).score, abs=1e-6)
        assert r["scores"]["bleu"] == pytest.approx(sacrebleu.sentence_bleu(r["output"], [r["reference"]]).score, abs=1e-6)
    manifest = json.loads((translation_run / "manifest.json").read_text())
    sigs = manifest["metrics"]
    assert sigs["bleu"]["plugin"] == "bleu" and sigs["bleu"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    # sentence BLEU uses effective order (sacrebleu.sentence_bleu's default), and says so
    assert sigs["bleu"]["example_scores"].startswith("sentence nrefs:1|case:mixed|eff:yes|tok:13a")
    assert sigs["chrf++"]["example_scores"].startswith("sentence nrefs:1|case:mixed|eff:yes|nc:6|nw:2")
    # the cell's own file is what cell.json's digest vouches for: no scores there, so adding a metric re-decodes nothing
    cell = next((translation_run / "cells").iterdir())
    assert all("scores" not in r for r in rows_of(cell / "predictions.jsonl"))


def test_scores_are_rewritten_identically_on_resume(translation_run, tmp_path, tiny_marian):
    before = {p.name: p.read_bytes() for p in (translation_run / "predictions").iterdir()}
    resolved = load_experiment_dict(scores_config(tiny_marian), base_dir=tmp_path)
    summary = run_experiment(resolved, translation_run, cache_dir=tmp_path / "cache", quiet=True)
    assert [o.status for o in summary.outcomes] == ["cached"]
    assert {p.name: p.read_bytes() for p in (translation_run / "predictions").iterdir()} == before


def test_classification_rows_say_correct(tmp_path, tiny_bert):
    (tmp_path / "test.tsv").write_text("text\tlabel\n" + "".join(f"text number {i}\t{'pos' if i % 2 else 'neg'}\n"
                                                                 for i in range(10)), encoding="utf-8")
    resolved = load_experiment_dict({
        "name": "cls", "seeds": [0], "models": [{"path": str(tiny_bert), "label": "tiny", "init": "random"}],
        "benchmarks": [{"name": "text_classification", "label": "syn", "params": {"test": "test.tsv", "labels": ["neg", "pos"]}}],
        "metrics": ["accuracy"], "reporters": [],
    }, base_dir=tmp_path)
    summary = run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    assert not summary.failed, [o.error for o in summary.failed]
    rows = rows_of(next((tmp_path / "out" / "predictions").iterdir()))
    assert len(rows) == 10
    assert [r["scores"] for r in rows] == [{"correct": r["output"] == r["reference"]} for r in rows]
    accuracy = summary.outcomes[0].metrics[0]["value"]
    assert sum(r["scores"]["correct"] for r in rows) == pytest.approx(accuracy * 10 / (100 if accuracy > 1 else 1))


class LengthRatio(Metric):
    """A plugin metric with per-example scores (as lm-eval's or Inspect's per-sample values would be)."""

    name = "length_ratio"

    def example_scores(self, outputs, examples, nbest=None):
        return [len(o) / max(1, len(e.reference)) for o, e in zip(outputs, examples)]

    def compute(self, outputs, examples, nbest=None):
        s = self.example_scores(outputs, examples)
        return MetricValue(sum(s) / len(s))


def test_a_plugins_example_scores_are_used_as_given():
    exs = [Example("1", "a", reference="abcd"), Example("2", "b", reference="ab")]
    values, sig = metric_example_scores(LengthRatio(), ["ab", "abc"], exs)
    assert values == [0.5, 1.5] and sig == "length_ratio.example_scores"
    # a metric with no per-example form (the base class default) gives none
    assert metric_example_scores(Metric(), ["ab"], exs[:1]) == (None, None)


def test_sentence_scores_use_every_reference_and_the_metrics_options():
    from harness_plugins.metrics.sacrebleu_metrics import Chrf, Ter

    exs = [Example("1", "s", reference="Der Hund läuft.", references=("Der Hund läuft.", "Ein Hund rennt schnell."))]
    values, _ = metric_example_scores(Chrf(), ["Ein Hund rennt."], exs)
    assert values == [pytest.approx(sacrebleu.sentence_chrf("Ein Hund rennt.", list(exs[0].references)).score, abs=1e-6)]
    assert values[0] > sacrebleu.sentence_chrf("Ein Hund rennt.", ["Der Hund läuft."]).score  # the 2nd reference counts
    values, sig = metric_example_scores(Ter(Ter.Params(case_sensitive=True)), ["der hund läuft."], exs[:1])
    assert values == [pytest.approx(sacrebleu.sentence_ter("der hund läuft.", list(exs[0].references),
                                                           case_sensitive=True).score, abs=1e-6)]
    assert values[0] > 0 and "case:mixed" in sig
