"""OUTDIR/results.json: the whole run in one stable file, with the report's own numbers."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.experiment.load import load_experiment_dict
from harness.run.runner import run_experiment


@pytest.fixture
def run_dir(tmp_path, tiny_marian, translation_files):
    resolved = load_experiment_dict({
        "name": "rj", "seeds": [0], "models": [{"path": str(tiny_marian), "label": "tiny"}],
        "benchmarks": [{"name": "parallel_text", "label": "toy", "params": {"source": "test.en", "reference": "test.de"}}],
        "decoders": [{"name": "greedy", "params": {"max_new_tokens": [2, 6]}}],
        "metrics": ["chrf"],
        # the analysis settings of the run's report: results.json must use the same
        "reporters": [{"name": "csv", "params": {"bootstrap_samples": 300, "ar_trials": 300, "seed": 7}}],
        "baseline": {"decoder": "greedy[max_new_tokens=2]"},
    }, base_dir=tmp_path)
    summary = run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    assert not summary.failed and not summary.report_errors, summary.report_errors
    return tmp_path / "out"


def test_results_json_holds_config_cells_aggregates_and_the_reports_comparisons(run_dir):
    doc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert list(doc)[:4] == ["schema_version", "experiment", "description", "status"]
    assert doc["schema_version"] == 1 and doc["experiment"] == "rj" and doc["status"] == "complete"
    assert doc["config"]["name"] == "rj" and "sacrebleu" in doc["packages"]
    assert doc["analysis"]["bootstrap_samples"] == 300 and doc["analysis"]["seed"] == 7
    assert [c["status"] for c in doc["cells"]] == ["done", "done"]
    assert all(c["n"] == 4 and set(c["timings"]) >= {"load_data", "predict"} for c in doc["cells"])

    summary = pd.read_csv(run_dir / "summary.csv")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert len(doc["aggregates"]) == 2
    for agg in doc["aggregates"]:
        assert agg["metric"] == "chrf" and agg["n"] == 4 and agg["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6")
        assert agg["value"] == pytest.approx(metrics.set_index("decoder").value[agg["decoder"]])
        want = summary.set_index("label").loc[agg["label"]]
        assert (agg["ci_low"], agg["ci_high"]) == pytest.approx((want.ci_low, want.ci_high))
        assert agg["ci_method"] == want.ci_method == "bootstrap over examples (300 resamples)"
        assert agg["ci_low"] <= agg["value"] <= agg["ci_high"]

    (cmp,) = doc["comparisons"]
    want = summary.set_index("label").loc[cmp["label"]]
    assert cmp["baseline"] == "greedy[max_new_tokens=2]" and cmp["metric"] == "chrf"
    assert cmp["delta"] == pytest.approx(want.delta)
    assert cmp["test"] == want.test == "ar" and cmp["test_name"] == "approximate randomisation"
    assert cmp["identical_outputs"] is False and cmp["outputs_differ"] == 4
    assert cmp["p"] == pytest.approx(want.p) and cmp["p_holm"] == pytest.approx(want.p_holm)
    assert cmp["p_ar"] == pytest.approx(want.p_ar) and cmp["p_bootstrap"] == pytest.approx(want.p_bootstrap)
    assert cmp["verdict"] == want.verdict and "approximate randomisation p = " in cmp["verdict"]


def test_harness_report_regenerates_the_same_results_json(run_dir):
    before = (run_dir / "results.json").read_bytes()
    (run_dir / "results.json").unlink()
    res = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"wrote {run_dir / 'results.json'}" in res.stdout
    assert (run_dir / "results.json").read_bytes() == before


def test_manifest_records_the_sha256_of_every_data_file_read(run_dir):
    import hashlib

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    base = run_dir.parent
    # relative to the config's directory (here: the test's directory), so checkouts compare equal
    assert manifest["data_files"] == {name: hashlib.sha256((base / name).read_bytes()).hexdigest()
                                      for name in ("test.de", "test.en")}
    assert manifest["hub_revisions"] == {"models": {}, "datasets": {}}  # a local model, local files
    doc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert doc["data_files"] == manifest["data_files"]


def test_hub_revisions_come_from_the_local_cache_and_are_null_when_unknown(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from harness.run.provenance import cached_commit

    commit = "0123456789abcdef0123456789abcdef01234567"
    ref = tmp_path / "models--Helsinki-NLP--opus-mt-en-de" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert cached_commit("Helsinki-NLP/opus-mt-en-de", None) == commit
    assert cached_commit("Helsinki-NLP/opus-mt-en-de", "v2") is None  # a branch never fetched: unknown offline
    assert cached_commit("nyu-mll/glue", None, "dataset") is None
    assert cached_commit("any/repo", "f" * 40) == "f" * 40  # a pinned commit is its own revision


def test_runs_written_before_scores_and_results_json_still_report(run_dir, tmp_path):
    """A run directory from before #11: no scores in predictions, no metrics/data_files in the manifest."""
    before = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    for key in ("metrics", "data_files", "hub_revisions"):
        del manifest[key]
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for p in (run_dir / "predictions").iterdir():
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
        p.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "scores"}) + "\n" for r in rows))
    (run_dir / "results.json").unlink()
    res = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert doc["data_files"] is None and doc["metrics"] is None
    assert doc["comparisons"] == before["comparisons"] and doc["aggregates"] == before["aggregates"]
    board = subprocess.run([sys.executable, "-m", "harness.cli", "leaderboard", str(run_dir), "-o",
                            str(tmp_path / "board.html"), "--csv", str(tmp_path / "board.csv")],
                           capture_output=True, text=True)
    assert board.returncode == 0, board.stderr
    assert "greedy[max_new_tokens=6]" in (tmp_path / "board.csv").read_text(encoding="utf-8")


def test_data_files_follow_globs_and_directories(tmp_path):
    """hf_* benchmarks' data_files may be glob patterns, text benchmarks may name a directory."""
    import hashlib

    from harness.run.provenance import data_files

    (tmp_path / "d").mkdir()
    for name in ("a.jsonl", "b.jsonl", "c.txt"):
        (tmp_path / "d" / name).write_text(name)

    class Comp:  # the two things data_files reads of a resolved config

        def __init__(self, params):
            self._p = params

        def params_dict(self):
            return self._p

    class Resolved:
        base_dir = tmp_path
        components = {"benchmarks": [Comp({"data_files": {"test": str(tmp_path / "d" / "*.jsonl")}}),
                                     Comp({"train": str(tmp_path / "d"), "labels": ["x"]})]}

    sha = {n: hashlib.sha256(n.encode()).hexdigest() for n in ("a.jsonl", "b.jsonl", "c.txt")}
    assert data_files(Resolved()) == {f"d/{n}": sha[n] for n in ("a.jsonl", "b.jsonl", "c.txt")}
    Resolved.components = {"benchmarks": Resolved.components["benchmarks"][:1]}
    assert data_files(Resolved()) == {f"d/{n}": sha[n] for n in ("a.jsonl", "b.jsonl")}
