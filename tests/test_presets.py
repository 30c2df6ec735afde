"""Benchmark presets: every shipped preset is valid, a config names one in a word, a data
directory switches it to local files, and the local layouts read the real ../shared/data."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import shared_data
from harness.experiment import presets
from harness.api import CellContext
from harness.cli import main
from harness.experiment.load import load_experiment_dict
from harness.errors import ConfigErrors
from harness.plugins import default_plugins

ALL = sorted(presets.presets())
WANTED = {"multi30k-2016-en-de", "multi30k-2017-en-de", "multi30k-2018-en-de", "multi30k-mscoco2017-en-de",
          "wmt14-en-de", "flores200-devtest-en-de", "sst2", "rt-polarity", "subj", "trec", "ag-news"}


def test_the_issue_s_presets_exist():
    assert WANTED <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_preset_is_valid_for_its_plugin(name, tmp_path):
    preset = presets.get(name)
    plugins = default_plugins()
    assert name not in plugins.registry("benchmark")  # a preset never hides a plugin
    assert preset.citation and preset.url.startswith("https://") and preset.split and preset.columns
    for source in (preset.remote, preset.local):
        if source is None:
            continue
        cls = plugins.get("benchmark", source.benchmark)
        assert cls.task == preset.task
        cls.Params.model_validate(source.params, context={"base_dir": tmp_path, "check_files": False})
    if preset.task == "translation":
        assert preset.languages and len(preset.languages.split("-")) == 2


def experiment(benchmarks, **extra):
    return {"name": "p", "models": [{"path": "Helsinki-NLP/opus-mt-en-de"}], "benchmarks": benchmarks, **extra}


def test_a_preset_named_in_a_config_expands_to_its_remote_source(monkeypatch):
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    resolved = load_experiment_dict(experiment(["wmt14-en-de", {"name": "sst2", "params": {"limit": 50}}]))
    wmt, sst2 = resolved.components["benchmarks"]
    assert (wmt.name, wmt.label, wmt.params.test_set, wmt.params.langpair) == \
        ("sacrebleu_testset", "wmt14-en-de", "wmt14", "en-de")
    assert (sst2.name, sst2.params.path, sst2.params.name, sst2.params.test_split, sst2.params.limit) == \
        ("hf_classification", "nyu-mll/glue", "sst2", "validation", 50)  # the user's params win
    assert resolved.origins == {"wmt14-en-de": "preset wmt14-en-de: sacrebleu wmt14 en-de",
                                "sst2": "preset sst2: Hugging Face dataset nyu-mll/glue (sst2)"}
    # default metrics follow the presets' tasks
    assert {m.name for m in resolved.components["metrics"]} == {"bleu", "chrf", "ter", "accuracy", "macro_f1", "mcc"}


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data" / "multi30k"
    d.mkdir(parents=True)
    (d / "test_2016_flickr.en").write_text("a dog runs .\n")
    (d / "test_2016_flickr.de").write_text("ein hund rennt .\n")
    return tmp_path / "data"


def test_a_data_dir_with_the_local_layout_switches_to_local_files(data_dir, monkeypatch):
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(presets, "remote_cached", lambda src: True)  # 2017 from sacrebleu's cache, offline
    resolved = load_experiment_dict(experiment(["multi30k-2016-en-de", "multi30k-2017-en-de"], data_dir=str(data_dir)))
    m16, m17 = resolved.components["benchmarks"]
    assert (m16.name, m16.params.source, m16.params.reference) == (
        "parallel_text", str(data_dir / "multi30k" / "test_2016_flickr.en"), str(data_dir / "multi30k" / "test_2016_flickr.de"))
    assert (m17.name, m17.params.test_set) == ("sacrebleu_testset", "multi30k/2017")  # no local copy: remote
    # ...which is said, not passed over (tests/test_data_dir.py: what happens when it cannot be fetched)
    assert resolved.warnings == [
        f"<dict>: benchmarks[1].name: preset 'multi30k-2017-en-de': the data directory {data_dir} has no local copy: "
        f"expected {data_dir}/multi30k/test_2017_flickr.en, {data_dir}/multi30k/test_2017_flickr.de; reading its "
        "remote source (sacrebleu multi30k/2017 en-de) instead, from its library's cache"]
    # the environment variable does the same when the config says nothing
    monkeypatch.setenv(presets.DATA_DIR_ENV, str(data_dir))
    assert load_experiment_dict(experiment(["multi30k-2016-en-de"])).components["benchmarks"][0].name == "parallel_text"


def test_a_local_only_preset_without_its_files_says_where_to_get_them(monkeypatch, tmp_path):
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    with pytest.raises(ConfigErrors) as info:
        load_experiment_dict(experiment(["multi30k-mscoco2017-en-de"]))
    (msg,) = str(info.value).splitlines()
    assert msg.startswith("<dict>: benchmarks[0].name: benchmark preset 'multi30k-mscoco2017-en-de' has no download "
                          "source, and its local copy needs multi30k/test_2017_mscoco.en, multi30k/test_2017_mscoco.de "
                          "in a data directory, and none is given (data_dir:, --data-dir or $HARNESS_DATA_DIR).")
    assert msg.endswith("Download test_2017_mscoco.en.gz and test_2017_mscoco.de.gz from "
                        "https://github.com/multi30k/dataset/tree/master/data/task1/raw, gunzip them into "
                        "DATA_DIR/multi30k/ and give --data-dir DATA_DIR (or HARNESS_DATA_DIR).")


def test_unknown_benchmark_suggests_presets_too():
    with pytest.raises(ConfigErrors) as info:
        load_experiment_dict(experiment(["multi30k-2016-en-dx"]))
    assert "unknown benchmark 'multi30k-2016-en-dx'; did you mean 'multi30k-2016-en-de'?" in str(info.value)


def test_validate_shows_the_resolved_params(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: p\nmodels: [{path: Helsinki-NLP/opus-mt-en-de}]\nbenchmarks: [multi30k-2016-en-de]\n")
    r = CliRunner().invoke(main, ["validate", str(cfg), "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    src = data_dir / "multi30k" / "test_2016_flickr"
    assert (f"    multi30k-2016-en-de = parallel_text(source={src}.en, reference={src}.de)  "
            f"[preset multi30k-2016-en-de: local copy in {data_dir}]") in r.output
    r = CliRunner().invoke(main, ["validate", str(cfg)])
    assert ("    multi30k-2016-en-de = sacrebleu_testset(test_set=multi30k/2016, langpair=en-de)  "
            "[preset multi30k-2016-en-de: sacrebleu multi30k/2016 en-de]") in r.output


def test_harness_benchmarks_lists_and_shows_presets(data_dir, monkeypatch):
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    r = CliRunner().invoke(main, ["benchmarks"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0] == "translation:" and "classification:" in lines
    assert any(ln.split()[0] == "multi30k-2016-en-de" and ln.endswith("<- sacrebleu multi30k/2016 en-de")
               for ln in lines if ln.startswith("  "))
    assert sum(ln.startswith("  ") for ln in lines) == len(ALL)
    r = CliRunner().invoke(main, ["benchmarks", "--data-dir", str(data_dir)])
    assert any(ln.split()[0] == "multi30k-2016-en-de" and ln.endswith(f"<- local copy in {data_dir}")
               for ln in r.output.splitlines() if ln.startswith("  "))
    r = CliRunner().invoke(main, ["benchmarks", "sst2"])
    assert r.exit_code == 0
    assert "citation: \"Richard Socher et al. 2013." in r.output
    assert r.output.rstrip().endswith("# data: Hugging Face dataset nyu-mll/glue (sst2)")
    r = CliRunner().invoke(main, ["benchmarks", "sst3"])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: no benchmark preset named 'sst3'; did you mean 'sst2'?")


def load_local(name, limit=None):
    """The preset's local source, read from ../shared/data through its plugin."""
    data = shared_data()
    preset = presets.get(name)
    source, params, origin = preset.choose(data)
    assert origin == f"local copy in {data}"
    if limit:
        params["limit"] = limit
    cls = default_plugins().get("benchmark", source.benchmark)
    return cls(cls.Params.model_validate(params, context={"base_dir": data})).load(
        CellContext(seed=0, workdir=data, cache_dir=data))


