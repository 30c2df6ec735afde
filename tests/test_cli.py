"""The command line on day one: a run without YAML, --limit/--sample, `plugins NAME`, `--kind` forms."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def workdir(tmp_path, translation_files, tiny_marian, monkeypatch):
    (tmp_path / "model").symlink_to(tiny_marian, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


ONE_LINER = ["run", "--model", "model", "--benchmark", "parallel_text:source=test.en,reference=test.de",
             "--decoder", "greedy", "--decoder", "beam:num_beams=[2,3],max_new_tokens=6", "--metric", "bleu",
             "--metric", "chrf", "--seeds", "0,1", "-q"]


def files_of(outdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*"))
            if p.is_file() and (p.name == "metrics.csv" or p.parent.name == "predictions")}


def test_one_liner_runs_and_its_config_yaml_reproduces_it_byte_for_byte(workdir):
    r = invoke(*ONE_LINER, "-o", "out")
    assert r.exit_code == 0, r.output + r.stderr
    out = workdir / "out"
    assert f"config: {Path('out') / 'config.yaml'}" in r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiment"] == "out"  # the name comes from -o
    assert {(c["decoder"], c["seed"]) for c in manifest["cells"]} == {
        (d, s) for d in ("greedy", "beam[num_beams=2]", "beam[num_beams=3]") for s in (0, 1)}
    config = (out / "config.yaml").read_text()
    assert config.startswith("# Written by `harness run` from its command-line options")
    assert f"path: {(workdir / 'model').resolve()}" in config  # relative paths recorded absolute
    # the written config, run from another directory, gives byte-identical metrics and predictions
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    r2 = invoke("run", out / "config.yaml", "-o", workdir / "again", "-q")
    assert r2.exit_code == 0, r2.output + r2.stderr
    first, second = files_of(out), files_of(workdir / "again")
    assert len(first) == 1 + 6 and first == second
    assert not (workdir / "again" / "config.yaml").exists()  # a YAML run has its YAML already


def test_one_liner_validates_like_yaml(workdir):
    r = invoke("validate", "--model", "model", "--benchmark", "parallel_text:source=test.en,reference=test.de",
               "--decoder", "beam:num_beams=[2,4]")
    assert r.exit_code == 0, r.stderr
    assert r.output.splitlines()[0] == "command line: OK — 2 cells"
    assert "  decoders: beam[num_beams=2], beam[num_beams=4]" in r.output


@pytest.mark.parametrize("args, expected", [
    (["--decoder", "beam:num_beams=0"],
     "error: --decoder beam:num_beams=0: decoders[0].params.num_beams: Input should be greater than or equal to 1 (got 0)"),
    (["--decoder", "bem"],
     "error: --decoder bem: decoders[0].name: unknown decoder 'bem'; did you mean 'beam'?"),
    (["--decoder", "beam:num_beams"],
     "error: --decoder beam:num_beams: expected KEY=VALUE after 'beam:', got 'num_beams'"),
    (["--seeds", "0,x"], "error: --seeds 0,x: expected comma-separated integers, e.g. --seeds 0,1,2"),
    (["--set", "limit=0"], "error: --set limit=0: limit: Input should be greater than or equal to 1 (got 0)"),
    (["--limit", "0"], None),  # click refuses it: "Invalid value for '--limit': 0 is not in the range x>=1."
])
def test_one_liner_errors_name_the_option(workdir, args, expected):
    r = invoke("run", "--model", "model", "--benchmark", "parallel_text:source=test.en,reference=test.de",
               *args, "-o", "out")
    assert r.exit_code == 2
    if expected:
        assert r.stderr.startswith(expected), r.stderr
    assert not (workdir / "out").exists()  # nothing written


def test_run_without_config_or_options_says_what_is_missing(workdir):
    r = invoke("run", "--model", "model")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: give a CONFIG file, or describe the experiment with options: --benchmark missing")


def test_options_replace_sections_of_a_config(workdir):
    (workdir / "exp.yaml").write_text("name: e\nmodels: [{path: ./model}]\n"
                                      "benchmarks: [{name: parallel_text, params: {source: test.en, reference: test.de}}]\n"
                                      "decoders: [greedy]\n")
    r = invoke("validate", "exp.yaml", "--decoder", "beam:num_beams=2", "--seeds", "3,4", "--limit", "2")
    assert r.exit_code == 0, r.stderr
    assert "  decoders: beam\n" in r.output and "  seeds: 3, 4\n" in r.output
    assert r.output.endswith("  limit: 2 test examples per benchmark (the first ones); "
                             "not comparable to full-test-set results\n")
    # paths in options are relative to the working directory, also next to a CONFIG elsewhere
    (workdir / "sub").mkdir()
    (workdir / "sub" / "exp.yaml").write_text((workdir / "exp.yaml").read_text().replace("./model", "../model"))
    r = invoke("validate", "sub/exp.yaml", "--benchmark", "parallel_text:source=test.en,reference=test.de")
    assert r.exit_code == 0, r.stderr


BANNER = ("<strong>Limited to 2 examples per benchmark (a seeded random sample):</strong> "
          "not comparable to full-test-set results.")


def test_limit_and_sample_cut_every_benchmark_and_say_so(workdir):
    (workdir / "exp.yaml").write_text(
        "name: e\nmodels: [{path: ./model}]\nbenchmarks:\n"
        "  - {name: parallel_text, label: a, params: {source: test.en, reference: test.de}}\n"
        "  - {name: parallel_text, label: b, params: {source: test.en, reference: test.de, limit: 3}}\n"
        "decoders: [{name: greedy, params: {max_new_tokens: 4}}]\nmetrics: [chrf]\n"
        "reporters: [html, markdown]\n")
    r = invoke("run", "exp.yaml", "--limit", "2", "--sample", "-o", "out", "-q")
    assert r.exit_code == 0, r.output + r.stderr
    out = workdir / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["limit"] == {"n": 2, "sample": True, "benchmarks": {"a": 2, "b": 2}}
    assert manifest["config"]["limit"] == 2 and manifest["config"]["sample"] is True
    for pred in (out / "predictions").glob("*.jsonl"):
        assert len(pred.read_text().splitlines()) == 2
    assert BANNER in (out / "report.html").read_text()
    assert ("> **Limited to 2 examples per benchmark (a seeded random sample):** not comparable to full-test-set "
            "results.") in (out / "report.md").read_text()
    # the same config without --limit: full test sets, no banner (benchmark b keeps its own limit of 3)
    r = invoke("run", "exp.yaml", "-o", "full", "-q")
    assert r.exit_code == 0
    html = (workdir / "full" / "report.html").read_text()
    assert "Limited to" not in html and "Limited test sets: b (3 examples):" in html
    assert json.loads((workdir / "full" / "manifest.json").read_text())["limit"] == {
        "n": None, "sample": False, "benchmarks": {"b": 3}}


def test_sample_without_limit_is_refused(workdir):
    # (--limit itself applies to every benchmark, its plugin's parameters or not: tests/test_core_limit.py)
    r = invoke("validate", "--model", "model", "--benchmark", "parallel_text:source=test.en,reference=test.de",
               "--sample")
    assert r.stderr == ("error: --sample: sample: true needs limit: N (the number of test examples to sample per "
                        "benchmark)\n")


# ----------------------------------------------------------------------------- plugins


def test_plugins_kind_accepts_singular_and_plural():
    a, b = invoke("plugins", "--kind", "decoder"), invoke("plugins", "--kind", "decoders")
    assert a.exit_code == b.exit_code == 0
    assert a.output == b.output and a.output.startswith("\ndecoders:\n  ")


def test_plugins_name_shows_one_plugin_with_required_params():
    r = invoke("plugins", "parallel_text")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0] == "benchmark:" and lines[1].startswith("  parallel_text  (nlp-eval-harness: ")
    assert sum(ln.startswith("  ") and not ln.startswith("    ") for ln in lines) == 1  # one plugin
    assert "      - source: str required" in r.output
    assert "(required)" not in r.output
    assert "      - limit: int | null = None >=1  use only this many test examples" in lines  # all its params
    r = invoke("plugins", "bem")
    assert r.exit_code == 2 and r.stderr.startswith("error: no plugin named 'bem'; did you mean 'beam'?")
    r = invoke("plugins", "beam", "--kind", "metric")
    assert r.exit_code == 2 and r.stderr.startswith("error: no metric plugin named 'beam'.")


def test_plugins_listing_groups_shared_parameters():
    r = invoke("plugins", "--kind", "benchmark")
    lines = r.output.splitlines()
    i = lines.index("  shared parameters of benchmarks:")
    shared = lines[i + 1:]
    limit_line = next(ln for ln in shared if ln.startswith("      - limit:"))
    users = limit_line.rsplit("  [", 1)[1].rstrip("]").split(", ")
    assert {"hf_classification", "hf_translation", "parallel_text", "polarity_files", "sacrebleu_testset",
            "text_classification", "translation_table"} <= set(users) and users == sorted(users)
    # each plugin names the shared parameters it has instead of repeating them
    j = lines.index(next(ln for ln in lines if ln.startswith("  parallel_text  ")))
    block = lines[j:lines.index(next(ln for ln in lines[j + 1:] if ln.startswith("  ") and not ln.startswith("    ")))]
    assert not any(ln.startswith("      - limit:") for ln in block)
    assert any(ln.startswith("      (+ shared: limit, sample, sample_seed, train_limit") for ln in block)
    assert sum(ln.startswith("      - limit:") for ln in lines) == 1


# ----------------------------------------------------------------------------- a real process


@pytest.mark.slow
def test_one_liner_in_a_real_subprocess(workdir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--model", "model", "--benchmark",
                          "parallel_text:source=test.en,reference=test.de", "--decoder", "greedy:max_new_tokens=4",
                          "--metric", "bleu", "--limit", "3", "-o", "sub", "-q"],
                         cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (workdir / "sub" / "config.yaml").is_file()
    assert len((workdir / "sub" / "predictions").glob("*.jsonl").__next__().read_text().splitlines()) == 3
    assert "Limited to 3 examples per benchmark (the first 3):" in (workdir / "sub" / "report.html").read_text()
    listing = subprocess.run([sys.executable, "-m", "harness.cli", "benchmarks"], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "  multi30k-2016-en-de  " in listing.stdout


@pytest.mark.parametrize("argv", [["benchmarks"], ["benchmarks", "sst2"], ["plugins", "beam"],
                                  ["validate", "--model", "Helsinki-NLP/opus-mt-en-de", "--benchmark", "wmt14-en-de",
                                   "--benchmark", "sst2", "--limit", "10"]])
def test_new_light_commands_do_not_import_torch_or_datasets(argv, tmp_path):
    code = ("import sys\nfrom harness.cli import main\ntry:\n    main(%r)\nexcept SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'datasets', 'sklearn') if m in sys.modules))\n"
            % (argv,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_only_file_parameters_of_options_become_absolute(workdir):
    (workdir / "test").mkdir()  # a directory named like a split must not turn `split=test` into a path
    r = invoke("run", "--model", "model", "--benchmark",
               "translation_table:path=t.tsv,source_column=test,reference_column=ref", "-o", "out")
    config_yaml = workdir / "out" / "config.yaml"
    assert r.exit_code == 2 and not config_yaml.exists()  # t.tsv does not exist yet
    (workdir / "t.tsv").write_text("test\tref\nthe cat\tdie katze\n")
    r = invoke("run", "--model", "model", "--benchmark",
               "translation_table:path=t.tsv,source_column=test,reference_column=ref", "--decoder",
               "greedy:max_new_tokens=2", "--metric", "chrf", "-o", "out", "-q")
    assert r.exit_code == 0, r.output + r.stderr
    text = config_yaml.read_text()
    assert f"path: {workdir.resolve() / 't.tsv'}" in text and "source_column: test" in text


def test_report_with_another_baseline_writes_beside_the_run_and_leaves_its_report_alone(tmp_path, tiny_marian,
                                                                                        translation_files):
    from harness.testing import run_config

    src, ref = translation_files
    out = tmp_path / "run"
    run_config({"name": "rebase", "models": [{"path": str(tiny_marian)}],
                "benchmarks": [{"name": "parallel_text", "label": "toy", "params": {"source": str(src), "reference": str(ref)}}],
                "decoders": ["greedy", {"name": "beam", "params": {"num_beams": 3}}],
                "reporters": ["markdown"]}, out)
    before = (out / "report.md").read_text()
    assert "Baseline: greedy." in before
    res = CliRunner().invoke(main, ["report", str(out), "--baseline", "decoder=beam"])
    assert res.exit_code == 0, res.output
    again = (out / "baseline-decoder-beam" / "report.md").read_text()
    assert "Baseline: beam." in again and "### toy: against beam" in again
    assert (out / "report.md").read_text() == before
    assert json.loads((out / "baseline-decoder-beam" / "results.json").read_text())["comparisons"][0]["baseline"] == "beam"

    res = CliRunner().invoke(main, ["report", str(out), "--baseline", "decoder=bem"])
    assert res.exit_code == 2
    assert res.output.strip() == ("error: --baseline decoder=bem: no decoder labelled 'bem'; did you mean 'beam'? "
                                  "Allowed: beam, greedy")
    res = CliRunner().invoke(main, ["report", str(out), "--baseline", "seed=1"])
    assert res.exit_code == 2 and "give FACTOR=LABEL with FACTOR one of decoder, strategy, model" in res.output
