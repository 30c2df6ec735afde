"""Leaderboards file every row under the test set it was scored on, rank nothing alone, and print
scores at the metric's own precision (issue 22: a plugin decoder ranked "#1 with 0.0000" alone in
a `parallel_text · BLEU` table, while its cell belonged to another run's benchmark)."""
from __future__ import annotations

import re

import pandas as pd
import pytest

import harness
from conftest import harness_cli
from report_helpers import degrade, translation_benchmark, write_run


def _copy_source_module():
    """A third-party decoder that copies its source: BLEU 0 against German references."""
    from harness.api import Decoder, Hypothesis
    from harness.hookspecs import hookimpl

    class CopySource(Decoder):
        name = "copy_source"
        description = "copies the source"

        def decode(self, model, sources, ctx):
            return [[Hypothesis(s)] for s in sources]

    class module:
        @staticmethod
        @hookimpl
        def register_decoders(register):
            register(CopySource)

    return module


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory, tiny_marian):
    """Run `mine`: the plugin decoder on parallel_text (label `parallel_text`). Run `team`: the same
    files labelled `numbers-de-en`, with greedy and the same plugin-decoder cell (the same cell key)."""
    from harness.testing import run_config, write_translation_files

    root = tmp_path_factory.mktemp("filing")
    src, ref = write_translation_files(root / "data")
    bench = {"name": "parallel_text", "params": {"source": str(src), "reference": str(ref)}}
    plugin = _copy_source_module()
    common = {"models": [{"path": str(tiny_marian), "label": "tiny"}], "metrics": ["bleu", "chrf"]}
    mine = run_config({"name": "mine", **common, "benchmarks": [bench], "decoders": ["copy_source"]},
                      root / "mine", plugins=[plugin])
    team = run_config({"name": "team", **common, "benchmarks": [{**bench, "label": "numbers-de-en"}],
                       "decoders": ["greedy", "copy_source"]}, root / "team", plugins=[plugin])
    shared = set(mine.metrics["cell"]) & set(team.metrics["cell"])
    assert len(shared) == 1  # the plugin decoder's cell: the same evaluation in both runs
    return root, mine, team


def test_the_issues_case_the_shared_cell_is_ranked_with_its_peers_not_alone(two_labels):
    root, mine, team = two_labels
    res = harness_cli(root, "leaderboard", "mine", "team", "-o", "lb.html", "--markdown", "lb.md")
    assert res.returncode == 0, res.stderr
    # one table per metric, under the label most of the test set's rows carry; none for parallel_text
    tables = [line.split(": ")[0] for line in res.stdout.splitlines() if not line.startswith("wrote ")]
    assert tables == ["numbers-de-en / bleu", "numbers-de-en / chrf"]
    md = (root / "lb.md").read_text(encoding="utf-8")
    assert "## parallel\\_text" not in md and "## numbers-de-en: BLEU (higher is better)" in md
    assert "also labelled parallel\\_text (run mine)" in md
    bleu = md.split("## numbers-de-en: BLEU")[1].split("## ")[0]
    rows = [ln for ln in bleu.splitlines() if re.match(r"^\|\s+\d", ln)]
    assert len(rows) == 2 and any("copy\\_source" in r for r in rows) and any("greedy" in r for r in rows)
    # BLEU at sacrebleu's precision, never "0.0000"
    assert "0.0000" not in md and re.search(r"\|\s+0\.00 \|", bleu)
    html = (root / "lb.html").read_text(encoding="utf-8")
    assert "parallel_text · BLEU" not in html and "numbers-de-en · BLEU" in html
    # the order of the runs decides nothing
    again = harness.leaderboard([root / "team", root / "mine"])
    first = harness.leaderboard([root / "mine", root / "team"])
    assert set(again["benchmark"]) == set(first["benchmark"]) == {"numbers-de-en"}
    assert sorted(first["benchmark_label"]) == sorted(["parallel_text"] * 2 + ["numbers-de-en"] * 2)


def _runs(tmp_path, labels_cells):
    """One run per (name, label, [(decoder, drop_every, key)]) on the same 20-sentence test set."""
    tb = translation_benchmark(20)
    refs = tb["references"]
    out = []
    for name, label, cells in labels_cells:
        out.append(write_run(tmp_path / name, benchmarks={label: tb}, cells=[
            dict(benchmark=label, decoder=d, outputs=degrade(refs, k), key=key) for d, k, key in cells]))
    return out


