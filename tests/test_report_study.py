"""The report's study section (issue #13): Δ vs unmasked per dataset, budget and masking rate with
the seeds × examples interval and the t interval over seeds, the plots of Δ vs budget and vs rate,
the effect pooled across datasets (t over datasets; DerSimonian-Laird's heterogeneity beside it),
and the MLM-head losses.

The run is written directly (tests/report_helpers.py) as configs/mask-study.yaml lays out its grid:
3 datasets × 2 budgets × 2 masking rates (+ the unmasked baseline) × 3 seeds, benchmarks labelled
``<dataset>-b<budget>``, ``train_limit`` and ``mask_prob`` in the strategies' parameters. Every cell
gets an exact number of wrong predictions, so each per-seed difference is a known number.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from harness.report import analyze
from harness.stats.meta_analysis import masking_study, pool_effects, pool_paired_differences
from harness.results import load_run
from report_helpers import write_run

N = 100  # test examples per dataset: one wrong prediction = 0.01 accuracy
DATASETS = ("sst2", "rt-polarity", "mpqa")
BUDGETS = (50, 200)
RATES = (0.05, 0.3)
SEEDS = (0, 1, 2)
ARM = {0.05: "input_mask[mask_prob=0.05]", 0.3: "input_mask[mask_prob=0.3]"}

# Per-seed accuracy differences (arm − unmasked), in hundredths, per (dataset, budget, rate).
# Budget 50, rate 0.05 is the hand-checked pooled example (see test_pooled_effect_by_hand).
DIFFS = {
    ("sst2", 50, 0.05): (3, 5, 4), ("rt-polarity", 50, 0.05): (-1, 1, 0), ("mpqa", 50, 0.05): (2, 6, 4),
    ("sst2", 50, 0.3): (-2, -4, -3), ("rt-polarity", 50, 0.3): (-6, -2, -1), ("mpqa", 50, 0.3): (-3, -5, -1),
    ("sst2", 200, 0.05): (1, 2, 0), ("rt-polarity", 200, 0.05): (2, 0, 1), ("mpqa", 200, 0.05): (3, 1, 2),
    ("sst2", 200, 0.3): (-1, -3, -2), ("rt-polarity", 200, 0.3): (0, -2, -4), ("mpqa", 200, 0.3): (-2, -2, -5),
}


def baseline_errors(ds: str, budget: int, seed: int) -> int:
    return {"sst2": 25, "rt-polarity": 30, "mpqa": 22}[ds] + 2 * seed - (8 if budget == 200 else 0)


def wrong_at(gold: list[str], positions) -> list[str]:
    bad = set(positions)
    return [("neg" if g == "pos" else "pos") if i in bad else g for i, g in enumerate(gold)]


def set_strategy_params(out, params_of) -> None:
    """metrics.csv as `harness run` writes it for a study: each cell's strategy parameters."""
    path = out / "metrics.csv"
    df = pd.read_csv(path, dtype={"cell": str})
    df["strategy_params"] = [json.dumps(params_of(r)) for r in df.itertuples(index=False)]
    df.to_csv(path, index=False)


def build_study_run(out):
    benchmarks, cells = {}, []
    for ds in DATASETS:
        gold = ["pos" if (i * 7 + len(ds)) % 3 else "neg" for i in range(N)]
        for budget in BUDGETS:
            label = f"{ds}-b{budget}"
            benchmarks[label] = {"task": "classification", "sources": [f"{ds} sentence {i}" for i in range(N)],
                                 "references": gold}
            for seed in SEEDS:
                kb = baseline_errors(ds, budget, seed)
                cells.append(dict(benchmark=label, strategy="unmasked", seed=seed, model="MiniLM",
                                  outputs=wrong_at(gold, range(kb))))
                for rate in RATES:
                    ka = kb - DIFFS[(ds, budget, rate)][seed]
                    # other examples go wrong than the baseline's: the outputs differ, the count is exact
                    start = 5 + 3 * seed + (20 if rate == 0.3 else 0)
                    cells.append(dict(benchmark=label, strategy=ARM[rate], seed=seed, model="MiniLM",
                                      outputs=wrong_at(gold, range(start, start + ka))))
    write_run(out, experiment="mask-study", benchmarks=benchmarks, cells=cells, baseline={"strategy": "unmasked"})

    def params_of(r):
        p = {"train_limit": int(r.benchmark.rsplit("-b", 1)[1]), "epochs": 3}
        if r.strategy != "unmasked":
            p["mask_prob"] = float(r.strategy.split("=")[1].rstrip("]"))
        return p

    set_strategy_params(out, params_of)
    return out


