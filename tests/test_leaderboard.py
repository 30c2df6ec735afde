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
        # run_c's other test set is a table of its own, of one entry: not ranked (no lone "#1")
        alone = df[(df.metric == metric) & (df.run == "run_c")]
        assert len(alone) == 1 and pd.isna(alone["rank"].iloc[0])
    assert not df[df.metric == "ter"]["higher_is_better"].any() and df[df.metric == "bleu"]["higher_is_better"].all()


def test_filters(runs):
    df = harness.leaderboard(list(runs), metrics=["chrf"])
    assert set(df.metric) == {"chrf"}


def test_exports_round_trip(runs, tmp_path):
    from harness.report.leaderboards import export

    df = harness.leaderboard(list(runs))
    export(df, tmp_path / "lb.csv")
    export(df, tmp_path / "lb.parquet")
    back_csv = pd.read_csv(tmp_path / "lb.csv", keep_default_na=False, na_values=[""])
    back_pq = pd.read_parquet(tmp_path / "lb.parquet")
    for back in (back_csv, back_pq):
        assert list(back.columns) == list(df.columns) and len(back) == len(df)
        np.testing.assert_allclose(back["value"].to_numpy(float), df["value"].to_numpy(float))
        np.testing.assert_allclose(back["std"].to_numpy(float), df["std"].to_numpy(float), equal_nan=True)
        assert back["runs"].tolist() == df["runs"].tolist()
        assert back["rank"].fillna(0).tolist() == df["rank"].fillna(0).tolist()
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
    with pytest.raises(Exception, match="not found: .*nope"):
        LeaderboardParams.model_validate({"include": [str(tmp_path / "nope")]})


def test_a_run_stores_the_test_set_fingerprint_per_cell(tmp_path, translation_files, tiny_marian):
    """metrics.csv and cell.json carry sha256 over the ordered references and n: what the leaderboard groups by."""
    import hashlib
    import json

    from harness.experiment.load import load_experiment_dict
    from harness.run.runner import run_experiment

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


# ----------------------------------------------------------------------------- incomparable scores


def retokenize_bleu(run, tokenize: str):
    """Rescore a fabricated run's BLEU rows with sacrebleu's `tokenize` (what `bleu: {tokenize: char}` writes)."""
    import json

    from sacrebleu.metrics import BLEU

    df = pd.read_csv(run / "metrics.csv", keep_default_na=False, na_values=[""], dtype={"signature": str})
    for i in df.index[df.metric == "bleu"]:
        rows = [json.loads(x) for x in (run / "cells" / df.at[i, "cell"] / "predictions.jsonl").read_text().splitlines()]
        scorer = BLEU(tokenize=tokenize)
        df.at[i, "value"] = scorer.corpus_score([r["output"] for r in rows], [[r["reference"] for r in rows]]).score
        df.at[i, "signature"] = str(scorer.get_signature())
    df.to_csv(run / "metrics.csv", index=False)
    return run


@pytest.fixture(scope="module")
def incomparable(tmp_path_factory):
    """big: 30 sentences, BLEU tok:13a (greedy, beam4). char: the same 30 sentences scored with
    tok:char. small: 5 sentences (greedy). tied: the big set again with two systems that tie."""
    root = tmp_path_factory.mktemp("incomparable")
    big, small = translation_benchmark(30), translation_benchmark(5)
    refs = big["references"]
    cells = [dict(benchmark="mt", decoder="greedy", outputs=degrade(refs, 3)),
             dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=degrade(refs, 6))]
    a = write_run(root / "big", benchmarks={"mt": big}, cells=cells)
    c = retokenize_bleu(write_run(root / "char", benchmarks={"mt": big}, cells=[
        dict(benchmark="mt", decoder="beam[num_beams=8]", outputs=degrade(refs, 8))]), "char")
    s = write_run(root / "small", benchmarks={"mt": small}, cells=[
        dict(benchmark="mt", decoder="beam[num_beams=8]", outputs=small["references"])])
    return a, c, s


