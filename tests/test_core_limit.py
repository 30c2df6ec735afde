"""`--limit N` (`--sample`) is a core feature of every benchmark (issue 22): the README's main job
failed with "benchmark 'numbers-de-en' has no limit parameter" although the README says it
applies to every benchmark. The core now takes the first N (or a seeded sample of N) of whatever
a benchmark loads, records it in the manifest and opens the report with the banner; a plugin
benchmark gets `limit:` in its params without writing code; cells without a limit keep their keys.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from harness.api import Benchmark, BenchmarkData, Example
from harness.hookspecs import hookimpl
from harness.testing import run_config

ROOT = Path(__file__).resolve().parents[1]


def cli(cwd, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def test_the_readme_main_job_takes_limit():
    r = cli(ROOT, "validate", "configs/quickstart.yaml", "--limit", "10")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("  limit: 10 test examples per benchmark (the first ones); "
                             "not comparable to full-test-set results\n")


def test_limit_and_sample_cut_a_benchmark_without_a_limit_parameter(tmp_path, tiny_marian):
    """`numbers` (the quickstart's translation task) declares no limit: the core cuts it."""
    (tmp_path / "exp.yaml").write_text(
        f"name: n\nmodels: [{{path: {tiny_marian}}}]\n"
        "benchmarks: [{name: numbers, label: numbers-de-en, params: {source_lang: de, target_lang: en, "
        "max_number: 999, train_size: 0, dev_size: 0, test_size: 40}}]\n"
        "decoders: [{name: greedy, params: {max_new_tokens: 4}}]\nmetrics: [chrf]\nreporters: [html, markdown]\n")
    runs = {}
    for name, extra in (("first", ["--limit", "3"]), ("sample", ["--limit", "3", "--sample"]),
                        ("again", ["--limit", "3", "--sample"]), ("full", [])):
        r = cli(tmp_path, "run", "exp.yaml", "-o", name, "-q", *extra)
        assert r.returncode == 0, r.stderr
        (pred,) = (tmp_path / name / "predictions").glob("*.jsonl")
        runs[name] = [json.loads(line)["id"] for line in pred.read_text().splitlines()]
    assert len(runs["full"]) == 40
    assert runs["first"] == runs["full"][:3]
    assert len(runs["sample"]) == 3 and runs["sample"] != runs["first"]  # seeded: the same every run...
    assert runs["again"] == runs["sample"]
    assert [runs["full"].index(i) for i in runs["sample"]] == sorted(runs["full"].index(i) for i in runs["sample"])
    manifest = json.loads((tmp_path / "sample" / "manifest.json").read_text())
    assert manifest["limit"] == {"n": 3, "sample": True, "benchmarks": {"numbers-de-en": 3}}
    assert ("<strong>Limited to 3 examples per benchmark (a seeded random sample):</strong> not comparable to "
            "full-test-set results.") in (tmp_path / "sample" / "report.html").read_text()
    assert json.loads((tmp_path / "full" / "manifest.json").read_text())["limit"] is None


class Phrases(Benchmark):
    """A third-party benchmark that knows nothing of limits: 30 fixed examples."""

    name = "test_phrases"
    task = "translation"

    def load(self, ctx):
        return BenchmarkData(task="translation", test=[Example(id=f"p{i}", source="the cat", reference="die katze")
                                                       for i in range(30)])


@hookimpl
def register_benchmarks(register):
    register(Phrases)


PLUGIN = types.SimpleNamespace(register_benchmarks=register_benchmarks)


def _ids(results):
    return [r["id"] for key in results.metrics["cell"].unique() for r in results.predictions(key)]


def test_a_plugin_benchmark_takes_limit_and_sample_in_its_params_without_code(tmp_path, tiny_marian):
    def config(params):
        return {"name": "p", "models": [{"path": str(tiny_marian)}], "metrics": ["chrf"], "reporters": [],
                "benchmarks": [{"name": "test_phrases", "params": params}],
                "decoders": [{"name": "greedy", "params": {"max_new_tokens": 3}}]}

    first = run_config(config({"limit": 4}), tmp_path / "a", plugins=[PLUGIN])
    assert _ids(first) == ["p0", "p1", "p2", "p3"]
    sampled = _ids(run_config(config({"limit": 4, "sample": True}), tmp_path / "b", plugins=[PLUGIN]))
    other = _ids(run_config(config({"limit": 4, "sample": True, "sample_seed": 7}), tmp_path / "c", plugins=[PLUGIN]))
    assert len(sampled) == len(other) == 4 and sampled != other and sampled != _ids(first)
    assert first.manifest["limit"] == {"n": None, "sample": False, "benchmarks": {"test_phrases": 4}}
    with pytest.raises(Exception) as info:
        run_config(config({"sample": True}), tmp_path / "d", plugins=[PLUGIN])
    assert "benchmarks[0].params: sample: true needs limit: N" in str(info.value)


def test_cells_without_a_limit_keep_their_keys(tmp_path, tiny_marian, monkeypatch):
    """The subset enters a cell's key only when there is one: a run without --limit reuses the
    cells of runs made before the core took it over."""
    import harness.run.runner as runner
    from harness.experiment.load import load_experiment_dict

    seen = []
    real = runner.canonical_hash
    monkeypatch.setattr(runner, "canonical_hash", lambda obj, *a: (seen.append(obj), real(obj, *a))[1])
    cfg = {"name": "k", "models": [{"path": str(tiny_marian)}],
           "benchmarks": [{"name": "parallel_text", "params": {"source": "a.en", "reference": "a.de"}}]}
    (tmp_path / "a.en").write_text("the cat\n")
    (tmp_path / "a.de").write_text("die katze\n")
    plain = load_experiment_dict(cfg, base_dir=tmp_path).cells()[0]
    limited = load_experiment_dict({**cfg, "limit": 1}, base_dir=tmp_path).cells()[0]
    assert runner.cell_key(plain) != runner.cell_key(limited)
    keyed = [obj for obj in seen if isinstance(obj, dict) and "benchmark" in obj]
    assert "subset" not in keyed[0]["benchmark"] and keyed[1]["benchmark"]["subset"] == {"limit": 1, "sample": False}
