"""A third-party metric joins the paired tests: per-example scores (``Metric.example_scores``),
a display name, precision and direction (higher, lower, closer to a target).

Two plugin metrics defined here are scored into a run directory, then analysed with the plugin
registered the way an installed package would be; every p-value and interval is recomputed here
with a plain loop over the same resampling draws.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.report import analyze
from harness.api import Metric, MetricValue
from harness.hookspecs import hookimpl
from harness.plugins import PluginSet
from harness.results import load_run
from harness.stats import significance as stats
from report_helpers import degrade, translation_benchmark, write_run


def corrupt(refs: list[str], every: int, drop: int) -> list[str]:
    """Replace words by a word no reference has, and drop a few: a deterministic weaker system."""
    return [" ".join("zz" if (i + j) % every == 0 else w for j, w in enumerate(r.split())
                     if (i + j) % drop != 3) for i, r in enumerate(refs)]


def overlap(hyp: str, ref: str) -> float:
    h, r = hyp.split(), set(ref.split())
    return 100.0 * sum(w in r for w in h) / max(len(h), 1)


class WordMatch(Metric):
    name = "word_match"
    title = "word match"
    description = "share of output words found in the reference, per sentence, averaged"
    decimals = 1
    value_range = (0.0, 100.0)

    def example_scores(self, outputs, examples, nbest=None):
        return [overlap(o, ex.reference) for o, ex in zip(outputs, examples)]

    def compute(self, outputs, examples, nbest=None):
        s = self.example_scores(outputs, examples)
        return MetricValue(float(np.mean(s)), signature="word-match|v1")


class LengthRatio(Metric):
    name = "length_ratio"
    title = "length ratio"
    description = "output words / reference words per sentence, averaged; 1 is best"
    direction = "target"
    target = 1.0
    decimals = 3

    def example_scores(self, outputs, examples, nbest=None):
        return [len(o.split()) / len(ex.reference.split()) for o, ex in zip(outputs, examples)]

    def compute(self, outputs, examples, nbest=None):
        return MetricValue(float(np.mean(self.example_scores(outputs, examples))))


class plugin_module:  # what an installed package's entry point would name
    @staticmethod
    @hookimpl
    def register_metrics(register):
        register(WordMatch)
        register(LengthRatio)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from harness.api import Example

    tb = translation_benchmark(40)
    refs = tb["references"]
    systems = {"greedy": corrupt(refs, 3, 4), "beam": corrupt(refs, 5, 9), "sample": degrade(refs, 2, offset=1)}
    exs = [Example(id=str(i), source="", reference=r) for i, r in enumerate(refs)]
    cells = [dict(benchmark="t", decoder=d, outputs=o,
                  extra={"word_match": WordMatch().compute(o, exs).value,
                         "length_ratio": LengthRatio().compute(o, exs).value}) for d, o in systems.items()]
    out = write_run(tmp_path_factory.mktemp("plugin") / "run", benchmarks={"t": tb}, cells=cells,
                    extra_metric_plugins={"word_match": "word_match", "length_ratio": "length_ratio"})
    data = analyze(load_run(out), plugins=PluginSet(extra=[plugin_module]))
    return out, data, systems, exs


def test_per_example_scores_get_the_paired_tests_and_intervals_of_the_built_ins(run):
    _, data, systems, exs = run
    rows = {r.config.label: r for r in data.benchmarks[0].rows["word_match"]}
    n = len(exs)
    per = {d: np.array(WordMatch().example_scores(o, exs)) for d, o in systems.items()}
    counts = stats.bootstrap_counts(n, 1000, 12345)
    boot = {d: counts @ per[d] / n for d in per}
    lo_idx = 1000 // 40
    for d in ("beam", "sample"):
        r = rows[d]
        obs = per[d].mean() - per["greedy"].mean()
        diffs = boot[d] - boot["greedy"]
        assert r.p_bootstrap == pytest.approx((1 + np.sum(np.abs(diffs - obs) >= abs(obs))) / 1001)
        mask = stats.ar_mask(n, 10000, 12345)
        swapped = np.where(mask, per["greedy"], per[d]).mean(axis=1) - np.where(mask, per[d], per["greedy"]).mean(axis=1)
        assert r.p_ar == pytest.approx((np.sum(np.abs(swapped) > abs(obs)) + 1) / 10001)
        assert r.test == "ar" and r.p == r.p_ar  # the same deciding test as a built-in translation metric
        assert r.ci_kind == "bootstrap"
        s = np.sort(boot[d])
        assert (r.ci_low, r.ci_high) == pytest.approx((s[lo_idx], s[1000 - lo_idx - 1]))
        assert r.verdict.startswith(f"{d} scores {abs(obs):.1f} word match ")
    assert data.benchmarks[0].metrics[[m.label for m in data.benchmarks[0].metrics].index("word_match")].signature_label \
        == "signature of metric plugin 'word_match'"


def test_a_target_direction_ranks_by_distance_and_is_tested_on_it(run):
    _, data, systems, exs = run
    rows = {r.config.label: r for r in data.benchmarks[0].rows["length_ratio"]}
    m = rows["beam"].metric
    assert m.direction == "target" and m.arrow == "→ 1" and m.direction_text == "closer to 1 is better"
    vals = {d: float(np.mean(LengthRatio().example_scores(o, exs))) for d, o in systems.items()}
    order = sorted(vals, key=lambda d: abs(vals[d] - 1))
    assert [rows[d].rank for d in order] == [1, 2, 3]
    # bootstrap of the improvement in distance to the target decides (AR's |difference| has no such form)
    r = rows["sample"]
    assert r.test == "bootstrap" and r.p_ar is None and r.p == r.p_bootstrap
    better = abs(vals["sample"] - 1) < abs(vals["greedy"] - 1)
    # better or worse is judged by the distance to the target, and said only of a significant difference
    assert r.p < 0.05 and r.decision.kind == ("better" if better else "worse")
    assert r.verdict.endswith(f"{'better' if better else 'worse'} (significant at 0.05).")


def test_report_shows_the_plugin_title_precision_and_signature_source(run):
    from harness_plugins.reporters.html import render

    out, data, _, _ = run
    html = render(data, plots=False)
    assert "word match ↑" in html and "length ratio → 1" in html
    assert "word_match" not in data.benchmarks[0].signatures  # write_run records none for extra metrics
    assert "sacrebleu signature: nrefs:1|case:mixed|eff:no|tok:13a" in html
    assert 'data-best="target:1.0"' in html
    beam = next(r for r in data.benchmarks[0].rows["word_match"] if r.config.label == "beam")
    assert f">{beam.value:.1f}<" in html  # the plugin's one decimal


def test_scores_whose_mean_is_not_the_value_get_no_tests(tmp_path):
    tb = translation_benchmark(10)
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, extra_metric_plugins={"word_match": "word_match"},
                    cells=[dict(benchmark="t", decoder="greedy", outputs=degrade(tb["references"], 3), extra={"word_match": 1.0}),
                           dict(benchmark="t", decoder="beam", outputs=degrade(tb["references"], 4), extra={"word_match": 2.0})])
    data = analyze(load_run(out), plugins=PluginSet(extra=[plugin_module]))
    assert any("word match: the mean of its per-example scores is not its recorded value" in n
               for n in data.benchmarks[0].notes)
    assert {r.p for r in data.benchmarks[0].rows["word_match"]} == {None}
