"""Two `harness run` on one output directory: the second is refused (exit 2) and writes nothing.

The lock is an ``flock`` on ``OUTDIR/.lock`` held for the whole run: the kernel releases it
when the holder dies, even by ``kill -9``, so there is never a stale lock to clean up by hand.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from harness.cli import main
from harness.store import RunLock

SLOW = """\
name: locked
models: [{path: ./model}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: test_slow, params: {delay: 3, max_new_tokens: [2, 3]}}
reporters: []
"""


def test_second_run_on_the_same_directory_is_refused_while_the_first_runs(
        tmp_path, tiny_marian, translation_files, fixture_plugins_env):
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(SLOW)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(cfg), "-o", str(out), "--cache-dir", str(tmp_path / "cache")]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=fixture_plugins_env)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("cells/*/cell.json")):  # the first holds the lock and is running a cell
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, env=fixture_plugins_env)
        assert first.poll() is None, "the first run ended too early for this test to mean anything"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    assert second.stdout == ""
    assert second.stderr == (f"error: {out}: another `harness run` (pid {first.pid}) is using this output directory; "
                             "wait for it to finish or choose another -o\n")
    # (that kill -9 releases the lock is shown by tests/test_resume.py, which resumes after kills)


def test_refused_run_leaves_the_directory_untouched(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(SLOW.replace("test_slow, params: {delay: 3, max_new_tokens: [2, 3]}", "greedy"))
    out = tmp_path / "out"
    out.mkdir()
    (out / f".metrics.csv.x.harness-tmp").write_text("a temp file the holder is writing")
    with RunLock(out):  # another holder (flock conflicts between two opens, even in one process)
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(out), "--cache-dir", str(tmp_path / "cache")])
        assert res.exit_code == 2
        assert "is using this output directory" in res.stderr
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # not even the holder's temp file was cleaned up


# ----------------------------------------------------------------------------- a directory holding another config

import json  # noqa: E402

GRID = """\
name: owned
models: [{path: ./model, label: tiny}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: greedy, params: {max_new_tokens: [2, 3]}}
reporters: []
"""


def _run(tmp_path, *args):
    return CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / "out"), "-q",
                                     "--cache-dir", str(tmp_path / "cache"), *args])


def test_a_directory_with_another_configs_results_is_refused_unless_overwrite(tmp_path, tiny_marian,
                                                                              translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID)
    assert _run(tmp_path).exit_code == 0
    out = tmp_path / "out"
    first_hash = json.loads((out / "manifest.json").read_text())["config_hash"]
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    # another experiment written into the same -o: refused, nothing touched
    (tmp_path / "exp.yaml").write_text(GRID.replace("name: owned", "name: other"))
    res = _run(tmp_path)
    assert res.exit_code == 2
    new_hash = res.stderr.split("this one is ")[1].split(")")[0]
    assert new_hash != first_hash
    assert res.stderr == (f"error: {out}: holds the results of another config (config {first_hash}; this one is "
                          f"{new_hash}): they are experiment 'owned', this config is 'other'. Choose another -o, or "
                          "pass --overwrite to replace them (finished cells stay cached and are reused)\n")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot

    # the same experiment with a cell dropped would lose that result: refused too
    (tmp_path / "exp.yaml").write_text(GRID.replace("[2, 3]", "[3]"))
    res = _run(tmp_path)
    assert res.exit_code == 2
    assert ("1 of its finished cells are not in this config's grid with the same parameters, e.g. tiny / toy / "
            "none / greedy[max_new_tokens=2] / 0.") in res.stderr
    # --overwrite: replaced, reusing the cached cell
    res = _run(tmp_path, "--overwrite")
    assert res.exit_code == 0 and res.stdout.startswith("1 cells (1 reused, 0 failed)")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config_hash"] != first_hash and [c["decoder"] for c in manifest["cells"]] == ["greedy[max_new_tokens=3]"]


def test_extending_the_same_experiment_needs_no_overwrite(tmp_path, tiny_marian, translation_files):
    """Resuming and growing a run (seeds, decoders, models, metrics) is what an output directory
    is for; only results that would disappear make it refuse."""
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID)
    assert _run(tmp_path).exit_code == 0
    assert _run(tmp_path).stdout.startswith("2 cells (2 reused")  # the same config: a resume
    (tmp_path / "exp.yaml").write_text(GRID.replace("[2, 3]", "[2, 3, 4]").replace("name: owned", "name: owned\nseeds: [0, 1]")
                                       + "metrics: [bleu, chrf]\n")
    res = _run(tmp_path)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("6 cells (5 reused, 0 failed)")


def test_a_changed_parameter_under_the_same_label_is_another_config(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(GRID.replace("max_new_tokens: [2, 3]", "max_new_tokens: 3"))
    assert _run(tmp_path).exit_code == 0
    (tmp_path / "exp.yaml").write_text(GRID.replace("max_new_tokens: [2, 3]", "max_new_tokens: 4"))  # still "greedy"
    res = _run(tmp_path)
    assert res.exit_code == 2
    assert "1 of its finished cells are not in this config's grid with the same parameters, e.g. tiny / toy / none / " \
           "greedy / 0." in res.stderr
    # editing the data is not another config: the cells just run again
    (tmp_path / "exp.yaml").write_text(GRID.replace("max_new_tokens: [2, 3]", "max_new_tokens: 3"))
    (tmp_path / "test.en").write_text("the red dog\nthe big cat\na small house\nthe mat\n")
    res = _run(tmp_path)
    assert res.exit_code == 0 and res.stdout.startswith("1 cells (0 reused, 0 failed)")