def test_one_test_set_under_several_labels_is_one_table_named_by_the_majority(tmp_path):
    runs = _runs(tmp_path, [("r1", "wmt-a", [("greedy", 3, "k1")]),
                            ("r2", "wmt-b", [("beam[num_beams=4]", 5, "k2"), ("beam[num_beams=8]", 7, "k3")]),
                            ("r3", "wmt-b", [("greedy", 3, "k1"), ("sample", 2, "k4")])])
    df = harness.leaderboard(runs, metrics=["bleu"])
    assert set(df["table"]) == {"wmt-b / bleu"} and len(df) == 4
    assert df.set_index("decoder").loc["greedy", "runs"] == "r1,r3"  # counted once, from the first run
    assert df.set_index("decoder").loc["greedy", "benchmark_label"] == "wmt-a"
    assert set(df["also_labelled"]) == {"wmt-a (run r1)"}
    assert df["rank"].tolist() == [1, 2, 3, 4]
    # either label finds the table
    assert len(harness.leaderboard(runs, benchmarks=["wmt-a"], metrics=["bleu"])) == 4
    # a tie in rows is broken by name, not by which run came first
    tie = _runs(tmp_path / "tie", [("r1", "zeta", [("greedy", 3, "k1")]), ("r2", "alpha", [("beam", 5, "k2")])])
    for order in (tie, tie[::-1]):
        assert set(harness.leaderboard(order, metrics=["bleu"])["benchmark"]) == {"alpha"}


def test_other_test_sets_keep_their_labels_and_their_own_tables(tmp_path):
    a, b = translation_benchmark(20), translation_benchmark(12)
    r1 = write_run(tmp_path / "r1", benchmarks={"mt": a}, cells=[
        dict(benchmark="mt", decoder="greedy", outputs=degrade(a["references"], 3)),
        dict(benchmark="mt", decoder="beam", outputs=degrade(a["references"], 5))])
    r2 = write_run(tmp_path / "r2", benchmarks={"other": b}, cells=[
        dict(benchmark="other", decoder="greedy", outputs=degrade(b["references"], 3))])
    df = harness.leaderboard([r1, r2], metrics=["bleu"])
    assert set(df["benchmark"]) == {"mt", "other"} and set(df["also_labelled"]) == {""}


def test_classification_labels_join_only_through_a_shared_cell(tmp_path):
    """Two classification sets whose gold labels happen to agree are not one test set, unless a cell
    key (which hashes the benchmark's data) says so."""
    gold = ["pos", "neg", "pos", "pos", "neg", "neg"]
    bench = {"task": "classification", "sources": [f"text {i}" for i in range(6)], "references": gold}
    flipped = ["neg", "neg", "pos", "pos", "neg", "pos"]
    r1 = write_run(tmp_path / "r1", benchmarks={"sst": bench}, cells=[
        dict(benchmark="sst", strategy="a", outputs=gold, key="c1"), dict(benchmark="sst", strategy="b", outputs=flipped)])
    r2 = write_run(tmp_path / "r2", benchmarks={"mr": {**bench, "sources": [f"other {i}" for i in range(6)]}}, cells=[
        dict(benchmark="mr", strategy="a", outputs=gold), dict(benchmark="mr", strategy="c", outputs=flipped)])
    assert set(harness.leaderboard([r1, r2], metrics=["accuracy"])["benchmark"]) == {"sst", "mr"}
    r3 = write_run(tmp_path / "r3", benchmarks={"sst-2": bench}, cells=[
        dict(benchmark="sst-2", strategy="a", outputs=gold, key="c1")])
    joined = harness.leaderboard([r1, r3], metrics=["accuracy"])
    assert set(joined["benchmark"]) == {"sst"} and len(joined) == 2


def test_a_table_of_one_entry_is_not_ranked_in_any_format(tmp_path):
    from harness.report.leaderboards import ONE_ENTRY, summary_lines, to_html, to_latex, to_markdown

    tb = translation_benchmark(10)
    run = write_run(tmp_path / "r", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="copy_source", outputs=[s.upper() for s in tb["sources"]])])
    df = harness.leaderboard([run], metrics=["bleu"])
    assert len(df) == 1 and pd.isna(df["rank"].iloc[0]) and df["note"].iloc[0] == ONE_ENTRY
    value = df["value"].iloc[0]
    assert value < 1.5  # a fraction-sized BLEU: still printed with BLEU's 2 decimals
    md = to_markdown(df)
    assert re.search(rf"\|\s+– \| copy\\_source\s+\|\s+{value:.2f} \|", md) and f"{value:.4f}" not in md
    assert "> One entry: nothing to rank it against." in md
    tex = to_latex(df)
    assert f"– & copy\\_source & {value:.2f} &" in tex and "\\textbf" not in tex.split("\\midrule")[1]
    html = to_html(df)
    assert '<tr class="best">' not in html and f">{value:.2f}<" in html
    assert summary_lines(df) == [f"mt / bleu: only tiny / none / copy_source = {value:.2f} (r) [{ONE_ENTRY}]"]


def test_sacrebleu_metrics_print_two_decimals_like_sacrebleu():
    from harness.plugins import default_plugins

    assert {default_plugins().get("metric", m).decimals for m in ("bleu", "chrf", "ter")} == {2}