def write_reports(out, names=("html", "markdown", "csv")):
    from harness_plugins.reporters.exports import CsvExport
    from harness_plugins.reporters.html import HtmlReport
    from harness_plugins.reporters.markdown import MarkdownReport

    results = load_run(out)
    for rep in (HtmlReport(), MarkdownReport(), CsvExport()):
        if rep.name in names:
            rep.write(results, out)
    return results


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    out = build_study_run(tmp_path_factory.mktemp("study") / "run")
    results = write_reports(out)
    return out, results, analyze(results)


def section(html: str, sid: str) -> str:
    i = html.index(f'<section id="{sid}">')
    return html[i: html.index("</section>", i)]


def table(html: str, tid: str) -> list[list[str]]:
    from test_report import Tables

    return Tables(html).tables[tid]


# ----------------------------------------------------------------------------- the numbers


def test_study_rows_are_the_grid_with_exact_differences_and_t_intervals(study_run):
    from scipy.stats import t

    _, results, data = study_run
    st = data.study
    assert st.metric.label == "accuracy" and st.baseline == "unmasked"
    assert st.grouping == "datasets and budgets from benchmark labels <dataset>-b<budget>"
    assert st.datasets == list(DATASETS) and st.budgets == [50, 200] and st.rates == [0.05, 0.3]
    assert [(s.dataset, s.budget, s.rate) for s in st.rows] == [(d, b, r) for d in DATASETS for b in BUDGETS
                                                                 for r in RATES]
    for s in st.rows:
        want = [x / 100 for x in DIFFS[(s.dataset, s.budget, s.rate)]]
        assert s.arm == ARM[s.rate] and s.n == 3 and s.benchmark == f"{s.dataset}-b{s.budget}"
        assert s.differences == pytest.approx(want) and s.delta == pytest.approx(np.mean(want))
    # hand-checked: sst2, budget 50, rate 0.05: differences 0.03, 0.05, 0.04 -> sd 0.01,
    # t interval 0.04 ± t(2, 0.975) · 0.01 / sqrt(3) = 0.04 ± 4.302653 · 0.0057735 = [0.015159, 0.064841]
    s = st.rows[0]
    half = t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert half == pytest.approx(0.024841, abs=1e-6)
    assert (s.t_low, s.t_high) == (pytest.approx(0.04 - half), pytest.approx(0.04 + half))
    assert s.seed_sd == pytest.approx(0.01)
    # the same numbers as harness.stats.meta_analysis.masking_study on the run's metrics
    deltas, _ = masking_study(results.metrics, metric="accuracy", baseline="unmasked")
    by_key = {(d.dataset, d.budget, d.rate): d for d in deltas}
    assert set(by_key) == {(s.dataset, s.budget, s.rate) for s in st.rows}
    for s in st.rows:
        d = by_key[(s.dataset, s.budget, s.rate)]
        assert (s.delta, s.t_low, s.t_high) == (pytest.approx(d.delta), pytest.approx(d.ci_low),
                                                 pytest.approx(d.ci_high))


def correct_matrix(results, cells, benchmark, strategy):
    """seeds × examples: 1 where the cell's prediction is right."""
    return np.array([[float(r["output"] == r["reference"]) for r in results.predictions(cells[(benchmark, strategy, s)])]
                     for s in SEEDS])


