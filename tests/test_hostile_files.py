"""Hostile catalogue, files that are not the harness's: a run writes or deletes only what it can prove
it wrote (harness.run.ownership), never through a link inside its output directory, never at a
path a name or label spells, and an output directory inside a model directory changes no cache key.

Every refusal is one ``error:`` line naming the file, exit code 2, and the whole working tree
(the user's files, the output directory, the victims of planted links) is byte for byte as before
(:func:`conftest.tree_state`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tree_state
from harness.cli import main

SRC = "the cat sat on the mat\nthe dog ran to the house\na big red cat\n"
REF = "die katze sass auf der matte\nder hund lief zum haus\neine grosse rote katze\n"
CONFIG = ("name: mine\nmodels: [{path: ./model}]\n"
          "benchmarks:\n  - {name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt}}\n"
          "decoders: [{name: greedy, params: {max_new_tokens: 3}}]\nmetrics: [chrf]\n")


@pytest.fixture
def work(tmp_path, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "src.txt").write_text(SRC)
    (tmp_path / "ref.txt").write_text(REF)
    (tmp_path / "exp.yaml").write_text(CONFIG)
    return tmp_path


def run(work: Path, out: str | Path, *extra: str, config: str | None = "exp.yaml"):
    args = ["run", *([str(work / config)] if config else []), "-o", str(work / out), "--cache-dir",
            str(work / "cache"), "-q", *extra]
    return CliRunner().invoke(main, args)


def refused(res, *, naming: Path | str) -> str:
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # no escaped exception, no traceback
    assert res.stdout == ""
    [line] = res.stderr.splitlines()
    assert line.startswith("error: ") and str(naming) in line, line
    return line


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_marian):
    """A run directory the harness wrote (copied per test): a second run of it would reuse it all."""
    work = tmp_path_factory.mktemp("finished")
    (work / "model").symlink_to(tiny_marian)
    (work / "src.txt").write_text(SRC)
    (work / "ref.txt").write_text(REF)
    (work / "exp.yaml").write_text(CONFIG)
    res = run(work, "out")
    assert res.exit_code == 0, res.output
    return work / "out"


@pytest.fixture
def ours(work, finished_run):
    shutil.copytree(finished_run, work / "out", symlinks=True)
    return work / "out"


# ----------------------------------------------------------------------------- the user's directory

USER_FILES = {  # an output directory that is the user's: any of these in it, and the run must not start
    "metrics.csv": "model,score\nmine,1\n",
    "report.html": "<p>my notes</p>",
    "results.json": '{"mine": true}',
    "manifest.json": '{"experiment": "not a harness manifest"}',
    "predictions/notes.jsonl": '{"note": "mine"}\n',
    "outputs/notes.txt": "mine\n",
    "log.txt": "my log\n",
    "config.yaml": "mine: true\n",
    "notes.txt": "anything at all\n",
    "cells/README": "not a cell\n",
    "cells/0123456789abcdef/mine.txt": "a directory named like a cell, not made by the harness\n",
    ".lock": "not a pid\n",
}


@pytest.mark.parametrize("name", list(USER_FILES))
def test_a_directory_holding_the_users_files_is_refused_before_anything_is_written(work, name):
    (work / "user" / name).parent.mkdir(parents=True, exist_ok=True)
    (work / "user" / name).write_text(USER_FILES[name])
    before = tree_state(work)
    line = refused(run(work, "user"), naming=work / "user")
    assert "is not a harness run directory" in line
    assert tree_state(work) == before  # not even a .lock


def test_the_data_directory_as_output_directory_is_refused(work):
    before = tree_state(work)
    refused(run(work, "."), naming="is not a harness run directory")
    assert tree_state(work) == before


@pytest.mark.parametrize("name", ["metrics.csv", "report.html", "results.json", "manifest.json", "log.txt"])
def test_a_result_file_the_user_replaced_in_a_run_directory_is_not_overwritten(work, ours, name):
    (ours / name).write_text("edited by the user\n")
    before = tree_state(work)
    line = refused(run(work, "out"), naming=ours / name)
    assert "was not written by a harness run (or changed since)" in line
    assert tree_state(work) == before


def test_a_foreign_prediction_file_is_neither_deleted_nor_overwritten(work, ours):
    (ours / "predictions" / "notes.jsonl").write_text('{"note": "mine"}\n')
    before = tree_state(work)
    refused(run(work, "out"), naming=ours / "predictions" / "notes.jsonl")
    assert tree_state(work) == before


@pytest.mark.parametrize("name", ["notes.txt", "index.json"])
def test_a_foreign_file_in_outputs_is_neither_deleted_nor_overwritten(work, ours, name):
    """outputs/ (the plain-text exports) is rewritten every run, its stale *.txt deleted: only the
    harness's own files there."""
    (ours / "outputs" / name).write_text("mine\n")
    before = tree_state(work)
    refused(run(work, "out"), naming=ours / "outputs" / name)
    assert tree_state(work) == before


