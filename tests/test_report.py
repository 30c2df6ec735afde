"""The reports a researcher publishes: report.html, report.md, summary.csv/parquet.

Run directories are written directly (tests/report_helpers.py) with known outputs, so every
number the report shows can be checked against sacrebleu, scipy and statsmodels computed
here; one test goes through a real `harness run` with the tiny Marian model.
"""
from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.report import analyze
from harness.results import load_run
from harness.stats.significance import format_p
from report_helpers import (SEEDS, XSS_ERR, XSS_NAME, XSS_OUT, XSS_TEXT, build_demo_run, degrade, translation_benchmark,
                            write_run)

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = build_demo_run(tmp_path_factory.mktemp("demo") / "run")
    from harness_plugins.reporters.exports import CsvExport, ParquetExport
    from harness_plugins.reporters.html import HtmlReport
    from harness_plugins.reporters.markdown import MarkdownReport

    results = load_run(out)
    files = []
    for rep in (HtmlReport(), MarkdownReport(), CsvExport(), ParquetExport()):
        files += rep.write(results, out)
    return out, results, files


class Tables(HTMLParser):
    """Tables by id: a list of rows of cell texts (header row first)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._stack.append(dict(attrs).get("id") or f"anon{len(self.tables)}")
            self.tables[self._stack[-1]] = []
        elif tag == "tr" and self._stack:
            self.tables[self._stack[-1]].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            self.tables[self._stack[-1]][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_by_metric(html: str, metric: str) -> list[list[str]]:
    tid = re.search(rf'<table class="sortable leaderboard" id="([^"]+)" data-metric="{metric}"', html).group(1)
    return Tables(html).tables[tid]


def col(table: list[list[str]], name: str) -> list[str]:
    i = table[0].index(name)
    return [r[i] for r in table[1:]]


# ----------------------------------------------------------------------------- html


def test_report_is_one_self_contained_file(demo):
    out, _, files = demo
    assert [f.name for f in files] == ["report.html", "report.md", "summary.csv", "summary.parquet"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<link" not in html and not re.search(r'(src|href)\s*=\s*["\']?(https?:|//)', html)
    assert "<style>" in html and html.count("<svg") >= 4
    # the only scripts are ours: the data blob and the sorter, which the CSP allows by hash
    assert html.count("<script") == 2
    script = re.search(r"<script>(.*?)</script>\s*</body>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = html_lib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_untrusted_text_is_escaped_everywhere(demo):
    out, _, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    for raw in (XSS_OUT, XSS_ERR, XSS_NAME, XSS_TEXT, "<img src=x", "window.__pwned=4</script>"):
        assert raw not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in html
    assert "CUDA out of memory &lt;img src=x onerror=&#34;window.__pwned=3&#34;&gt;" in html
    assert "<title>demo&lt;/script&gt;&lt;script&gt;window.__pwned=4&lt;/script&gt; — evaluation report</title>" in html
    # the embedded JSON cannot close its script element, and parses back to the original text
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in blob and ">" not in blob
    assert json.loads(blob)["experiment"] == XSS_NAME
    md = (out / "report.md").read_text(encoding="utf-8")
    # report.md: markup shown literally by a backslash, never by an HTML entity (the raw text stays readable)
    assert re.search(r"(?<!\\)<[A-Za-z/!?]", md) is None and "&lt;" not in md and "&amp;" not in md
    assert 'CUDA out of memory \\<img src=x onerror="window.\\_\\_pwned=3">' in md


def test_translation_leaderboard_tests_against_sacrebleu(demo):
    from sacrebleu.metrics import BLEU, TER
    from sacrebleu.significance import PairedTest

    out, results, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    preds = {c["decoder"]: [r["output"] for r in results.predictions(c["key"])]
             for c in results.cells if c["benchmark"] == "multi30k" and c["status"] != "failed"}
    refs = [r["reference"] for r in results.predictions(results.cells[0]["key"])]
    for label, metric, name in (("bleu", BLEU(), "BLEU"), ("ter", TER(), "TER")):
        _, bs = PairedTest([("greedy", preds["greedy"]), ("b4", preds["beam[num_beams=4]"])], {name: metric}, [refs],
                           test_type="bs", n_samples=1000)()
        key = next(k for k in bs if k != "System")
        table = table_by_metric(html, label)
        row = next(r for r in table[1:] if r[1] == "beam[num_beams=4]")
        p = bs[key][1].p_value
        assert row[table[0].index("p (sacrebleu bootstrap)")] == ("< 0.001" if p < 0.001 else f"{p:.3f}")
        assert row[table[0].index("Baseline")] == "greedy"
        assert row[table[0].index("Verdict")] == "better (significant)"
    # TER is lower-is-better: the best (rank 1) has the lowest TER
    ter = table_by_metric(html, "ter")
    scores = {r[1].replace(" 1 failed", ""): r[2] for r in ter[1:]}
    best = next(r[1] for r in ter[1:] if r[0] == "1")
    assert best == min((k for k in scores if scores[k] != "–"), key=lambda k: float(scores[k]))
    assert float(scores[best]) == pytest.approx(TER().corpus_score(preds[best], [refs]).score, abs=0.005)
    # 95% CI is sacrebleu's bootstrap interval, shown for every successful configuration
    bleu = table_by_metric(html, "bleu")
    assert all(re.fullmatch(r"\[\d+\.\d\d, \d+\.\d\d\]", ci) for ci in col(bleu, "95% CI (bootstrap over examples)")[:4])
    # the failed configuration is listed, with its (escaped) error, and has no score
    assert "beam[num_beams=8] 1 failed" in col(bleu, "Configuration")
    assert "sacrebleu signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in html


def test_summary_states_verdicts_in_plain_sentences(demo):
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest
    from scipy.stats import permutation_test
    from statsmodels.stats.contingency_tables import mcnemar

    out, results, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    verdicts = [" ".join(html_lib.unescape(re.sub("<[^>]+>", "", v)).split())
                for v in re.findall(r"<li class=\"(?:sig|ns)\">(.*?)</li>", html, re.S)]
    preds = {(c["benchmark"], c["strategy"], c["decoder"], c["seed"]): [r["output"] for r in results.predictions(c["key"])]
             for c in results.cells if c["status"] != "failed"}
    refs = [r["reference"] for r in results.predictions(results.cells[0]["key"])]
    g = preds[("multi30k", "none", "greedy", 0)]
    # approximate randomisation decides (sacrebleu's bootstrap is beside it, for comparison only); beam2 changes 5
    # of 64 sentences: no randomisation can go below 2/2^5, so the data cannot decide, whatever sacrebleu's
    # bootstrap (whose size is above alpha) says
    few_text = ("the data cannot decide: only 5 of 64 examples differ in their {name} statistics, so approximate "
                "randomisation cannot give p below 0.0625; at least 6 differing examples (a test set of about 77 "
                "examples at this rate) or several seeds would.")
    for dec, metric, name, phrase, differ in (
            ("beam[num_beams=4]", BLEU(), "BLEU", "better (significant at 0.05).", "62 of 64"),
            ("beam[num_beams=2]", BLEU(), "BLEU", few_text, "5 of 64"),
            ("beam[num_beams=2]", CHRF(), "chrF", few_text, "5 of 64")):
        sys_ = preds[("multi30k", "none", dec, 0)]
        _, bs = PairedTest([("g", g), ("b", sys_)], {name: metric}, [refs], test_type="bs", n_samples=1000)()
        _, ar = PairedTest([("g", g), ("b", sys_)], {name: metric}, [refs], test_type="ar", n_samples=10000)()
        key = next(k for k in bs if k != "System")
        delta = metric.corpus_score(sys_, [refs]).score - metric.corpus_score(g, [refs]).score
        head = f"multi30k: {dec} scores {delta:.{1 if abs(delta) >= 0.1 else 2}f} {name} higher than greedy "
        sentence = next(v for v in verdicts if v.startswith(head))
        found = re.search(r"\(approximate randomisation (p = [\d.]+|p < 0.001) decides", sentence)
        assert found, sentence
        few = differ == "5 of 64"
        if few:
            # sacrebleu counts only swaps strictly beyond the observed gap, by random trials; the harness
            # enumerates all 2^5 swaps of the 5 differing sentences and counts the 2 that give the gap back
            ar_p = float(found.group(1).removeprefix("p = "))
            assert ar_p >= 0.0625 and 0.04 < ar_p - ar[key][1].p_value < 0.09
        else:
            assert found.group(1) == format_p(ar[key][1].p_value)
        assert (f"sacrebleu's paired bootstrap (--paired-bs, shown for comparison: it does not decide) "
                f"{format_p(bs[key][1].p_value)}; outputs differ on {differ} segments): "
                + phrase.format(name=name)) in sentence
        assert "The tests disagree" not in sentence  # a test with excess size does not contradict
    assert 0.05 < bs[key][1].p_value < 1 and 0.05 < ar[key][1].p_value < 1  # a real p-value, not a floor
    # classification: accuracy per seed on the 0-100 scale, paired by seed, tested over seeds and examples
    gold = [r["reference"] for r in results.predictions(next(c["key"] for c in results.cells if c["benchmark"] == "sst2"))]
    acc = {st: [100 * np.mean(np.array(preds[("sst2", st, "-", s)]) == np.array(gold)) for s in SEEDS]
           for st in ("unmasked", "input_mask")}
    d = np.array(acc["input_mask"]) - np.array(acc["unmasked"])
    perm = permutation_test((acc["input_mask"], acc["unmasked"]), lambda x, y: np.mean(x - y),
                            permutation_type="samples", n_resamples=np.inf).pvalue
    from harness.stats.crossed import crossed_test

    per_example = np.array([100.0 * ((np.array(preds[("sst2", "input_mask", "-", s)]) == np.array(gold)).astype(float)
                                     - (np.array(preds[("sst2", "unmasked", "-", s)]) == np.array(gold)))
                            for s in SEEDS])
    c = crossed_test(per_example)
    assert c.estimate == pytest.approx(d.mean())
    sentence = next(v for v in verdicts if v.startswith("sst2: input_mask"))
    assert sentence.startswith(f"sst2: input_mask scores {abs(d.mean()):.1f} accuracy higher than unmasked "
                               f"(seeds × examples t-test (5 seeds, 300 examples, df {c.df:.1f}) {format_p(c.p)} "
                               "decides; Holm-adjusted p = ")
    assert perm == 0.0625  # printed with the digits that keep it at the floor the sign-flip test has
    assert "sign-flip permutation over 5 seeds p = 0.0625 (over seeds only: they take the test set as fixed)" in sentence
    assert f"95% CI of the difference [{c.low:.2f}, {c.high:.2f}] (seeds × examples)" in sentence
    assert c.p < 0.05 and "): better (significant at 0.05)." in sentence
    assert " Per seed, over its own examples: McNemar " in sentence and "(each seed tested alone, never pooled)" in sentence
    # the per-seed McNemar p-values are in the accuracy table's details
    a0, u0 = np.array(preds[("sst2", "input_mask", "-", 0)]) == gold, np.array(preds[("sst2", "unmasked", "-", 0)]) == gold
    p0 = mcnemar([[np.sum(u0 & a0), np.sum(u0 & ~a0)], [np.sum(~u0 & a0), np.sum(~u0 & ~a0)]], exact=True).pvalue
    data = analyze(results)
    row = next(r for r in data.benchmarks[1].rows["accuracy"] if r.config.label == "input_mask")
    assert row.per_seed[0]["seed"] == 0 and row.per_seed[0]["p_mcnemar"] == pytest.approx(p0)
    assert row.test == "crossed" and row.p_seeds_perm == pytest.approx(perm) and row.significant is True
    assert row.p == pytest.approx(c.p) and row.decision.kind == "better"
    per_seed = Tables(html).tables["seeds-2-accuracy"]
    assert per_seed[0] == ["Configuration", "Seed", "Score", "Baseline", "Outputs differ", "p (bootstrap)", "p (AR)",
                           "p (McNemar)"]
    differ0 = int(np.sum(np.array(preds[("sst2", "input_mask", "-", 0)]) != np.array(preds[("sst2", "unmasked", "-", 0)])))
    assert per_seed[1][:2] == ["input_mask", "0"] and per_seed[1][7] == ("< 0.001" if p0 < 0.001 else f"{p0:.3f}")
    assert per_seed[1][4] == f"{differ0} of 300"
    # McNemar is per seed only: pooling the examples of five training runs would be anti-conservative
    assert row.p_mcnemar is None and row.p_bootstrap is None and len({s["p_mcnemar"] for s in row.per_seed}) == 5
    # each signature line says what produced it
    metrics = {m.label: m for b in data.benchmarks for m in b.metrics}
    assert metrics["bleu"].signature_label == "sacrebleu signature"
    assert metrics["accuracy"].signature_label == "harness signature"
    assert metrics["distinct_2"].signature_label == "signature of metric plugin 'distinct_2'"
    assert len(per_seed) == 1 + 5


def test_best_configuration_table(demo):
    out, _, _ = demo
    best = Tables((out / "report.html").read_text(encoding="utf-8")).tables["best-table"]
    rows = {(r[0], r[1]): r[2] for r in best[1:]}
    assert rows[("multi30k", "BLEU ↑")] == "beam[num_beams=4]"
    assert rows[("multi30k", "TER ↓")] == "beam[num_beams=4]"
    assert rows[("sst2", "accuracy ↑")] == "input_mask"


def test_plots_present_only_with_their_data(demo, tmp_path):
    out, _, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    for name in ("beam", "diversity", "speed", "seeds"):
        assert f'data-plot="{name}"' in html
    # a run with one decoder, no timings, no diversity metric and one seed draws no plot at all
    tb = translation_benchmark(16)
    write_run(tmp_path / "small", benchmarks={"t": tb}, cells=[dict(benchmark="t", outputs=degrade(tb["references"], 3))])
    from harness_plugins.reporters.html import HtmlReport

    HtmlReport().write(load_run(tmp_path / "small"), tmp_path / "small")
    small = (tmp_path / "small" / "report.html").read_text(encoding="utf-8")
    assert "data-plot=" not in small and "<svg" not in small
    assert "No comparisons" in small


def test_plot_names_list_only_the_parameters_that_differ(tmp_path):
    tb = translation_benchmark(16)
    refs = tb["references"]
    shared = {"length_penalty": 1.0, "no_repeat_ngram_size": 3}
    cells = [dict(benchmark="t", decoder="greedy", outputs=degrade(refs, 3), predict_seconds=1.0,
                  extra={"distinct_2": 0.3})]
    for i, nb in enumerate((2, 4)):
        cells.append(dict(benchmark="t", decoder=f"beam[num_beams={nb},length_penalty=1.0,no_repeat_ngram_size=3]",
                          decoder_params={"num_beams": nb, **shared}, outputs=degrade(refs, 4 + i),
                          predict_seconds=2.0 + i, extra={"distinct_2": 0.4 + i / 10}))
    for i, nb in enumerate((2, 4)):
        cells.append(dict(benchmark="t", decoder=f"beam[num_beams={nb},length_penalty=0.6,no_repeat_ngram_size=3]",
                          decoder_params={"num_beams": nb, **shared, "length_penalty": 0.6},
                          outputs=degrade(refs, 6 + i), predict_seconds=4.0 + i, extra={"distinct_2": 0.6 + i / 10}))
    write_run(tmp_path / "run", benchmarks={"t": tb}, cells=cells, extra_metric_plugins={"distinct_2": "distinct_2"})
    plots = analyze(load_run(tmp_path / "run")).benchmarks[0].plots
    # the lines differ only in length_penalty; the shared no_repeat_ngram_size is not named
    assert sorted(line["name"] for line in plots["beam"]["lines"]) == ["length_penalty=0.6", "length_penalty=1.0"]
    # points: the plugin (it differs: greedy vs beam) and, among the beam ones, num_beams and length_penalty
    assert [p["name"] for p in plots["diversity"]["points"]] == [
        "greedy", "beam[length_penalty=1.0, num_beams=2]", "beam[length_penalty=1.0, num_beams=4]",
        "beam[length_penalty=0.6, num_beams=2]", "beam[length_penalty=0.6, num_beams=4]"]
    assert [p["name"] for p in plots["speed"]["points"]] == [p["name"] for p in plots["diversity"]["points"]]


def test_empty_outputs_read_empty_in_the_drilldown(tmp_path):
    from harness_plugins.reporters.html import HtmlReport

    tb = translation_benchmark(8)
    refs = tb["references"]
    blank = [""] + [" "] + refs[2:]
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, cells=[
        dict(benchmark="t", outputs=degrade(refs, 3)), dict(benchmark="t", decoder="beam[num_beams=2]", outputs=blank)])
    html = HtmlReport().write(load_run(out), out)[0].read_text(encoding="utf-8")
    drill = Tables(html).tables["drill-1"]
    beam = [row[2] for row in drill[1:]]
    assert sum(c.startswith("(empty)chrF") for c in beam) == 1
    assert sum(c.startswith("(whitespace only)chrF") for c in beam) == 1
    assert html.count('<em class="empty">(empty)</em>') == 1


def test_drilldown_orders_by_decoder_disagreement(demo):
    from sacrebleu.metrics import CHRF

    out, results, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    drill = Tables(html).tables["drill-1"]
    assert drill[0] == ["Source / reference", "greedy", "beam[num_beams=2]", "beam[num_beams=4]",
                        "diverse_beam[num_beam_groups=2]"]
    assert len(drill) == 1 + 20  # capped at drilldown_examples
    outs = [[r["output"] for r in results.predictions(c["key"])] for c in results.cells[:4]]
    refs = [r["reference"] for r in results.predictions(results.cells[0]["key"])]
    chrf = CHRF()
    spread = [max(s) - min(s) for s in zip(*[[chrf.sentence_score(o[i], [refs[i]]).score for i in range(len(refs))]
                                              for o in outs])]
    first = int(np.argmax(spread))
    assert drill[1][0].startswith(results.predictions(results.cells[0]["key"])[first]["source"])
    assert f"spread {spread[first]:.1f}" in drill[1][0]
    assert "n-best (2)" in html  # beam4's n-best lists are there to open


def test_classification_drilldown_lists_examples_broken_by_the_strategy(demo):
    out, results, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    key = {(c["strategy"], c["seed"]): c["key"] for c in results.cells if c["benchmark"] == "sst2"}
    s, b = results.predictions(key[("input_mask", 0)]), results.predictions(key[("unmasked", 0)])
    broken = [x["id"] for x, y in zip(s, b) if x["output"] != x["reference"] and y["output"] == y["reference"]]
    fixed = sum(x["output"] == x["reference"] and y["output"] != y["reference"] for x, y in zip(s, b))
    assert f"input_mask vs unmasked (seed 0): {len(broken)} broken, {fixed} fixed of 300" in html
    block = html.split(f"{len(broken)} broken, {fixed} fixed of 300")[1].split("</table>")[0]
    assert re.findall(r"<tr><td>(test-\d+)</td>", block) == broken[:20]


def test_provenance_and_cells(demo):
    out, _, _ = demo
    html = (out / "report.html").read_text(encoding="utf-8")
    t = Tables(html).tables
    assert ["sacrebleu", "2.6.0"] in t["packages"][1:]
    assert "0123456789abcdef0123456789abcdef01234567" in html and 'id="resolved-config"' in html
    statuses = col(t["cells-table"], "Status")
    assert statuses.count("failed") == 1 and statuses.count("cached") == 1
    assert "15 cells (13 run, 1 reused from cache, 1 failed)" in " ".join(html.split())


def test_baseline_comes_from_the_manifest(tmp_path):
    out = build_demo_run(tmp_path / "run", experiment="demo", baseline={"decoder": "beam[num_beams=2]", "strategy": None})
    data = analyze(load_run(out))
    rows = {r.config.label: r for r in data.benchmarks[0].rows["bleu"]}
    assert rows["beam[num_beams=2]"].is_baseline and rows["greedy"].baseline.label == "beam[num_beams=2]"
    assert rows["beam[num_beams=4]"].verdict.startswith("beam[num_beams=4] scores ")
    assert "than beam[num_beams=2]" in rows["beam[num_beams=4]"].verdict


def test_per_cell_statistics_are_cached_between_renderings(demo, monkeypatch):
    out, results, _ = demo
    assert len(list((out / ".report-cache" / "stats").glob("*.npy"))) == 3 * 4  # 3 metrics x 4 cells
    first = analyze(results).frame()
    from harness.stats import significance as stats

    def boom(self, hyps):
        raise AssertionError("recomputed sentence statistics despite the cache")

    monkeypatch.setattr(stats.SegmentStats, "__call__", boom)
    again = analyze(load_run(out)).frame()  # a fresh results object: no in-memory reuse
    assert again["p"].equals(first["p"]) and again["ci_low"].equals(first["ci_low"])


def test_csv_and_parquet_round_trip(demo):
    import pandas as pd

    out, results, _ = demo
    frame = analyze(results).frame()
    csv = pd.read_csv(out / "summary.csv")
    parquet = pd.read_parquet(out / "summary.parquet")
    assert list(csv.columns) == list(frame.columns) == list(parquet.columns)
    assert len(csv) == len(frame)
    # translation 5 configs x 4 metrics, classification 2 x 3; then the study section (one dataset: not pooled)
    assert csv["kind"].tolist() == ["leaderboard"] * (5 * 4 + 2 * 3) + ["study", "pooled"]
    np.testing.assert_allclose(csv["value"].to_numpy(float), frame["value"].to_numpy(float), equal_nan=True)
    np.testing.assert_allclose(parquet["p"].to_numpy(float), frame["p"].to_numpy(float), equal_nan=True)
    assert parquet["verdict"].tolist() == frame["verdict"].tolist()
    row = csv[(csv.metric == "bleu") & (csv.label == "beam[num_beams=4]")].iloc[0]
    assert row["baseline"] == "greedy" and bool(row["significant"]) and row["test"] == "ar"
    assert row["outputs_differ"] == 62 and row["p_holm"] >= row["p"]


def test_markdown_report(demo):
    out, _, _ = demo
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# demo\\</script>\\<script>window.\\_\\_pwned=4\\</script>\n")
    assert "## Significance against the baseline" in md
    assert "### BLEU (higher is better)" in md and "### TER (lower is better)" in md
    assert re.search(r"\|\s+Rank \| Configuration", md)
    assert "## Methods" in md and "the seeds × examples t-test decides" in md
    assert "Holm's family: the 12 tested comparisons of this report (multi30k, sst2; every metric; each configuration " \
           "against its baseline: greedy, unmasked)." in md
    assert "| p (Holm)" in md and "| Decided by" in md


def test_markdown_reads_well_raw_numbers_right_aligned_ranked_verdicts_grouped(demo):
    out, _, _ = demo
    md = (out / "report.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    # the BLEU table: numeric columns right-aligned (---:), text columns left, rows best first
    i = lines.index("### BLEU (higher is better)")
    head, rule, *body = lines[i + 2:i + 9]
    cols = [c.strip() for c in head.strip("|").split("|")]
    align = dict(zip(cols, ["right" if c.strip().endswith(":") and not c.strip().startswith(":") else "left"
                            for c in rule.strip("|").split("|")]))
    assert {c for c, a in align.items() if a == "right"} == {"Rank", "BLEU", "95% CI (bootstrap over examples)", "Δ",
                                                            "p", "p (Holm)"}
    assert align["Configuration"] == align["Decided by"] == align["Verdict"] == "left"
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in body]
    assert [c[1] for c in cells] == ["beam[num_beams=4]", "diverse_beam[num_beam_groups=2]", "beam[num_beams=2]",
                                     "greedy", "beam[num_beams=8]"]
    assert [c[0] for c in cells] == ["1", "2", "3", "4", "–"]
    assert body[0].index("67.26") + 5 == body[3].index("3.26") + 4  # digits line up in the raw text
    # verdicts: one heading per benchmark and baseline, the deciding test named once, a bullet per metric
    sig = md[md.index("## Significance against the baseline"):md.index("## Study")]
    assert sig.count("### ") == 2 and "### multi30k: against greedy" in sig and "### sst2: against unmasked" in sig
    assert sig.count("Decided by approximate randomisation.") == 1
    assert sig.count("Decided by seeds × examples t-test.") == 1
    assert "than greedy" not in sig and "scores" not in sig  # no sentence repeated per comparison
    bleu = sig[sig.index("- **BLEU**"):sig.index("- **chrF**")].splitlines()
    assert bleu[1:] == [
        "  - beam[num_beams=4]: +64.0, p < 0.001, Holm 0.001: **better (significant)**",
        "  - diverse_beam[num_beam_groups=2]: +44.8, p < 0.001, Holm 0.001: **better (significant)**",
        # 5 outputs differ: all 2^5 swaps are enumerated, and 2 of them give the gap back (stats.ar_p_value)
        "  - beam[num_beams=2]: +9.4, p = 0.250, Holm 0.750: **the data cannot decide**: only 5 of 64 examples differ "
        "in their BLEU statistics, so approximate randomisation cannot give p below 0.0625; at least 6 differing "
        "examples (a test set of about 77 examples at this rate) or several seeds would"]
    assert "  - input_mask: +4.3, p = 0.049, Holm 0.296: **better (significant)**" in sig
    # macro-F1 just misses alpha: no significant difference, with what the test could see and the seeds it needs
    assert re.search(r"  - input_mask: \+4\.3, p = 0\.050, Holm 0\.296: \*\*no significant difference\*\* \(80% "
                     r"power to see 5\.\d\d or more\)\. About \d+ seeds would detect it \(80% power, \d+–\d+ over the "
                     r"seed variance's range\)", sig)


def test_md_text_escapes_only_what_markdown_would_act_on():
    from harness_plugins.reporters.markdown import md_text

    assert md_text("beam[num_beams=4] & p < 0.05 | x") == "beam[num_beams=4] & p < 0.05 \\| x"
    assert md_text("<b>&amp; _x_ *y* `z` [l](u)\nnext") == "\\<b>\\&amp; \\_x\\_ \\*y\\* \\`z\\` [l\\](u) next"


def test_report_command_renders_other_reporters(demo, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    out, _, _ = demo
    res = CliRunner().invoke(main, ["report", str(out), "--reporter", "markdown", "--reporter", "csv"])
    assert res.exit_code == 0, res.output
    assert f"wrote {out / 'report.md'}" in res.output and f"wrote {out / 'summary.csv'}" in res.output


# ----------------------------------------------------------------------------- end to end


E2E = """\
name: report-e2e
models: [{path: ./model, label: tiny}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: greedy, params: {max_new_tokens: [2, 8]}}
reporters: [html, markdown, csv, {name: leaderboard, params: {formats: [html, csv, markdown]}}]
"""


def test_harness_run_writes_every_report(tmp_path, tiny_marian, translation_files):
    from click.testing import CliRunner

    from harness.cli import main

    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(E2E)
    res = CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "out"), "-q",
                                    "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    for name in ("report.html", "report.md", "summary.csv", "leaderboard.html", "leaderboard.csv", "leaderboard.md"):
        assert (out / name).exists(), name
    html = (out / "report.html").read_text(encoding="utf-8")
    bleu = table_by_metric(html, "bleu")
    assert sorted(col(bleu, "Configuration")) == ["greedy[max_new_tokens=2]", "greedy[max_new_tokens=8]"]
    assert col(bleu, "Rank") == sorted(col(bleu, "Rank"))  # best first
    data = analyze(load_run(out))
    row = data.benchmarks[0].rows["chrf"][1]
    assert row.baseline.label == "greedy[max_new_tokens=2]" and row.verdict.startswith("greedy[max_new_tokens=8] scores")
    assert row.p_bootstrap is not None and row.p_ar is not None


def test_a_run_whose_cells_all_failed_still_gets_reports(tmp_path):
    from harness_plugins.reporters.html import HtmlReport
    from harness_plugins.reporters.markdown import MarkdownReport

    tb = translation_benchmark(8)
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, cells=[
        dict(benchmark="t", status="failed", outputs=[], error="CUDA out of memory <b>"),
        dict(benchmark="t", decoder="beam[num_beams=2]", status="failed", outputs=[], error="ValueError: bad")])
    results = load_run(out)
    html = HtmlReport().write(results, out)[0].read_text(encoding="utf-8")
    assert "2 cell(s) failed" in html and "CUDA out of memory &lt;b&gt;" in html and "No comparisons" in html
    md = MarkdownReport().write(results, out)[0].read_text(encoding="utf-8")
    assert "- t / tiny / none / beam[num_beams=2] / seed 0: ValueError: bad" in md


def test_an_observed_gap_of_zero_is_never_significant(tmp_path):
    # One-word outputs give BLEU 0 for both systems; sacrebleu's bootstrap p-value is then ~0.001
    # (no resample beats a zero gap), which must not read as a significant difference.
    refs = ["eins zwei drei vier", "fünf sechs sieben acht", "neun zehn elf zwölf"]
    out = write_run(tmp_path / "run", benchmarks={"toy": {"task": "translation", "sources": ["a", "b", "c"],
                                                          "references": refs}},
                    cells=[{"benchmark": "toy", "decoder": "greedy", "outputs": ["eins", "fünf", "neun"]},
                           {"benchmark": "toy", "decoder": "beam", "outputs": ["zwei", "sechs", "zehn"]}])
    data = analyze(load_run(out))
    row = {r.config.label: r for r in data.benchmarks[0].rows["bleu"]}["beam"]
    assert row.value == 0 and row.delta == 0 and row.p is not None
    assert row.significant is False
    # every output differs, but not one in its BLEU statistics: no test over examples can tell them apart
    assert row.differ == (3, 3) and row.differ_stats == 0 and row.decision.kind == "cannot_decide"
    assert row.verdict.startswith("beam scores the same BLEU as greedy") and row.verdict.endswith(
        "the data cannot decide: no example differs in its BLEU statistics, so no test over examples can tell the "
        "systems apart; only another metric, one that sees what differs, could tell them apart.")


def test_identical_outputs_get_no_test_and_are_said_to_be_identical(tmp_path):
    # beam returns greedy's outputs: sacrebleu's AR would print p ~ 0.0001 for this pair
    tb = translation_benchmark(16)
    outs = degrade(tb["references"], 3)
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, cells=[
        dict(benchmark="t", decoder="greedy", outputs=outs),
        dict(benchmark="t", decoder="beam", outputs=list(outs), key="beamkey"),
        dict(benchmark="t", decoder="sample", outputs=degrade(tb["references"], 2))])
    from harness_plugins.reporters.exports import CsvExport
    from harness_plugins.reporters.html import HtmlReport
    from harness_plugins.reporters.markdown import MarkdownReport

    results = load_run(out)
    data = analyze(results)
    # equal scores share the best rank, the next one skips: 1, 1, 3 in the report, report.md and summary.csv
    assert [r.rank for r in data.benchmarks[0].rows["bleu"]] == [1, 1, 3]
    assert [r.best for r in data.benchmarks[0].rows["bleu"]] == [True, True, False]
    import pandas as pd

    csv = pd.read_csv(CsvExport().write(results, out)[0])
    assert csv[csv.metric == "bleu"]["rank"].tolist() == [1, 1, 3]
    md = MarkdownReport().write(results, out)[0].read_text(encoding="utf-8")
    assert re.search(r"\| +1 \| greedy", md) and re.search(r"\| +1 \| beam", md) and re.search(r"\| +3 \| sample", md)
    row = {r.config.label: r for r in data.benchmarks[0].rows["bleu"]}["beam"]
    assert row.identical and row.p is None and row.p_ar is None and row.significant is False
    assert row.verdict == "beam produces identical outputs to greedy on all 16 examples: no test, not a difference."
    html = HtmlReport().write(results, out)[0].read_text(encoding="utf-8")
    assert "identical outputs" in col(table_by_metric(html, "bleu"), "Verdict")
    assert "significant at" not in row.verdict and "beam produces identical outputs to greedy on all 16 examples" in html


def test_holm_adjusted_p_decides_when_asked(demo):
    from statsmodels.stats.multitest import multipletests

    from harness.report import AnalysisParams

    _, results, _ = demo
    raw = analyze(results)
    holm = analyze(results, AnalysisParams(multiple_comparisons="holm"))
    tested = [r for _, _, r in raw.verdicts() if r.p is not None]
    np.testing.assert_allclose([r.p_holm for r in tested], multipletests([r.p for r in tested], method="holm")[1])
    rows = {(b, m, r.config.label): r for b, m, r in holm.verdicts()}
    for b, m, r in raw.verdicts():
        h = rows[(b, m, r.config.label)]
        if r.p is not None:
            assert h.significant == (h.p_holm < 0.05 and h.delta != 0)
    # beam4 vs greedy on BLEU survives the adjustment; its verdict says the adjusted p decides
    v = rows[("multi30k", "bleu", "beam[num_beams=4]")].verdict
    # ... and names the family it adjusts over: another baseline would make another family
    assert (f"Holm-adjusted p = 0.001 over the {len(tested)} comparisons of this report (against greedy, unmasked), "
            "decides") in v and v.endswith("better (significant at 0.05).")
    assert holm.holm_family == raw.holm_family == (
        f"the {len(tested)} tested comparisons of this report (multi30k, sst2; every metric; each configuration "
        "against its baseline: greedy, unmasked)")
    # the accuracy gain (p = 0.049) does not survive the adjustment
    acc = rows[("sst2", "accuracy", "input_mask")]
    assert acc.p < 0.05 < acc.p_holm and acc.decision.kind == "no_difference" and acc.significant is False
    # beam2's BLEU: sacrebleu's bootstrap says 0.015 in both modes, but its size is above alpha: shown, and it
    # does not contradict the deciding test
    for data in (raw, holm):
        b2 = next(r for b, m, r in data.verdicts() if m == "bleu" and r.config.label == "beam[num_beams=2]")
        assert b2.disagreement == "" and "sacrebleu's paired bootstrap (--paired-bs, shown for comparison: it does " \
                                         "not decide) p = 0.015" in b2.verdict


def test_seed_intervals_stay_in_range_and_name_their_kind(tmp_path):
    # BLEU near 0 on three seeds: a t-interval would reach below 0
    tb = translation_benchmark(12)
    refs = tb["references"]
    cells = []
    for s, outs in enumerate((["x"] * 12, ["x"] * 12, refs[:1] + ["x"] * 11)):
        cells.append(dict(benchmark="t", decoder="sample", seed=s, outputs=outs, key=f"s{s}"))
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, cells=cells)
    data = analyze(load_run(out))
    row = data.benchmarks[0].rows["bleu"][0]
    assert row.ci_low == 0.0 and row.ci_clipped and row.ci_method == "t over 3 seeds, cut to the metric's range"
    from harness_plugins.reporters.html import HtmlReport

    html = HtmlReport().write(load_run(out), out)[0].read_text(encoding="utf-8")
    table = table_by_metric(html, "bleu")
    assert "95% CI (t over seeds)" in table[0] and col(table, "95% CI (t over seeds)")[0].endswith("cut")


def test_seeds_needed_for_the_observed_and_the_configured_difference(demo):
    from harness.stats.crossed import Components, crossed_power
    from harness.report import AnalysisParams

    _, results, _ = demo
    data = analyze(results, AnalysisParams(min_effect={"accuracy": 2.0, "macro_f1": 2.0}))
    row = next(r for r in data.benchmarks[1].rows["accuracy"] if r.config.label == "input_mask")
    comp = Components.of(row.crossed)
    need = row.seeds_need_min_effect
    # sized for the deciding test (seeds × examples), not for a t-test over seeds: the smallest count with the power
    assert crossed_power(2.0, comp, need.estimate) >= 0.8 > crossed_power(2.0, comp, need.estimate - 1)
    assert row.seeds_needed_min_effect == need.estimate
    # ...and with the range the data allow: 5 seeds pin the seed-to-seed variance only within a factor of ~6
    assert need.low <= need.estimate <= need.high and need.low < need.high
    assert (f"About {need.estimate} seeds (between {need.low} and {need.high} over the 90% range of the seed-to-seed "
            "variance) would detect the configured difference (2.00) with 80% power (at 0.05, by the deciding "
            "test).") in row.verdict
    # significant: no seeds-needed sentence for the observed difference
    assert row.significant and "the observed one" not in row.verdict
    # macro-F1 is not significant: how many seeds the observed difference would need, with its range
    f1 = next(r for r in data.benchmarks[1].rows["macro_f1"] if r.config.label == "input_mask")
    obs = f1.seeds_need
    assert not f1.significant and obs.low <= obs.estimate <= obs.high
    assert (f"About {obs.estimate} seeds (between {obs.low} and {obs.high} over the 90% range of the seed-to-seed "
            f"variance) would detect a true difference of {abs(f1.delta):.2f} (the observed one) with 80% power") \
        in f1.verdict
    # the seeds × examples interval of the difference is in the row and the table
    assert row.delta_ci_low < row.delta < row.delta_ci_high


def test_min_effect_must_be_a_positive_difference(tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    (tmp_path / "src.en").write_text("a\n")
    (tmp_path / "ref.de").write_text("b\n")
    (tmp_path / "exp.yaml").write_text(
        "name: x\nmodels: [{path: Helsinki-NLP/opus-mt-en-de}]\n"
        "benchmarks: [{name: parallel_text, params: {source: src.en, reference: ref.de}}]\n"
        "reporters: [{name: html, params: {min_effect: {bleu: -1}}}]\n")
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "exp.yaml")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "reporters[0].params.min_effect" in res.output
    assert "a difference worth detecting must be a positive number (got -1" in res.output


def test_three_differing_outputs_cannot_be_significant_and_the_verdict_says_so(tmp_path):
    # beam improves 3 of 200 outputs, each in the same direction: strict counting (sacrebleu's
    # --paired-ar) finds no swap beyond the observed gap and prints p = 1/(trials+1); the 2 of 8
    # swap patterns of those 3 outputs that give the gap back make p at least 0.25
    tb = translation_benchmark(200)
    outs = degrade(tb["references"], 3)
    better = list(outs)
    for i in (5, 70, 150):
        better[i] = tb["references"][i]
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, cells=[
        dict(benchmark="t", decoder="greedy", outputs=outs),
        dict(benchmark="t", decoder="beam", outputs=better)])
    rows = {r.config.label: r for r in analyze(load_run(out)).benchmarks[0].rows["bleu"]}
    beam = rows["beam"]
    assert beam.test == "ar" and beam.differ == (3, 200) and beam.differ_stats == 3 and beam.delta > 0
    # all 2^3 swaps are enumerated: exactly the floor, never below it
    assert beam.p == 0.25 and beam.significant is False and beam.decision.kind == "cannot_decide"
    assert beam.verdict.endswith("the data cannot decide: only 3 of 200 examples differ in their BLEU statistics, so "
                                 "approximate randomisation cannot give p below 0.250; at least 6 differing examples "
                                 "(a test set of about 400 examples at this rate) or several seeds would.")
    assert "not significant" not in beam.verdict and "no significant difference" not in beam.verdict


def test_equal_1_best_outputs_with_different_n_best_lists_are_not_identical(tmp_path):
    # beam keeps greedy's 1-best but adds a list: its oracle differs, so it is tested, not called identical
    tb = translation_benchmark(16)
    outs = degrade(tb["references"], 3)
    out = write_run(tmp_path / "run", benchmarks={"t": tb}, extra_metric_plugins={"oracle_bleu": "oracle_bleu"}, cells=[
        dict(benchmark="t", decoder="greedy", outputs=outs, extra={"oracle_bleu": 50.0}),
        dict(benchmark="t", decoder="beam", outputs=list(outs), nbest=[[o, r] for o, r in zip(outs, tb["references"])],
             extra={"oracle_bleu": 100.0})])
    data = analyze(load_run(out))
    rows = {r.config.label: r for r in data.benchmarks[0].rows["oracle_bleu"]}
    assert not rows["beam"].identical and "identical" not in rows["beam"].verdict
    # BLEU reads only the 1-best outputs: for BLEU the two are identical
    assert {r.config.label: r for r in data.benchmarks[0].rows["bleu"]}["beam"].identical
    assert rows["beam"].verdict == ("beam scores 50.0 oracle BLEU higher than greedy; the data cannot decide: no paired "
                                    "test was possible: oracle BLEU has no per-example statistics and there is one "
                                    "evaluation per arm; several seeds per arm would.")


def test_every_verdict_and_the_methods_name_the_deciding_test(demo):
    out, results, _ = demo
    data = analyze(results)
    names = {"mcnemar": "McNemar's exact test", "ar": "approximate randomisation", "crossed": "seeds × examples t-test"}
    tested = [r for _, _, r in data.verdicts() if r.p is not None]
    assert tested and {r.test for r in tested} == {"ar", "crossed"}
    for r in tested:
        assert f"{names[r.test]}" in r.verdict.split(" decides")[0] and " decides" in r.verdict
    methods = " ".join(html_lib.unescape(re.sub("<[^>]+>", " ", (out / "report.html").read_text(encoding="utf-8")
                                              .split('<section id="methods">')[1])).split())
    for phrase in ("Which test decides", "Identical outputs.", "seeds × examples t-test", "exact sign-flip permutation",
                   "McNemar's exact test for accuracy", "paired approximate randomisation", "exact over all 2 k swaps",
                   "never pooled", "Holm-adjusted", "percentile of the bootstrap over examples",
                   "it never decides or contradicts the deciding test", "better or worse",
                   "the data cannot decide", "no significant difference", "the 12 tested comparisons of this report",
                   "cut to the metric's range", "A deterministic decoder over one checkpoint is one evaluation"):
        assert phrase in methods, phrase
