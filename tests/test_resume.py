"""Ctrl-C or kill -9 at any moment, run again: finished cells are reused, the interrupted one
restarts, and the results are byte-identical to an uninterrupted run.

The killed runs are real ``harness run`` subprocesses. Their cells are slowed down by the
test-only ``test_slow`` decoder (tests/fixtures/plugins), which the subprocess discovers through
a real entry point (the ``fixture_plugins_env`` fixture), so interruptions land at known points:
Ctrl-C in a cell after another is done, kill -9 in the middle of a cell, and kill -9 during the
final writes (``test_slow_report``).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.experiment.load import load_experiment
from harness.run.runner import run_experiment
from harness.store import TMP_SUFFIX, read_cell_record, sha256_file

# delay: a cell takes about 1 s, so after the condition that triggers Ctrl-C (one cell done, one
# running) the run has at least 4 s of cells left.
GRID = """\
name: resume
models: [{path: ./model}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: test_slow, label: slow, params: {delay: 0.25, max_new_tokens: [2, 3, 4, 5, 6, 7]}}
reporters: [html, {name: test_slow_report, params: {delay: 0}}]
"""


@pytest.fixture
def grid(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(GRID)
    return cfg


def harness_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def cell_statuses(outdir: Path) -> list[str]:
    """Status of every cell.json; each must be whole JSON at any instant (atomic writes). A resumed
    run clears an interrupted cell's directory before it starts the cell again, so a file listed
    a moment ago may be gone when it is read: that cell is not counted in this poll."""
    out = []
    for p in sorted((outdir / "cells").glob("*/cell.json")) if (outdir / "cells").is_dir() else []:
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        out.append(json.loads(text)["status"])
    return out


def start(cfg: Path, outdir: Path, env: dict, log: Path, *extra) -> subprocess.Popen:
    # Ctrl-C must reach the run as it reaches one in a terminal, also when these tests run in the
    # background (`pytest &`, nohup): a shell starts background jobs with SIGINT ignored, children
    # inherit that, and Python then leaves it ignored (the run would finish with exit 0).
    return subprocess.Popen(harness_cmd("run", cfg, "-o", outdir, "--cache-dir", cfg.parent / "cache", *extra),
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=cfg.parent,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_when(proc: subprocess.Popen, condition, log: Path, sig=signal.SIGKILL, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            proc.send_signal(sig)
            proc.wait(timeout=60)
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before the kill point:\n{log.read_text()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"kill point not reached in {timeout}s:\n{log.read_text()}")


def assert_consistent(outdir: Path) -> None:
    """After a kill: whole JSON everywhere, and every 'done' cell has the predictions it vouches for."""
    for p in (outdir / "cells").glob("*/cell.json"):
        record = json.loads(p.read_text(encoding="utf-8"))
        if record["status"] == "done":
            assert sha256_file(p.parent / "predictions.jsonl") == record["predictions_sha256"]
    if (outdir / "manifest.json").exists():
        json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))


def deterministic_files(outdir: Path) -> dict[str, bytes]:
    files = {"metrics.csv": (outdir / "metrics.csv").read_bytes()}
    for p in sorted((outdir / "predictions").iterdir()):
        files[f"predictions/{p.name}"] = p.read_bytes()
    for p in sorted((outdir / "cells").glob("*/predictions.jsonl")):
        files[f"cells/{p.parent.name}"] = p.read_bytes()
    return files


@pytest.mark.slow
def test_interrupted_three_times_then_resumed_gives_identical_results(grid, fixture_plugin_set, fixture_plugins_env,
                                                                      tmp_path):
    out = tmp_path / "out"
    env = fixture_plugins_env

    # 1. Ctrl-C while a cell runs, after the first is done: exit 130, a message, no traceback
    log1 = tmp_path / "run1.log"
    proc = start(grid, out, env, log1)
    interrupt_when(proc, lambda: (s := cell_statuses(out)).count("done") >= 1 and "running" in s, log1, signal.SIGINT)
    assert proc.returncode == 130
    assert log1.read_text().rstrip().endswith("interrupted; finished cells are kept and will be reused")
    assert "Traceback" not in log1.read_text()
    assert_consistent(out)
    done1 = cell_statuses(out).count("done")
    assert 1 <= done1 < 6

    # 2. resumed (the lock was released), then kill -9 in the middle of a later cell
    log2 = tmp_path / "run2.log"
    proc = start(grid, out, env, log2)
    interrupt_when(proc, lambda: (s := cell_statuses(out)).count("done") >= done1 + 2 and "running" in s, log2)
    assert f"6 cells, {done1} reused, 1 interrupted (restarting)" in log2.read_text()
    assert_consistent(out)
    done2 = cell_statuses(out).count("done")
    assert cell_statuses(out).count("running") == 1 and done2 < 6

    # 3. resumed, then kill -9 during the final writes (the slow reporter runs after metrics and manifest)
    log3 = tmp_path / "run3.log"
    proc = start(grid, out, env, log3, "--set", "reporters.1.params.delay=60")
    interrupt_when(proc, lambda: (out / "reporting.marker").exists(), log3)
    text3 = log3.read_text()
    assert f"6 cells, {done2} reused, 1 interrupted (restarting), {6 - done2} to run" in text3
    assert_consistent(out)
    assert not (out / "slow_report.txt").exists()

    # 4. the last run reuses everything and completes
    final = subprocess.run(harness_cmd("run", grid, "-o", out, "--cache-dir", tmp_path / "cache"),
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "6 cells (6 reused, 0 failed)" in final.stdout
    assert (out / "slow_report.txt").read_text() == "18 metric rows\n"
    assert not list(out.rglob(f"*{TMP_SUFFIX}"))

    # an uninterrupted run of the same config, in-process, gives the same bytes
    ref = tmp_path / "ref"
    summary = run_experiment(load_experiment(grid, plugins=fixture_plugin_set), ref, cache_dir=tmp_path / "cache", quiet=True)
    assert [o.status for o in summary.outcomes] == ["done"] * 6
    got, want = deterministic_files(out), deterministic_files(ref)
    assert sorted(got) == sorted(want) and len(want) == 1 + 6 + 6
    for name in want:
        assert got[name] == want[name], name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"] == {"done": 0, "cached": 6, "failed": 0, "skipped": 0}
    assert manifest["outputs"]["metrics.csv"] == sha256_file(out / "metrics.csv")


# ----------------------------------------------------------------------------- damaged run directories (in-process)

SMALL = """\
name: small
models: [{path: ./model}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
decoders:
  - {name: greedy, params: {max_new_tokens: [3, 5]}}
reporters: []
"""


@pytest.fixture
def small(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(SMALL)
    out = tmp_path / "out"
    first = run_experiment(load_experiment(cfg), out, cache_dir=tmp_path / "cache", quiet=True)
    assert [o.status for o in first.outcomes] == ["done", "done"]
    return cfg, out, deterministic_files(out), [o.key for o in first.outcomes]


def rerun(cfg: Path, out: Path):
    return run_experiment(load_experiment(cfg), out, cache_dir=cfg.parent / "cache", quiet=True)


def test_done_cell_whose_predictions_vanished_is_run_again(small):
    cfg, out, before, keys = small
    (out / "cells" / keys[1] / "predictions.jsonl").unlink()
    assert read_cell_record(out / "cells" / keys[1])["status"] == "incomplete"
    summary = rerun(cfg, out)
    assert [o.status for o in summary.outcomes] == ["cached", "done"]
    assert deterministic_files(out) == before


def test_done_cell_with_truncated_predictions_is_not_trusted(small):
    cfg, out, before, keys = small
    pred = out / "cells" / keys[0] / "predictions.jsonl"
    pred.write_bytes(pred.read_bytes()[:-10])  # a torn write that bypassed the atomic rename
    summary = rerun(cfg, out)
    assert [o.status for o in summary.outcomes] == ["done", "cached"]
    assert deterministic_files(out) == before


def test_cell_killed_while_running_restarts_from_an_empty_directory(small):
    cfg, out, before, keys = small
    celldir = out / "cells" / keys[0]
    record = json.loads((celldir / "cell.json").read_text())
    (celldir / "cell.json").write_text(json.dumps({**record, "status": "running", "pid": 999999}))
    (celldir / "half-written-checkpoint.bin").write_bytes(b"\0" * 10)
    summary = rerun(cfg, out)
    assert [o.status for o in summary.outcomes] == ["done", "cached"]
    # (log.txt: what libraries printed while it ran again, e.g. transformers' FutureWarnings)
    assert sorted(p.name for p in celldir.iterdir() if p.name != "log.txt") == ["cell.json", "predictions.jsonl"]
    assert deterministic_files(out) == before


def test_temp_files_of_a_killed_write_are_removed_and_results_rewritten(small):
    cfg, out, before, keys = small
    (out / f".metrics.csv.abc123{TMP_SUFFIX}").write_text("model,benchm")
    (out / "cells" / keys[0] / f".cell.json.x{TMP_SUFFIX}").write_text("{")
    (out / "metrics.csv").unlink()  # killed between two result files (one the user wrote is refused: test_ownership)
    plugin_scratch = out / "cells" / keys[0] / "notes.tmp"  # not ours: left alone... but this cell is done,
    plugin_scratch.write_text("kept")  # so its directory is not reset either
    summary = rerun(cfg, out)
    assert [o.status for o in summary.outcomes] == ["cached", "cached"]
    assert not list(out.rglob(f"*{TMP_SUFFIX}"))
    assert plugin_scratch.read_text() == "kept"
    assert deterministic_files(out) == before


def test_predictions_of_cells_no_longer_in_the_grid_are_removed(small):
    cfg, out, before, keys = small
    names = sorted(p.name for p in (out / "predictions").iterdir())
    summary = run_experiment(load_experiment(cfg, ["decoders.0.params.max_new_tokens=[3]"]), out,
                             cache_dir=cfg.parent / "cache", quiet=True, overwrite=True)  # a shrunk grid: see test_lock
    assert [o.status for o in summary.outcomes] == ["cached"]
    left = sorted(p.name for p in (out / "predictions").iterdir())
    assert left == [n for n in names if "max_new_tokens=3" in n] and len(left) == 1
    assert (out / "cells" / keys[1]).is_dir()  # the cache itself is kept for when the cell comes back



# ----------------------------------------------------------------------------- faults of the machine

import errno  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile as real_tempfile  # noqa: E402

from click.testing import CliRunner  # noqa: E402

import harness.store as store  # noqa: E402
from harness.cli import main  # noqa: E402

THREE = SMALL.replace("max_new_tokens: [3, 5]", "max_new_tokens: [3, 5, 7]").replace("reporters: []",
                                                                                   "reporters: [markdown]")


class FullDisk:
    """Stands in for ``tempfile`` inside harness.store: creating a file whose final name matches
    ``refuse(path)`` fails with ENOSPC, as on a disk that is (nearly) full."""

    def __init__(self, refuse):
        self.refuse = refuse
        self.refused: list[str] = []

    def mkstemp(self, prefix="", suffix="", dir=None):
        target = os.path.join(dir, prefix[1:].rsplit(".", 1)[0])  # ".name.XXXX.harness-tmp" -> name
        if self.refuse(target):
            self.refused.append(target)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)


def test_disk_full_mid_run_stops_with_one_error_line_keeps_results_and_resumes_identically(
        tmp_path, tiny_marian, translation_files, monkeypatch):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(THREE)
    ref = run_experiment(load_experiment(tmp_path / "exp.yaml"), tmp_path / "ref", cache_dir=tmp_path / "cache",
                         quiet=True)
    assert [o.status for o in ref.outcomes] == ["done"] * 3
    keys = [o.key for o in ref.outcomes]
    # the second cell's predictions do not fit on the disk any more; small files still do
    full = FullDisk(lambda p: p.endswith(f"{keys[1]}/predictions.jsonl"))
    monkeypatch.setattr(store, "tempfile", full)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "exp.yaml", "-o", "out", "--cache-dir", "cache"])
    assert res.exit_code == 3
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    out = tmp_path / "out"
    assert res.stderr == (f"error: cannot write out/cells/{keys[1]}/predictions.jsonl: [Errno 28] No space left on "
                          "device; finished cells are kept: run the same command again once it can be written\n")
    assert "3 cells (0 reused, 0 failed, 2 skipped) → out" in res.stdout
    # what could be written was: the first cell's results, metrics and report, and a manifest saying so
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["counts"]["done"] == 1
    assert manifest["write_errors"] == [f"cannot write out/cells/{keys[1]}/predictions.jsonl: [Errno 28] No space "
                                        "left on device"]
    assert [c["status"] for c in manifest["cells"]] == ["done", "skipped", "skipped"]
    assert manifest["cells"][1]["error"].startswith("not run: the run stopped (cannot write")
    assert (out / "metrics.csv").read_text().count("\n") == 1 + 3
    assert (out / "report.md").exists()
    assert read_cell_record(out / "cells" / keys[0])["status"] == "done"  # verified, reusable
    assert read_cell_record(out / "cells" / keys[1])["status"] == "running"  # restarts like a killed cell
    assert not (out / "cells" / keys[2]).exists()  # the run stopped instead of failing every later cell
    assert not list(out.rglob(f"*{TMP_SUFFIX}"))

    monkeypatch.undo()  # space again: the same command resumes and gives the bytes of an uninterrupted run
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "exp.yaml", "-o", "out", "--cache-dir", "cache"])
    assert res.exit_code == 0, res.output
    assert "3 cells, 1 reused, 1 interrupted (restarting), 2 to run" in res.stdout
    assert deterministic_files(out) == deterministic_files(tmp_path / "ref")


def test_unwritable_results_are_each_named_and_the_rest_still_written(tmp_path, tiny_marian, translation_files,
                                                                       monkeypatch):
    """EACCES on metrics.csv (another user's file, a read-only mount...): predictions, manifest
    and the cells are still written; the error names the file; exit 3."""
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(THREE)
    monkeypatch.chdir(tmp_path)

    class NoAccess(FullDisk):
        def mkstemp(self, prefix="", suffix="", dir=None):
            if prefix.startswith(".metrics.csv."):
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)

    monkeypatch.setattr(store, "tempfile", NoAccess(None))
    res = CliRunner().invoke(main, ["run", "exp.yaml", "-o", "out", "--cache-dir", "cache", "-q"])
    assert res.exit_code == 3
    assert res.stderr.startswith("error: cannot write out/metrics.csv: [Errno 13] Permission denied;")
    out = tmp_path / "out"
    assert not (out / "metrics.csv").exists() and len(list((out / "predictions").iterdir())) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert "metrics.csv" not in manifest["outputs"] and manifest["status"] == "incomplete"
    assert not (out / "report.md").exists()  # a report without its metrics.csv would contradict it


def _fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.decode().strip() or 'not root'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_really_full_tmpfs_stops_the_run_and_resumes_once_there_is_space(small_tmpfs, tmp_path, tiny_marian,
                                                                            translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(THREE.replace("[3, 5, 7]", "[3]"))
    out = small_tmpfs / "out"
    cmd = harness_cmd("run", "exp.yaml", "-o", out, "--cache-dir", tmp_path / "cache")
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    _fill(small_tmpfs / "filler")
    (tmp_path / "exp.yaml").write_text(THREE)  # two more cells, and no byte left for them
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 3
    [line] = [x for x in res.stderr.splitlines() if x.startswith("error:")]  # one error line, whatever else warns
    assert line.startswith(f"error: cannot write {out}/cells/") and "[Errno 28] No space left on device" in line, \
        res.stderr
    assert "Traceback" not in res.stderr
    assert "3 cells (1 reused, 0 failed, 2 skipped)" in res.stdout, res.stdout + res.stderr
    done = [p.parent for p in out.glob("cells/*/cell.json") if read_cell_record(p.parent)["status"] == "done"]
    assert len(done) == 1  # the finished cell is still verified
    (small_tmpfs / "filler").unlink()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    ref = tmp_path / "ref"
    assert run_experiment(load_experiment(tmp_path / "exp.yaml"), ref, cache_dir=tmp_path / "cache", quiet=True)
    assert deterministic_files(out) == deterministic_files(ref)


def test_output_files_respect_the_umask(tmp_path, tiny_marian, translation_files):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(THREE.replace("[3, 5, 7]", "[3]").replace("[markdown]", "[markdown, html]"))
    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)):
        out = tmp_path / f"out-{umask:03o}"
        old = os.umask(umask)
        try:
            run_experiment(load_experiment(tmp_path / "exp.yaml"), out, cache_dir=tmp_path / "cache", quiet=True)
        finally:
            os.umask(old)
        files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"]
        assert {"report.html", "report.md", "metrics.csv", "manifest.json", "cell.json"} <= {p.name for p in files}
        assert {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == \
            {p.relative_to(out).as_posix(): oct(file_mode) for p in files}
        dirs = [p for p in out.rglob("*") if p.is_dir()]
        assert {oct(p.stat().st_mode & 0o777) for p in dirs} == {oct(dir_mode)}


def test_moving_the_checkout_reuses_every_finished_cell(tmp_path, tiny_marian, translation_files):
    """Cache keys hold the content of local models and data, not their absolute paths: a moved
    or re-cloned checkout (new paths, new mtimes) reuses everything."""
    before = tmp_path / "checkout"
    before.mkdir()
    shutil.copytree(tiny_marian, before / "model", copy_function=shutil.copy)  # new mtimes, like a clone
    for p in translation_files:
        shutil.copy(p, before / p.name)
    (before / "exp.yaml").write_text(THREE.replace("reporters: [markdown]", "reporters: []")
                                     .replace("name: small", "name: small\nseeds: [0, 1]"))
    first = run_experiment(load_experiment(before / "exp.yaml"), before / "out", cache_dir=tmp_path / "cache",
                           quiet=True)
    assert [o.status for o in first.outcomes].count("done") == 3
    after = tmp_path / "moved" / "elsewhere"
    after.parent.mkdir()
    shutil.copytree(before, after, copy_function=shutil.copy, symlinks=True)
    shutil.rmtree(before)
    again = run_experiment(load_experiment(after / "exp.yaml"), after / "out", cache_dir=tmp_path / "cache",
                           quiet=True)
    assert [o.status for o in again.outcomes] == ["cached"] * 6
    assert [o.key for o in again.outcomes] == [o.key for o in first.outcomes]
    # but a changed weight is a different model
    weights = next((after / "model").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    changed = run_experiment(load_experiment(after / "exp.yaml"), after / "out", cache_dir=tmp_path / "cache",
                             quiet=True)
    assert [o.status for o in changed.outcomes].count("done") == 3


def test_storage_faults_are_recognised_behind_whatever_a_library_raises():
    """A plugin saving a checkpoint on a full disk may raise anything; the run must still stop
    (not fail every later cell alike), while ordinary errors stay cell failures."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/cache/model.safetensors")
        except OSError as e:
            raise RuntimeError("checkpoint could not be saved") from e
    except RuntimeError as e:
        chained = e
    assert str(store.storage_fault(chained)) == "cannot write /cache/model.safetensors: [Errno 28] No space left on device"
    safetensors_like = Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                                 '"No space left on device" })')
    assert store.storage_fault(safetensors_like).errno == errno.ENOSPC
    assert store.storage_fault(OSError(errno.EROFS, "Read-only file system")).errno == errno.EROFS
    assert store.storage_fault(ValueError("boom")) is None
    assert store.storage_fault(FileNotFoundError(errno.ENOENT, "No such file or directory")) is None