def test_study_interval_is_the_seeds_by_examples_interval(study_run):
    """Recomputed here from the predictions with harness.stats.crossed.crossed_test on the per-example
    differences of correctness: the same interval and p as the report's."""
    from harness.stats.crossed import crossed_test

    out, results, data = study_run
    cells = {(c["benchmark"], c["strategy"], c["seed"]): c["key"] for c in results.manifest["cells"]}
    for s in data.study.rows[:4]:
        c = crossed_test(correct_matrix(results, cells, s.benchmark, s.arm)
                         - correct_matrix(results, cells, s.benchmark, "unmasked"))
        assert (s.ci_low, s.ci_high) == (pytest.approx(c.low, abs=1e-7), pytest.approx(c.high, abs=1e-7))
        assert c.estimate == pytest.approx(s.delta) and s.p == pytest.approx(c.p, rel=1e-6)
        assert s.ci_low < s.delta < s.ci_high and s.test == "crossed"
    # and it is the interval the benchmark's own table shows for that comparison
    row = next(r for r in data.benchmarks[0].rows["accuracy"] if r.config.strategy == ARM[0.05])
    assert (row.delta_ci_low, row.delta_ci_high) == (data.study.rows[0].ci_low, data.study.rows[0].ci_high)


def test_pooled_effect_by_hand_and_against_meta_analysis(study_run):
    """Budget 50, rate 0.05: per-dataset effects 0.04, 0, 0.04. By hand: mean 0.08/3 = 0.026667,
    deviations +1/75, −2/75, +1/75, sd = sqrt((6/5625)/2) = 0.023094, SE = sd/√3 = 0.013333,
    t = 2, p = 2·t.sf(2, df 2) = 0.183503; 95% CI 0.026667 ± 4.302653·0.013333 = [−0.030702, 0.084036]."""
    _, results, data = study_run
    pools = {(p.budget, p.rate): p for p in data.study.pools}
    assert list(pools) == [(50, 0.05), (50, 0.3), (200, 0.05), (200, 0.3)]
    e = pools[(50, 0.05)].pooled
    assert pools[(50, 0.05)].datasets == DATASETS and pools[(50, 0.05)].reason == ""
    assert e.k == 3 and e.estimate == pytest.approx(0.08 / 3) and e.se == pytest.approx(0.04 / 3)
    assert e.t == pytest.approx(2.0) and e.p == pytest.approx(0.183503, abs=1e-6)
    assert (e.ci_low, e.ci_high) == (pytest.approx(-0.030702, abs=1e-6), pytest.approx(0.084036, abs=1e-6))
    assert pools[(50, 0.05)].decision.kind == "no_difference"
    # every pool's heterogeneity is DerSimonian-Laird with each dataset's seeds × examples variance
    rows = {(s.dataset, s.budget, s.rate): s for s in data.study.rows}
    for p in data.study.pools:
        members = [rows[(ds, p.budget, p.rate)] for ds in DATASETS]
        ref = pool_effects([m.delta for m in members], [m.se ** 2 for m in members])
        assert (p.heterogeneity.tau2, p.heterogeneity.i2, p.heterogeneity.q) == (
            pytest.approx(ref.tau2, abs=1e-12), pytest.approx(ref.i2, abs=1e-9), pytest.approx(ref.q))
    # the old rule, kept in meta_analysis and checked by hand: per-seed variances s²/n only, w = (30000, 30000,
    # 7500), fixed = 1/45, Q = 80/3, τ² = 74/120000, I² = 92.5%, pooled 0.0260465, SE sqrt(39/172000)
    old = pool_paired_differences({ds: [x / 100 for x in DIFFS[(ds, 50, 0.05)]] for ds in DATASETS})
    assert old.fixed_estimate == pytest.approx(1 / 45) and old.q == pytest.approx(80 / 3)
    assert old.tau2 == pytest.approx(74 / 120000) and old.i2 == pytest.approx(92.5)
    assert old.estimate == pytest.approx(0.0260465, abs=1e-7) and old.se == pytest.approx(math.sqrt(39 / 172000))
    _, ms_pooled = masking_study(results.metrics, metric="accuracy", baseline="unmasked")
    assert [(b, r) for b, r, _ in ms_pooled] == list(pools)
    assert ms_pooled[0][2].estimate == pytest.approx(old.estimate)


# ----------------------------------------------------------------------------- what the reader sees


