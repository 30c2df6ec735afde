"""The verdict vocabulary on constructed runs: identical outputs, the data cannot decide (a floor;
too few seeds for the difference that matters), better / worse, no significant difference (with
the difference the test could see). Every run is written directly (tests/report_helpers.py) with
an exact number of wrong predictions per cell, so each per-seed difference is known."""
from __future__ import annotations

import json

import pytest

from harness.report import AnalysisParams, analyze
from harness.results import load_run
from report_helpers import translation_benchmark, write_run


def gold_labels(n: int) -> list[str]:
    return ["pos" if i % 3 else "neg" for i in range(n)]


def wrong_at(gold: list[str], positions) -> list[str]:
    bad = set(positions)
    return [("neg" if g == "pos" else "pos") if i in bad else g for i, g in enumerate(gold)]


def run(tmp_path, n: int, cells: list[tuple[str, int, list[int]]], **params):
    """cells: (strategy, seed, wrong positions); the accuracy row (0-100) of input_mask against unmasked."""
    gold = gold_labels(n)
    bench = {"subj": {"task": "classification", "sources": [f"s {i}" for i in range(n)], "references": gold}}
    out = write_run(tmp_path / "run", benchmarks=bench, baseline={"strategy": "unmasked"}, scale=100.0,
                    cells=[dict(benchmark="subj", strategy=st, seed=seed, outputs=wrong_at(gold, wrong))
                           for st, seed, wrong in cells])
    data = analyze(load_run(out), AnalysisParams(**params))
    row = next(r for r in data.benchmarks[0].rows["accuracy"] if r.config.strategy == "input_mask")
    return out, data, row


def test_identical_outputs(tmp_path):
    cells = [(st, s, list(range(30 + s))) for s in (0, 1, 2) for st in ("unmasked", "input_mask")]
    _, _, row = run(tmp_path, 200, cells)
    assert row.decision.kind == "identical" and row.verdict_label == "identical outputs" and row.p is None
    assert row.verdict == "input_mask produces identical outputs to unmasked on every seed's examples: no test, not a " \
                          "difference."


def test_cannot_decide_by_the_floor_of_the_test(tmp_path):
    # one evaluation per arm; input_mask fixes 4 examples the baseline gets wrong and breaks none: McNemar's
    # exact test gives p = 2/2^4 = 0.125, the smallest it can with 4 discordant pairs: never "not significant"
    _, _, row = run(tmp_path, 200, [("unmasked", 0, list(range(30))), ("input_mask", 0, list(range(4, 30)))])
    assert row.test == "mcnemar" and row.mcnemar_bc == (0, 4) and row.p == 0.125
    assert row.decision.kind == "cannot_decide" and row.verdict_label == "the data cannot decide"
    assert row.verdict.endswith(
        "): the data cannot decide: only 4 of 200 examples are right for one system and wrong for the other, so "
        "McNemar's exact test cannot give p below 0.125; at least 6 differing examples (a test set of about 300 "
        "examples at this rate) or several seeds would.")
    assert "not significant" not in row.verdict and "no significant difference" not in row.verdict


def test_cannot_decide_by_seeds_for_the_difference_that_matters(tmp_path):
    # three seeds that disagree (+5, -4, +1.5 points): the test can only see large differences, not the 1 point
    # that matters; the verdict says how many seeds would, over the range the seed variance allows
    # each seed changes its own examples (no example is changed in two seeds): the seeds alone disagree
    base = {s: list(range(40)) for s in (0, 1, 2)}
    arm = {0: list(range(10, 40)), 1: list(range(40)) + list(range(100, 108)), 2: list(range(20)) + list(range(23, 40))}
    cells = [("unmasked", s, base[s]) for s in base] + [("input_mask", s, arm[s]) for s in arm]
    _, _, row = run(tmp_path, 200, cells, min_effect=1.0)
    assert row.test == "crossed" and row.p > 0.05 and row.mde > 1.0
    need = row.seeds_need_min_effect
    assert row.decision.kind == "cannot_decide" and need.low < need.high
    assert (f"the data cannot decide: the test could only see a difference of {row.mde:.2f} or more with 80% power, "
            f"not the 1.00 that matters (min_effect); about {need.estimate} seeds (between {need.low} and "
            f"{need.high} over the 90% range of the seed-to-seed variance) would see it.") in row.verdict


