"""The ray executor: cells as Ray tasks on a local instance (2 CPUs), results identical to the
local executor's, failures isolated per task, and one shared cell cache across executors."""
from __future__ import annotations

import json
import os

import pytest

from conftest import FIXTURE_PLUGINS
from harness.experiment.load import load_experiment
from harness.run.runner import run_experiment

ray = pytest.importorskip("ray", reason="the ray executor is an optional extra: pip install 'nlp-eval-harness[ray]'")

GRID = """\
name: on-ray
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
def test_ray_results_equal_local_failures_isolated_cache_shared(tmp_path, tiny_marian, translation_files,
                                                               fixture_plugin_set, monkeypatch):
    # Ray worker processes import the test plugins by module name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURE_PLUGINS), os.environ.get("PYTHONPATH")])))
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(GRID)

    def run(out, *overrides):
        resolved = load_experiment(cfg, list(overrides), plugins=fixture_plugin_set)
        return run_experiment(resolved, tmp_path / out, cache_dir=tmp_path / "cache", quiet=True)

    local = run("local", "decoders.2.params.fail=none")  # a crash would end this process
    on_ray = run("ray", "executor={name: ray, params: {local_cpus: 2, num_cpus: 1}}")
    assert not ray.is_initialized()  # the instance it started is stopped again

    assert [o.status for o in on_ray.outcomes] == ["done", "done", "done", "failed", "failed"]
    assert on_ray.outcomes[3].error == "ValueError: boom: test_slow was asked to fail"
    # a worker process that died is that cell's failure, recorded by the driver
    assert on_ray.outcomes[4].error.startswith("ray task failed: WorkerCrashedError: ")
    crashed = json.loads((tmp_path / "ray" / "cells" / on_ray.outcomes[4].key / "cell.json").read_text())
    assert crashed["status"] == "failed" and crashed["error"] == on_ray.outcomes[4].error
    record = json.loads((tmp_path / "ray" / "cells" / on_ray.outcomes[3].key / "cell.json").read_text())
    assert record["status"] == "failed" and "harness_test_plugins.py" in record["traceback"]
    # the cells really ran in Ray worker processes (the local run's ran in this one)
    pids = {json.loads((tmp_path / d / "cells" / o.key / "cell.json").read_text())["pid"]
            for d in ("ray", "local") for o in on_ray.outcomes[:3]}
    assert os.getpid() in pids and len(pids) >= 2
    assert deterministic(tmp_path / "ray") == deterministic(tmp_path / "local", drop="crash")

    # the ray run's cells are reused by a local run in the same directory (the "crash" cell,
    # now without its crash, is a new cell)
    again = run("ray", "decoders.2.params.fail=none")
    assert [o.status for o in again.outcomes] == ["cached", "cached", "cached", "failed", "done"]
    assert deterministic(tmp_path / "ray") == deterministic(tmp_path / "local")


def test_ray_params_are_validated_at_the_config_edge(tmp_path, tiny_marian, translation_files):
    from harness.errors import ConfigErrors

    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: bad-ray\nmodels: [{path: ./model}]\n"
                   "benchmarks: [{name: parallel_text, params: {source: test.en, reference: test.de}}]\n"
                   "executor: {name: ray, params: {num_cpus: 0, memory: lots}}\n")
    with pytest.raises(ConfigErrors) as e:
        load_experiment(cfg)
    assert str(e.value).splitlines() == [
        f"{cfg}:4: executor.params.num_cpus: Input should be greater than 0 (got 0)",
        f"{cfg}:4: executor.params.memory: memory must be a number of bytes or a size like '4GB' or '512MiB', got 'lots'",
    ]


def test_memory_sizes():
    from harness_plugins.executors.ray import parse_bytes

    assert [parse_bytes(v) for v in (1000, "4GB", "512MiB", "1.5g", " 2 KiB ")] == [1000, 4 * 10**9, 512 * 2**20,
                                                                                  1_500_000_000, 2048]