def test_html_study_tables(study_run):
    out, _, _ = study_run
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<a href="#study">Study</a>' in html
    sec = section(html, "study")
    assert "<h2>Study: Δ accuracy vs unmasked</h2>" in sec
    rows = table(html, "study-table")
    assert rows[0] == ["Dataset", "Budget", "Arm", "Rate", "Seeds", "Δ vs unmasked", "Δ 95% CI (seeds × examples)",
                       "Δ 95% CI (t over seeds)", "p", "p (Holm)", "Verdict"]
    assert len(rows) == 1 + 12
    first = rows[1]
    s = study_run[2].study.rows[0]
    assert first[:6] == ["sst2", "50", "input_mask[mask_prob=0.05]", "0.05", "3", "+0.0400"]
    assert first[7] == "[+0.0152, +0.0648]"  # the hand-checked t interval
    assert first[6] == f"[{s.ci_low:+.4f}, {s.ci_high:+.4f}]".replace("-", "−")
    assert first[8] == f"{s.p:.3f}" and first[10] == {"better": "better (significant)",
                                                      "no_difference": "no significant difference"}[s.decision]
    pooled = table(html, "study-pooled")
    assert pooled[0][:9] == ["Budget", "Arm", "Rate", "Datasets", "Pooled Δ", "95% CI (t over datasets)", "p",
                             "Verdict", "τ²"]
    assert pooled[1][:8] == ["50", "input_mask[mask_prob=0.05]", "0.05", "3", "+0.0267", "[−0.0307, +0.0840]", "0.184",
                             "no significant difference"]
    assert pooled[1][11].startswith("no significant difference at 0.05 (the test had 80% power to see a difference")


def test_html_study_plots_have_labelled_axes_and_intervals(study_run):
    out, _, _ = study_run
    sec = section((out / "report.html").read_text(encoding="utf-8"), "study")
    figs = dict(re.findall(r'<figure class="plot" data-plot="(study-\w+)">(.*?)</figure>', sec, flags=re.S))
    assert list(figs) == ["study-budget", "study-rate"]
    for name, fig in figs.items():
        # glyphs are paths; matplotlib keeps each text as an XML comment beside them
        texts = re.findall(r"<!-- (.*?) -->", fig)
        x_label = "training budget (sentences)" if name == "study-budget" else "masking rate (mask_prob)"
        assert x_label in texts and "Δ accuracy vs unmasked" in texts
        assert "error bars: 95% CI, seeds × examples; pooled: t over datasets, 95% CI" in texts
        assert {"sst2", "rt-polarity", "mpqa", "pooled (t over datasets)", "no difference (unmasked)"} <= set(texts)
        assert "seeds × examples 95% CI" in fig and "t-over-datasets 95% CI" in fig  # the caption names the intervals
    budget_texts = re.findall(r"<!-- (.*?) -->", figs["study-budget"])
    assert {"mask_prob 0.05", "mask_prob 0.3", "50", "200"} <= set(budget_texts)
    assert {"budget 50", "budget 200"} <= set(re.findall(r"<!-- (.*?) -->", figs["study-rate"]))


def test_markdown_study_rows(study_run):
    out, _, _ = study_run
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Study: Δ accuracy vs unmasked" in md
    assert "### Pooled across datasets (t over datasets, equal weights)" in md
    lines = [re.sub(r"\s+", " ", x) for x in md.splitlines()]
    s = study_run[2].study.rows[0]
    assert ("| sst2 | 50 | input_mask[mask_prob=0.05] | 0.05 | 3 | +0.0400 | "
            in " ".join(lines)) and f"| [+0.0152, +0.0648] | {s.p:.3f} |" in " ".join(lines)
    pooled = next(x for x in lines if x.startswith("| 50 | input_mask[mask_prob=0.05] | 0.05 | sst2, rt-polarity, mpqa |"))
    assert "| +0.0267 | [-0.0307, +0.0840] | 0.184 | no significant difference |" in pooled


