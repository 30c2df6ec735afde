"""`harness run` end to end on a tiny model: the files a user gets, their columns, and cache reuse."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import harness

CONFIG = """\
name: outputs
seeds: [0, 1]
models: [{path: ./model, label: tiny}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders:
  - name: greedy
    params: {max_new_tokens: [3, 6]}
"""


@pytest.fixture
def project(tmp_path, translation_files, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(CONFIG)
    return tmp_path


def harness_cli(cwd, *args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_run_writes_metrics_predictions_report_manifest(project):
    res = harness_cli(project, "run", "exp.yaml", "-o", "out")
    assert res.returncode == 0, res.stderr
    out = project / "out"
    assert "4 cells (2 reused, 0 failed)" in res.stdout  # seed 1 reuses seed 0: nothing depends on the seed
    df = harness.load_results(out)
    assert list(df.columns[:7]) == ["model", "benchmark", "strategy", "decoder", "seed", "metric", "value"]
    assert len(df) == 4 * 3  # cells x (bleu, chrf, ter)
    assert set(df.metric) == {"bleu", "chrf", "ter"}
    assert set(df.decoder) == {"greedy[max_new_tokens=3]", "greedy[max_new_tokens=6]"}
    assert df.signature[df.metric == "bleu"].str.startswith("nrefs:1|case:mixed|eff:no|tok:13a").all()
    # greedy is deterministic and `none` does not train: seeds share one cached result
    assert df.groupby(["decoder", "metric"]).value.nunique().eq(1).all()

    preds = sorted((out / "predictions").iterdir())
    assert [p.name for p in preds] == [
        "tiny__toy__none__greedy_max_new_tokens=3___0.jsonl", "tiny__toy__none__greedy_max_new_tokens=3___1.jsonl",
        "tiny__toy__none__greedy_max_new_tokens=6___0.jsonl", "tiny__toy__none__greedy_max_new_tokens=6___1.jsonl"]
    rows = [json.loads(line) for line in preds[0].read_text().splitlines()]
    assert [r["id"] for r in rows] == ["test-1", "test-2", "test-3", "test-4"]
    assert rows[0]["source"] == "the cat sat on the mat" and rows[0]["reference"] == "die katze sass auf der matte"
    assert all(isinstance(r["output"], str) for r in rows)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiment"] == "outputs" and manifest["seeds"] == [0, 1]
    assert {"torch", "transformers", "sacrebleu", "pandas"} <= set(manifest["packages"])
    assert manifest["resolved"]["decoders"][0] == {"plugin": "greedy", "label": "greedy[max_new_tokens=3]",
                                                   "params": {**manifest["resolved"]["decoders"][0]["params"],
                                                              "max_new_tokens": 3}}
    assert [c["status"] for c in manifest["cells"]] == ["done", "cached", "done", "cached"]
    assert manifest["hardware"]["cpu_count"] >= 1 and manifest["seconds"] > 0
    html = (out / "report.html").read_text()
    assert "<table" in html and "greedy[max_new_tokens=6]" in html


def test_unchanged_cells_are_reused_and_changed_ones_rerun(project):
    assert harness_cli(project, "run", "exp.yaml", "-o", "out").returncode == 0
    before = (project / "out" / "metrics.csv").read_text()
    again = harness_cli(project, "run", "exp.yaml", "-o", "out")
    assert "4 cells (4 reused, 0 failed)" in again.stdout
    assert (project / "out" / "metrics.csv").read_text() == before
    # adding a new decoder setting runs only the new cells
    more = harness_cli(project, "run", "exp.yaml", "-o", "out", "--set", "decoders.0.params.max_new_tokens=[3,6,9]")
    # one new cell key runs; its seed-1 twin shares the key and is served from it
    assert "6 cells, 4 reused, 1 to run" in more.stdout, more.stdout
    assert "6 cells (5 reused, 0 failed)" in more.stdout, more.stdout


def test_report_command_rerenders_from_saved_results(project):
    assert harness_cli(project, "run", "exp.yaml", "-o", "out").returncode == 0
    (project / "out" / "report.html").unlink()
    res = harness_cli(project, "report", "out")
    assert res.returncode == 0, res.stderr
    assert (project / "out" / "report.html").exists()
    bad = harness_cli(project, "report", "nowhere")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: nowhere: not a run directory (not found); "
                                  "run `harness run CONFIG -o nowhere` first")


def test_threads_setting_is_applied_and_recorded(project):
    import torch

    before = torch.get_num_threads()
    res = harness_cli(project, "run", "exp.yaml", "-o", "out", "--threads", "2")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((project / "out" / "manifest.json").read_text())
    default_training = {"training": 1, "training_source": "default: 1, the same checkpoint on any machine"}
    assert manifest["threads"] == {"torch": 2, "source": "--threads", **default_training}
    cell = json.loads((project / "out" / "cells" / manifest["cells"][0]["key"] / "cell.json").read_text())
    assert cell["torch_threads"] == 2
    (project / "exp.yaml").write_text(CONFIG + "threads: 1\n")
    res = harness_cli(project, "run", "exp.yaml", "-o", "out2")
    manifest = json.loads((project / "out2" / "manifest.json").read_text())
    assert manifest["threads"] == {"torch": 1, "source": "config threads:", **default_training}
    assert torch.get_num_threads() == before  # (subprocesses: this process is untouched)


@pytest.mark.parametrize("cores, load, omp, want", [
    (2, (8.3, 8.0, 7.0), None, (2, "default: 2 usable cores / 1 cell at a time")),
    (2, (0.2, 0.1, 0.1), None, (2, "default: 2 usable cores / 1 cell at a time")),
    (1, (0.0, 0.0, 0.0), None, (1, "default: 1 usable cores / 1 cell at a time")),  # taskset -c 0
    (8, (0.0, 0.0, 0.0), "3", (3, "OMP_NUM_THREADS")),
])
def test_default_threads_follow_the_usable_cores_not_the_load(monkeypatch, project, cores, load, omp, want):
    import os

    from harness.experiment.load import load_experiment
    from harness.run.threads import decide_threads

    import harness.run.threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(harness.run.threads, "CGROUP_CPU_MAX", str(project / "no-cgroup-here"))
    monkeypatch.setattr(os, "getloadavg", lambda: load)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    resolved = load_experiment(project / "exp.yaml")
    assert decide_threads(resolved) == want
    assert decide_threads(resolved, 4) == (4, "--threads")
    ray = load_experiment(project / "exp.yaml", ["executor=ray"])
    assert decide_threads(ray) == ((None, "executor 'ray' decides") if omp is None else want)


def test_the_cli_stops_openmp_threads_from_spin_waiting(project):
    """The cause of torch's collapse on a loaded machine (see harness.cli): checked in a fresh
    process, where the variable is set before torch loads its OpenMP runtime."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import harness.cli, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE", out.stderr
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True)
    assert out.stdout.strip() == "ACTIVE"  # the user's choice wins


def test_a_container_cpu_quota_caps_the_default(monkeypatch, tmp_path):
    import os

    import harness.run.threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))  # the host's cores
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(harness.run.threads, "CGROUP_CPU_MAX", str(quota))
    quota.write_text("200000 100000\n")  # docker run --cpus 2
    assert harness.run.threads.usable_cores() == 2
    quota.write_text("max 100000\n")
    assert harness.run.threads.usable_cores() == 64
