"""A data directory that lacks a preset's files is said so, never passed over for the network in
silence (issue 22): with the directory one level too high, `validate` said OK and `run` failed
with sacrebleu's URLError, never naming the missing file. Now validate names the files it
expected where (and the directory nearby that holds them); offline it refuses in one line, and
online it warns that the remote source will be downloaded. The same for $HARNESS_DATA_DIR and for
a config's `data_dir:`; params that only the local copy takes are refused as that, not as
"unknown keys" of the remote source.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.errors import DataError
from harness.experiment import presets
from harness.experiment.load import load_experiment, load_experiment_dict


@pytest.fixture
def shared(tmp_path):
    """``tmp/shared/data`` in the ../shared/data layout: Multi30k 2016 en-de and rt-polarity."""
    data = tmp_path / "shared" / "data"
    (data / "multi30k").mkdir(parents=True)
    (data / "multi30k" / "test_2016_flickr.en").write_text("a dog runs .\ntwo cats sleep .\n")
    (data / "multi30k" / "test_2016_flickr.de").write_text("ein hund rennt .\nzwei katzen schlafen .\n")
    (data / "rt_polarity").mkdir()
    (data / "rt_polarity" / "rt-polarity.pos.utf8.txt").write_text("".join(f"good film {i}\n" for i in range(20)))
    (data / "rt_polarity" / "rt-polarity.neg.utf8.txt").write_text("".join(f"bad film {i}\n" for i in range(20)))
    return data


def cli(cwd, *args, **env):
    """`harness ARGS` as a user types it, offline unless the test says otherwise; sacrebleu's cache
    is an empty directory (nothing of the user's own cache counts)."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "SACREBLEU": str(cwd / "sacrebleu-cache"), **env}
    if "HARNESS_DATA_DIR" not in env:
        full.pop("HARNESS_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=full)


def test_a_data_dir_one_level_too_high_is_refused_offline_naming_the_files(shared, tiny_marian):
    high = shared.parent  # tmp/shared instead of tmp/shared/data
    r = cli(shared.parent.parent, "validate", "--model", str(tiny_marian), "--benchmark", "multi30k-2016-en-de",
            "--data-dir", str(high))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()  # one error line, no traceback
    assert line == (
        f"error: --benchmark multi30k-2016-en-de: benchmarks[0].name: preset 'multi30k-2016-en-de': the data directory "
        f"{high} has no local copy: expected {high}/multi30k/test_2016_flickr.en, {high}/multi30k/test_2016_flickr.de "
        f"(they are in {shared}: --data-dir {shared}). Its remote source (sacrebleu multi30k/2016 en-de) would be "
        "downloaded instead, but downloads are switched off (HF_HUB_OFFLINE=1) and it is not cached: point data_dir: "
        "(or --data-dir) at the directory holding the files")
    # the right directory: the local copy, said so
    r = cli(shared.parent.parent, "validate", "--model", str(tiny_marian), "--benchmark", "multi30k-2016-en-de",
            "--data-dir", str(shared), "--decoder", "greedy:max_new_tokens=8")
    assert r.returncode == 0, r.stderr
    assert f"[preset multi30k-2016-en-de: local copy in {shared}]" in r.stdout and r.stderr == ""


def test_harness_data_dir_and_a_configs_data_dir_get_the_same_answer(shared, tiny_marian, tmp_path):
    high = shared.parent
    r = cli(tmp_path, "validate", "--model", str(tiny_marian), "--benchmark", "multi30k-2016-en-de",
            HARNESS_DATA_DIR=str(high))
    assert r.returncode == 2
    assert f"the data directory {high} ($HARNESS_DATA_DIR) has no local copy: expected {high}/multi30k/" in r.stderr
    assert "downloads are switched off (HF_HUB_OFFLINE=1)" in r.stderr

    (tmp_path / "exp.yaml").write_text(f"name: d\nmodels: [{{path: {tiny_marian}}}]\ndata_dir: shared\n"
                                       "benchmarks: [multi30k-2016-en-de]\n")
    r = cli(tmp_path, "validate", "exp.yaml")
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: exp.yaml:4: benchmarks[0].name: preset 'multi30k-2016-en-de': the data "
                               f"directory {high} has no local copy")


def test_params_of_the_missing_local_copy_are_refused_as_that(tmp_path, tiny_bert):
    """configs/note-arguments.yaml from a clone without ../shared/data: rt-polarity's local split
    params (dev_fraction...) met the Hub source, and validate said "unknown rt-polarity keys"."""
    (tmp_path / "exp.yaml").write_text(
        f"name: d\nmodels: [{{path: {tiny_bert}}}]\ndata_dir: ../../shared/data\nstrategies: [unmasked]\n"
        "benchmarks:\n  - name: rt-polarity\n    params: {dev_fraction: 0.0, test_fraction: 0.1, limit: 600, sample: true}\n")
    r = cli(tmp_path, "validate", "exp.yaml")
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    missing = (tmp_path / "../../shared/data").resolve()
    # a data directory that does not exist is said once, at its key, before any preset is read
    assert line == (f"error: exp.yaml:3: data_dir: {missing} not found; the benchmark presets (rt-polarity) look "
                    "for local copies of their data there; allowed: an existing directory")
    assert "unknown key" not in r.stderr


@pytest.fixture
def online(monkeypatch):
    """As if the network were there: no offline variable, the host answers, nothing cached."""
    for v in presets.OFFLINE_VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.delenv(presets.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(presets, "reachable", lambda host, timeout=3.0: True)
    monkeypatch.setattr(presets, "remote_cached", lambda src: False)


def test_online_the_fallback_is_a_warning_and_a_failed_download_names_the_missing_files(online, shared, tmp_path,
                                                                                           tiny_marian, monkeypatch):
    high = shared.parent
    cfg = {"name": "d", "models": [{"path": str(tiny_marian)}], "data_dir": str(high),
           "benchmarks": ["multi30k-2016-en-de"], "decoders": [{"name": "greedy", "params": {"max_new_tokens": 4}}]}
    resolved = load_experiment_dict(cfg)
    assert resolved.components["benchmarks"][0].name == "sacrebleu_testset"
    (warning,) = resolved.warnings
    assert warning.endswith("reading its remote source (sacrebleu multi30k/2016 en-de) instead, which downloads it "
                            "over the network")
    assert f"expected {high}/multi30k/test_2016_flickr.en" in warning

    # the download fails (no network after all): the run's error says what was missing locally
    from harness_plugins.benchmarks import sacrebleu_testset
    from harness.run.runner import run_experiment

    def no_network(self):
        raise DataError("sacrebleu test set multi30k/2016 en-de is not cached and could not be downloaded "
                        "(URLError: <urlopen error [Errno -3] Temporary failure in name resolution>)")

    monkeypatch.setattr(sacrebleu_testset.SacrebleuTestset, "_files", no_network)
    with pytest.raises(DataError) as info:
        run_experiment(resolved, tmp_path / "out", cache_dir=tmp_path / "cache", quiet=True)
    lines = str(info.value).splitlines()
    assert "could not be downloaded (URLError" in lines[0]
    assert lines[1] == (f"<dict>: benchmarks: 'multi30k-2016-en-de': read from the remote source because the data "
                        f"directory {high} has no local copy: expected {high}/multi30k/test_2016_flickr.en, "
                        f"{high}/multi30k/test_2016_flickr.de (they are in {shared}: --data-dir {shared})")
    assert not (tmp_path / "out").exists()


def test_online_but_unreachable_is_refused_at_validate(online, shared, tiny_marian, monkeypatch):
    monkeypatch.setattr(presets, "reachable", lambda host, timeout=3.0: False)
    with pytest.raises(Exception) as info:
        load_experiment_dict({"name": "d", "models": [{"path": str(tiny_marian)}], "data_dir": str(shared.parent),
                              "benchmarks": ["multi30k-2016-en-de"]})
    assert "but raw.githubusercontent.com cannot be reached and it is not cached" in str(info.value)


def test_a_preset_whose_local_copy_is_there_says_nothing(shared, tiny_marian, tmp_path):
    (tmp_path / "exp.yaml").write_text(f"name: d\nmodels: [{{path: {tiny_marian}}}]\ndata_dir: {shared}\n"
                                       "benchmarks: [multi30k-2016-en-de]\n"
                                       "decoders: [{name: greedy, params: {max_new_tokens: 4}}]\n")
    resolved = load_experiment(tmp_path / "exp.yaml")
    assert resolved.warnings == [] and resolved.fallbacks == {}
    assert resolved.components["benchmarks"][0].name == "parallel_text"
