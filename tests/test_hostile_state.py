"""Hostile catalogue, state that was damaged: a run directory, a cache or an environment variable
that no longer holds what the harness wrote or expects.

Reading (``harness report``, ``harness leaderboard``) refuses a damaged run directory in one
``error:`` line naming the file, exit 2, writing nothing; running again repairs what the harness
owns (a cell whose predictions were cut short is recomputed, a damaged cached checkpoint or
conversion is rebuilt) instead of failing every later run the same way; a cache that cannot be
used is one line before any cell (exit 2 for a configuration mistake, 3 for a machine fault).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tree_state
from harness.cli import main

SRC = "the cat sat on the mat\nthe dog ran to the house\na big red cat\n"
REF = "die katze sass auf der matte\nder hund lief zum haus\neine grosse rote katze\n"
CONFIG = ("name: state\nmodels: [{path: ./model}]\n"
          "benchmarks:\n  - {name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt}}\n"
          "decoders: [{name: greedy, params: {max_new_tokens: 3}}]\nmetrics: [chrf]\nseeds: [0, 1]\n"
          "strategies: [none]\n")


def _setup(work: Path, model: Path) -> None:
    (work / "model").symlink_to(model)
    (work / "src.txt").write_text(SRC)
    (work / "ref.txt").write_text(REF)
    (work / "exp.yaml").write_text(CONFIG)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_marian):
    work = tmp_path_factory.mktemp("finished")
    _setup(work, tiny_marian)
    res = CliRunner().invoke(main, ["run", str(work / "exp.yaml"), "-o", str(work / "out"), "--cache-dir",
                                    str(work / "cache"), "-q"])
    assert res.exit_code == 0, res.output
    return work / "out"


@pytest.fixture
def work(tmp_path, tiny_marian, finished):
    _setup(tmp_path, tiny_marian)
    shutil.copytree(finished, tmp_path / "out", symlinks=True)
    return tmp_path


def one_error_line(res, exit_code: int = 2) -> str:
    assert res.exit_code == exit_code, res.output
    assert isinstance(res.exception, SystemExit)
    [line] = res.stderr.splitlines()
    assert line.startswith("error: "), line
    return line


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE = [  # (case, damage, the file the line names, what it says)
    ("manifest_truncated", lambda o: _truncate(o / "manifest.json"), "manifest.json", "not valid JSON"),
    ("manifest_is_a_list", lambda o: (o / "manifest.json").write_text("[1, 2]\n"), "manifest.json",
     "expected a JSON object (the run's manifest), got a list"),
    ("manifest_cells_not_a_list", lambda o: (o / "manifest.json").write_text('{"cells": 3}'), "manifest.json",
     "'cells' must be a list"),
    ("manifest_not_utf8", lambda o: (o / "manifest.json").write_bytes(b'{"a": "\xff"}'), "manifest.json", "not UTF-8"),
    ("manifest_is_a_directory", lambda o: ((o / "manifest.json").unlink(), (o / "manifest.json").mkdir()),
     "manifest.json", "is not a regular file"),
    ("metrics_empty", lambda o: (o / "metrics.csv").write_text(""), "metrics.csv", "is empty"),
    ("metrics_garbage", lambda o: (o / "metrics.csv").write_bytes(b"\x00\xff\xfe garbage \x81\n\x00"), "metrics.csv",
     "not a metrics table the harness wrote"),
    ("metrics_other_columns", lambda o: (o / "metrics.csv").write_text("a,b\n1,2\n"), "metrics.csv",
     "has no columns model, benchmark, strategy, decoder, seed, metric, value"),
    ("metrics_value_not_a_number", lambda o: (o / "metrics.csv").write_text(
        (o / "metrics.csv").read_text().replace(",chrf,", ",chrf,oops", 1)), "metrics.csv", "is not a number"),
    ("predictions_truncated", lambda o: _truncate(next((o / "cells").glob("*/predictions.jsonl")), 0.6),
     "predictions.jsonl", "does not match the sha256 its cell.json records"),
]


@pytest.mark.parametrize("case", DAMAGE, ids=lambda c: c[0])
@pytest.mark.parametrize("command", ["report", "leaderboard"])
def test_reading_a_damaged_run_directory_is_one_line_and_writes_nothing(work, case, command):
    _, damage, name, says = case
    damage(work / "out")
    if command == "leaderboard" and name == "predictions.jsonl":
        pytest.skip("a leaderboard reads metrics.csv, not the predictions")
    before = tree_state(work)
    args = ["report", str(work / "out")] if command == "report" else \
        ["leaderboard", str(work / "out"), "-o", str(work / "board.csv")]
    line = one_error_line(CliRunner().invoke(main, args))
    assert name in line and says in line, line
    assert tree_state(work) == before


def test_a_report_never_drops_intervals_of_a_cell_cut_short(work):
    """Cut at a line boundary, a predictions file still parses: the row count its record names says it is short."""
    pred = next((work / "out" / "cells").glob("*/predictions.jsonl"))
    record = json.loads((pred.parent / "cell.json").read_text())
    del record["predictions_sha256"]  # an older record: no digest, only the row count
    (pred.parent / "cell.json").write_text(json.dumps(record))
    pred.write_text("".join(pred.read_text().splitlines(keepends=True)[:2]))
    line = one_error_line(CliRunner().invoke(main, ["report", str(work / "out")]))
    assert f"{pred}: holds 2 rows but its cell.json records 3 (truncated)" in line


@pytest.mark.parametrize("digest", [True, False, "record_is_a_list"],
                         ids=["with_digest", "record_without_digest", "record_is_a_list"])
def test_running_again_recomputes_a_cell_whose_predictions_were_cut_short(work, digest):
    pred = next((work / "out" / "cells").glob("*/predictions.jsonl"))
    if digest == "record_is_a_list":  # the record itself garbage: the cell is the harness's, and recomputed
        (pred.parent / "cell.json").write_text("[1, 2, 3]\n")
    elif not digest:
        record = json.loads((pred.parent / "cell.json").read_text())
        record.pop("predictions_sha256")
        (pred.parent / "cell.json").write_text(json.dumps(record))
    whole = pred.read_bytes()
    _truncate(pred)
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(work / "exp.yaml"), "-o", str(work / "out"),
                          "--cache-dir", str(work / "cache"), "-q"], capture_output=True, text=True, cwd=work)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "2 cells (1 reused, 0 failed)" in res.stdout
    assert pred.read_bytes() == whole  # recomputed, byte for byte
    assert CliRunner().invoke(main, ["report", str(work / "out")]).exit_code == 0


# ----------------------------------------------------------------------------- the shared cache


def _run(work: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", str(work / "exp.yaml"), "-o", str(work / "new"),
                           "-q", *extra], capture_output=True, text=True, cwd=work,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.parametrize("where", ["env", "option", "parent_is_a_file"])
def test_a_cache_that_is_a_file_is_one_line_before_any_cell(work, where):
    (work / "cachefile").write_text("not a directory")
    before = tree_state(work)
    path = work / "cachefile" / "sub" if where == "parent_is_a_file" else work / "cachefile"
    res = _run(work, *(["--cache-dir", str(path)] if where == "option" else []),
               env={"HARNESS_CACHE": str(path)} if where != "option" else None)
    assert res.returncode == 2, res.stderr
    assert res.stderr == (f"error: cache directory {path} ({'--cache-dir' if where == 'option' else 'HARNESS_CACHE'}): "
                          f"{work / 'cachefile'} is a file, not a directory; point HARNESS_CACHE or --cache-dir at a "
                          "directory\n")
    assert tree_state(work) == before


def test_a_read_only_cache_is_a_machine_fault_in_one_line(work, tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({res.stderr.decode().strip() or 'not root'})")
    try:
        before = tree_state(work, own=[mnt])
        res = _run(work, "--cache-dir", str(mnt / "cache"))
        assert res.returncode == 3, res.stderr
        assert res.stderr == f"error: cannot write {mnt / 'cache'}: [Errno 30] Read-only file system\n"
        assert tree_state(work, own=[mnt]) == before
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_harness_data_dir_pointing_nowhere_is_said_by_validate(work, tmp_path):
    (work / "pre.yaml").write_text("name: p\nmodels: [{path: ./model}]\nbenchmarks: [multi30k-2016-en-de]\n")
    res = CliRunner().invoke(main, ["validate", str(work / "pre.yaml")], env={"HARNESS_DATA_DIR": str(tmp_path / "nowhere")})
    line = one_error_line(res)
    assert line == (f"error: {work / 'pre.yaml'}: HARNESS_DATA_DIR={tmp_path / 'nowhere'}: {tmp_path / 'nowhere'} not "
                    "found; the benchmark presets (multi30k-2016-en-de) look for local copies of their data there; "
                    "allowed: an existing directory, or unset HARNESS_DATA_DIR")
    (work / "pre.yaml").write_text((work / "pre.yaml").read_text() + "data_dir: nowhere\n")
    line = one_error_line(CliRunner().invoke(main, ["validate", str(work / "pre.yaml")]))
    assert line.startswith(f"error: {work / 'pre.yaml'}:4: data_dir: {work / 'nowhere'} not found; ")


# ----------------------------------------------------------------------------- damaged cache entries


CLASSIFY = ("name: ft\nmodels: [{path: ./bert}]\nbenchmarks:\n"
            "  - {name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}\n"
            "strategies: [{name: unmasked, params: {epochs: 1, batch_size: 2}}]\n")


@pytest.mark.parametrize("damage", ["weights_truncated", "record_garbage", "record_is_a_list", "weights_missing",
                                    "entry_is_a_file"])
def test_a_damaged_cached_checkpoint_is_trained_again_not_failed_forever(tmp_path, tiny_bert, damage, caplog):
    (tmp_path / "bert").symlink_to(tiny_bert)
    (tmp_path / "train.tsv").write_text("text\tlabel\ngood movie\tpos\nbad movie\tneg\ngreat film\tpos\n")
    (tmp_path / "test.tsv").write_text("text\tlabel\nfine movie\tpos\nawful film\tneg\n")
    (tmp_path / "exp.yaml").write_text(CLASSIFY)

    def run(out: str):
        return CliRunner().invoke(main, ["run", str(tmp_path / "exp.yaml"), "-o", str(tmp_path / out),
                                         "--cache-dir", str(tmp_path / "cache"), "-q"])

    assert run("a").exit_code == 0
    [ckpt] = (tmp_path / "cache" / "finetuned").glob("unmasked-*")
    first = (tmp_path / "a" / "metrics.csv").read_text()
    if damage == "entry_is_a_file":
        shutil.rmtree(ckpt)
        ckpt.write_text("not a checkpoint\n")
    elif damage == "weights_truncated":
        _truncate(ckpt / "model.safetensors")
    elif damage == "weights_missing":
        (ckpt / "model.safetensors").unlink()
    else:
        (ckpt / "finetune.json").write_text("[]" if damage == "record_is_a_list" else "{garbage")
    res = run("b")
    assert res.exit_code == 0, res.output
    assert "is damaged" in caplog.text and "training it again" in caplog.text
    caplog.clear()
    # the same checkpoint again (seeded training), so the same results
    assert (tmp_path / "b" / "metrics.csv").read_text() == first
    assert run("c").exit_code == 0 and "damaged" not in caplog.text  # repaired for good


def test_a_damaged_ctranslate2_conversion_is_converted_again(tmp_path, tiny_marian, monkeypatch):
    pytest.importorskip("ctranslate2")
    from harness.engines.ct2_conversion import converted_dir
    from harness.models.spec import ModelSpec

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    spec = ModelSpec(path=str(tiny_marian), local=True, device="cpu", engine="ctranslate2")
    target = converted_dir(spec)
    whole = (target / "model.bin").read_bytes()
    _truncate(target / "model.bin")
    assert converted_dir(spec) == target
    assert (target / "model.bin").read_bytes() == whole