def test_the_one_line_run_does_not_replace_a_projects_config_yaml(work):
    (work / "proj").mkdir()
    (work / "proj" / "config.yaml").write_text("my: project\n")
    before = tree_state(work)
    res = run(work, "proj", "--model", str(work / "model"), "--benchmark",
              f"parallel_text:source={work / 'src.txt'},reference={work / 'ref.txt'}", config=None)
    refused(res, naming=work / "proj")
    assert tree_state(work) == before


def test_what_a_run_wrote_it_may_replace_and_delete(work, ours):
    """The other side: re-running, growing and shrinking a run directory keep working, and stale
    predictions the harness wrote are still removed."""
    res = run(work, "out", "--set", "decoders.0.params.max_new_tokens=[3,4]", "--overwrite")
    assert res.exit_code == 0, res.output
    assert len(list((ours / "predictions").glob("*.jsonl"))) == 2
    res = run(work, "out", "--overwrite")
    assert res.exit_code == 0, res.output
    assert len(list((ours / "predictions").glob("*.jsonl"))) == 1
    ledger = json.loads((ours / ".harness-files.json").read_text())
    assert {"manifest.json", "metrics.csv", "report.html", "results.json"} <= set(ledger["files"])


def test_a_killed_run_before_its_first_manifest_can_be_resumed(work, ours):
    """Only harness bookkeeping left (lock, cell records): the directory is still the harness's."""
    for name in ("manifest.json", "metrics.csv", "report.html", "results.json", ".harness-files.json"):
        (ours / name).unlink()
    shutil.rmtree(ours / "predictions")
    shutil.rmtree(ours / "outputs")  # written after the ledger, like predictions/
    res = run(work, "out")
    assert res.exit_code == 0, res.output
    assert (ours / "report.html").is_file()


# ----------------------------------------------------------------------------- links


LINKS = [".lock", "predictions", "outputs", "cells", "cell", "report.html", "metrics.csv", "manifest.json", ".report-cache",
         "log.txt", "results.json", ".harness-files.json"]


@pytest.mark.parametrize("name", LINKS)
def test_a_link_planted_in_the_run_directory_is_never_followed(work, ours, name):
    victim = work / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("precious\n")
    (victim / "stale.jsonl").write_text('{"looks": "like a prediction"}\n')
    if name == "cell":
        target = ours / "cells" / next((ours / "cells").iterdir()).name
    else:
        target = ours / name
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    target.symlink_to(victim if name in ("predictions", "cells", "cell", ".report-cache") else victim / "precious.txt")
    before = tree_state(work)
    line = refused(run(work, "out"), naming=target)
    assert "symbolic link" in line
    assert tree_state(work) == before
    assert (victim / "precious.txt").read_text() == "precious\n"


def test_the_output_directory_itself_may_be_a_link(work, tmp_path_factory):
    """A link the user chose (runs/ on another disk) is the directory, not a planted link inside it."""
    disk = tmp_path_factory.mktemp("other-disk")
    (work / "out").symlink_to(disk)
    res = run(work, "out")
    assert res.exit_code == 0, res.output
    assert (disk / "report.html").is_file()


# ----------------------------------------------------------------------------- names are not paths


@pytest.mark.parametrize("name", ["..", ".", "...", "a/b", "/abs", "x\0y", "\x1b[31mred"])
def test_an_experiment_name_is_never_a_path(work, name):
    (work / "runs").mkdir()
    for args in (["validate", str(work / "exp.yaml"), "--name", name],
                 ["run", str(work / "exp.yaml"), "--name", name, "--cache-dir", str(work / "cache")]):
        before = tree_state(work)
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        [line] = res.stderr.splitlines()
        assert line.startswith(f"error: --name ") and ": name: " in line, line
        assert "\x1b" not in line and "\0" not in line
        assert tree_state(work) == before


