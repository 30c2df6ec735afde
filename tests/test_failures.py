"""Failure isolation: a cell that raises is recorded (error + traceback) and the others still run;
exit code 1; re-running retries failures; --retry-failed runs only them; --skip-failed keeps them.

Failing cells come from the test-only plugins in tests/fixtures/plugins (``test_slow`` with
``fail``/``fail_while``, ``test_flaky_metric``, ``test_broken_report``), loaded in-process.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import harness.experiment.config
from harness.cli import main
from harness.experiment.load import load_experiment
from harness.run.runner import run_experiment

GRID = """\
name: failures
models: [{path: ./model, label: tiny}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: greedy, params: {max_new_tokens: 4}}
  - {name: test_slow, label: bug, params: {fail: error}}
  - {name: test_slow, label: oom, params: {fail: oom}}
  - {name: test_slow, label: quits, params: {fail: exit}}
  - {name: test_slow, label: flaky, params: {fail_while: FLAG}}
reporters: [html]
"""


@pytest.fixture
def plugins(fixture_plugin_set, monkeypatch):
    ps = fixture_plugin_set
    # the CLI resolves configs with the default plugin set; give it one that has the test plugins
    monkeypatch.setattr(harness.experiment.config, "default_plugins", lambda: ps)
    return ps


@pytest.fixture
def project(tmp_path, tiny_marian, translation_files, plugins, monkeypatch):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID)
    (tmp_path / "FLAG").write_text("the bug is not fixed yet")
    monkeypatch.chdir(tmp_path)  # fail_while: FLAG is relative to where the cell runs
    return tmp_path


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args), "--cache-dir", "cache"])


def cells_by_decoder(out):
    manifest = json.loads((out / "manifest.json").read_text())
    return {c["decoder"]: c for c in manifest["cells"]}


def test_failing_cells_are_recorded_and_the_others_still_run(project):
    res = cli("run", "exp.yaml", "-o", "out")
    assert res.exit_code == 1
    out = project / "out"
    cells = cells_by_decoder(out)
    assert {d: c["status"] for d, c in cells.items()} == {
        "greedy": "done", "bug": "failed", "oom": "failed", "quits": "failed", "flaky": "failed"}
    assert cells["bug"]["error"] == "ValueError: boom: test_slow was asked to fail"
    assert cells["oom"]["error"] == ("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (out of memory: "
                                     "lower the batch_size, max_new_tokens or num_beams of this cell, or use a smaller model)")
    assert cells["quits"]["error"] == "SystemExit: 3"
    assert cells["flaky"]["error"] == "RuntimeError: boom: FLAG exists"
    # the traceback points at the plugin's line, in cell.json and in the manifest
    record = json.loads((out / cells["bug"]["cell_dir"] / "cell.json").read_text())
    assert record["status"] == "failed" and record["labels"]["decoder"] == "bug"
    assert 'harness_test_plugins.py", line' in record["traceback"] and "in decode" in record["traceback"]
    assert cells["bug"]["traceback"] == record["traceback"]
    # results of the good cell are all there; the failed ones have none
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 3 and all(",greedy," in line for line in metrics[1:])
    assert [p.name for p in (out / "predictions").iterdir()] == ["tiny__toy__none__greedy__0.jsonl"]
    assert "boom: test_slow was asked to fail" in (out / "report.html").read_text()  # the report shows it
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["counts"]["failed"] == 4
    # the user sees each failure on stderr, with where to find the traceback
    assert (f"failed: tiny / toy / none / bug / 0: ValueError: boom: test_slow was asked to fail "
            f"(traceback in out/cells/{cells['bug']['key']}/cell.json)") in res.stderr
    assert "5 cells (0 reused, 4 failed) → out" in res.stdout


def test_plain_rerun_retries_failures_retry_failed_runs_only_them_skip_failed_keeps_them(project):
    assert cli("run", "exp.yaml", "-o", "out").exit_code == 1
    out = project / "out"
    flaky = out / cells_by_decoder(out)["flaky"]["cell_dir"] / "cell.json"

    # --skip-failed: recorded failures stay as they are and are not run again
    before = flaky.read_bytes()
    res = cli("run", "exp.yaml", "-o", "out", "--skip-failed")
    assert res.exit_code == 1 and flaky.read_bytes() == before
    assert "5 cells (1 reused, 4 failed)" in res.stdout

    # the bug is fixed: --retry-failed runs the failed cells again (the fixed one now passes)
    (project / "FLAG").unlink()
    bug = out / cells_by_decoder(out)["bug"]["cell_dir"] / "cell.json"
    bug_before = bug.read_bytes()
    res = cli("run", "exp.yaml", "-o", "out", "--retry-failed")
    assert res.exit_code == 1
    assert {d: c["status"] for d, c in cells_by_decoder(out).items()} == {
        "greedy": "cached", "bug": "failed", "oom": "failed", "quits": "failed", "flaky": "done"}
    assert bug.read_bytes() != bug_before  # attempted again (new timing), still failing
    assert "5 cells (1 reused, 3 failed)" in res.stdout

    # a plain re-run retries what still fails and reuses the rest
    res = cli("run", "exp.yaml", "-o", "out")
    assert res.exit_code == 1
    assert "5 cells (2 reused, 3 failed)" in res.stdout
    assert "[2/5] failed" in res.stdout or "failed" in res.stdout


def test_retry_failed_skips_cells_never_run(project, fixture_plugins):
    (project / "FLAG").unlink()
    assert cli("run", "exp.yaml", "-o", "out", "--set", "decoders=[greedy]").exit_code == 0
    # a new model never ran: --retry-failed leaves it alone and says so; exit 0, nothing failed
    res = cli("run", "exp.yaml", "-o", "out", "--retry-failed", "--set", "decoders=[greedy]",
              "--set", "models=[{path: ./model, label: tiny}, {path: ./model, label: again, max_source_length: 7}]")
    assert res.exit_code == 0, res.output
    assert "2 cells (1 reused, 0 failed, 1 skipped)" in res.stdout
    assert "note: 1 cells were never run and were skipped by --retry-failed; run without it to run them" in res.stderr
    cells = json.loads((project / "out" / "manifest.json").read_text())["cells"]
    assert [(c["model"], c["status"], c["predictions"] is None) for c in cells] == [
        ("tiny", "cached", False), ("again", "skipped", True)]


def test_retry_failed_and_skip_failed_together_is_a_usage_error(project):
    res = cli("run", "exp.yaml", "-o", "out", "--retry-failed", "--skip-failed")
    assert res.exit_code == 2
    assert res.stderr == "error: --retry-failed and --skip-failed contradict each other; give one of them\n"
    assert not (project / "out").exists()


def test_metric_that_raises_fails_only_itself_and_the_cell_keeps_its_predictions(project, plugins):
    cfg = project / "exp.yaml"
    overrides = ["decoders=[greedy]", "metrics=[bleu, {name: test_flaky_metric, params: {fail_while: FLAG}}]"]
    summary = run_experiment(load_experiment(cfg, overrides, plugins=plugins), project / "out",
                             cache_dir=project / "cache", quiet=True)
    [o] = summary.outcomes
    assert o.status == "done"  # docs/running.md's promise: a metric that raises fails only itself
    assert o.metric_errors == ["metric 'test_flaky_metric' failed: ZeroDivisionError: division by zero in test_flaky_metric"]
    assert [m["metric"] for m in o.metrics] == ["bleu"]
    out = project / "out"
    assert [p.name for p in (out / "predictions").iterdir()] == ["tiny__toy__none__greedy__0.jsonl"]
    assert (out / "metrics.csv").read_text().count(",bleu,") == 1
    [cell] = json.loads((out / "manifest.json").read_text())["cells"]
    assert cell["status"] == "done" and cell["metric_errors"] == o.metric_errors
    assert cell["error"] == o.metric_errors[0]  # what the report's cell table shows
    (project / "FLAG").unlink()
    summary = run_experiment(load_experiment(cfg, overrides, plugins=plugins), project / "out",
                             cache_dir=project / "cache", quiet=True)
    [o] = summary.outcomes
    assert o.status == "cached"  # the metric was fixed: scored again from the kept predictions, no re-decoding
    assert {m["metric"]: m["value"] for m in o.metrics}["test_flaky_metric"] == 4.0 and o.metric_errors == []


def test_metric_failure_is_reported_on_stderr_with_exit_1(project):
    res = cli("run", "exp.yaml", "-o", "out", "--set", "decoders=[greedy]",
              "--set", "metrics=[bleu, {name: test_flaky_metric, params: {fail_while: FLAG}}]")
    assert res.exit_code == 1
    assert res.stderr == ("failed: tiny / toy / none / greedy / 0: metric 'test_flaky_metric' failed: "
                          "ZeroDivisionError: division by zero in test_flaky_metric\n")
    assert "1 cells (0 reused, 0 failed) → out" in res.stdout


def test_reporter_that_raises_keeps_results_and_exits_1(project):
    res = cli("run", "exp.yaml", "-o", "out", "--set", "decoders=[greedy]", "--set", "reporters=[test_broken_report, html]")
    assert res.exit_code == 1
    assert "failed: reporter 'test_broken_report' failed: KeyError: \"no such column: 'bleu_typo'\"" in res.stderr
    assert (project / "out" / "metrics.csv").exists() and (project / "out" / "report.html").exists()


def test_executor_that_drops_a_job_leaves_a_failed_cell_not_a_hole(project, plugins):
    resolved = load_experiment(project / "exp.yaml", ["decoders=[{name: greedy, params: {max_new_tokens: [2, 3]}}]",
                                                      "executor=test_lossy"], plugins=plugins)
    summary = run_experiment(resolved, project / "out", cache_dir=project / "cache", quiet=True)
    assert [o.status for o in summary.outcomes] == ["done", "failed"]
    assert summary.outcomes[1].error == "not run: executor 'test_lossy' returned no result for this cell"
    record = json.loads((project / "out" / "cells" / summary.outcomes[1].key / "cell.json").read_text())
    assert record["status"] == "failed" and record["error"] == summary.outcomes[1].error


def test_executor_that_crashes_or_reports_garbage_fails_its_unfinished_cells_not_the_run(project, fixture_plugins):
    import types

    from harness.api import Executor
    from harness.hookspecs import hookimpl
    from harness.plugins import PluginSet

    class Crashing(Executor):
        name = "test_crashing"
        description = "Runs the first job, then raises (tests only)."

        def run(self, jobs, run_one, on_done):
            on_done(run_one(jobs[0]))
            raise RuntimeError("lost the connection to the cluster")

    class Garbage(Executor):
        name = "test_garbage"
        description = "Reports None for every job (tests only)."

        def run(self, jobs, run_one, on_done):
            for job in jobs:
                on_done(None)

    module = types.ModuleType("bad_executors")
    module.register_executors = hookimpl(lambda register: [register(Crashing), register(Garbage)])
    ps = PluginSet(extra=[fixture_plugins, module])
    grid = ["decoders=[{name: greedy, params: {max_new_tokens: [2, 3]}}]"]
    summary = run_experiment(load_experiment(project / "exp.yaml", grid + ["executor=test_crashing"], plugins=ps),
                             project / "out", cache_dir=project / "cache", quiet=True)
    assert [o.status for o in summary.outcomes] == ["done", "failed"]
    assert summary.outcomes[1].error == ("not run: executor 'test_crashing' returned no result for this cell "
                                         "(it failed: RuntimeError: lost the connection to the cluster)")
    summary = run_experiment(load_experiment(project / "exp.yaml", grid + ["executor=test_garbage"], plugins=ps),
                             project / "out2", cache_dir=project / "cache", quiet=True)
    assert [o.error for o in summary.outcomes] == [
        "not run: executor 'test_garbage' returned no result for this cell (it reported NoneType instead of a "
        "CellOutcome)"] * 2


def test_a_metric_that_edits_its_inputs_cannot_change_the_next_metrics_score(project, fixture_plugins):
    import types

    from harness.api import Metric, MetricValue
    from harness.hookspecs import hookimpl
    from harness.plugins import PluginSet

    class Vandal(Metric):
        name = "test_vandal"
        description = "Empties the outputs it is given (tests only)."

        def compute(self, outputs, examples, nbest=None):
            outputs.clear()
            return MetricValue(0.0)

    module = types.ModuleType("vandal")
    module.register_metrics = hookimpl(lambda register: register(Vandal))
    ps = PluginSet(extra=[fixture_plugins, module])
    scores = {}
    for metrics in ("[test_vandal, chrf]", "[chrf]"):
        summary = run_experiment(load_experiment(project / "exp.yaml", ["decoders=[greedy]", f"metrics={metrics}"],
                                                 plugins=ps), project / f"out{len(scores)}",
                                 cache_dir=project / "cache", quiet=True)
        scores[metrics] = {m["metric"]: m["value"] for m in summary.outcomes[0].metrics}["chrf"]
    assert scores["[test_vandal, chrf]"] == scores["[chrf]"]


def test_a_benchmark_whose_fingerprint_raises_stops_the_run_with_one_line(project, fixture_plugins, monkeypatch):
    import types

    from harness.hookspecs import hookimpl
    from harness.plugins import PluginSet
    from harness_plugins.benchmarks.translation import ParallelText

    class Unhashable(ParallelText):
        name = "test_unhashable"
        description = "parallel_text whose fingerprint() raises (tests only)."

        def fingerprint(self):
            raise ValueError("cannot hash a generator")

    module = types.ModuleType("unhashable")
    module.register_benchmarks = hookimpl(lambda register: register(Unhashable))
    ps = PluginSet(extra=[fixture_plugins, module])
    monkeypatch.setattr(harness.experiment.config, "default_plugins", lambda: ps)
    res = cli("run", "exp.yaml", "-o", "out", "--set", "decoders=[greedy]", "--set", "benchmarks.0.name=test_unhashable")
    assert res.exit_code == 2
    assert res.stderr == ("error: benchmark 'test_unhashable' (module test_failures): fingerprint() failed: "
                          "ValueError: cannot hash a generator\n")
    assert not (project / "out").exists()