def test_summary_csv_study_rows(study_run):
    out, _, _ = study_run
    csv = pd.read_csv(out / "summary.csv")
    assert csv["kind"].value_counts().to_dict() == {"leaderboard": 6 * 3 * 3, "study": 12, "pooled": 4}
    study = csv[csv.kind == "study"]
    r = study[(study.dataset == "sst2") & (study.budget == 50) & (study.rate == 0.05)].iloc[0]
    assert r["benchmark"] == "sst2-b50" and r["strategy"] == "input_mask[mask_prob=0.05]" and r["baseline"] == "unmasked"
    assert r["metric"] == "accuracy" and r["seeds"] == 3 and r["delta"] == pytest.approx(0.04)
    assert r["interval"] == "seeds x examples t, 95%" and r["test"] == "crossed"
    assert r["ci_low"] < 0.04 < r["ci_high"] and r["ci_low"] == r["delta_ci_low"]
    assert (r["t_ci_low"], r["t_ci_high"]) == (pytest.approx(0.015159, abs=1e-6), pytest.approx(0.064841, abs=1e-6))
    p = csv[(csv.kind == "pooled") & (csv.budget == 50) & (csv.rate == 0.05)].iloc[0]
    assert p["dataset"] == "pooled" and p["pooled_datasets"] == "sst2, rt-polarity, mpqa" and p["pooled_k"] == 3
    assert p["delta"] == pytest.approx(0.08 / 3) and p["interval"] == "t over datasets (equal weights), 95%"
    assert p["p"] == pytest.approx(0.183503, abs=1e-6) and p["test"] == "datasets_t"
    assert p["decision"] == "no_difference" and p["pooled_se"] == pytest.approx(0.04 / 3)
    assert p["pooled_i2"] >= 0 and p["pooled_q"] > 0


# ----------------------------------------------------------------------------- one dataset, MLM heads, no study


def build_one_dataset_run(out):
    """One dataset (no -b label: the budget comes from train_limit), unmasked vs aux_mlm over three
    seeds; the aux_mlm cells carry finetune.json's mlm_head record."""
    gold = ["pos" if i % 3 else "neg" for i in range(N)]
    bench = {"subj": {"task": "classification", "sources": [f"s {i}" for i in range(N)], "references": gold}}
    cells = []
    for seed in SEEDS:
        cells.append(dict(benchmark="subj", strategy="unmasked", seed=seed, outputs=wrong_at(gold, range(20 + seed))))
        cells.append(dict(benchmark="subj", strategy="aux_mlm", seed=seed,
                          outputs=wrong_at(gold, range(40, 58 + 2 * seed))))
    write_run(out, benchmarks=bench, cells=cells, baseline={"strategy": "unmasked"})
    # as `harness run` records them: aux_mlm's own mask_prob is its MLM objective's masking rate
    set_strategy_params(out, lambda r: {"train_limit": 100, **({"mask_prob": 0.15} if r.strategy == "aux_mlm" else {})})
    manifest = json.loads((out / "manifest.json").read_text())
    for c in manifest["cells"]:
        record = {"steps": 10}
        if c["strategy"] == "aux_mlm":
            s = c["seed"]
            record["mlm_head"] = {"new_head": True, "tied_to_input_embeddings": True, "bias_init": "log unigram",
                                  "loss_before_warmup": 9.0 + s, "warmup_steps": 30, "warmup": {"steps": 30},
                                  "loss_after_warmup": 6.0 + s, "loss_at_start": 6.0 + s,
                                  "loss_after_training": 4.0 + s}
        (out / "cells" / c["key"] / "finetune.json").write_text(json.dumps(record))
    return out