def test_other_tokenizer_and_other_test_set_land_in_separate_tables(incomparable):
    a, c, s = incomparable
    df = harness.leaderboard([a, c, s])
    bleu = df[df.metric == "bleu"].set_index("run")
    assert bleu.loc["big", "group"].tolist() == [1, 1] and bleu.loc["char", "group"] == 2 and bleu.loc["small", "group"] == 3
    assert bleu.loc["char", "table"] == "mt / bleu #2" and bleu.loc["small", "table"] == "mt / bleu #3"
    assert set(bleu.loc["big", "note"]) == {""}
    assert bleu.loc["char", "note"] == "not ranked with table 1: tokenizer differs: tok:char vs tok:13a"
    assert bleu.loc["small", "note"] == "not ranked with table 1: different test set (n=5 vs n=30)"
    assert "|tok:char|" in bleu.loc["char", "signature"] and bleu.loc["small", "n"] == 5
    # a perfect 5-sentence system is not ranked above the 30-sentence ones: each table ranks alone, and
    # a table of one entry not at all
    assert bleu.loc["small", "value"] == pytest.approx(100.0) and pd.isna(bleu.loc["small", "rank"])
    assert bleu.loc["big"].sort_values("rank")["decoder"].tolist() == ["beam[num_beams=4]", "greedy"]
    assert bleu.loc["big", "rank"].tolist() == [1, 2] and pd.isna(bleu.loc["char", "rank"])
    # chrF and TER of `char` were not retokenized: they share table 1 with `big`
    chrf = df[df.metric == "chrf"].set_index("run")
    assert chrf.loc["char", "group"] == 1 and chrf.loc["small", "group"] == 2
    assert chrf.loc["big", "testset"].tolist() == [chrf.loc["char", "testset"]] * 2
    assert len(chrf.loc["big", "testset"].iloc[0]) == 64 and chrf.loc["small", "testset"] != chrf.loc["char", "testset"]


def test_separate_tables_and_notes_in_every_format(incomparable, tmp_path):
    from harness.report.leaderboards import export

    a, c, s = incomparable
    df = harness.leaderboard([a, c, s])
    for ext in ("csv", "parquet"):
        path = export(df, tmp_path / f"lb.{ext}")
        back = pd.read_csv(path, keep_default_na=False, na_values=[""]) if ext == "csv" else pd.read_parquet(path)
        assert back["table"].tolist() == df["table"].tolist()
        assert back["note"].fillna("").tolist() == df["note"].tolist()
        assert back["group"].tolist() == df["group"].tolist() and back["testset"].tolist() == df["testset"].tolist()

    md = export(df, tmp_path / "lb.md").read_text(encoding="utf-8")
    sections = md.split("\n## ")[1:]
    bleu = [sec for sec in sections if sec.startswith("mt: BLEU")]
    assert [sec.splitlines()[0] for sec in bleu] == [
        "mt: BLEU (higher is better)", "mt: BLEU (higher is better), separate table 2",
        "mt: BLEU (higher is better), separate table 3"]
    assert "> Not ranked with table 1: tokenizer differs: tok:char vs tok:13a." in bleu[1]
    assert "> Not ranked with table 1: different test set (n=5 vs n=30)." in bleu[2]
    assert "n = 30; signature: nrefs:1\\|case:mixed\\|eff:no\\|tok:13a\\|" in bleu[0]
    assert "n = 30; signature: nrefs:1\\|case:mixed\\|eff:no\\|tok:char\\|" in bleu[1]
    assert "n = 5;" in bleu[2] and "| small " in bleu[2]
    assert "| small " not in bleu[0] and "| char " not in bleu[0] and "| char " in bleu[1]

    tex = export(df, tmp_path / "lb.tex").read_text(encoding="utf-8")
    tables = tex.split("\\begin{table}")[1:]
    assert len(tables) == 7  # BLEU: 3 tables; chrF and TER: 2 each (13a and char share them)
    bleu_tex = [t for t in tables if "\\caption{mt: BLEU" in t]
    assert [re.search(r"\\label\{([^}]*)\}", t).group(1) for t in bleu_tex] == [
        "tab:leaderboard-mt-bleu", "tab:leaderboard-mt-bleu-2", "tab:leaderboard-mt-bleu-3"]
    assert "Not ranked with table 1: tokenizer differs: tok:char vs tok:13a." in bleu_tex[1]
    assert "tok:char" in bleu_tex[1] and "\\textbar{}tok:13a\\textbar{}" in bleu_tex[0]
    # numbers right-aligned, the rest left: Rank, Decoder, Score, SD, Seeds, Run, Also in
    assert "\\begin{tabular}{rlrrrll}" in bleu_tex[0]
    body = bleu_tex[0].split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    best = df[(df.metric == "bleu") & (df.group == 1)].sort_values("rank")["value"].tolist()
    assert body[0].startswith(f"1 & beam[num\\_beams=4] & \\textbf{{{best[0]:.2f}}} &")
    assert body[1].startswith(f"2 & greedy & {best[1]:.2f} &")

    html = export(df, tmp_path / "lb.html").read_text(encoding="utf-8")
    assert html.count('<table class="sortable leaderboard">') == 7
    assert "<p class=\"note\">Not ranked with table 1: tokenizer differs: tok:char vs tok:13a.</p>" in html
    assert "<p class=\"note\">Not ranked with table 1: different test set (n=5 vs n=30).</p>" in html
    assert "n = 5 · signature: nrefs:1|case:mixed|eff:no|tok:13a|" in html
    assert html.count("separate table 2") == 3 and html.count("separate table 3") == 1


