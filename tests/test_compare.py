"""harness.compare and `harness compare`: the reports' decision rules on per-example scores a user
already has, from a run's predictions files or plain one-number-per-line files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import harness
from harness.cli import main
from harness.report import analyze
from harness.results import load_run
from report_helpers import SEEDS, build_demo_run


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = build_demo_run(tmp_path_factory.mktemp("demo") / "run")
    results = load_run(out)
    return out, results, analyze(results)


def cell_file(out, results, **labels):
    c = next(c for c in results.cells if all(c[k] == v for k, v in labels.items()) and c["status"] != "failed")
    return out / "cells" / c["key"] / "predictions.jsonl"


def correct(results, out, strategy, seed):
    rows = [json.loads(x) for x in cell_file(out, results, benchmark="sst2", strategy=strategy, seed=seed)
            .read_text().splitlines()]
    return np.array([100.0 * (r["output"] == r["reference"]) for r in rows])


def test_the_same_verdict_p_and_interval_as_the_report_over_seeds(demo):
    out, results, data = demo
    row = next(r for r in data.benchmarks[1].rows["accuracy"] if r.config.label == "input_mask")
    res = harness.compare([correct(results, out, "input_mask", s) for s in SEEDS],
                          [correct(results, out, "unmasked", s) for s in SEEDS], metric="accuracy",
                          system_name="input_mask", baseline_name="unmasked")
    assert res.test_name == "seeds × examples t-test" and res.p == pytest.approx(row.p, rel=1e-9)
    assert res.ci == (pytest.approx(row.delta_ci_low), pytest.approx(row.delta_ci_high))
    assert res.verdict == row.verdict_label == "better (significant)" and res.delta == pytest.approx(row.delta)
    assert res.sentence().startswith("input_mask − unmasked = +4.27 accuracy (seeds × examples t-test p = 0.049 "
                                     "decides; 95% CI of the difference [")
    assert [s["p"] for s in res.datasets[0].per_seed] == pytest.approx([e["p_mcnemar"] for e in row.per_seed])


def test_the_cli_on_a_runs_predictions_gives_the_reports_randomisation_p(demo):
    out, results, data = demo
    row = next(r for r in data.benchmarks[0].rows["bleu"] if r.config.label == "beam[num_beams=4]")
    sys_f = cell_file(out, results, benchmark="multi30k", decoder="beam[num_beams=4]")
    base_f = cell_file(out, results, benchmark="multi30k", decoder="greedy")
    res = CliRunner().invoke(main, ["compare", str(sys_f), str(base_f), "--metric", "bleu", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["test"] == "ar" and doc["p"] == pytest.approx(row.p_ar) and doc["decision"] == "better"
    assert doc["delta"] == pytest.approx(row.delta)
    # the five-differing-outputs pair: the same floor and the same "cannot decide" as the report
    b2 = next(r for r in data.benchmarks[0].rows["bleu"] if r.config.label == "beam[num_beams=2]")
    res = CliRunner().invoke(main, ["compare", str(cell_file(out, results, benchmark="multi30k",
                                                              decoder="beam[num_beams=2]")), str(base_f),
                                    "--metric", "bleu"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "verdict: the data cannot decide" and lines[1] == "deciding test: approximate randomisation"
    assert lines[2] == f"p = {b2.p_ar:.3f}" and "cannot give p below 0.0625" in lines[-1]


def test_text_files_one_number_per_line_several_seeds_and_datasets(tmp_path):
    rng = np.random.default_rng(0)
    args = []
    per_dataset = {}
    for ds, shift in (("sst2", 0.06), ("mpqa", 0.04), ("cr", 0.05)):
        files = {"a": [], "b": []}
        deltas = []
        for s in range(3):
            b = (rng.random(400) < 0.8).astype(int)
            a = np.where(rng.random(400) < shift, 0, b)
            for arm, v in (("a", a), ("b", b)):
                f = tmp_path / f"{ds}_{arm}{s}.txt"
                f.write_text("\n".join(str(x) for x in v) + "\n")
                files[arm].append(str(f))
            deltas.append(a.mean() - b.mean())
        per_dataset[ds] = np.mean(deltas)
        args += [f"{ds}=" + ",".join(files["a"]), f"{ds}=" + ",".join(files["b"])]
    res = CliRunner().invoke(main, ["compare", *args])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    from harness.stats.meta_analysis import pool_datasets

    pool = pool_datasets(list(per_dataset.values()))
    assert lines[1] == "deciding test: t-test over datasets" and lines[2] == f"p = {pool.p:.3f}"
    assert [x.split(":")[0].strip() for x in lines[4:7]] == ["sst2", "mpqa", "cr"]
    assert all("seeds × examples t-test" in x for x in lines[4:7])


@pytest.mark.parametrize("files,content,message", [
    (["a.txt", "b.txt"], {"a.txt": "1\nx\n", "b.txt": "1\n0\n"}, "error: {d}/a.txt:2: 'x' is not a number"),
    (["a.txt", "b.txt"], {"a.txt": "1\n\n0\n", "b.txt": "1\n0\n1\n"},
     "error: {d}/a.txt:2: empty line; one number per line is expected"),
    (["a.txt", "nope.txt"], {"a.txt": "1\n0\n"}, "error: {d}/nope.txt: no such file"),
    (["a.txt", "b.txt"], {"a.txt": "1\n0\n1\n", "b.txt": "1\n0\n"},
     "error: dataset 1: files must score the same examples; lengths differ: {d}/a.txt (3), {d}/b.txt (2)"),
    (["a.txt"], {"a.txt": "1\n0\n"}, "error: compare: 1 arguments; they come in pairs, SYSTEM then BASELINE (the last "
                                     "one, '{d}/a.txt', has no baseline)"),
    (["a.txt,a.txt", "b.txt"], {"a.txt": "1\n0\n", "b.txt": "1\n0\n"},
     "error: dataset 1: 2 system file(s) but 1 baseline file(s); give one file per seed for each, paired by position"),
    (["p.jsonl", "q.jsonl"], {"p.jsonl": '{"id": "1", "scores": {"correct": true}}\n',
                              "q.jsonl": '{"id": "1", "scores": {"correct": false}}\n'},
     "error: {d}/p.jsonl: a predictions file holds several scores: choose one with --metric (correct)"),
])
def test_bad_input_is_one_error_line_naming_the_file_and_line(tmp_path, files, content, message):
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    res = CliRunner().invoke(main, ["compare", *[",".join(str(tmp_path / f) for f in x.split(",")) for x in files]])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip() == message.format(d=tmp_path)


def test_predictions_files_must_list_the_same_examples_and_name_a_score_they_have(tmp_path):
    rows = lambda ids, v: "".join(json.dumps({"id": i, "scores": {"correct": x}}) + "\n" for i, x in zip(ids, v))  # noqa: E731
    (tmp_path / "a.jsonl").write_text(rows(["1", "2", "3"], [True, False, True]))
    (tmp_path / "b.jsonl").write_text(rows(["1", "3", "2"], [True, True, False]))
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--metric", "correct"])
    assert res.exit_code == 2 and res.output.strip() == (
        f"error: {tmp_path}/b.jsonl: example 2 is id '3' where {tmp_path}/a.jsonl has '2': files must list the same "
        "examples in the same order")
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "a.jsonl"), "--metric", "chrf"])
    assert res.exit_code == 2 and res.output.strip() == (
        f"error: {tmp_path}/a.jsonl:1: no 'reference' or 'references': chrf needs them")
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "a.jsonl"), "--metric", "acc"])
    assert res.exit_code == 2 and res.output.strip() == (
        f"error: {tmp_path}/a.jsonl:1: no score 'acc' in this row; scores here: correct (or bleu, chrf, ter from the "
        "outputs)")


def test_the_api_refuses_mismatched_arms_with_a_clear_error():
    from harness.errors import DataError

    with pytest.raises(DataError, match="the system has 2 seed\\(s\\) × 5 examples and the baseline 1 seed\\(s\\) × 5"):
        harness.compare(np.zeros((2, 5)), np.zeros(5))
    with pytest.raises(DataError, match="direction must be 'higher' or 'lower'"):
        harness.compare(np.zeros(5), np.zeros(5), direction="up")
    res = harness.compare(np.ones(5), np.ones(5))
    assert res.verdict == "identical outputs" and res.p is None