def test_worse_significant_when_every_seed_loses_five_points_as_on_subj(tmp_path):
    # the SUBJ case: -5.0 accuracy in every seed. The sign-flip test over 3 seeds cannot go below 0.25
    # (it said "not significant"); the seeds × examples test sees the consistent loss over 400 examples
    base = {s: list(range(60 + 3 * s)) for s in (0, 1, 2)}
    arm = {s: base[s] + list(range(200 + 7 * s, 220 + 7 * s)) for s in (0, 1, 2)}
    cells = [("unmasked", s, base[s]) for s in base] + [("input_mask", s, arm[s]) for s in arm]
    _, data, row = run(tmp_path, 400, cells)
    assert [e["value"] - e["baseline"] for e in row.per_seed] == pytest.approx([-5.0, -5.0, -5.0])
    assert row.p_seeds_perm == 0.25  # the old deciding test, shown beside: it cannot decide with 3 seeds
    assert row.test == "crossed" and row.p < 0.001 and row.decision.kind == "worse"
    assert row.verdict_label == "worse (significant)" and row.verdict.endswith(
        "): worse (significant at 0.05). Per seed, over its own examples: McNemar < 0.001, < 0.001, < 0.001 (each "
        "seed tested alone, never pooled).")
    assert "sign-flip permutation over 3 seeds p = 0.250" in row.verdict


def test_no_significant_difference_with_the_difference_the_test_could_see(tmp_path):
    # 1,000 examples, three seeds: 6 examples fixed and 6 broken in each, no difference, little seed variance
    base = {s: list(range(100)) for s in (0, 1, 2)}
    arm = {s: list(range(6, 100)) + list(range(500 + 10 * s, 506 + 10 * s)) for s in (0, 1, 2)}
    cells = [("unmasked", s, base[s]) for s in base] + [("input_mask", s, arm[s]) for s in arm]
    out, _, row = run(tmp_path, 1000, cells, min_effect=2.0)
    assert row.delta == 0 and row.p == 1.0
    assert row.decision.kind == "no_difference" and row.mde < 2.0
    assert (f"): no significant difference at 0.05 (the test had 80% power to see a difference of {row.mde:.2f} or "
            "more). Per seed, over its own examples: McNemar 1.000, 1.000, 1.000") in row.verdict
    # the same word in report.md and summary.csv
    from harness_plugins.reporters.exports import CsvExport
    from harness_plugins.reporters.markdown import MarkdownReport

    results = load_run(out)
    md = MarkdownReport().write(results, out)[0].read_text(encoding="utf-8")
    assert (f"  - input_mask: +0.00, p = 1.000, Holm 1.000: **no significant difference** (80% power to see "
            f"{row.mde:.2f} or more)") in md.splitlines()
    import pandas as pd

    csv = pd.read_csv(CsvExport().write(results, out)[0])
    r = csv[(csv.metric == "accuracy") & (csv.strategy == "input_mask")].iloc[0]
    assert r["decision"] == "no_difference" and r["mde"] == pytest.approx(row.mde)


def test_results_json_states_the_decision_and_the_holm_family(tmp_path):
    from harness.report.results_json import build

    base = {s: list(range(60 + 3 * s)) for s in (0, 1, 2)}
    arm = {s: base[s] + list(range(200 + 7 * s, 220 + 7 * s)) for s in (0, 1, 2)}
    cells = [("unmasked", s, base[s]) for s in base] + [("input_mask", s, arm[s]) for s in arm]
    out, _, _ = run(tmp_path, 400, cells)
    doc = build(load_run(out))
    comp = next(c for c in doc["comparisons"] if c["metric"] == "accuracy")
    assert comp["decision"] == "worse" and comp["test"] == "crossed" and comp["test_name"] == "seeds × examples t-test"
    assert doc["holm_family"].startswith("the 3 tested comparisons of this report (subj; every metric;")
    json.dumps(doc)  # plain JSON


def test_a_deterministic_decoder_over_one_checkpoint_is_one_evaluation_not_three_seeds(tmp_path):
    # greedy and beam decode one checkpoint (train_seed): the same cell for every seed; listed once, with its seeds
    tb = translation_benchmark(40)
    refs = tb["references"]
    greedy = [r if i % 3 else r.split()[0] for i, r in enumerate(refs)]
    beam = [r if i % 2 else r.split()[0] for i, r in enumerate(refs)]
    cells = [dict(benchmark="t", decoder=dec, seed=s, outputs=outs, key=f"{dec}-cell")
             for s in (0, 1, 2) for dec, outs in (("greedy", greedy), ("beam", beam))]
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, cells=cells)
    row = next(r for r in analyze(load_run(out)).benchmarks[0].rows["bleu"] if r.config.decoder == "beam")
    assert row.seeds_paired == 1 and len(row.per_seed) == 1 and row.per_seed[0]["seeds"] == [0, 1, 2]
    assert row.test == "ar" and row.p_seeds_perm is None  # tested over its examples, not as three seeds
    from harness_plugins.reporters.html import HtmlReport

    from test_report import Tables

    html = HtmlReport().write(load_run(out), out)[0].read_text(encoding="utf-8")
    assert "seeds-1-bleu" not in Tables(html).tables  # no per-seed table: one evaluation, tested over its examples