def test_rows_are_labelled_by_the_parameters_that_differ(tmp_path):
    tb = translation_benchmark(20)
    refs = tb["references"]
    r1 = write_run(tmp_path / "r1", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="greedy", decoder_params={"max_new_tokens": 3}, outputs=degrade(refs, 2)),
        dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=degrade(refs, 5))])
    r2 = write_run(tmp_path / "r2", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="greedy", decoder_params={"max_new_tokens": 6}, outputs=degrade(refs, 4))])
    # the same configuration evaluated again with other model files (another cell key)
    r3 = write_run(tmp_path / "r3", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=degrade(refs, 7))])
    df = harness.leaderboard([r1, r2, r3], metrics=["bleu"])
    assert df["group"].tolist() == [1, 1, 1, 1]
    assert sorted(df["label"]) == ["beam[num_beams=4] @ r1", "beam[num_beams=4] @ r3", "greedy (max_new_tokens=3)",
                                   "greedy (max_new_tokens=6)"]
    from harness.report.leaderboards import to_markdown

    md = to_markdown(df)
    decoders = [line.split("|")[2].strip() for line in md.splitlines() if line.startswith("|") and "Decoder" not in line
                and ":--" not in line and "--:" not in line]
    assert sorted(decoders) == ["beam\\[num\\_beams=4\\]", "beam\\[num\\_beams=4\\]", "greedy (max\\_new\\_tokens=3)",
                                "greedy (max\\_new\\_tokens=6)"]


def test_equal_scores_share_a_rank(tmp_path):
    tb = translation_benchmark(20)
    refs = tb["references"]
    run = write_run(tmp_path / "tie", benchmarks={"mt": tb}, cells=[
        dict(benchmark="mt", decoder="beam[num_beams=2]", outputs=degrade(refs, 5)),
        dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=degrade(refs, 5), key="other-key"),
        dict(benchmark="mt", decoder="greedy", outputs=degrade(refs, 3))])
    df = harness.leaderboard([run], metrics=["bleu", "ter"])
    for metric in ("bleu", "ter"):
        g = df[df.metric == metric].set_index("decoder")
        assert g.loc[["beam[num_beams=2]", "beam[num_beams=4]", "greedy"], "rank"].tolist() == [1, 1, 3]


def test_same_n_other_references_is_another_test_set(tmp_path):
    tb = translation_benchmark(20)
    other = {**tb, "references": tb["references"][:-1] + ["ein ganz anderer satz"]}
    a = write_run(tmp_path / "a", benchmarks={"mt": tb}, cells=[dict(benchmark="mt", outputs=degrade(tb["references"], 3),
                                                                    key="k-a")])
    b = write_run(tmp_path / "b", benchmarks={"mt": other}, cells=[dict(benchmark="mt", outputs=degrade(tb["references"], 3),
                                                                       key="k-b")])  # a real key hashes the data
    df = harness.leaderboard([a, b], metrics=["bleu"]).set_index("run")
    assert df.loc["b", "note"] == "not ranked with table 1: different test set (same n=20, other references)"