def test_one_dataset_is_not_pooled_and_mlm_head_losses_are_reported(tmp_path):
    out = build_one_dataset_run(tmp_path / "run")
    data = analyze(write_reports(out))
    st = data.study
    assert st.grouping == "one dataset per benchmark; budgets from the strategies' train_limit"
    assert [(s.dataset, s.budget, s.rate, s.arm, s.family) for s in st.rows] == [("subj", 100, 0.15, "aux_mlm",
                                                                                   "aux_mlm")]
    # seed s: unmasked has 20 + s errors, aux_mlm 18 + 2s: differences +0.02, +0.01, 0.00
    assert st.rows[0].differences == pytest.approx((0.02, 0.01, 0.0))
    [pool] = st.pools
    assert pool.pooled is None and pool.reason == ("not pooled: one dataset (subj); a pooled effect and its "
                                                   "heterogeneity need at least two datasets")
    assert st.plots == {}  # one budget, one rate: nothing to draw against
    html = (out / "report.html").read_text(encoding="utf-8")
    pooled = table(html, "study-pooled")
    assert pooled[1][4] == "not pooled" and pooled[1][-1] == pool.reason
    assert 'data-plot="study-' not in html
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| not pooled |" in md and "not pooled: one dataset (subj)" in md
    # the MLM head: mean over seeds 0-2 of 9+s, 6+s, 4+s
    mlm = table(html, "mlm-head-table")
    assert mlm[0] == ["Benchmark", "Model", "Strategy", "Seeds", "New head", "Warm-up steps", "Before warm-up",
                      "After warm-up", "After MLM stage", "After training"]
    assert mlm[1:] == [["subj", "tiny", "aux_mlm", "0, 1, 2", "yes", "30", "10.000", "7.000", "–", "5.000"]]
    assert "## MLM head: loss before and after warm-up" in md
    assert "| subj | tiny | aux_mlm | 0, 1, 2 | yes | 30 | 10.000 | 7.000 | – | 5.000 |" in \
        re.sub(r" +", " ", md)
    csv = pd.read_csv(out / "summary.csv")
    heads = csv[csv.kind == "mlm_head"].sort_values("seed")
    assert heads["seed"].tolist() == [0, 1, 2] and heads["mlm_loss_before_warmup"].tolist() == [9.0, 10.0, 11.0]
    assert heads["mlm_loss_after_warmup"].tolist() == [6.0, 7.0, 8.0]
    assert heads["mlm_loss_after_training"].tolist() == [4.0, 5.0, 6.0] and heads["mlm_warmup_steps"].tolist() == [30] * 3
    p = csv[csv.kind == "pooled"].iloc[0]
    assert p["note"] == pool.reason and math.isnan(p["delta"])


def test_a_dataset_whose_seeds_agree_exactly_is_pooled_with_its_test_set_variance(tmp_path):
    # subj's three seeds give the same difference: its variance over seeds is 0, but its examples still vary,
    # so the seeds × examples variance is positive and the dataset is pooled like any other
    gold = ["pos" if i % 3 else "neg" for i in range(N)]
    bench = {f"{ds}-b100": {"task": "classification", "sources": [f"s {i}" for i in range(N)], "references": gold}
             for ds in ("subj", "cr")}
    diffs = {"subj": (2, 2, 2), "cr": (1, 3, 2)}
    cells = []
    for ds in diffs:
        for seed in SEEDS:
            cells.append(dict(benchmark=f"{ds}-b100", strategy="unmasked", seed=seed, outputs=wrong_at(gold, range(20))))
            cells.append(dict(benchmark=f"{ds}-b100", strategy="input_mask", seed=seed,
                              outputs=wrong_at(gold, range(30, 50 - diffs[ds][seed]))))
    out = write_run(tmp_path / "run", benchmarks=bench, cells=cells, baseline={"strategy": "unmasked"})
    data = analyze(write_reports(out, ("html",)))
    [pool] = data.study.pools
    subj = next(s for s in data.study.rows if s.dataset == "subj")
    assert subj.seed_sd == 0 and subj.se > 0
    assert pool.datasets == ("subj", "cr") and pool.estimate == pytest.approx(0.02) and pool.reason == ""
    # two datasets giving the same effect: the spread between them is 0, which is no certainty (discrete scores
    # on 100 examples tie easily); the datasets' own seeds × examples variances stand in for it
    cr = next(s for s in data.study.rows if s.dataset == "cr")
    assert pool.pooled.se == pytest.approx(math.sqrt(subj.se ** 2 + cr.se ** 2) / 2)
    assert pool.pooled.note == ("every dataset gives the same effect: the datasets' own variances stand in for the "
                                "spread between them")
    assert pool.pooled.p > 0.05 and pool.decision.kind == "no_difference"  # t(1) with two datasets
    assert pool.heterogeneity.tau2 == 0 and pool.heterogeneity.estimate == pytest.approx(0.02)


def test_no_study_without_a_strategy_comparison_over_seeds(tmp_path):
    gold = ["pos" if i % 3 else "neg" for i in range(N)]
    bench = {"subj": {"task": "classification", "sources": [f"s {i}" for i in range(N)], "references": gold}}
    cells = [dict(benchmark="subj", strategy="unmasked", seed=0, outputs=wrong_at(gold, range(20))),
             dict(benchmark="subj", strategy="input_mask", seed=0, outputs=wrong_at(gold, range(30, 45)))]
    out = write_run(tmp_path / "run", benchmarks=bench, cells=cells, baseline={"strategy": "unmasked"})
    data = analyze(write_reports(out))
    assert data.study is None and data.mlm_heads == []
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="study"' not in html and 'id="mlm-heads"' not in html
    assert "## Study" not in (out / "report.md").read_text(encoding="utf-8")
    assert set(pd.read_csv(out / "summary.csv")["kind"]) == {"leaderboard"}