@pytest.mark.parametrize("label", ["../../escaped", "/tmp/escaped-abs", "..", "a/../../b"])
def test_labels_are_display_names_never_paths(work, label):
    cfg = work / "labels.yaml"
    cfg.write_text(CONFIG.replace("{path: ./model}", "{path: ./model, label: " + json.dumps(label) + "}")
                   .replace("label: toy", "label: " + json.dumps(label)))
    before = tree_state(work)
    res = run(work, "out", config="labels.yaml")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert tree_state(work, own=[work / "out", work / "cache"]) == before
    assert not Path("/tmp/escaped-abs").exists()
    [pred] = (work / "out" / "predictions").iterdir()
    assert pred.parent == work / "out" / "predictions" and "/" not in pred.name and "\0" not in pred.name


@pytest.mark.parametrize("label", ["a\0b", "\x1b]0;title\x07", "toy\nerror: a forged line", "\u202eevil", "tab\there"])
@pytest.mark.parametrize("where", ["model", "benchmark"])
def test_labels_with_control_or_invisible_characters_are_refused(work, label, where):
    """A label is printed on the terminal and in logs: a newline would forge a line, an escape
    sequence recolour or retitle the terminal, a bidi override make two labels look alike."""
    cfg = work / "labels.yaml"
    text = CONFIG.replace("{path: ./model}", "{path: ./model, label: " + json.dumps(label) + "}") if where == "model" \
        else CONFIG.replace("label: toy", "label: " + json.dumps(label))
    cfg.write_text(text)
    before = tree_state(work)
    for command in ("validate", "run"):
        res = CliRunner().invoke(main, [command, str(cfg), *(["-o", str(work / "out")] if command == "run" else [])])
        line = refused(res, naming=f"{cfg}:")
        assert "may not contain control or invisible characters" in line
        assert not any(ch in line for ch in "\0\x1b\x07\u202e\t")
    assert tree_state(work) == before


# ----------------------------------------------------------------------------- output inside the model


def test_an_output_directory_inside_the_model_directory_keeps_every_cache_key(work, tiny_marian):
    model = work / "mymodel"
    shutil.copytree(tiny_marian, model)
    cfg = work / "inside.yaml"
    cfg.write_text(CONFIG.replace("./model", "./mymodel"))
    for out in ("mymodel/runs/a", "mymodel/b"):
        assert run(work, out, config="inside.yaml").exit_code == 0
        res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(work / out), "--cache-dir", str(work / "cache")])
        assert res.exit_code == 0, res.output
        assert "1 cells (1 reused, 0 failed)" in res.stdout  # the identical re-run reuses every cell


def test_the_model_directory_itself_is_not_an_output_directory(work, tiny_marian):
    model = work / "mymodel"
    shutil.copytree(tiny_marian, model)
    before = tree_state(work)
    refused(run(work, "mymodel"), naming=model)
    assert tree_state(work) == before


@pytest.mark.parametrize("filename", ["../escape.html", "{work}/abs-report.html", "sub/../../escape.html"])
def test_a_reporter_file_name_is_never_a_way_out(work, filename):
    filename = filename.replace("{work}", str(work))
    (work / "exp.yaml").write_text(CONFIG + f"reporters: [{{name: html, params: {{filename: '{filename}'}}}}]\n")
    before = tree_state(work)
    line = refused(run(work, "out"), naming=f"reporter file name '{filename}' is outside the output directory")
    assert tree_state(work) == before, line  # not even the output directory is created


@pytest.mark.parametrize("name", [".lock", "predictions", "cell"])
def test_a_directory_or_file_where_the_run_keeps_the_other_is_refused(work, ours, name):
    if name == ".lock":
        (ours / ".lock").unlink()
        (ours / ".lock").mkdir()
        (ours / ".lock" / "mine.txt").write_text("mine\n")
        target = ours / ".lock"
    elif name == "predictions":
        shutil.rmtree(ours / "predictions")
        (ours / "predictions").write_text("a file of the user's\n")
        target = ours / "predictions"
    else:
        target = next((ours / "cells").iterdir())
        shutil.rmtree(target)
        target.write_text("not a directory\n")
    before = tree_state(work)
    refused(run(work, "out"), naming=target)
    assert tree_state(work) == before