def test_classification_signature_n_is_reported_as_a_test_set_difference(tmp_path):
    gold = ["pos", "neg"] * 20
    big = {"task": "classification", "sources": [f"review {i}" for i in range(40)], "references": gold}
    small = {"task": "classification", "sources": big["sources"][:10], "references": gold[:10]}
    a = write_run(tmp_path / "a", benchmarks={"sst2": big}, cells=[
        dict(benchmark="sst2", strategy="unmasked", outputs=gold[:35] + ["neg"] * 5),
        dict(benchmark="sst2", strategy="input_mask", outputs=gold)])
    b = write_run(tmp_path / "b", benchmarks={"sst2": small}, cells=[dict(benchmark="sst2", strategy="unmasked",
                                                                          outputs=gold[:10])])
    for run in (a, b):  # the signature the classification metrics write
        m = pd.read_csv(run / "metrics.csv")
        m["signature"] = [f"{metric}|n:{n}|scale:100|version:1" for metric, n in zip(m.metric, m.n)]
        m.to_csv(run / "metrics.csv", index=False)
    df = harness.leaderboard([a, b], metrics=["accuracy"]).set_index("run")
    assert df.loc["a", "group"].tolist() == [1, 1] and df.loc["b", "group"] == 2
    assert df.loc["b", "note"] == "not ranked with table 1: different test set (n=10 vs n=40)"
    assert df.loc["a", "label"].tolist() == ["input_mask", "unmasked"] and df.loc["a", "rank"].tolist() == [1, 2]


def test_old_runs_without_fingerprints(tmp_path):
    """metrics.csv from before the testset column: the fingerprint comes from the cells' predictions;
    without those the run is its own table, and the note says the test set is unknown."""
    from harness.stats.ranking import testset_fingerprint

    tb = translation_benchmark(20)
    refs = tb["references"]
    new = write_run(tmp_path / "new", benchmarks={"mt": tb}, cells=[dict(benchmark="mt", outputs=degrade(refs, 3))])
    old = write_run(tmp_path / "old", benchmarks={"mt": tb}, cells=[dict(benchmark="mt", decoder="beam[num_beams=4]",
                                                                        outputs=degrade(refs, 5))])
    m = pd.read_csv(new / "metrics.csv")
    m["testset"] = testset_fingerprint(refs)
    m.to_csv(new / "metrics.csv", index=False)
    m = pd.read_csv(old / "metrics.csv").drop(columns=["testset"])
    m.to_csv(old / "metrics.csv", index=False)
    df = harness.leaderboard([new, old], metrics=["bleu"])
    assert df["group"].tolist() == [1, 1] and set(df["testset"]) == {testset_fingerprint(refs)}

    (old / "cells" / m["cell"].iloc[0] / "predictions.jsonl").unlink()
    df = harness.leaderboard([new, old], metrics=["bleu"]).set_index("run")
    assert df.loc["new", "group"] == 1 and df.loc["old", "group"] == 2 and df.loc["old", "testset"] == ""
    assert df.loc["old", "note"] == ("not ranked with table 1: test set unknown (run old stores no test-set "
                                     "fingerprint and its cells' predictions are missing): not ranked with other runs")
    from harness.report.leaderboards import to_html

    assert "test set: unknown" in to_html(df.reset_index())


def test_signature_differences_name_each_field():
    from harness.report.leaderboards import signature_differences

    assert signature_differences("nrefs:1|case:lc|eff:no|tok:13a|smooth:floor|version:2.4.0",
                                 "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0") == [
        "case differs: case:lc vs case:mixed", "smoothing differs: smooth:floor vs smooth:exp",
        "version differs: version:2.4.0 vs version:2.6.0"]
    assert signature_differences("self-bleu|nrefs:1", "oracle|nrefs:1") == ["metric differs: self-bleu vs oracle"]
    assert signature_differences("accuracy|n:10|scale:100", "accuracy|n:40|scale:100") == []  # n: the test set's note
    assert signature_differences("", "nrefs:1") == ["number of references differs: nrefs:- vs nrefs:1"]


