"""The report's section "The note's arguments" (issue #25) and the argument -> arms table behind it.

A run is written directly (tests/report_helpers.py) with the arms of arguments (1) and (2) on 3
datasets x 2 budgets x 3 seeds, each cell with an exact number of wrong predictions, so every
per-seed difference between two arms is a known number; the section must pool the datasets' effects
as the study section pools them (the t-test over datasets, harness.stats.meta_analysis.pool_datasets)
and state the verdict the report's verdict function gives.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import analyze
from harness.results import load_run
from harness.stats.meta_analysis import pool_datasets
from report_helpers import write_run
from test_report_study import set_strategy_params, wrong_at, write_reports

N = 200  # test examples per dataset: one wrong prediction = 0.005 accuracy
DATASETS = ("sst2", "rt-polarity", "mpqa")
BUDGETS = (200, 800)
SEEDS = (0, 1, 2)
ARMS = ("unmasked", "input_mask", "mask_augment", "aux_mlm")
# wrong predictions per arm, added to a dataset/budget/seed base: input_mask loses 6-10 examples,
# mask_augment wins most of them back, aux_mlm loses more than mask_augment
EXTRA = {"unmasked": (0, 0, 0), "input_mask": (8, 6, 10), "mask_augment": (2, 1, 3), "aux_mlm": (9, 5, 7)}
SHIFT = {"sst2": (0, 0, 0), "rt-polarity": (1, -1, 2), "mpqa": (-1, 2, 0)}


def errors(ds: str, budget: int, arm: str, seed: int) -> int:
    base = {"sst2": 30, "rt-polarity": 40, "mpqa": 25}[ds] + 3 * seed - (10 if budget == 800 else 0)
    return base + (EXTRA[arm][seed] + SHIFT[ds][seed] if arm != "unmasked" else 0)


def diffs(ds: str, budget: int, treatment: str, reference: str) -> list[float]:
    """Per-seed accuracy (0-1) of treatment minus reference."""
    return [(errors(ds, budget, reference, s) - errors(ds, budget, treatment, s)) / N for s in SEEDS]


def build(out: Path, *, unequal: bool = False) -> Path:
    benchmarks, cells = {}, []
    for ds in DATASETS:
        gold = ["pos" if (i * 5 + len(ds)) % 3 else "neg" for i in range(N)]
        for budget in BUDGETS:
            label = f"{ds}-b{budget}"
            benchmarks[label] = {"task": "classification", "sources": [f"{ds} {i}" for i in range(N)],
                                 "references": gold}
            for arm_i, arm in enumerate(ARMS):
                for seed in SEEDS:
                    start = 7 * arm_i + seed  # each arm gets other examples wrong: outputs differ
                    cells.append(dict(benchmark=label, strategy=arm, seed=seed, model="MiniLM",
                                      outputs=wrong_at(gold, range(start, start + errors(ds, budget, arm, seed)))))
    write_run(out, experiment="note-arguments", benchmarks=benchmarks, cells=cells, baseline={"strategy": "unmasked"})

    def params_of(r):
        p = {"train_limit": int(r.benchmark.rsplit("-b", 1)[1]), "epochs": 3, "batch_size": 16, "learning_rate": 1e-4,
             "max_steps": None, "gradient_accumulation_steps": 1, "max_length": 64}
        if r.strategy != "unmasked":
            p.update(mask_prob=0.15, mask_ratio=0.8, random_ratio=0.1, keep_ratio=0.1)
        if unequal and r.strategy == "mask_augment" and r.benchmark == "mpqa-b800":
            p["epochs"] = 6
        return p

    set_strategy_params(out, params_of)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = build(tmp_path_factory.mktemp("arguments") / "run")
    results = write_reports(out, names=("html", "markdown"))
    return out, analyze(results)


def test_rows_are_the_arguments_present_per_budget(run):
    _, data = run
    na = data.arguments
    assert na is not None and na.metric.label == "accuracy"
    assert [(r.test.key, r.budget, r.treatment, r.reference) for r in na.rows] == [
        ("1", 200, "aux_mlm", "mask_augment"), ("1", 800, "aux_mlm", "mask_augment"),
        ("2", 200, "mask_augment", "input_mask"), ("2", 800, "mask_augment", "input_mask")]
    assert all([d.dataset for d in r.datasets] == list(DATASETS) for r in na.rows)
    assert na.notes == []


def test_pooled_delta_is_the_study_sections_pooling_of_the_datasets_effects(run):
    import math

    _, data = run
    for r in data.arguments.rows:
        want = pool_datasets([sum(diffs(ds, r.budget, r.treatment, r.reference)) / 3 for ds in DATASETS],
                             variances=[d.row.crossed.se ** 2 for d in r.datasets])
        assert r.pooled.estimate == pytest.approx(want.estimate)
        assert (r.pooled.ci_low, r.pooled.ci_high, r.pooled.p) == pytest.approx((want.ci_low, want.ci_high, want.p))
        for d in r.datasets:
            assert [e["value"] - e["baseline"] for e in d.row.per_seed] == pytest.approx(
                diffs(d.dataset, r.budget, r.treatment, r.reference))
    # by hand, argument (2) at budget 200: mask_augment wins back 6, 5, 7 (sst2), 6, 5, 7 (rt-polarity:
    # the shift cancels) and 6, 5, 7 examples (mpqa) of 200: every dataset +0.03. Effects that tie exactly
    # leave no spread between datasets: their own seeds × examples variances stand in for it, Σv/k²
    two = data.arguments.rows[2]
    assert [d.row.delta for d in two.datasets] == pytest.approx([0.03, 0.03, 0.03])
    assert two.pooled.estimate == pytest.approx(0.03)
    assert two.pooled.se == pytest.approx(math.sqrt(sum(d.row.crossed.se ** 2 for d in two.datasets)) / 3)
    assert two.pooled.note == ("every dataset gives the same effect: the datasets' own variances stand in for the "
                               "spread between them")


def test_verdicts_are_the_reports_own(run):
    from harness.report.analysis.verdicts import verdict

    _, data = run
    two = data.arguments.rows[2]
    assert two.row.test == "datasets_t" and two.row.significant is False
    assert two.row.verdict == verdict(two.row, data.params, 4, 4)
    assert two.row.verdict == (f"mask_augment scores 0.030 accuracy higher than input_mask (t-test over 3 datasets "
                               f"p = {two.pooled.p:.3f} decides; Holm-adjusted p = {two.row.p_holm:.3f} over the 4 "
                               "comparisons of the note's arguments (against mask_augment, input_mask)): no significant "
                               f"difference at 0.05 (the test had 80% power to see a difference of {two.row.mde:.4f} or "
                               "more).")
    # each dataset: the seeds × examples test sees three seeds that all gain; the sign-flip test, shown beside
    # it, cannot go below 0.25 with 3 seeds (it decided, and said "not significant", before issue #19)
    sst2 = two.datasets[0].row
    assert sst2.test == "crossed" and sst2.seeds_paired == 3 and sst2.p < 0.05
    assert sst2.verdict.startswith("mask_augment scores 0.030 accuracy higher than input_mask "
                                   "(seeds × examples t-test (3 seeds, 200 examples, df ")
    assert "sign-flip permutation over 3 seeds p = 0.250" in sst2.verdict
    assert "): better (significant at 0.05)." in sst2.verdict


def test_markdown_and_html_render_the_section(run):
    out, data = run
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## The note's arguments" in md
    section = md[md.index("## The note's arguments"):]
    assert "| data loss: fine-tuning data is small and masking throws part of it away " in section
    assert "mask_augment vs input_mask" in section and "mask_augment > input_mask" in section
    assert "aux_mlm < mask_augment" in section
    assert "95% CI (t over datasets (equal weights), 95%)" in section
    two = data.arguments.rows[2]
    assert f"[{two.pooled.ci_low:+.4f}, {two.pooled.ci_high:+.4f}]" in section
    assert "- sst2: mask_augment scores 0.030 accuracy higher than input_mask" in section
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<a href="#arguments">' in html and '<section id="arguments">' in html
    sec = html[html.index('<section id="arguments">'):]
    sec = sec[:sec.index("</section>")]
    assert "<td>objective: the task is not word prediction" in sec and sec.count("<details") == 4
    assert "mask_augment &gt; input_mask" in sec


def test_arms_that_differ_in_their_steps_are_left_out_with_the_reason(tmp_path):
    out = build(tmp_path / "run", unequal=True)
    na = analyze(load_run(out)).arguments
    two = next(r for r in na.rows if r.test.key == "2" and r.budget == 800)
    assert [d.dataset for d in two.datasets] == ["sst2", "rt-polarity"]
    assert na.notes == ["argument 1 on mpqa-b800: left out, aux_mlm and mask_augment differ in epochs 3 vs 6 (the "
                        "comparison holds these equal)",
                        "argument 2 on mpqa-b800: left out, mask_augment and input_mask differ in epochs 6 vs 3 (the "
                        "comparison holds these equal)"]


def test_no_section_without_the_arms_of_an_argument(tmp_path):
    from test_report_study import build_study_run

    out = build_study_run(tmp_path / "study")
    results = write_reports(out, names=("markdown",))
    assert analyze(results).arguments is None
    assert "The note's arguments" not in (out / "report.md").read_text(encoding="utf-8")


def test_one_dataset_is_not_pooled_and_says_why(tmp_path):
    out = build(tmp_path / "run")
    # keep only sst2's cells
    path = out / "metrics.csv"
    import pandas as pd

    df = pd.read_csv(path, dtype={"cell": str})
    df[df["benchmark"].str.startswith("sst2")].to_csv(path, index=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["cells"] = [c for c in manifest["cells"] if c["benchmark"].startswith("sst2")]
    (out / "manifest.json").write_text(json.dumps(manifest))
    na = analyze(load_run(out)).arguments
    assert all(r.pooled is None and r.row is None for r in na.rows)
    assert na.rows[0].reason == ("not pooled: 1 dataset(s) with two or more paired seeds; a pooled effect needs at "
                                 "least two")


# ----------------------------------------------------------------------------- the table itself


def test_every_arm_is_a_registered_strategy_with_those_parameters():
    from harness.report.analysis.arguments import ARGUMENTS, STEP_PARAMS
    from harness.plugins import default_plugins

    plugins = default_plugins()
    for t in ARGUMENTS:
        for arm in (t.treatment, t.reference):
            cls = plugins.get("strategy", arm.strategy)
            fields = cls.Params.model_fields
            assert all(k in fields for k, _ in arm.params), arm
            assert all(k in fields for k in STEP_PARAMS + t.same), (t.key, arm)
    assert len({t.key for t in ARGUMENTS}) == len(ARGUMENTS)
