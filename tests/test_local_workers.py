"""The local executor with ``workers: 2``: cells in two worker processes, results identical to
one after another in this process, a worker that dies fails only its cell, the cache is shared,
and the default torch threads are the usable cores divided by the workers."""
from __future__ import annotations

import json
import os

import pytest

from conftest import FIXTURE_PLUGINS
from harness.experiment.load import load_experiment
from harness.run.runner import run_experiment

GRID = """\
name: two-workers
models: [{path: ./model, label: tiny}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: greedy, params: {max_new_tokens: [3, 5, 7]}}
  - {name: test_slow, label: bug, params: {fail: error}}
  - {name: test_slow, label: crash, params: {fail: crash}}
reporters: []
"""


def deterministic(outdir, drop=None):
    lines = (outdir / "metrics.csv").read_text().splitlines(keepends=True)
    files = {"metrics.csv": "".join(line for line in lines if not (drop and f",{drop}," in line))}
    files |= {p.name: p.read_bytes() for p in sorted((outdir / "predictions").iterdir()) if not (drop and drop in p.name)}
    return files


@pytest.mark.slow
def test_two_workers_equal_one_failures_isolated_cache_shared(tmp_path, tiny_marian, translation_files,
                                                              fixture_plugin_set, monkeypatch):
    # worker processes import the test plugins by module name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURE_PLUGINS), os.environ.get("PYTHONPATH")])))
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(GRID)

    def run(out, *overrides):
        resolved = load_experiment(cfg, ["threads=1", *overrides], plugins=fixture_plugin_set)
        return run_experiment(resolved, tmp_path / out, cache_dir=tmp_path / "cache", quiet=True)

    one = run("one", "decoders.2.params.fail=none")  # a crash would end this process
    two = run("two", "executor={name: local, params: {workers: 2}}")

    assert [o.status for o in two.outcomes] == ["done", "done", "done", "failed", "failed"]
    assert two.outcomes[3].error == "ValueError: boom: test_slow was asked to fail"
    # a worker process that died is that cell's failure, and the cells after it still ran
    assert two.outcomes[4].error.startswith("worker process died (exit code ")
    crashed = json.loads((tmp_path / "two" / "cells" / two.outcomes[4].key / "cell.json").read_text())
    assert crashed["status"] == "failed" and crashed["error"] == two.outcomes[4].error
    # the cells ran in worker processes, not in this one
    pids = {json.loads((tmp_path / "two" / "cells" / o.key / "cell.json").read_text())["pid"] for o in two.outcomes[:3]}
    assert os.getpid() not in pids
    assert deterministic(tmp_path / "two") == deterministic(tmp_path / "one", drop="crash")

    # the same directory again, without the crash: finished cells are reused, the new one runs
    again = run("two", "executor={name: local, params: {workers: 2}}", "decoders.2.params.fail=none")
    assert [o.status for o in again.outcomes] == ["cached", "cached", "cached", "failed", "done"]
    assert deterministic(tmp_path / "two") == deterministic(tmp_path / "one")


def test_workers_divide_the_default_threads(monkeypatch, tmp_path, tiny_marian, translation_files):
    import harness.run.threads
    from harness.run.threads import decide_threads

    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(GRID.replace("test_slow", "greedy").replace("fail: error", "max_new_tokens: 2")
                   .replace("fail: crash", "max_new_tokens: 4"))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    monkeypatch.setattr(harness.run.threads, "CGROUP_CPU_MAX", str(tmp_path / "no-cgroup-here"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert decide_threads(load_experiment(cfg)) == (4, "default: 4 usable cores / 1 cell at a time")
    for workers, want in ((2, 2), (3, 1), (8, 1)):
        resolved = load_experiment(cfg, [f"executor={{name: local, params: {{workers: {workers}}}}}"])
        assert decide_threads(resolved) == (want, f"default: 4 usable cores / {workers} cells at a time")


def test_workers_are_validated_at_the_config_edge(tmp_path, tiny_marian, translation_files):
    from harness.errors import ConfigErrors

    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: bad-local\nmodels: [{path: ./model}]\n"
                   "benchmarks: [{name: parallel_text, params: {source: test.en, reference: test.de}}]\n"
                   "executor: {name: local, params: {workers: 0}}\n")
    with pytest.raises(ConfigErrors) as e:
        load_experiment(cfg)
    assert str(e.value).splitlines() == [f"{cfg}:4: executor.params.workers: Input should be greater than or equal to 1 (got 0)"]
