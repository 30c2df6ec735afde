"""Leaderboards across run directories: merging, deduplication, ranking, exports, CLI."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import harness
from harness.cli import main
from report_helpers import degrade, translation_benchmark, write_run

PAYLOAD = "<script>window.__pwned=1</script>"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """run_a: greedy + beam4 (seed 0). run_b: the same greedy cell (same key), a new beam8, and a
    strategy over two seeds. run_c: greedy evaluated on other data (another key, same labels)."""
    root = tmp_path_factory.mktemp("runs")
    tb = translation_benchmark(24)
    refs = tb["references"]
    greedy, b4, b8 = degrade(refs, 3), degrade(refs, 6), degrade(refs, 8)
    a = write_run(root / "run_a", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="greedy", outputs=greedy, key="k-greedy"),
        dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=b4, key="k-b4")])
    b = write_run(root / "run_b", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="greedy", outputs=greedy, key="k-greedy"),
        dict(benchmark="mt", decoder="beam[num_beams=8]", outputs=b8, key="k-b8"),
        dict(benchmark="mt", strategy=f"tuned{PAYLOAD}", decoder="greedy", seed=0, outputs=degrade(refs, 4), key="k-t0"),
        dict(benchmark="mt", strategy=f"tuned{PAYLOAD}", decoder="greedy", seed=1, outputs=degrade(refs, 5), key="k-t1")])
    tc = translation_benchmark(12)
    c = write_run(root / "run_c", benchmarks={"mt": tc}, cells=[
        dict(benchmark="mt", decoder="greedy", outputs=degrade(tc["references"], 2), key="k-other")])
    return a, b, c


def scores(run, key):
    df = pd.read_csv(run / "metrics.csv")
    return df[df.cell == key].set_index("metric")["value"]


def test_merge_deduplicates_identical_cells_and_names_the_runs(runs):
    a, b, c = runs
    df = harness.leaderboard([a, b, c])
    bleu = df[(df.benchmark == "mt") & (df.metric == "bleu")]
    # greedy (k-greedy) is in run_a and run_b: one row, from run_a, also in run_b
    greedy = bleu[(bleu.decoder == "greedy") & (bleu.strategy == "none") & (bleu.run == "run_a")]
    assert len(greedy) == 1 and greedy.iloc[0]["runs"] == "run_a,run_b"
    assert greedy.iloc[0]["value"] == pytest.approx(scores(a, "k-greedy")["bleu"])
    assert not ((bleu.decoder == "greedy") & (bleu.strategy == "none") & (bleu.run == "run_b")).any()
    # same labels, other data: a separate row from run_c
    assert bleu[(bleu.run == "run_c")].iloc[0]["cells"] == "k-other"
    assert len(bleu) == 5  # greedy(a), beam4(a), beam8(b), tuned(b, 2 seeds), greedy(c)
    tuned = bleu[bleu.strategy == f"tuned{PAYLOAD}"].iloc[0]
    vals = [scores(b, "k-t0")["bleu"], scores(b, "k-t1")["bleu"]]
    assert tuned["seeds"] == 2 and tuned["seed_list"] == "0,1"
    assert tuned["value"] == pytest.approx(np.mean(vals)) and tuned["std"] == pytest.approx(np.std(vals, ddof=1))
    # the same directory twice adds nothing
    assert len(harness.leaderboard([a, a, b])) == len(harness.leaderboard([a, b]))


def test_ranks_respect_lower_is_better(runs):
    df = harness.leaderboard(list(runs))
    for metric, ascending in (("bleu", False), ("ter", True)):
        g = df[(df.metric == metric) & (df.group == 1)].sort_values("rank")
        assert list(g["value"]) == sorted(g["value"], reverse=not ascending)
        assert g["rank"].tolist() == [1, 2, 3, 4]
        # run_c's other test set is ranked on its own
        assert df[(df.metric == metric) & (df.run == "run_c")]["rank"].tolist() == [1]
    assert not df[df.metric == "ter"]["higher_is_better"].any() and df[df.metric == "bleu"]["higher_is_better"].all()


def test_filters(runs):
    df = harness.leaderboard(list(runs), metrics=["chrf"])
    assert set(df.metric) == {"chrf"}


def test_exports_round_trip(runs, tmp_path):
    from harness.leaderboards import export

    df = harness.leaderboard(list(runs))
    export(df, tmp_path / "lb.csv")
    export(df, tmp_path / "lb.parquet")
    back_csv = pd.read_csv(tmp_path / "lb.csv", keep_default_na=False, na_values=[""])
    back_pq = pd.read_parquet(tmp_path / "lb.parquet")
    for back in (back_csv, back_pq):
        assert list(back.columns) == list(df.columns) and len(back) == len(df)
        np.testing.assert_allclose(back["value"].to_numpy(float), df["value"].to_numpy(float))
        np.testing.assert_allclose(back["std"].to_numpy(float), df["std"].to_numpy(float), equal_nan=True)
        assert back["runs"].tolist() == df["runs"].tolist() and back["rank"].tolist() == df["rank"].tolist()
        assert back["strategy"].tolist() == df["strategy"].tolist()

    md = export(df, tmp_path / "lb.md").read_text(encoding="utf-8")
    assert "## mt: BLEU (higher is better)\n" in md and "## mt: TER (lower is better)\n" in md
    assert "## mt: BLEU (higher is better), separate table 2" in md
    assert "<script" not in md and "tuned&lt;script&gt;" in md
    header = next(line for line in md.splitlines() if line.lstrip("| ").startswith("Rank |"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["Rank", "Strategy", "Decoder", "Score", "SD", "Seeds",
                                                                  "Run", "Also in"]
    tex = export(df, tmp_path / "lb.tex").read_text(encoding="utf-8")
    assert tex.count("\\begin{tabular}") == 6 and "\\caption{mt: TER (lower is better). n = 24;" in tex
    assert "beam[num\\_beams=4]" in tex and "run\\_a" in tex
    assert "\\textless{}script\\textgreater{}" in tex  # LaTeX-escaped, not HTML
    html = export(df, tmp_path / "lb.html").read_text(encoding="utf-8")
    assert html.count('<table class="sortable leaderboard">') == 6 and "<link" not in html
    assert PAYLOAD not in html and "tuned&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert html.count("<script") == 2


def test_cli_writes_every_requested_format(runs, tmp_path):
    a, b, c = runs
    res = CliRunner().invoke(main, ["leaderboard", str(a), str(b), "-o", str(tmp_path / "x.html"),
                                    "--csv", str(tmp_path / "x.csv"), "--latex", str(tmp_path / "x.tex"),
                                    "--markdown", str(tmp_path / "x.md"), "--parquet", str(tmp_path / "x.parquet")])
    assert res.exit_code == 0, res.output
    for ext in ("html", "csv", "tex", "md", "parquet"):
        assert f"wrote {tmp_path / ('x.' + ext)}" in res.output
    best = re.search(r"mt / bleu: best tiny / none / (\S+) = ([\d.]+) \((\w+)\)", res.output)
    assert best and best.group(1) == "beam[num_beams=8]" and best.group(3) == "run_b"  # drops the fewest words


def test_cli_default_output(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["leaderboard", str(runs[0])])
    assert res.exit_code == 0 and (tmp_path / "reports" / "leaderboard.html").exists()


def test_cli_errors_are_one_line_with_exit_code_2(runs, tmp_path):
    res = CliRunner().invoke(main, ["leaderboard", str(runs[0]), "-o", str(tmp_path / "x.xlsx")])
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {tmp_path / 'x.xlsx'}: unknown leaderboard format '.xlsx'. "
                                  "Allowed extensions: .csv, .htm, .html, .markdown, .md, .parquet, .tex")
    res = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "missing")])
    assert res.exit_code == 2 and res.output.strip() == f"error: {tmp_path / 'missing'}: no such run directory"
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "not a run directory (no manifest.json)" in res.output
    assert "Traceback" not in res.output


def test_leaderboard_reporter_merges_included_runs(runs, tmp_path):
    from harness_plugins.reporters.leaderboard import LeaderboardParams, LeaderboardReport

    from harness.results import load_run

    a, b, _ = runs
    params = LeaderboardParams.model_validate({"formats": ["csv", "markdown"], "include": [str(b)]})
    files = LeaderboardReport(params).write(load_run(a), tmp_path)
    assert [f.name for f in files] == ["leaderboard.csv", "leaderboard.md"]
    df = pd.read_csv(files[0])
    assert set(df.run) == {"run_a", "run_b"}
    with pytest.raises(Exception, match="file not found"):
        LeaderboardParams.model_validate({"include": [str(tmp_path / "nope")]})


def test_a_run_stores_the_test_set_fingerprint_per_cell(tmp_path, translation_files, tiny_marian):
    """metrics.csv and cell.json carry sha256 over the ordered references and n: what the leaderboard groups by."""
    import hashlib
    import json

    from harness.config import load_experiment_dict
    from harness.runner import run_experiment

    resolved = load_experiment_dict({
        "name": "fp", "seeds": [0], "models": [{"path": str(tiny_marian), "label": "tiny"}],
        "benchmarks": [{"name": "parallel_text", "label": "toy",
                        "params": {"source": str(translation_files[0]), "reference": str(translation_files[1])}}],
        "decoders": [{"name": "greedy", "params": {"max_new_tokens": 3}}], "metrics": ["bleu"], "reporters": []},
        base_dir=tmp_path)
    summary = run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    assert not summary.failed
    refs = translation_files[1].read_text(encoding="utf-8").splitlines()
    payload = json.dumps({"n": 4, "references": refs}, ensure_ascii=False, separators=(",", ":"))
    expected = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    df = harness.load_results(tmp_path / "out")
    assert df["testset"].tolist() == [expected] and df["n"].tolist() == [4]
    cell = json.loads((tmp_path / "out" / "cells" / df["cell"].iloc[0] / "cell.json").read_text())
    assert cell["testset"] == expected and cell["n"] == 4