# ----------------------------------------------------------------------------- a real run


def test_a_real_run_gets_its_study_factors_and_mlm_head_losses_from_what_harness_run_writes(tmp_path, tiny_bert):
    """Two tiny-BERT datasets at budget 40, unmasked vs input_mask (0.1, 0.3) vs aux_mlm, two seeds:
    the factors come from the labels and the recorded strategy parameters, the MLM losses from
    each aux_mlm cell's finetune.json."""
    from harness.experiment.load import load_experiment_dict
    from harness.run.runner import run_experiment
    from test_strategies import sentiment

    for name, n, seed, prefix in (("train.tsv", 80, 0, "a"), ("test.tsv", 30, 2, "c"), ("train2.tsv", 80, 5, "b"),
                                  ("test2.tsv", 30, 7, "d")):
        (tmp_path / name).write_text("text\tlabel\n" + "".join(f"{e.source}\t{e.label}\n"
                                                               for e in sentiment(n, seed, prefix)), encoding="utf-8")
    common = {"learning_rate": 3e-3, "epochs": 1, "batch_size": 16, "train_limit": 40}
    resolved = load_experiment_dict({
        "name": "mini-study", "seeds": [0, 1], "models": [{"path": str(tiny_bert), "label": "tiny"}],
        "benchmarks": [{"name": "text_classification", "label": "syn-b40", "params": {"train": "train.tsv", "test": "test.tsv"}},
                       {"name": "text_classification", "label": "other-b40",
                        "params": {"train": "train2.tsv", "test": "test2.tsv"}}],
        "strategies": [{"name": "unmasked", "params": common},
                       {"name": "input_mask", "params": {**common, "mask_prob": [0.1, 0.3]}},
                       {"name": "aux_mlm", "params": {**common, "mlm_head_warmup_steps": 2}}],
        "metrics": ["accuracy"], "baseline": {"strategy": "unmasked"}, "reporters": ["markdown", "csv"],
    }, base_dir=tmp_path)
    out = tmp_path / "out"
    summary = run_experiment(resolved, out, cache_dir=tmp_path / "cache", quiet=True)
    assert not summary.failed, [o.error for o in summary.failed]
    data = analyze(load_run(out))
    st = data.study
    assert [(s.dataset, s.budget, s.family, s.rate, s.n) for s in st.rows] == [
        (ds, 40, fam, rate, 2) for ds in ("syn", "other")
        for fam, rate in (("input_mask", 0.1), ("input_mask", 0.3), ("aux_mlm", 0.15))]
    assert [(p.budget, p.arm, p.datasets) for p in st.pools] == [
        (40, arm, ("syn", "other")) for arm in ("input_mask[mask_prob=0.1]", "input_mask[mask_prob=0.3]", "aux_mlm")]
    records = {}
    for c in data.cells:
        rec = json.loads((out / "cells" / c.key / "finetune.json").read_text()).get("mlm_head")
        if rec:
            records[(c.benchmark, c.seed)] = rec
    assert sorted(records) == [(b, s) for b in ("other-b40", "syn-b40") for s in (0, 1)]
    heads = {(h.benchmark, h.seed): h for h in data.mlm_heads}
    assert set(heads) == set(records)
    for k, rec in records.items():
        assert heads[k].new_head is True and heads[k].warmup_steps == 2
        assert (heads[k].loss_before_warmup, heads[k].loss_after_warmup, heads[k].loss_after_training) == (
            rec["loss_before_warmup"], rec["loss_after_warmup"], rec["loss_after_training"])
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Study: Δ accuracy vs unmasked" in md and "## MLM head: loss before and after warm-up" in md
    csv = pd.read_csv(out / "summary.csv")
    assert (csv["kind"] == "mlm_head").sum() == 4 and (csv["kind"] == "study").sum() == 6