@pytest.mark.integration
def test_multi30k_local_copy_is_the_full_test_set():
    d = load_local("multi30k-2016-en-de")
    assert len(d.test) == 1000
    first_en = (shared_data("multi30k", "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()[0])
    first_de = (shared_data("multi30k", "test_2016_flickr.de").read_text(encoding="utf-8").splitlines()[0])
    assert (d.test[0].source, d.test[0].reference) == (first_en, first_de)
    fr = load_local("multi30k-2016-en-fr")
    assert len(fr.test) == 1000 and fr.test[0].source == first_en


@pytest.mark.integration
def test_sst2_local_copy_is_the_glue_dev_set():
    d = load_local("sst2")
    assert len(d.test) == 872
    assert d.labels == ["negative", "positive"]
    assert sum(ex.label == "negative" for ex in d.test) == 428


@pytest.mark.integration
def test_rt_polarity_local_copy_splits_1066_test_sentences_with_hub_label_names():
    d = load_local("rt-polarity")
    assert len(d.test) == 1066 == presets.get("rt-polarity").size
    assert sorted(set(d.labels)) == ["neg", "pos"]  # the same names as the Hub copy's ClassLabel


@pytest.mark.integration
def test_one_liner_on_a_preset_reads_the_local_copy(tmp_path, tiny_marian, monkeypatch):
    import json

    data = shared_data()
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["run", "--model", str(tiny_marian), "--benchmark", "multi30k-2016-en-de",
                                  "--data-dir", str(data), "--limit", "3", "--decoder", "greedy:max_new_tokens=3",
                                  "--metric", "bleu", "-o", "out", "-q"])
    assert r.exit_code == 0, r.output + r.stderr
    (pred,) = (tmp_path / "out" / "predictions").glob("*.jsonl")
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    lines = shared_data("multi30k", "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()
    assert [row["source"] for row in rows] == lines[:3]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (bench,) = manifest["resolved"]["benchmarks"]
    # resolved on both sides: ../shared may be a symlink to the data
    assert (bench["plugin"], bench["label"], Path(bench["params"]["source"]).resolve()) == (
        "parallel_text", "multi30k-2016-en-de", (data / "multi30k" / "test_2016_flickr.en").resolve())
    (data_dir,) = [line.split(": ", 1)[1] for line in (tmp_path / "out" / "config.yaml").read_text().splitlines()
                   if line.startswith("data_dir: ")]
    assert Path(data_dir).resolve() == data.resolve()


@pytest.mark.integration
def test_mpqa_local_copy_holds_out_a_stratified_tenth():
    d = load_local("mpqa")
    assert len(d.test) == 1060 == presets.get("mpqa").size  # 729 of 7,294 negative + 331 of 3,312 positive
    assert sum(ex.label == "negative" for ex in d.test) == 729
    assert len(d.train) + len(d.dev) + len(d.test) == 10606 - 3  # three empty phrases dropped