def test_metric_plugins_direction_target_title_and_decimals_are_respected(tmp_path):
    """A metric judged by closeness to a target ranks as the reports rank it (harness.stats.ranking)."""
    tb = translation_benchmark(10)
    refs = tb["references"]
    run = write_run(tmp_path / "r", benchmarks={"mt": tb}, extra_metric_plugins={"len_ratio": "len_ratio"}, cells=[
        dict(benchmark="mt", decoder="greedy", outputs=degrade(refs, 3), extra={"len_ratio": 0.9}),
        dict(benchmark="mt", decoder="beam[num_beams=2]", outputs=degrade(refs, 4), extra={"len_ratio": 1.104}),
        dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=degrade(refs, 5), extra={"len_ratio": 1.02})])

    class LenRatio:
        direction, target, title, decimals, higher_is_better = "target", 1.0, "length ratio", 1, True

        @classmethod
        def resolved_direction(cls):
            return cls.direction

    class Registry:
        def get(self, kind, name):
            if name == "len_ratio":
                return LenRatio
            raise KeyError(name)

    df = harness.leaderboard([run], metrics=["len_ratio"], plugins=Registry())
    # to one decimal: 1.0 (beam4), 0.9 and 1.1 tie at distance 0.1
    assert df.set_index("decoder")["rank"].to_dict() == {"beam[num_beams=4]": 1, "greedy": 2, "beam[num_beams=2]": 2}
    assert set(df["direction"]) == {"target"} and set(df["target"]) == {1.0}
    from harness.report.leaderboards import to_latex, to_markdown

    md = to_markdown(df)
    assert "## mt: length ratio (closer to 1 is better)" in md
    assert re.search(r"\|\s+1\.0 \|", md) and re.search(r"\|\s+1\.1 \|", md) and "1.02" not in md
    assert "\\caption{mt: length ratio (closer to 1 is better)." in to_latex(df)


def test_cli_names_the_best_of_each_table_and_why_it_is_separate(incomparable, tmp_path):
    res = CliRunner().invoke(main, ["leaderboard", *map(str, incomparable), "--metric", "bleu",
                                    "-o", str(tmp_path / "x.html"), "--csv", str(tmp_path / "x.csv"),
                                    "--latex", str(tmp_path / "x.tex")])
    assert res.exit_code == 0, res.output
    best = [line for line in res.output.splitlines() if ": best " in line or ": only " in line]
    assert [re.split(": (best|only) ", line)[0] for line in best] == ["mt / bleu", "mt / bleu #2", "mt / bleu #3"]
    assert re.match(r"mt / bleu: best tiny / none / beam\[num_beams=4\] = \d+\.\d\d \(big\)$", best[0])
    # a table of one entry has no "best": its only entry, at BLEU's precision
    assert re.match(r"mt / bleu #2: only tiny / none / beam\[num_beams=8\] = \d+\.\d\d \(char\) \[not ranked with "
                    r"table 1: tokenizer differs: tok:char vs tok:13a\]$", best[1])
    assert best[2] == ("mt / bleu #3: only tiny / none / beam[num_beams=8] = 100.00 (small) [not ranked with table 1: "
                       "different test set (n=5 vs n=30)]")
    assert (tmp_path / "x.tex").read_text(encoding="utf-8").count("\\label{tab:leaderboard-mt-bleu") == 3


def test_a_missing_score_is_unranked_and_listed_last(tmp_path):
    tb = translation_benchmark(10)
    refs = tb["references"]
    run = write_run(tmp_path / "r", benchmarks={"mt": tb}, extra_metric_plugins={"self_bleu": "self_bleu"}, cells=[
        dict(benchmark="mt", decoder="greedy", outputs=degrade(refs, 3), extra={"self_bleu": float("nan")}),
        dict(benchmark="mt", decoder="beam[num_beams=4]", outputs=degrade(refs, 5), extra={"self_bleu": 40.0}),
        dict(benchmark="mt", decoder="beam[num_beams=8]", outputs=degrade(refs, 6), extra={"self_bleu": 30.0})])
    df = harness.leaderboard([run], metrics=["self_bleu"])
    assert df["decoder"].tolist() == ["beam[num_beams=8]", "beam[num_beams=4]", "greedy"]  # lower is better
    assert df["rank"].tolist()[:2] == [1, 2] and pd.isna(df["rank"].iloc[2])
    from harness.report.leaderboards import to_latex, to_markdown

    assert re.search(r"\|\s+– \| greedy\s+\|\s+– \|", to_markdown(df))
    assert "– & greedy & – &" in to_latex(df) and "\\textbf{30.00}" in to_latex(df)