def test_report_command_on_a_full_disk_names_the_file_and_exits_3(small, monkeypatch):
    cfg, out, before, keys = small
    monkeypatch.setattr(store, "tempfile", FullDisk(lambda p: p.endswith("report.md")))
    res = CliRunner().invoke(main, ["report", str(out), "--reporter", "markdown"])
    assert res.exit_code == 3
    assert res.stderr == f"error: cannot write {out}/report.md: [Errno 28] No space left on device\n"


def test_digests_of_big_weight_files_are_hashed_once_across_runs(tmp_path, monkeypatch):
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"\1" * 1000)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store, "_PERSIST_BYTES", 100)  # "big" for this test
    monkeypatch.setattr(store, "_DIGESTS", {})
    first = store.content_digest(weights)
    assert first == store.sha256_file(weights) and len(list((tmp_path / "cache" / "digests").iterdir())) == 1
    monkeypatch.setattr(store, "_DIGESTS", {})  # a new process...
    monkeypatch.setattr(store, "sha256_file", lambda p: pytest.fail("hashed again"))
    assert store.content_digest(weights) == first  # ...reads the remembered digest
    os.utime(weights, ns=(1, 1))  # touched: size/mtime changed, so it is hashed again
    with pytest.raises(pytest.fail.Exception, match="hashed again"):
        store.content_digest(weights)


def test_a_full_temp_directory_is_one_line_too(small, monkeypatch):
    cfg, out, before, keys = small
    import harness.run.runner

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/harness-check-x1")

    monkeypatch.setattr(harness.run.runner.tempfile, "TemporaryDirectory", full)
    res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(out), "--cache-dir", str(cfg.parent / "cache")])
    assert res.exit_code == 3
    assert res.stderr == "error: cannot write /tmp/harness-check-x1: [Errno 28] No space left on device\n"
